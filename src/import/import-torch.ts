// The paper's released PyTorch checkpoints (gregorbachmann/scaling_mlps, BottleneckMLP) → a servable model
// directory. Maps the reference key layout onto MlpWeights (transposing Linear weights from [out, in] to [in, out])
// and is strict where the reference loader (load_state_dict(strict=False)) is not: every expected key with its exact
// shape, nothing unexpected, or one error naming every problem.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { CIFAR100_LABELS, CIFAR10_LABELS, NORMALIZATIONS } from '../data/labels.js';
import { hiddenDim, parseArch, type Linear, type MlpConfig, type MlpWeights } from '../model/mlp.js';
import type { ModelCard } from '../model/card.js';
import { buildCard, writeModelDir } from '../export/export.js';
import { tensorToFloat32 } from './tensors.js';
import { readTorchStateDict, type TorchStateDict } from './torch-checkpoint.js';

export type PaperDataset = 'cifar10' | 'cifar100' | 'imagenet' | 'in21k';

/** What each data set's checkpoints expect: class count, normalisation (0–255 scale) and shipped labels. */
export const PAPER_DATASETS: Readonly<
  Record<PaperDataset, { classes: number; mean: readonly number[]; std: readonly number[]; labels?: readonly string[] }>
> = Object.freeze({
  cifar10: { classes: 10, ...NORMALIZATIONS.cifar, labels: CIFAR10_LABELS },
  cifar100: { classes: 100, ...NORMALIZATIONS.cifar, labels: CIFAR100_LABELS },
  imagenet: { classes: 1000, ...NORMALIZATIONS.imagenet },
  in21k: { classes: 11230, ...NORMALIZATIONS.imagenet },
});

/** Resolution of every released checkpoint. */
export const PAPER_RESOLUTION = 64;

/** The checkpoint does not fit the architecture: lists every missing, unexpected and wrongly shaped key. */
export class CheckpointMismatchError extends Error {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly wrongShape: { key: string; got: number[]; want: number[] }[],
  ) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
    for (const w of wrongShape) parts.push(`${w.key} has shape [${w.got.join(', ')}], expected [${w.want.join(', ')}]`);
    super(`checkpoint does not match the architecture: ${parts.join('; ')}`);
    this.name = 'CheckpointMismatchError';
  }
}

/** The reference state_dict layout for `cfg`: key → PyTorch shape (Linear weights [out, in]). */
export function referenceKeys(cfg: MlpConfig): Map<string, number[]> {
  const h = hiddenDim(cfg);
  const keys = new Map<string, number[]>([
    ['linear_in.weight', [cfg.width, cfg.inputDim]],
    ['linear_in.bias', [cfg.width]],
  ]);
  for (let i = 0; i < cfg.depth; i++) {
    keys.set(`blocks.${i}.block.0.weight`, [h, cfg.width]);
    keys.set(`blocks.${i}.block.0.bias`, [h]);
    keys.set(`blocks.${i}.block.2.weight`, [cfg.width, h]);
    keys.set(`blocks.${i}.block.2.bias`, [cfg.width]);
    keys.set(`layernorms.${i}.weight`, [cfg.width]);
    keys.set(`layernorms.${i}.bias`, [cfg.width]);
  }
  keys.set('linear_out.weight', [cfg.classes, cfg.width]);
  keys.set('linear_out.bias', [cfg.classes]);
  return keys;
}

/** [out, in] row-major → [in, out] row-major. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c];
  }
  return out;
}

/** Maps a reference-layout state_dict onto our weights; throws CheckpointMismatchError naming every problem. */
export function weightsFromStateDict(sd: TorchStateDict, cfg: MlpConfig): MlpWeights {
  const expected = referenceKeys(cfg);
  const missing = [...expected.keys()].filter((k) => !sd.tensors.has(k));
  const unexpected = [...sd.tensors.keys()].filter((k) => !expected.has(k));
  const wrongShape: { key: string; got: number[]; want: number[] }[] = [];
  for (const [k, want] of expected) {
    const t = sd.tensors.get(k);
    if (t && (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])))
      wrongShape.push({ key: k, got: t.shape, want });
  }
  if (missing.length || unexpected.length || wrongShape.length)
    throw new CheckpointMismatchError(missing, unexpected, wrongShape);

  const vec = (k: string) => tensorToFloat32(sd, k);
  const linear = (p: string): Linear => {
    const [out, inDim] = expected.get(`${p}.weight`) as number[];
    return { weight: transpose(vec(`${p}.weight`), out, inDim), bias: vec(`${p}.bias`) };
  };
  return {
    stem: linear('linear_in'),
    blocks: Array.from({ length: cfg.depth }, (_, i) => ({
      norm: { gamma: vec(`layernorms.${i}.weight`), beta: vec(`layernorms.${i}.bias`) },
      expand: linear(`blocks.${i}.block.0`),
      collapse: linear(`blocks.${i}.block.2`),
    })),
    head: linear('linear_out'),
  };
}

