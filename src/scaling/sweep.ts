// The scaling sweep: every architecture × examples-seen budget trained with the trainer's library function, one
// JSONL row per finished run. Resumable: rows already in the file (same recipe) are skipped, so an interrupted
// sweep continues where it stopped. A budget of D examples trains on the first min(D, train size) images for
// round(D / images) epochs, so "examples" is examples seen, and compute = forward FLOPs × 3 × examples seen.

import { appendFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSplit } from '../data/cache.js';
import { shortHash } from '../data/dataset.js';
import { openDataSource } from '../data/resolve.js';
import { configFor, flopsPerImage, paramCount, trainingFlops, type MlpConfig } from '../model/mlp.js';
import type { AugmentOptions } from '../train/augment.js';
import type { EngineChoice } from '../train/engines/index.js';
import { silentReporter, type Reporter } from '../train/progress.js';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainOptions } from '../train/train.js';

/** Everything that decides a run's result except its arch and budget: part of every row's identity. */
export interface SweepRecipe {
  data: string;
  /** Square input side; every image goes through the server's preprocessing to it. */
  size: number;
  channels: 1 | 3;
  expansion: number;
  batchSize: number;
  /** LION learning rate; at `lrReferenceWidth` when that is set. */
  lr: number;
  /** When set, a run of width w uses lr × lrReferenceWidth / w (wider MLPs want proportionally smaller steps). */
  lrReferenceWidth?: number;
  weightDecay: number;
  labelSmoothing: number;
  mixup: number;
  augment: AugmentOptions;
  schedule: 'cosine' | 'constant';
  seed: number;
  /** Test images evaluated (default: the whole test split). */
  evalExamples?: number;
  /**
   * Validation images held out of the training images (stratified, seed 0) before a run's budget is taken from the
   * rest: the laws are fitted on validation error, the test error is reported beside it.
   */
  val: number;
}

/**
 * The default recipe of the sweep: a short-budget version of the paper's (LION, cosine, smoothing; no MixUp or
 * crops, which pay off only over long schedules) at the native 28×28 grey input, with lr ∝ 1/width so neither end
 * of the size axis is handicapped (the measurements behind it: docs/results.md, "Scaling study").
 */
export const DEFAULT_RECIPE: SweepRecipe = Object.freeze({
  data: 'fashion-mnist',
  size: 28,
  channels: 1 as const,
  expansion: 4,
  batchSize: 128,
  lr: 2e-3,
  lrReferenceWidth: 64,
  weightDecay: 0.1,
  labelSmoothing: 0.1,
  mixup: 0,
  augment: { cropScale: null, cropRatio: [3 / 4, 4 / 3] as const, flip: true, translate: 0 },
  schedule: 'cosine' as const,
  seed: 0,
  val: 5000,
});

/**
 * The default grid: six sizes (0.17–58 MFLOPs per image at 28×28) × six budgets (6k–240k examples seen, up to 4
 * epochs of Fashion-MNIST), sized to finish within two hours on two CPU cores (timings: docs/results.md).
 */
export const DEFAULT_ARCHS: readonly string[] = ['B_1-Wi_64', 'B_2-Wi_128', 'B_2-Wi_256', 'B_4-Wi_256', 'B_4-Wi_512', 'B_6-Wi_768'];
export const DEFAULT_EXAMPLES: readonly number[] = [6000, 15000, 30000, 60000, 120000, 240000];

export interface RunRecord {
  /** arch@examples#recipeHash */
  id: string;
  arch: string;
  params: number;
  /** Forward FLOPs per image. */
  flopsPerImage: number;
  /** The requested examples-seen budget. */
  examples: number;
  /** What the run actually saw (whole batches only). */
  examplesSeen: number;
  trainImages: number;
  epochs: number;
  /** flopsPerImage × 3 × examplesSeen. */
  compute: number;
  /** What the laws are fitted on: 1 − top-1 on the held-out validation images. */
  valError: number;
  valLoss: number;
  valExamples: number;
  /** Reported beside, never chosen on. */
  testError: number;
  testLoss: number;
  testExamples: number;
  wallSeconds: number;
  imagesPerSecond: number;
  /** The lr this run used (after width scaling). */
  lr: number;
  engine: string;
  recipeHash: string;
  recipe: SweepRecipe;
  finishedAt: string;
}

