// Reads the model repository on disk. Two layouts, both served:
//   MODELS_DIR/NAME/model.onnx + model.json             one version (the card's `version`), the flat layout
//   MODELS_DIR/NAME/VERSION/model.onnx + model.json     several versions; the newest answers unless one is pinned
// Names come only from directory listings and are checked against one pattern, so a request can never name a path:
// it can only pick among the names found here.

import { readdir, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { CARD_FILE, ModelCardError, ONNX_FILE, readCard, type ModelCard } from '../model/card.js';
import type { ModelLoadPolicy } from '../config.js';

/** Model names and versions: letters, digits and `._-`, not starting with a dot (no `..`, no separators). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** One servable version of a model, validated. */
export interface ModelVersionDir {
  name: string;
  version: string;
  /** Absolute directory holding model.onnx and model.json. */
  dir: string;
  card: ModelCard;
  /** Absolute path of model.onnx. */
  onnxPath: string;
  /** Size and modification times of both files: a reload reloads what changed. */
  fingerprint: string;
  /** true for MODELS_DIR/NAME/VERSION/, false for the flat MODELS_DIR/NAME/. */
  versioned: boolean;
}

/** Something left out under MODEL_LOAD_POLICY=skip-bad. */
export interface SkippedModel {
  /** The model directory or file at fault, relative to MODELS_DIR. */
  path: string;
  /** Why, with paths relative to MODELS_DIR. */
  reason: string;
}

export interface Repository {
  /** Sorted by name, then newest version first; at most `maxVersions` per name. */
  versions: ModelVersionDir[];
  skipped: SkippedModel[];
}

export interface ScanOptions {
  policy: ModelLoadPolicy;
  /** Newest good versions kept per model. */
  maxVersions: number;
}

/** Orders versions oldest first: numerically where they are numbers ("9" < "10"), naturally otherwise. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true, sensitivity: 'variant' }) || (a < b ? -1 : a > b ? 1 : 0);
}

/** A message with the repository's absolute root taken out, fit for an admin response. */
export function relativeToRepo(message: string, modelsDir: string): string {
  const root = resolve(modelsDir) + sep;
  return message.split(root).join('');
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function fingerprint(dir: string): Promise<string> {
  const parts = await Promise.all(
    [ONNX_FILE, CARD_FILE].map(async (f) => {
      const st = await stat(join(dir, f));
      return `${st.size}:${st.mtimeMs}`;
    }),
  );
  return parts.join('|');
}

/** Validates one version directory; throws an error naming the file and the field at fault. */
async function readVersion(root: string, name: string, version: string | undefined): Promise<ModelVersionDir> {
  const dir = version === undefined ? join(root, name) : join(root, name, version);
  const card = await readCard(dir);
  const cardFile = join(dir, CARD_FILE);
  if (card.name !== name) throw new ModelCardError(cardFile, 'name', `is "${card.name}" but must equal its directory name "${name}"`);
  if (version !== undefined && card.version !== version)
    throw new ModelCardError(cardFile, 'version', `is "${card.version}" but must equal its directory name "${version}"`);
  if (!NAME_RE.test(card.version))
    throw new ModelCardError(cardFile, 'version', `"${card.version}" is not a version name (letters, digits, ._-)`);
  const onnxPath = join(dir, ONNX_FILE);
  if (!(await isFile(onnxPath))) throw new Error(`${onnxPath}: missing (every model directory needs ${ONNX_FILE} beside ${CARD_FILE})`);
  return { name, version: card.version, dir, card, onnxPath, fingerprint: await fingerprint(dir), versioned: version !== undefined };
}

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/**
 * Scans MODELS_DIR. With policy `fail` the first bad model throws (naming its file and field); with `skip-bad` it
 * is listed in `skipped` and the rest is served. A MODELS_DIR with nothing servable always throws.
 */
export async function scanRepository(modelsDir: string, opts: ScanOptions): Promise<Repository> {
  const root = resolve(modelsDir);
  let names: string[];
  try {
    names = await subdirs(root);
  } catch (err) {
    throw new Error(`MODELS_DIR ${modelsDir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const versions: ModelVersionDir[] = [];
  const skipped: SkippedModel[] = [];
  const bad = (path: string, err: unknown) => {
    if (opts.policy === 'fail') throw err;
    skipped.push({ path: relativeToRepo(path, modelsDir), reason: relativeToRepo((err as Error).message, modelsDir) });
  };

  for (const name of names) {
    const dir = join(root, name);
    if (!NAME_RE.test(name)) {
      bad(dir, new Error(`${dir}: "${name}" is not a model name (letters, digits, ._-)`));
      continue;
    }
    const flat = await isFile(join(dir, CARD_FILE));
    // Version directories are the sub-directories holding a card; others (logs, plots) are not versions.
    const candidates: string[] = [];
    for (const sub of await subdirs(dir)) if (await isFile(join(dir, sub, CARD_FILE))) candidates.push(sub);
    if (flat && candidates.length > 0) {
      bad(dir, new Error(`${dir}: has both ${CARD_FILE} and version directories (${candidates.join(', ')}); use one layout`));
      continue;
    }
    if (candidates.length === 0) {
      // The flat layout (or nothing: readCard then says which file is missing).
      try {
        versions.push(await readVersion(root, name, undefined));
      } catch (err) {
        bad(dir, err);
      }
      continue;
    }
    // Newest first, until maxVersions good ones are found; older ones are not even read.
    const newestFirst = candidates.sort(compareVersions).reverse();
    let kept = 0;
    for (const v of newestFirst) {
      if (kept === opts.maxVersions) break;
      const vdir = join(dir, v);
      if (!NAME_RE.test(v)) {
        bad(vdir, new Error(`${vdir}: "${v}" is not a version name (letters, digits, ._-)`));
        continue;
      }
      try {
        versions.push(await readVersion(root, name, v));
        kept++;
      } catch (err) {
        bad(vdir, err);
      }
    }
  }
  if (versions.length === 0) {
    const why = skipped.length ? `; skipped: ${skipped.map((s) => s.reason).join('; ')}` : '';
    throw new Error(`MODELS_DIR ${modelsDir} holds no model (expected <name>/model.json + ${ONNX_FILE}, or <name>/<version>/…)${why}`);
  }
  return { versions, skipped };
}