/** The fields of the reference's config.txt (train.py's arguments as JSON) that decide the model's shape. */
export interface ReferenceConfig {
  model?: string;
  architecture?: string;
  normalization?: string;
  crop_resolution?: number;
  /** Not trusted: upstream ships the pre-training config beside fine-tuned checkpoints. */
  num_classes?: number;
  num_channels?: number;
  dataset?: string;
}

export interface ImportOptions {
  /** Path of the torch.save file. */
  checkpoint: string;
  /** Output model directory. */
  out: string;
  /** Served name. */
  name: string;
  dataset: PaperDataset;
  /** `B_<depth>-Wi_<width>`; may be omitted when `config` names it. */
  arch?: string;
  /** Parsed config.txt of the checkpoint; cross-checked against the other options. */
  config?: ReferenceConfig;
  /** Class names; required for imagenet and in21k (their names do not ship with the project). */
  labels?: readonly string[];
  /** Command line recorded in the provenance. */
  command?: string;
}

/** Reads, maps and exports a checkpoint; returns the card written beside the ONNX file. */
export async function importCheckpoint(opts: ImportOptions): Promise<ModelCard> {
  const ds = PAPER_DATASETS[opts.dataset];
  if (!ds) throw new RangeError(`dataset "${opts.dataset}" is not one of ${Object.keys(PAPER_DATASETS).join(', ')}`);
  const c = opts.config;
  if (c?.model !== undefined && c.model !== 'BottleneckMLP')
    throw new RangeError(`config model is "${c.model}"; only BottleneckMLP checkpoints can be imported`);
  if (c?.normalization !== undefined && c.normalization !== 'layer')
    throw new RangeError(`config normalization is "${c.normalization}"; only "layer" (LayerNorm) is supported`);
  if (c?.crop_resolution !== undefined && c.crop_resolution !== PAPER_RESOLUTION)
    throw new RangeError(`config crop_resolution is ${c.crop_resolution}; the importer expects ${PAPER_RESOLUTION}`);
  if (c?.num_channels !== undefined && c.num_channels !== 3)
    throw new RangeError(`config num_channels is ${c.num_channels}; the importer expects 3`);
  const arch = opts.arch ?? c?.architecture;
  if (!arch) throw new RangeError('the architecture is needed: pass --arch or a --config with "architecture"');
  if (opts.arch && c?.architecture && opts.arch !== c.architecture)
    throw new RangeError(`--arch ${opts.arch} contradicts the config's architecture ${c.architecture}`);
  const { depth, width, kind } = parseArch(arch);
  if (kind) throw new RangeError(`arch ${arch} is a standard MLP; only the paper's B_<depth>-Wi_<width> checkpoints can be imported`);

  const labels = opts.labels ?? ds.labels;
  if (!labels)
    throw new RangeError(`dataset ${opts.dataset} needs a labels file (${ds.classes} class names, one per line)`);
  if (labels.length !== ds.classes)
    throw new RangeError(`${labels.length} labels given, dataset ${opts.dataset} has ${ds.classes} classes`);
  // config.num_classes is not checked: the released fine-tuned checkpoints share their pre-training config.txt
  // (num_classes 11230); the head's shape in the checkpoint itself is checked strictly below.

  const cfg: MlpConfig = {
    depth,
    width,
    expansion: 4,
    inputDim: 3 * PAPER_RESOLUTION * PAPER_RESOLUTION,
    classes: ds.classes,
  };
  const bytes = await readFile(opts.checkpoint);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const weights = weightsFromStateDict(readTorchStateDict(bytes), cfg);
  const card = buildCard({
    name: opts.name,
    cfg,
    labels,
    input: { width: PAPER_RESOLUTION, height: PAPER_RESOLUTION, channels: 3 },
    normalization: { mean: ds.mean, std: ds.std },
    provenance: {
      kind: 'imported',
      source: 'gregorbachmann/scaling_mlps',
      checkpoint: basename(opts.checkpoint),
      sha256,
      dataset: opts.dataset,
      ...(opts.command ? { command: opts.command } : {}),
    },
  });
  await writeModelDir(opts.out, cfg, weights, card);
  return card;
}

/** Parses a labels file: a JSON array of strings, or one label per line (blank trailing lines ignored). */
export function parseLabelsFile(text: string, file: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const v: unknown = JSON.parse(trimmed);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new RangeError(`${file}: a JSON labels file must be an array of strings`);
    return v;
  }
  const lines = text.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const empty = lines.findIndex((l) => l.trim() === '');
  if (empty >= 0) throw new RangeError(`${file}: line ${empty + 1} is empty`);
  return lines.map((l) => l.trim());
}
