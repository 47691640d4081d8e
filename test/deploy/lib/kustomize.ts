// A strict subset of kustomize, enough to render k8s/ in tests on machines without a kustomize binary:
// `resources` (files and directories), `namespace`, `images` and `patches` given as RFC 6902 JSON patches with a
// target. Any other field, or a patch that is not a JSON patch, throws: a kustomization that starts using a feature
// this renderer lacks fails the tests loudly instead of being rendered wrong. Where `kubectl` exists, the manifests
// test also compares this rendering with `kubectl kustomize`.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

interface PatchTarget {
  kind?: string;
  name?: string;
}

interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: unknown;
}

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);

// Kinds kustomize leaves without a namespace (only those that could appear here).
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'APIService']);

/** Parses every YAML document of a manifest file into objects (empty documents dropped). */
export function readManifests(file: string): K8sObject[] {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Renders the kustomization in `dir` like `kustomize build dir` (for the supported subset). */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const k = YAML.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const key of Object.keys(k))
    if (!KNOWN_FIELDS.has(key)) throw new Error(`${file}: field "${key}" is not supported by the test renderer`);
  if (k.kind !== 'Kustomization') throw new Error(`${file}: kind must be Kustomization`);

  const objects: K8sObject[] = [];
  for (const res of (k.resources ?? []) as string[]) {
    const path = join(dir, res);
    if (!existsSync(path)) throw new Error(`${file}: resource "${res}" does not exist`);
    objects.push(...(statSync(path).isDirectory() ? renderKustomization(path) : readManifests(path)));
  }

  for (const p of (k.patches ?? []) as { target?: PatchTarget; patch?: string; path?: string }[]) {
    if (!p.target) throw new Error(`${file}: every patch needs a target`);
    const text = p.patch ?? (p.path ? readFileSync(join(dir, p.path), 'utf8') : undefined);
    if (text === undefined) throw new Error(`${file}: a patch needs "patch" or "path"`);
    const ops = YAML.parse(text) as unknown;
    if (!Array.isArray(ops)) throw new Error(`${file}: only JSON 6902 patches (a list of operations) are supported`);
    const matches = objects.filter(
      (o) => (!p.target!.kind || o.kind === p.target!.kind) && (!p.target!.name || o.metadata.name === p.target!.name),
    );
    if (matches.length === 0) throw new Error(`${file}: patch target ${JSON.stringify(p.target)} matches nothing`);
    for (const o of matches) for (const op of ops as JsonPatchOp[]) applyJsonPatchOp(o, op, file);
  }

  for (const img of (k.images ?? []) as { name: string; newName?: string; newTag?: string }[]) {
    for (const o of objects) for (const c of podContainers(o)) {
      const [name, tag] = splitImage(c.image);
      if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
    }
  }

  if (typeof k.namespace === 'string')
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  return objects;
}

function splitImage(image: string): [string, string | undefined] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, undefined];
}

/** The containers (and init containers) of a workload's pod template. */
export function podContainers(o: K8sObject): { name: string; image: string; [key: string]: unknown }[] {
  const spec = (o.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template?.spec;
  if (!spec) return [];
  return [...((spec.initContainers ?? []) as never[]), ...((spec.containers ?? []) as never[])];
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** RFC 6902 add/replace/remove/test on one object, in place. */
export function applyJsonPatchOp(doc: object, op: JsonPatchOp, where: string): void {
  const parts = op.path.split('/').slice(1).map(unescapePointer);
  if (parts.length === 0) throw new Error(`${where}: patching the whole document is not supported`);
  let parent: Record<string, unknown> | unknown[] = doc as Record<string, unknown>;
  for (const key of parts.slice(0, -1)) {
    const next: unknown = Array.isArray(parent) ? parent[Number(key)] : parent[key];
    if (typeof next !== 'object' || next === null) throw new Error(`${where}: path ${op.path} does not exist`);
    parent = next as Record<string, unknown> | unknown[];
  }
  const last = parts[parts.length - 1]!;
  const exists = Array.isArray(parent) ? last !== '-' && Number(last) < parent.length : last in parent;
  switch (op.op) {
    case 'add':
      if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, op.value);
      else parent[last] = op.value;
      return;
    case 'replace':
      if (!exists) throw new Error(`${where}: replace of missing ${op.path}`);
      if (Array.isArray(parent)) parent[Number(last)] = op.value;
      else parent[last] = op.value;
      return;
    case 'remove':
      if (!exists) throw new Error(`${where}: remove of missing ${op.path}`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      return;
    case 'test': {
      const cur = Array.isArray(parent) ? parent[Number(last)] : parent[last];
      if (JSON.stringify(cur) !== JSON.stringify(op.value)) throw new Error(`${where}: test failed at ${op.path}`);
      return;
    }
    default:
      throw new Error(`${where}: unsupported op ${JSON.stringify(op)}`);
  }
}
