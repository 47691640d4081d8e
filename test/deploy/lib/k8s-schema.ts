// Schema checks of rendered Kubernetes objects, with two independent sources:
// - kubernetes-models (and @kubernetes-models/prometheus-operator for the CRDs): the OpenAPI schemas compiled to
//   validators: types, enums, patterns and required fields. They accept unknown fields, like the API server's
//   non-strict mode would silently drop them.
// - the field maps of @kubernetes/client-node's generated models, walked to find fields no schema knows (a typo such
//   as `readinessprobe` would otherwise pass). Built-in kinds only: the CRDs have no such maps.

import * as models from '@kubernetes/client-node/dist/gen/models/all.js';
import type { K8sObject } from './kustomize.js';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return group === '' ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
}

/** Validates one object against its kind's schema; throws naming the object and the failing path. */
export async function validateAgainstSchema(o: K8sObject): Promise<void> {
  const spec = modelModule(o.apiVersion, o.kind);
  let Cls: ModelClass | undefined;
  try {
    Cls = ((await import(spec)) as Record<string, ModelClass>)[o.kind];
  } catch {
    throw new Error(`${o.kind}/${o.metadata.name}: no schema for ${o.apiVersion} ${o.kind} (${spec})`);
  }
  if (!Cls) throw new Error(`${o.kind}/${o.metadata.name}: ${spec} has no ${o.kind}`);
  try {
    new Cls(o).validate();
  } catch (e) {
    throw new Error(`${o.kind}/${o.metadata.name}: ${(e as Error).message}`);
  }
}

interface Attribute {
  baseName: string;
  type: string;
}
type FieldMapClass = { getAttributeTypeMap(): Attribute[] };
const registry = models as unknown as Record<string, FieldMapClass | undefined>;

function fieldMapClass(type: string): FieldMapClass | undefined {
  const c = registry[type];
  return c && typeof c.getAttributeTypeMap === 'function' ? c : undefined;
}

/** Paths of fields that the object's kind does not define; undefined when the kind has no field map (CRDs). */
export function unknownFields(o: K8sObject): string[] | undefined {
  const version = o.apiVersion.split('/').pop()!;
  const root = `${version[0]!.toUpperCase()}${version.slice(1)}${o.kind}`;
  if (!fieldMapClass(root)) return undefined;
  const found: string[] = [];
  walk(o, root, '', found);
  return found;
}

function walk(value: unknown, type: string, path: string, found: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, array[1]!, `${path}[${i}]`, found));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, map[1]!, `${path}.${k}`, found);
    return;
  }
  const cls = fieldMapClass(type);
  if (!cls || typeof value !== 'object' || Array.isArray(value)) return; // primitives, IntOrString, any
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = attrs.get(k);
    if (t === undefined) found.push(`${path}.${k}`.replace(/^\./, ''));
    else walk(v, t, `${path}.${k}`, found);
  }
}
