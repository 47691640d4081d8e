// Training checkpoints: everything a resumed run needs to continue exactly as if uninterrupted — the weights,
// LION's momentum, the position (global step; data order and augmentation are pure functions of seed and step),
// the running epoch loss, the evaluations so far and the recipe that made them. Named by epoch, step and compute
// (FLOPs × 3 × examples), as the paper names its checkpoints. A JSON file beside one binary of float32 tensors,
// each written to a temporary name and renamed, so a crash mid-write never leaves a checkpoint that looks whole.

import { readdir, readFile, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { assertWeightsMatch, isStandard, namedTensors, type MlpConfig, type MlpWeights } from '../model/mlp.js';
import type { OptimizerState } from './engines/engine.js';

export const CHECKPOINT_FORMAT = 1;

export interface EvalRecord {
  /** Epochs completed when evaluated. */
  epoch: number;
  step: number;
  examplesSeen: number;
  /** On the validation images; absent when nothing is held out (`val` 0, or a refit). */
  valAccuracy?: number;
  valLoss?: number;
  /** Mean training loss (soft targets) over the epoch. */
  trainLoss: number;
  elapsedSeconds: number;
}

export interface CheckpointMeta {
  format: number;
  /** The options that determine the run; a resume must use the same. */
  recipe: Record<string, unknown>;
  cfg: MlpConfig;
  /** Next global step to run. */
  step: number;
  /** Epochs completed (fractional mid-epoch). */
  epoch: number;
  examplesSeen: number;
  /** Wall time of all sessions so far. */
  elapsedSeconds: number;
  /** Sum and count of the losses of the epoch in progress (the epoch's mean train loss survives a mid-epoch stop). */
  epochLoss: { sum: number; count: number };
  evals: EvalRecord[];
  /** The logged train-loss curve (for the plot) and the partial window of the next point. */
  curve: { epoch: number; loss: number }[];
  windowLoss: { sum: number; count: number };
  normalization: { mean: number[]; std: number[] };
  engine: string;
  /** Where each tensor sits in the .bin file, in float32 elements: weights (namedTensors order), then momentum. */
  tensors: { name: string; shape: number[]; offset: number; length: number }[];
}

export interface Checkpoint {
  meta: CheckpointMeta;
  weights: MlpWeights;
  momentum: OptimizerState;
}

/** Rebuilds MlpWeights from arrays in `namedTensors` order. */
export function weightsFromArrays(cfg: MlpConfig, arrays: Float32Array[]): MlpWeights {
  let k = 0;
  const take = () => {
    const a = arrays[k++];
    if (!a) throw new RangeError(`weightsFromArrays: ${arrays.length} arrays are too few for ${cfg.depth} blocks`);
    return a;
  };
  const lin = () => ({ weight: take(), bias: take() });
  const stem = lin();
  const blocks = [];
  const layers = [];
  for (let i = 0; i < cfg.depth; i++) {
    if (isStandard(cfg)) {
      layers.push(lin());
      continue;
    }
    const norm = { gamma: take(), beta: take() };
    blocks.push({ norm, expand: lin(), collapse: lin() });
  }
  const w: MlpWeights = { stem, blocks, ...(isStandard(cfg) ? { layers } : {}), head: lin() };
  if (k !== arrays.length) throw new RangeError(`weightsFromArrays: ${arrays.length} arrays, the config uses ${k}`);
  assertWeightsMatch(cfg, w);
  return w;
}

export function checkpointName(epoch: number, step: number, computeFlops: number): string {
  return `ckpt-e${String(epoch).padStart(4, '0')}-s${String(step).padStart(7, '0')}-c${computeFlops.toExponential(2).replace('+', '')}`;
}

/** Writes `<dir>/<name>.json` and `<name>.bin`; returns the .json path. */
export async function saveCheckpoint(
  dir: string,
  name: string,
  meta: Omit<CheckpointMeta, 'tensors' | 'format'>,
  weights: MlpWeights,
  momentum: OptimizerState,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const named = namedTensors(weights);
  if (momentum.length !== named.length) throw new RangeError(`momentum has ${momentum.length} tensors, weights ${named.length}`);
  const tensors: CheckpointMeta['tensors'] = [];
  let offset = 0;
  const parts: Float32Array[] = [];
  const add = (tname: string, shape: number[], data: Float32Array) => {
    tensors.push({ name: tname, shape, offset, length: data.length });
    parts.push(data);
    offset += data.length;
  };
  named.forEach((t) => add(t.name, t.shape, t.data));
  named.forEach((t, i) => add(`momentum/${t.name}`, t.shape, momentum[i]));
  const bin = new Float32Array(offset);
  let at = 0;
  for (const p of parts) {
    bin.set(p, at);
    at += p.length;
  }
  const full: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...meta, tensors };
  const jsonPath = join(dir, `${name}.json`);
  const binPath = join(dir, `${name}.bin`);
  // The .bin first: a .json (what `latestCheckpoint` looks for) only ever appears beside a complete .bin.
  await writeFile(`${binPath}.tmp`, new Uint8Array(bin.buffer));
  await rename(`${binPath}.tmp`, binPath);
  await writeFile(`${jsonPath}.tmp`, JSON.stringify(full, null, 1) + '\n');
  await rename(`${jsonPath}.tmp`, jsonPath);
  return jsonPath;
}

export async function loadCheckpoint(jsonPath: string): Promise<Checkpoint> {
  const meta = JSON.parse(await readFile(jsonPath, 'utf8')) as CheckpointMeta;
  if (meta.format !== CHECKPOINT_FORMAT)
    throw new RangeError(`${jsonPath}: checkpoint format ${meta.format}, this code reads ${CHECKPOINT_FORMAT}`);
  const binPath = jsonPath.replace(/\.json$/, '.bin');
  const bytes = await readFile(binPath);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const total = meta.tensors.reduce((s, t) => Math.max(s, t.offset + t.length), 0);
  if (all.length !== total) throw new RangeError(`${binPath}: holds ${all.length} floats, ${jsonPath} describes ${total}`);
  const pick = (prefix: boolean) =>
    meta.tensors
      .filter((t) => t.name.startsWith('momentum/') === prefix)
      .map((t) => all.slice(t.offset, t.offset + t.length));
  const weights = weightsFromArrays(meta.cfg, pick(false));
  return { meta, weights, momentum: pick(true) };
}

async function listCheckpoints(dir: string): Promise<{ path: string; step: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ n, m: /^ckpt-e\d+-s(\d+)-.*\.json$/.exec(n) }))
    .filter((e) => e.m)
    .map((e) => ({ path: join(dir, e.n), step: Number(e.m![1]) }))
    .sort((a, b) => a.step - b.step);
}

/** The checkpoint with the highest step in `dir`, if any. */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  return (await listCheckpoints(dir)).at(-1)?.path;
}

/** Deletes all but the newest `keep` checkpoints of `dir`. */
export async function pruneCheckpoints(dir: string, keep: number): Promise<void> {
  const all = await listCheckpoints(dir);
  for (const { path } of all.slice(0, Math.max(0, all.length - keep))) {
    await rm(path, { force: true });
    await rm(path.replace(/\.json$/, '.bin'), { force: true });
  }
}
