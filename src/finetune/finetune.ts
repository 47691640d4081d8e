// Fine-tuning a served model on a new data set, the paper's way: keep the body, replace the head with a fresh
// Linear(width, classes) for the new label set, train everything with the body's lr × 0.1 and label smoothing,
// and export a new servable model (card provenance `finetuned`, `from` the source). The same recipe from a random
// init at the same budget is the from-scratch baseline it is compared with.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDataSource } from '../data/resolve.js';
import { ONNX_FILE, readCard, type ModelCard } from '../model/card.js';
import { initWeights, type MlpConfig, type MlpWeights } from '../model/mlp.js';
import { configFromCard, readOnnxWeights } from '../export/export.js';
import { resolveModelDir } from '../probe/probe.js';
import type { AugmentOptions } from '../train/augment.js';
import type { EngineChoice } from '../train/engines/index.js';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainHooks, type TrainOptions, type TrainResult } from '../train/train.js';

export interface FinetuneOptions {
  /** Directory of the pretrained model (model.onnx + model.json). */
  from: string;
  /** `--data` spec of the new task. */
  data: string;
  /** Models directory written: <out>/<name>/. */
  out: string;
  /** Default `<source model>-<data set>` (or `…-scratch`). */
  name?: string;
  epochs: number;
  /** lr of the new head; the body gets lr × bodyLrScale. */
  lr: number;
  /** Paper: 0.1. */
  bodyLrScale: number;
  /** Paper: 0.3. */
  labelSmoothing: number;
  batchSize: number;
  weightDecay: number;
  mixup: number;
  augment: AugmentOptions;
  seed: number;
  /** Train on the first N images of the new training split. */
  maxExamples?: number;
  maxEvalExamples?: number;
  engine: EngineChoice;
  cacheDir?: string;
  /** The baseline: same arch, input and recipe, random init, one lr for all (bodyLrScale 1). */
  scratch?: boolean;
  command?: string;
}

/**
 * Defaults: the paper's fine-tuning choices (body lr × 0.1, smoothing 0.3) with LION, and no flips or crops
 * (digits and text are not mirror-symmetric; pass --flip for data sets that are). The head's lr 1e-3 puts the
 * body at 1e-4, the trainer's pre-training lr (the head-lr measurements: docs/results.md).
 */
export const DEFAULT_FINETUNE: Omit<FinetuneOptions, 'from' | 'data' | 'out'> = Object.freeze({
  epochs: 10,
  lr: 1e-3,
  bodyLrScale: 0.1,
  labelSmoothing: 0.3,
  batchSize: 128,
  weightDecay: 0.1,
  mixup: 0,
  augment: { cropScale: null, cropRatio: [3 / 4, 4 / 3] as const, flip: false, translate: 0 },
  seed: 0,
  engine: 'auto' as const,
});

/** The pretrained body with a freshly initialised head for `classes` classes (PyTorch's Linear init, seeded). */
export function replaceHead(cfg: MlpConfig, weights: MlpWeights, classes: number, seed: number): { cfg: MlpConfig; weights: MlpWeights } {
  if (!(Number.isInteger(classes) && classes >= 1)) throw new RangeError(`classes ${classes} must be a whole number ≥ 1`);
  const next: MlpConfig = { ...cfg, classes };
  // Only the head of this init is kept; a body-free config keeps the draw cheap (the head's init depends on width
  // and classes only, but the RNG stream does not: draw it from a depth-0, 1-input config for a stable head).
  const head = initWeights({ depth: 0, width: cfg.width, expansion: cfg.expansion, inputDim: 1, classes }, seed).head;
  return { cfg: next, weights: { ...weights, head } };
}

export interface LoadedModel {
  card: ModelCard;
  cfg: MlpConfig;
  weights: MlpWeights;
}

/** Reads a model directory (either repository layout: NAME/ or its newest NAME/VERSION/). */
export async function loadModel(path: string): Promise<LoadedModel> {
  const dir = resolveModelDir(path) ?? path;
  const card = await readCard(dir);
  const { cfg, weights } = readOnnxWeights(await readFile(join(dir, ONNX_FILE)));
  const fromCard = configFromCard(card);
  if (cfg.width !== fromCard.width || cfg.depth !== fromCard.depth || cfg.inputDim !== fromCard.inputDim)
    throw new RangeError(`${dir}: model.onnx (${cfg.depth}×${cfg.width}, input ${cfg.inputDim}) does not match model.json`);
  return { card, cfg, weights };
}

/** Fine-tunes (or, with `scratch`, trains the same recipe from random init); returns the trainer's result. */
export async function finetune(o: FinetuneOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const model = await loadModel(o.from);
  const { card } = model;
  if (card.input.width !== card.input.height)
    throw new RangeError(`${o.from}: input ${card.input.width}×${card.input.height} is not square; the trainer needs size × size`);
  const source = await openDataSource(o.data);
  const classes = source.train.classes.length;
  const init = replaceHead(model.cfg, model.weights, classes, o.seed);
  const dataName = source.name.replace(/^[a-z0-9]+:/, '').split('/').filter(Boolean).pop() ?? 'data';
  const name = o.name ?? `${card.name}-${dataName}${o.scratch ? '-scratch' : ''}`.slice(0, 64);
  const opts: TrainOptions = {
    ...DEFAULT_TRAIN_OPTIONS,
    data: o.data,
    arch: card.arch.name,
    expansion: card.arch.expansion,
    epochs: o.epochs,
    out: o.out,
    name,
    batchSize: o.batchSize,
    lr: o.lr,
    weightDecay: o.weightDecay,
    labelSmoothing: o.labelSmoothing,
    mixup: o.mixup,
    augment: o.augment,
    seed: o.seed,
    evalEvery: o.epochs,
    // Nothing is chosen here (the paper's fine-tuning recipe, fixed): no validation images, the test split once.
    val: 0,
    maxExamples: o.maxExamples,
    maxEvalExamples: o.maxEvalExamples,
    size: card.input.width,
    channels: card.input.channels,
    engine: o.engine,
    cacheDir: o.cacheDir,
    command: o.command,
    // Both keep the pretrained model's input normalisation, so they differ only in the initial weights (and the
    // body's lr): the body was trained on inputs scaled that way.
    normalization: card.normalization,
    ...(o.scratch ? { bodyLrScale: 1 } : { bodyLrScale: o.bodyLrScale, init: { weights: init.weights, from: `${card.name} (${o.from})` } }),
  };
  return train(opts, hooks);
}
