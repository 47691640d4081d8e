// The rendered overlays and the small lookups the manifest tests share: one object by kind and name, label
// selection, and the prometheus-adapter rules.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import YAML from 'yaml';
import { type K8sObject, renderKustomization } from './kustomize.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const K8S = join(ROOT, 'k8s');
export const OVERLAYS = ['minimal', 'cpu', 'gpu'] as const;
export type Overlay = (typeof OVERLAYS)[number];
/** Overlays for clusters with the Prometheus Operator, API keys and an Ingress. */
export const PRODUCTION_OVERLAYS: readonly Overlay[] = ['cpu', 'gpu'];

export const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, renderKustomization(join(K8S, 'overlays', o))])) as Record<Overlay, K8sObject[]>;

export type Manifest = K8sObject & { spec: any; data?: any };

export function one(objects: K8sObject[], kind: string, name?: string): Manifest {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `exactly one ${kind}${name ? `/${name}` : ''}`).toHaveLength(1);
  return found[0] as Manifest;
}

/** Does a label selector's matchLabels select these labels? */
export function selects(matchLabels: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);
}

export interface AdapterRule {
  seriesQuery: string;
  resources: { overrides: Record<string, { resource: string }> };
  name: { matches: string; as: string };
  metricsQuery: string;
}

export function adapterRules(): AdapterRule[] {
  const cm = one(renderKustomization(join(K8S, 'prometheus-adapter')), 'ConfigMap', 'adapter-config');
  return (YAML.parse(cm.data['config.yaml']) as { rules: AdapterRule[] }).rules;
}
