// What a training run is asked to do: the options with their defaults, their validation (once, at the boundary,
// before hours of training), the recipe a resume must match, and the small pure choices derived from them.

import { basename, resolve } from 'node:path';
import type { Normalization } from '../data/preprocess.js';
import { parseArch, type MlpWeights } from '../model/mlp.js';
import { validateAugment, type AugmentOptions } from './augment.js';
import type { OptimizerState } from './engines/engine.js';
import { checkEngineChoice, type EngineChoice } from './engines/index.js';
import { LION_BETAS } from './lion.js';
import type { ScheduleKind } from './schedule.js';

export interface TrainOptions {
  /** Data set: `fashion-mnist`, `mnist`, `cifar10:DIR`, `cifar100:DIR`, `idx:DIR`, `folder:DIR` or a directory. */
  data: string;
  /** `B_<depth>-Wi_<width>`, or `S_<depth>-Wi_<width>` for the standard MLP. */
  arch: string;
  /** Hidden width of a block / width; the paper's 4. */
  expansion: number;
  epochs: number;
  /** Models directory written: <out>/<name>/. */
  out: string;
  /** Model name (= its directory); default `<data>-<arch>`. */
  name?: string;
  batchSize: number;
  /** Peak learning rate. LION wants ~3–10× less than AdamW (docs/training.md: 1e-4 on Fashion-MNIST). */
  lr: number;
  /** Decoupled weight decay (LION: p ← p·(1 − lr·wd)). */
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Paper: 0.3. */
  labelSmoothing: number;
  /** MixUp α (Beta(α, α), one λ per batch); 0 = off. Paper: 0.8. */
  mixup: number;
  augment: AugmentOptions;
  schedule: ScheduleKind;
  /** Linear warm-up length in epochs (fractions allowed); paper: 0. */
  warmupEpochs: number;
  seed: number;
  /**
   * Validation images held out of the (loaded) training images: stratified by class, chosen by `valSeed`, evaluated
   * every `evalEvery` epochs. Choices are made on these; 0 = none.
   */
  val: number;
  /** Seed of the hold-out; separate from `seed` so runs with different seeds are compared on the same images. */
  valSeed: number;
  /** Read the test split once after the last epoch (its figure goes in the card beside the validation one). */
  finalTest: boolean;
  /**
   * Train on the training and validation images together, for a recipe and epoch count already chosen on validation
   * (the standard last step); nothing is held out and the card says so.
   */
  refit: boolean;
  /** Evaluate (and checkpoint) every this many epochs; the last epoch always. */
  evalEvery: number;
  /** Use the first N training images only (scaling runs); the validation images are held out of these. */
  maxExamples?: number;
  /** Test on the first N test images only (fast checks); default all. */
  maxEvalExamples?: number;
  /** Default <out>/.checkpoints. */
  checkpointDir?: string;
  /** Checkpoints kept (the newest). */
  keepCheckpoints: number;
  /** A checkpoint .json, a directory (its newest), or true (the newest in checkpointDir). */
  resume?: string | true;
  /** Input geometry: size × size × channels; every image goes through the server's preprocessing to it. */
  size: number;
  channels: 1 | 3;
  engine: EngineChoice;
  /** Root of the preprocessed caches (default ./.cache/datasets). */
  cacheDir?: string;
  /** A train-loss record in the log and plot every this many steps. */
  logEvery: number;
  /** The command line, recorded in the card (paths relative to the working directory). */
  command?: string;
  /**
   * Start from these weights instead of a fresh init: fine-tuning (a trained body with a new head), or, with the
   * optimizer's momentum, continuing a run's checkpoint under a new schedule (`--init-from`). `from` is
   * recorded in the card, whose provenance becomes `finetuned`.
   */
  init?: { weights: MlpWeights; from: string; momentum?: OptimizerState };
  /** Input normalisation instead of the data set's (fine-tuning keeps the pretrained model's). */
  normalization?: Normalization;
  /** Multiplier of lr for everything but the head (fine-tuning: 0.1, the paper's). Default 1. */
  bodyLrScale?: number;
}

/** The paper's recipe where it has a value; lr and wd from docs/training.md (the paper's are for batch 4096+). */
export const DEFAULT_TRAIN_OPTIONS: Omit<TrainOptions, 'data' | 'arch' | 'epochs' | 'out'> = Object.freeze({
  expansion: 4,
  batchSize: 256,
  lr: 1e-4,
  weightDecay: 1.0,
  beta1: LION_BETAS.beta1,
  beta2: LION_BETAS.beta2,
  labelSmoothing: 0.3,
  mixup: 0.8,
  augment: { cropScale: [0.08, 1] as const, cropRatio: [3 / 4, 4 / 3] as const, flip: true, translate: 0 },
  schedule: 'cosine' as const,
  warmupEpochs: 0,
  seed: 0,
  val: 5000,
  valSeed: 0,
  finalTest: true,
  refit: false,
  evalEvery: 1,
  keepCheckpoints: 2,
  size: 64,
  channels: 1 as const,
  engine: 'auto' as const,
  logEvery: 10,
});