/** JSON with every object's keys sorted, at every depth (a replacer array would also drop nested keys). */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** A recipe's identity: every field, nested ones (the augmentation) included. */
export function recipeHash(r: SweepRecipe): string {
  return shortHash(canonicalJson(r));
}

export function runId(arch: string, examples: number, hash: string): string {
  return `${arch}@${examples}#${hash}`;
}

/** Training images and epochs for an examples-seen budget (see the module comment). */
export function budgetPlan(examples: number, trainSize: number): { images: number; epochs: number } {
  if (!(Number.isInteger(examples) && examples >= 1)) throw new RangeError(`examples ${examples} must be a whole number ≥ 1`);
  const images = Math.min(examples, trainSize);
  return { images, epochs: Math.max(1, Math.round(examples / images)) };
}

/** Rows of a sweep (or claims) file (missing file = none); unparsable lines are reported, not fatal (a run cut mid-write). */
export async function readRuns<T = RunRecord>(file: string, warn: (m: string) => void = () => {}): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const rows: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      rows.push(JSON.parse(line) as T);
    } catch {
      warn(`${file}:${i + 1}: skipping an unreadable line`);
    }
  });
  return rows;
}

export interface SweepOptions {
  archs: string[];
  examples: number[];
  recipe: SweepRecipe;
  /** Output directory: runs.jsonl goes here. */
  out: string;
  engine?: EngineChoice;
  /** Preprocessed-data cache root (default the trainer's). */
  cacheDir?: string;
  reporter?: Reporter;
  /** Called before and after each run (the CLI's progress line). */
  onRun?: (e: { index: number; total: number; arch: string; examples: number; skipped: boolean; record?: RunRecord }) => void;
  signal?: AbortSignal;
}

export const RUNS_FILE = 'runs.jsonl';

/** One run of a recipe as the trainer sees it (beyond the recipe itself). */
export interface RecipeRun {
  arch: string;
  /** The row id; names the run's scratch checkpoint directory. */
  id: string;
  epochs: number;
  lr: number;
  batchSize: number;
  /** Training images loaded (the first N of the split; the recipe's `val` images are held out of these). Default all. */
  loadImages?: number;
  /** Scratch directory: the run's model goes to <work>/models, its checkpoints under <work>/checkpoints. */
  work: string;
  engine?: EngineChoice;
  cacheDir?: string;
  command: string;
}

/** The trainer's options for one run of `r`: the one mapping from a recipe to `train`, for the sweep and the claims. */
export function recipeTrainOptions(r: SweepRecipe, run: RecipeRun): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS,
    data: r.data,
    arch: run.arch,
    expansion: r.expansion,
    epochs: run.epochs,
    out: join(run.work, 'models'),
    name: 'run',
    batchSize: run.batchSize,
    lr: run.lr,
    weightDecay: r.weightDecay,
    labelSmoothing: r.labelSmoothing,
    mixup: r.mixup,
    augment: r.augment,
    schedule: r.schedule,
    warmupEpochs: 0,
    seed: r.seed,
    evalEvery: run.epochs,
    val: r.val,
    valSeed: 0,
    maxExamples: run.loadImages,
    maxEvalExamples: r.evalExamples,
    checkpointDir: join(run.work, 'checkpoints', run.id.replace(/[^A-Za-z0-9_.-]/g, '_')),
    keepCheckpoints: 1,
    size: r.size,
    channels: r.channels,
    engine: run.engine ?? 'auto',
    cacheDir: run.cacheDir,
    logEvery: 1_000_000,
    command: run.command,
  };
}

