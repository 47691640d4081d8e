// A strict subset of kustomize, so that the tests read k8s/ as data without shelling out: `resources` (files and
// directories), `components`, `namespace`, `images`, `patches` given as RFC 6902 JSON patches with a target, and
// `replacements` (field paths with `*` and `[key]`, whole values or one delimited part). Any other field, or a
// patch that is not a JSON patch, throws: a kustomization that starts using a feature this renderer lacks fails the
// tests loudly instead of being rendered wrong. The manifests test also checks that `kubectl kustomize` (the real
// kustomize) renders exactly the same objects.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
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

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'components', 'namespace', 'images', 'patches', 'replacements']);

interface Replacement {
  source: { kind: string; name?: string; fieldPath: string };
  targets: { select: PatchTarget; fieldPaths: string[]; options?: { delimiter?: string; index?: number } }[];
}

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
  return render(dir, 'Kustomization', []);
}

/**
 * A Kustomization renders its resources, then applies its components to them, then its own transformers; a
 * Component does the same to the objects of the kustomization that lists it (`inherited`).
 */
function render(dir: string, kind: 'Kustomization' | 'Component', inherited: K8sObject[]): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const k = YAML.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const key of Object.keys(k))
    if (!KNOWN_FIELDS.has(key)) throw new Error(`${file}: field "${key}" is not supported by the test renderer`);
  if (k.kind !== kind) throw new Error(`${file}: kind must be ${kind}`);

  let objects: K8sObject[] = inherited;
  for (const res of (k.resources ?? []) as string[]) {
    const path = join(dir, res);
    if (!existsSync(path)) throw new Error(`${file}: resource "${res}" does not exist`);
    objects.push(...(statSync(path).isDirectory() ? renderKustomization(path) : readManifests(path)));
  }
  for (const c of (k.components ?? []) as string[]) objects = render(join(dir, c), 'Component', objects);

  for (const p of (k.patches ?? []) as { target?: PatchTarget; patch?: string; path?: string }[]) {
    if (!p.target) throw new Error(`${file}: every patch needs a target`);
    const text = p.patch ?? (p.path ? readFileSync(join(dir, p.path), 'utf8') : undefined);
    if (text === undefined) throw new Error(`${file}: a patch needs "patch" or "path"`);
    const ops = YAML.parse(text) as unknown;
    if (!Array.isArray(ops)) throw new Error(`${file}: only JSON 6902 patches (a list of operations) are supported`);
    const matches = objects.filter((o) => selected(o, p.target!));
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

  for (const r of (k.replacements ?? []) as Replacement[]) applyReplacement(objects, r, file);
  return objects;
}

const selected = (o: K8sObject, t: PatchTarget) => (!t.kind || o.kind === t.kind) && (!t.name || o.metadata.name === t.name);

/** A kustomize field path: dot-separated keys, `[a.b/c]` for keys with dots, `*` for every element, `[k=v]` for the
 *  elements whose field k is v. */
function parseFieldPath(path: string): string[] {
  return [...path.matchAll(/\[([^\]]+)\]|([^.[\]]+)/g)].map((m) => m[1] ?? m[2]!);
}

/** The containers of `value` that `keys` leads to, with the last key (missing leaves are skipped, as kustomize does). */
function fieldHolders(value: unknown, keys: string[]): [Record<string, unknown> | unknown[], string][] {
  if (typeof value !== 'object' || value === null) return [];
  const [key, ...rest] = keys;
  // `name=embed`: the elements of a list whose field `name` is `embed`.
  const selector = /^([^=]+)=(.*)$/.exec(key!);
  if (selector && Array.isArray(value))
    return value.filter((v) => (v as Record<string, unknown>)?.[selector[1]!] === selector[2]).flatMap((v) => (rest.length ? fieldHolders(v, rest) : []));
  if (rest.length === 0) return key! in value ? [[value as Record<string, unknown>, key!]] : [];
  if (key === '*') return Array.isArray(value) ? value.flatMap((v) => fieldHolders(v, rest)) : [];
  return fieldHolders((value as Record<string, unknown>)[key!], rest);
}

function applyReplacement(objects: K8sObject[], r: Replacement, where: string): void {
  const sources = objects.filter((o) => selected(o, r.source));
  if (sources.length !== 1) throw new Error(`${where}: replacement source ${JSON.stringify(r.source)} matches ${sources.length} objects`);
  const found = fieldHolders(sources[0], parseFieldPath(r.source.fieldPath));
  if (found.length !== 1) throw new Error(`${where}: replacement source field ${r.source.fieldPath} not found`);
  const [holder, key] = found[0]!;
  const value = (holder as Record<string, unknown>)[key];
  for (const t of r.targets) {
    for (const o of objects.filter((x) => selected(x, t.select))) {
      for (const fp of t.fieldPaths) {
        for (const [h, k] of fieldHolders(o, parseFieldPath(fp))) {
          const target = h as Record<string, unknown>;
          const { delimiter, index } = t.options ?? {};
          if (delimiter === undefined) {
            // A number copied into a string field stays a string (an env value), as kustomize writes it.
            target[k] = typeof target[k] === 'string' ? String(value) : value;
            continue;
          }
          const parts = String(target[k]).split(delimiter);
          if (index === undefined || index < 0 || index >= parts.length) throw new Error(`${where}: replacement index ${index} outside ${fp}`);
          parts[index] = String(value);
          target[k] = parts.join(delimiter);
        }
      }
    }
  }
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