/** Options that decide the result: a resume must match them (engine, eval cadence and paths may change). */
const RECIPE_KEYS = [
  'data', 'arch', 'expansion', 'epochs', 'batchSize', 'lr', 'weightDecay', 'beta1', 'beta2', 'labelSmoothing',
  'mixup', 'augment', 'schedule', 'warmupEpochs', 'seed', 'maxExamples', 'size', 'channels', 'bodyLrScale',
  'val', 'valSeed', 'refit',
] as const;

export function validateOptions(o: TrainOptions): void {
  parseArch(o.arch);
  const posInt = (k: keyof TrainOptions, v: unknown) => {
    if (!(Number.isInteger(v) && (v as number) >= 1)) throw new RangeError(`${k} ${String(v)} must be a whole number ≥ 1`);
  };
  const natural = (k: keyof TrainOptions, v: unknown) => {
    if (!(Number.isInteger(v) && (v as number) >= 0)) throw new RangeError(`${k} ${String(v)} must be a whole number ≥ 0`);
  };
  posInt('epochs', o.epochs);
  posInt('batchSize', o.batchSize);
  posInt('expansion', o.expansion);
  posInt('evalEvery', o.evalEvery);
  posInt('keepCheckpoints', o.keepCheckpoints);
  posInt('size', o.size);
  posInt('logEvery', o.logEvery);
  if (o.maxExamples !== undefined) posInt('maxExamples', o.maxExamples);
  if (o.maxEvalExamples !== undefined) posInt('maxEvalExamples', o.maxEvalExamples);
  natural('seed', o.seed);
  natural('val', o.val);
  natural('valSeed', o.valSeed);
  if (!(o.lr > 0)) throw new RangeError(`lr ${o.lr} must be > 0`);
  if (!(o.weightDecay >= 0)) throw new RangeError(`weight decay ${o.weightDecay} must be ≥ 0`);
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) throw new RangeError('betas must be in [0, 1)');
  if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) throw new RangeError(`label smoothing ${o.labelSmoothing} must be in [0, 1)`);
  if (!(o.mixup >= 0)) throw new RangeError(`mixup α ${o.mixup} must be ≥ 0`);
  if (!(o.warmupEpochs >= 0)) throw new RangeError(`warm-up ${o.warmupEpochs} must be ≥ 0 epochs`);
  if (o.schedule !== 'cosine' && o.schedule !== 'constant') throw new RangeError(`schedule "${String(o.schedule)}" is not cosine or constant`);
  if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`channels ${String(o.channels)} must be 1 or 3`);
  checkEngineChoice(o.engine);
  validateAugment(o.augment);
  if (o.bodyLrScale !== undefined && !(o.bodyLrScale >= 0 && Number.isFinite(o.bodyLrScale)))
    throw new RangeError(`body lr scale ${o.bodyLrScale} must be a finite number ≥ 0`);
  // Checked now, not when the card is written after hours of training.
  if (o.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.name))
    throw new RangeError(`name "${o.name}" must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
}

/** Validation images actually held out: none when refitting. Refuses a hold-out that leaves nothing to train on. */
export function heldOutCount(o: Pick<TrainOptions, 'val' | 'refit'>, loaded: number): number {
  if (o.refit) return 0;
  if (o.val >= loaded)
    throw new RangeError(`val ${o.val} must be less than the ${loaded} training images loaded (pass a smaller val, or 0)`);
  return o.val;
}

export function defaultModelName(data: string, arch: string): string {
  const base = /^(?:idx|cifar10|cifar100|folder):(.+)$/.exec(data)?.[1] ?? data;
  const stem = basename(resolve(base)); // a data set name, or the last part of its directory
  return `${stem}-${arch}`.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
}

/**
 * The data set's customary normalisation when it fits the channels asked for (a grey set's single value repeated
 * for 3 channels), else the statistics of the training cache (e.g. CIFAR read as grey, image folders).
 */
export function chooseNormalization(
  known: Normalization | undefined,
  stats: { mean: number[]; std: number[] },
  channels: 1 | 3,
): Normalization {
  if (known?.mean.length === channels) return { mean: [...known.mean], std: [...known.std] };
  if (known?.mean.length === 1) return { mean: Array(channels).fill(known.mean[0]), std: Array(channels).fill(known.std[0]) };
  const round = (v: number) => Math.round(v * 100) / 100;
  return { mean: stats.mean.map(round), std: stats.std.map((s) => Math.max(round(s), 1)) };
}

export function recipeOf(o: TrainOptions): Record<string, unknown> {
  return Object.fromEntries(RECIPE_KEYS.map((k) => [k, o[k] ?? null]));
}

export function recipeDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return RECIPE_KEYS.filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null)).map(
    (k) => `${k}: checkpoint ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`,
  );
}