/** Runs the missing cells of the grid, smallest compute first; returns every row of this recipe in the file. */
export async function runSweep(o: SweepOptions): Promise<RunRecord[]> {
  if (o.archs.length === 0 || o.examples.length === 0) throw new RangeError('the sweep needs at least one arch and one budget');
  const r = o.recipe;
  const hash = recipeHash(r);
  await mkdir(o.out, { recursive: true });
  const file = join(o.out, RUNS_FILE);
  const say = o.reporter ?? silentReporter;
  const existing = await readRuns(file, (m) => say.line(m));
  const done = new Map(existing.filter((x) => x.recipeHash === hash).map((x) => [x.id, x]));
  const otherRecipes = existing.length - existing.filter((x) => x.recipeHash === hash).length;
  if (otherRecipes > 0) say.line(`${file}: ${otherRecipes} rows of other recipes are kept and ignored`);

  // Decode the data once, up to the largest budget: when that is the whole split, every budget reads a prefix of
  // the one full cache (smaller budgets alone get their own small prefix caches).
  const source = await openDataSource(r.data, { log: (m) => say.line(m) });
  const geo = { width: r.size, height: r.size, channels: r.channels };
  const most = Math.min(Math.max(...o.examples) + r.val, source.train.size);
  (await prepareSplit(source.train, geo, { root: o.cacheDir, limit: most })).close();
  (await prepareSplit(source.test, geo, { root: o.cacheDir, limit: r.evalExamples })).close();
  const trainSize = source.train.size - r.val; // what is left to train on
  const classes = source.train.classes.length;

  const cells = o.archs.flatMap((arch) => {
    const cfg: MlpConfig = configFor(arch, r.expansion, r.channels * r.size * r.size, classes);
    return o.examples.map((examples) => ({ arch, examples, cfg, compute: trainingFlops(cfg, examples) }));
  });
  cells.sort((a, b) => a.compute - b.compute);

  const work = await mkdtemp(join(tmpdir(), 'scaling-'));
  try {
    for (const [index, cell] of cells.entries()) {
      if (o.signal?.aborted) break;
      const id = runId(cell.arch, cell.examples, hash);
      if (done.has(id)) {
        o.onRun?.({ index, total: cells.length, arch: cell.arch, examples: cell.examples, skipped: true, record: done.get(id) });
        continue;
      }
      o.onRun?.({ index, total: cells.length, arch: cell.arch, examples: cell.examples, skipped: false });
      const plan = budgetPlan(cell.examples, trainSize);
      const lr = r.lrReferenceWidth ? (r.lr * r.lrReferenceWidth) / cell.cfg.width : r.lr;
      const opts = recipeTrainOptions(r, {
        arch: cell.arch, id, epochs: plan.epochs, lr, batchSize: Math.min(r.batchSize, plan.images),
        // The held-out images come out of the first images + val, so every budget trains on `images` of them.
        loadImages: plan.images < trainSize ? plan.images + r.val : undefined, work, engine: o.engine, cacheDir: o.cacheDir,
        command: `scaling sweep ${id}`,
      });
      const res = await train(opts, { reporter: say, signal: o.signal });
      if (res.stopped) break;
      const { val, test } = res;
      if (!val || !test) throw new Error(`run ${id} finished without a validation and a test evaluation`);
      const record: RunRecord = {
        id,
        arch: cell.arch,
        params: paramCount(cell.cfg),
        flopsPerImage: flopsPerImage(cell.cfg),
        examples: cell.examples,
        examplesSeen: res.examplesSeen,
        trainImages: plan.images,
        epochs: plan.epochs,
        compute: trainingFlops(cell.cfg, res.examplesSeen),
        valError: 1 - val.accuracy,
        valLoss: val.loss,
        valExamples: r.val,
        testError: 1 - test.accuracy,
        testLoss: test.loss,
        testExamples: r.evalExamples ?? source.test.size,
        wallSeconds: res.wallSeconds,
        imagesPerSecond: res.imagesPerSecond,
        lr,
        engine: res.engine,
        recipeHash: hash,
        recipe: r,
        finishedAt: new Date().toISOString(),
      };
      // One line per run, appended whole: a crash loses at most the run in progress.
      await appendFile(file, JSON.stringify(record) + '\n');
      done.set(id, record);
      await rm(join(work, 'models'), { recursive: true, force: true });
      await rm(opts.checkpointDir!, { recursive: true, force: true });
      o.onRun?.({ index, total: cells.length, arch: cell.arch, examples: cell.examples, skipped: false, record });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const wanted = new Set(cells.map((c) => runId(c.arch, c.examples, hash)));
  return [...done.values()].filter((x) => wanted.has(x.id));
}
