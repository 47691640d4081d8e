// The training run: data → engine → the loop → a servable model directory. The loop reads top to bottom:
//   evaluate/checkpoint at epoch ends → set lr → build the batch (augment, smooth, mix) → step → log.
// Everything random is a pure function of (seed, step): the data order of an epoch, each batch's augmentation and
// MixUp. A checkpoint therefore only stores weights, momentum and the step, and a resumed run equals an
// uninterrupted one.
//
// Output: <out>/<name>/{model.onnx, model.json, train.jsonl, training.svg}, so `MODELS_DIR=<out>` serves it;
// checkpoints go to <out>/.checkpoints by default (hidden: the server skips dot-directories).

import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { buildCard, writeModelDir } from '../export/export.js';
import type { ModelCard } from '../model/card.js';
import {
  archName,
  assertWeightsMatch,
  configFor,
  flopsPerImage,
  initWeights,
  paramCount,
  parseArch,
  type MlpConfig,
  type MlpWeights,
} from '../model/mlp.js';
import { prepareSplit, type CachedSplit } from '../data/cache.js';
import { normalizeChw, type InputGeometry, type Normalization } from '../data/preprocess.js';
import { openDataSource } from '../data/resolve.js';
import { validateAugment, type AugmentOptions } from './augment.js';
import { openBatchSource } from './batch-source.js';
import type { BatchSpec } from './batches.js';
import {
  checkpointName,
  latestCheckpoint,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  type EvalRecord,
} from './checkpoint.js';
import type { Engine } from './engines/engine.js';
import { createEngine, ENGINE_CHOICES, type EngineChoice } from './engines/index.js';
import { LION_BETAS } from './lion.js';
import { renderTrainingPlot } from './plot.js';
import { formatDuration, silentReporter, type Reporter } from './progress.js';
import { learningRate, type Schedule, type ScheduleKind } from './schedule.js';

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
  /** Peak learning rate. LION wants ~3–10× less than AdamW (RECIPE-NOTES: 1e-4 on Fashion-MNIST). */
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
  /** Evaluate (and checkpoint) every this many epochs; the last epoch always. */
  evalEvery: number;
  /** Train on the first N training images only (scaling runs). */
  maxExamples?: number;
  /** Evaluate on the first N test images only (fast checks); default all. */
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
  /** The command line, recorded in the card. */
  command?: string;
  /**
   * Start from these weights instead of a fresh init (fine-tuning: a trained body with a new head). `from` is
   * recorded in the card, whose provenance becomes `finetuned`.
   */
  init?: { weights: MlpWeights; from: string };
  /** Input normalisation instead of the data set's (fine-tuning keeps the pretrained model's). */
  normalization?: Normalization;
  /** Multiplier of lr for everything but the head (fine-tuning: 0.1, the paper's). Default 1. */
  bodyLrScale?: number;
}

/** The paper's recipe where it has a value; lr and wd from RECIPE-NOTES (the paper's are for batch 4096+). */
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
] as const;

export interface TrainHooks {
  reporter?: Reporter;
  /** Aborting stops after the current step, writes a checkpoint and returns without exporting. */
  signal?: AbortSignal;
  /** Called after every step (tests abort from here). */
  onStep?: (s: { step: number; loss: number; lr: number }) => void;
}

export interface TrainResult {
  /** Undefined when stopped early. */
  modelDir?: string;
  card?: ModelCard;
  /** The final weights (what was exported); undefined when stopped early. */
  weights?: MlpWeights;
  cfg: MlpConfig;
  normalization: Normalization;
  evals: EvalRecord[];
  /** Global steps done. */
  steps: number;
  examplesSeen: number;
  wallSeconds: number;
  engine: string;
  stopped: boolean;
  /** The newest checkpoint written. */
  checkpoint?: string;
  /** Measured training throughput of this session (images/s, excluding evaluation). */
  imagesPerSecond: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Small pure helpers.

export function validateOptions(o: TrainOptions): void {
  parseArch(o.arch);
  const posInt = (k: keyof TrainOptions, v: unknown) => {
    if (!(Number.isInteger(v) && (v as number) >= 1)) throw new RangeError(`${k} ${String(v)} must be a whole number ≥ 1`);
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
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new RangeError(`seed ${o.seed} must be a whole number ≥ 0`);
  if (!(o.lr > 0)) throw new RangeError(`lr ${o.lr} must be > 0`);
  if (!(o.weightDecay >= 0)) throw new RangeError(`weight decay ${o.weightDecay} must be ≥ 0`);
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) throw new RangeError('betas must be in [0, 1)');
  if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) throw new RangeError(`label smoothing ${o.labelSmoothing} must be in [0, 1)`);
  if (!(o.mixup >= 0)) throw new RangeError(`mixup α ${o.mixup} must be ≥ 0`);
  if (!(o.warmupEpochs >= 0)) throw new RangeError(`warm-up ${o.warmupEpochs} must be ≥ 0 epochs`);
  if (o.schedule !== 'cosine' && o.schedule !== 'constant') throw new RangeError(`schedule "${String(o.schedule)}" is not cosine or constant`);
  if (o.channels !== 1 && o.channels !== 3) throw new RangeError(`channels ${String(o.channels)} must be 1 or 3`);
  if (!ENGINE_CHOICES.includes(o.engine)) throw new RangeError(`engine "${String(o.engine)}" is not one of ${ENGINE_CHOICES.join(', ')}`);
  validateAugment(o.augment);
  if (o.bodyLrScale !== undefined && !(o.bodyLrScale >= 0 && Number.isFinite(o.bodyLrScale)))
    throw new RangeError(`body lr scale ${o.bodyLrScale} must be a finite number ≥ 0`);
  // Checked now, not when the card is written after hours of training.
  if (o.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.name))
    throw new RangeError(`name "${o.name}" must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
}

export { streamSeed } from './batches.js';

export function defaultModelName(data: string, arch: string): string {
  const base = /^(?:idx|cifar10|cifar100|folder):(.+)$/.exec(data)?.[1] ?? data;
  const stem = basename(resolve(base)); // a data set name, or the last part of its directory
  return `${stem}-${arch}`.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
}

/** Top-1 accuracy and mean cross-entropy on the centre view (the cached image, exactly what the server sees). */
export async function evaluate(
  engine: Engine,
  data: CachedSplit,
  geo: InputGeometry,
  norm: Normalization,
  classes: number,
  batchSize = 500,
): Promise<{ accuracy: number; loss: number }> {
  const d = geo.channels * geo.height * geo.width;
  const x = new Float32Array(batchSize * d);
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    for (let k = 0; k < n; k++) normalizeChw(data.pixels(start + k), geo, norm, x, k * d);
    const logits = await engine.predict(n === batchSize ? x : x.subarray(0, n * d), n);
    for (let k = 0; k < n; k++) {
      const row = logits.subarray(k * classes, (k + 1) * classes);
      let best = 0;
      let max = -Infinity;
      for (let c = 0; c < classes; c++) if (row[c] > max) [max, best] = [row[c], c];
      let z = 0;
      for (let c = 0; c < classes; c++) z += Math.exp(row[c] - max);
      const label = data.labels[start + k];
      lossSum += Math.log(z) + max - row[label];
      if (best === label) correct++;
    }
  }
  return { accuracy: correct / data.size, loss: lossSum / data.size };
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

function recipeOf(o: TrainOptions): Record<string, unknown> {
  return Object.fromEntries(RECIPE_KEYS.map((k) => [k, o[k] ?? null]));
}

function recipeDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return RECIPE_KEYS.filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null)).map(
    (k) => `${k}: checkpoint ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`,
  );
}

async function resolveResume(o: TrainOptions, checkpointDir: string): Promise<string | undefined> {
  if (!o.resume) return undefined;
  const where = o.resume === true ? checkpointDir : resolve(o.resume);
  const st = await stat(where).catch(() => undefined);
  const path = st?.isDirectory() ? await latestCheckpoint(where) : st?.isFile() ? where : undefined;
  if (!path) throw new RangeError(`--resume: no checkpoint in ${where}`);
  return path;
}

// ---------------------------------------------------------------------------------------------------------------

export async function train(o: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  validateOptions(o);
  const say = hooks.reporter ?? silentReporter;
  const sessionStart = performance.now();
  const checkpointDir = resolve(o.checkpointDir ?? join(o.out, '.checkpoints'));
  const resumeFrom = await resolveResume(o, checkpointDir);

  // --- Data: every image decoded once, through the server's preprocessing, into the cache.
  const geo: InputGeometry = { width: o.size, height: o.size, channels: o.channels };
  const source = await openDataSource(o.data, { log: (m) => say.line(m) });
  const cacheOpts = (what: string, limit?: number) => {
    let last = performance.now();
    return {
      root: o.cacheDir,
      limit,
      log: (line: string) => say.line(line),
      // Decoding 60k images takes ~30 s: a line every 5 s between the cache's own first and last lines.
      onProgress: (done: number, total: number) => {
        if (done === total || performance.now() - last < 5000) return;
        last = performance.now();
        say.line(`caching ${what} at ${o.size}×${o.size}×${o.channels}: ${done}/${total} images`);
      },
    };
  };
  const trainData = await prepareSplit(source.train, geo, cacheOpts(`${source.name} ${source.train.split}`, o.maxExamples));
  const testData = await prepareSplit(source.test, geo, cacheOpts(`${source.name} ${source.test.split}`, o.maxEvalExamples));
  const classes = source.train.classes.length;
  const norm = o.normalization ?? chooseNormalization(source.normalization, trainData.meta.stats, o.channels);

  // --- Model and engine: fresh, or exactly where a checkpoint left off.
  const cfg: MlpConfig = configFor(o.arch, o.expansion, geo.channels * geo.height * geo.width, classes);
  const { engine, note } = await createEngine(o.engine);
  if (note) say.line(note);
  const name = o.name ?? defaultModelName(source.name, archName(cfg));
  const modelDir = resolve(o.out, name);
  await mkdir(modelDir, { recursive: true });

  let step = 0;
  let elapsedBefore = 0;
  let epochLoss = { sum: 0, count: 0 };
  let evals: EvalRecord[] = [];
  let curve: { epoch: number; loss: number }[] = [];
  let windowLoss = { sum: 0, count: 0 };
  if (resumeFrom) {
    const ck = await loadCheckpoint(resumeFrom);
    const diff = recipeDifferences(ck.meta.recipe, recipeOf(o));
    if (diff.length) throw new RangeError(`--resume ${resumeFrom}: the options differ from the checkpoint's: ${diff.join('; ')}`);
    await engine.init(cfg, ck.weights, ck.momentum);
    ({ step, epochLoss, evals, curve, windowLoss, elapsedSeconds: elapsedBefore } = ck.meta);
    say.line(`resumed from ${resumeFrom} at step ${step} (epoch ${ck.meta.epoch.toFixed(2)})`);
  } else {
    if (o.init) assertWeightsMatch(cfg, o.init.weights);
    await engine.init(cfg, o.init?.weights ?? initWeights(cfg, o.seed));
  }
  const log: WriteStream = createWriteStream(join(modelDir, 'train.jsonl'), { flags: resumeFrom ? 'a' : 'w' });
  const record = (r: Record<string, unknown>) => log.write(JSON.stringify(r) + '\n');

  const batchSize = Math.min(o.batchSize, trainData.size);
  const stepsPerEpoch = Math.floor(trainData.size / batchSize); // the last partial batch is dropped, as FFCV does
  const totalSteps = o.epochs * stepsPerEpoch;
  const schedule: Schedule = {
    kind: o.schedule,
    lr: o.lr,
    totalSteps,
    warmupSteps: Math.round(o.warmupEpochs * stepsPerEpoch),
  };
  const flops = flopsPerImage(cfg);
  const wall = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
  record({
    type: 'start', time: new Date().toISOString(), options: { ...o, resume: resumeFrom ?? null, init: o.init ? { from: o.init.from } : null }, engine: engine.name,
    cfg, params: paramCount(cfg), flopsPerImage: flops, trainExamples: trainData.size, testExamples: testData.size,
    normalization: norm, stepsPerEpoch, totalSteps,
  });
  say.line(
    `${archName(cfg)} (${(paramCount(cfg) / 1e6).toFixed(2)}M params, ${(flops / 1e6).toFixed(1)} MFLOPs/image) on ` +
      `${source.name} ${trainData.size} train / ${testData.size} ${source.test.split} images at ${o.size}×${o.size}×${o.channels}, ` +
      `${o.epochs} epochs × ${stepsPerEpoch} steps of ${batchSize}, engine ${engine.name}`,
  );

  // Batches are built on a worker thread, the next one while the engine steps on this one.
  const batchSpec: BatchSpec = {
    seed: o.seed, batchSize, examples: trainData.size, stepsPerEpoch, geo, norm, classes, augment: o.augment,
    labelSmoothing: o.labelSmoothing, mixup: o.mixup,
  };
  const { source: batches, note: batchNote } = await openBatchSource(batchSpec, trainData);
  if (batchNote) say.line(batchNote);
  let checkpoint: string | undefined;
  let stopped = false;
  const startStep = step;
  let trainSeconds = 0; // time in batch building + steps this session: the throughput we report

  const writeCheckpoint = async () => {
    const meta = {
      recipe: recipeOf(o), cfg, step, epoch: step / stepsPerEpoch, examplesSeen: step * batchSize,
      elapsedSeconds: wall(), epochLoss, evals, curve, windowLoss, normalization: norm, engine: engine.name,
    };
    const label = checkpointName(Math.floor(step / stepsPerEpoch), step, 3 * flops * step * batchSize);
    checkpoint = await saveCheckpoint(checkpointDir, label, meta, await engine.readWeights(), await engine.readMomentum());
    await pruneCheckpoints(checkpointDir, o.keepCheckpoints);
  };
  const plot = async () => {
    const svg = await renderTrainingPlot(
      { train: curve, evals: evals.map((e) => ({ epoch: e.epoch, testLoss: e.testLoss, testAccuracy: e.testAccuracy })) },
      `${archName(cfg)} on ${source.name}, ${o.size}×${o.size}×${o.channels}, seed ${o.seed}`,
    );
    await writeFile(join(modelDir, 'training.svg'), svg);
  };

  try {
    for (; ; step++) {
      const epoch = Math.floor(step / stepsPerEpoch);

      // 1. End of an epoch: evaluate and checkpoint when due.
      if (step > startStep && step % stepsPerEpoch === 0) {
        const trainLoss = epochLoss.sum / Math.max(1, epochLoss.count);
        epochLoss = { sum: 0, count: 0 };
        if (epoch % o.evalEvery === 0 || step === totalSteps) {
          const test = await evaluate(engine, testData, geo, norm, classes);
          const e: EvalRecord = {
            epoch, step, examplesSeen: step * batchSize, testAccuracy: test.accuracy, testLoss: test.loss,
            trainLoss, elapsedSeconds: wall(),
          };
          evals.push(e);
          record({ type: 'eval', ...e });
          say.line(
            `epoch ${epoch}/${o.epochs}  train loss ${e.trainLoss.toFixed(4)}  test loss ${e.testLoss.toFixed(4)}  ` +
              `test top-1 ${(100 * e.testAccuracy).toFixed(2)}%  (${formatDuration(e.elapsedSeconds)})`,
          );
          await writeCheckpoint();
          await plot();
        }
      }
      if (step === totalSteps) break;
      // Let the event loop run once per step: a step of the wasm engine resolves without any I/O, so without this
      // a Ctrl-C (a signal handler is a macrotask) would only be seen at the next evaluation's file writes.
      await new Promise<void>((res) => setImmediate(res));
      if (hooks.signal?.aborted) {
        // (A prefetched batch is simply dropped: a batch is a pure function of its step.)
        await writeCheckpoint();
        say.line(`stopped at step ${step}; checkpoint ${checkpoint}`);
        stopped = true;
        break;
      }

      // 2. Learning rate for this step.
      const lr = learningRate(schedule, step);

      // 3. The batch: this epoch's order, then augmentation, smoothing and MixUp seeded by the step (batches.ts).
      const t0 = performance.now();
      const batch = await batches.take(step);
      if (step + 1 < totalSteps) batches.prefetch(step + 1);

      // 4. Forward, backward, LION, while the worker builds the next batch.
      const { loss } = await engine.step(batch, { lr, beta1: o.beta1, beta2: o.beta2, weightDecay: o.weightDecay, bodyLrScale: o.bodyLrScale ?? 1 });
      batches.release(batch);
      if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${step} (lr ${lr}): the run diverged`);
      trainSeconds += (performance.now() - t0) / 1000;

      // 5. Log.
      epochLoss.sum += loss;
      epochLoss.count++;
      windowLoss.sum += loss;
      windowLoss.count++;
      const done = step + 1;
      const ips = ((done - startStep) * batchSize) / Math.max(trainSeconds, 1e-9);
      if (done % o.logEvery === 0 || done % stepsPerEpoch === 0) {
        const mean = windowLoss.sum / windowLoss.count;
        curve.push({ epoch: done / stepsPerEpoch, loss: mean });
        record({ type: 'step', step: done, epoch: done / stepsPerEpoch, lr, loss: mean, imagesPerSecond: ips, examplesSeen: done * batchSize, elapsedSeconds: wall() });
        windowLoss = { sum: 0, count: 0 };
      }
      say.progress({
        epoch, epochs: o.epochs, stepInEpoch: (step % stepsPerEpoch) + 1, stepsPerEpoch, imagesPerSecond: ips,
        loss, lr, etaSeconds: ((totalSteps - done) * batchSize) / ips,
      });
      hooks.onStep?.({ step, loss, lr });
    }
  } catch (err) {
    await engine.dispose();
    throw err;
  } finally {
    say.done();
    await new Promise<void>((res) => log.end(res));
    await batches.close();
    trainData.close();
    testData.close();
  }

  const imagesPerSecond = ((step - startStep) * batchSize) / Math.max(trainSeconds, 1e-9);
  const base = { cfg, normalization: norm, evals, steps: step, examplesSeen: step * batchSize, engine: engine.name, checkpoint, imagesPerSecond };
  if (stopped) {
    await engine.dispose();
    return { ...base, wallSeconds: wall(), stopped: true };
  }

  // --- Export: the same weights, ONNX + card, servable as is.
  const weights = await engine.readWeights();
  await engine.dispose();
  const last = evals.at(-1);
  const wallSeconds = wall();
  const card = buildCard({
    name,
    cfg,
    labels: source.train.classes,
    input: geo,
    normalization: norm,
    provenance: {
      kind: o.init ? 'finetuned' : 'trained',
      command: o.command,
      ...(o.init ? { from: o.init.from, bodyLrScale: o.bodyLrScale ?? 1 } : {}),
      dataset: { name: source.name, trainSplit: source.train.split, testSplit: source.test.split, trainExamples: trainData.size, testExamples: testData.size },
      recipe: {
        optimizer: 'lion', lr: o.lr, weightDecay: o.weightDecay, betas: [o.beta1, o.beta2], batchSize, schedule: o.schedule,
        warmupEpochs: o.warmupEpochs, labelSmoothing: o.labelSmoothing, mixupAlpha: o.mixup, augment: o.augment,
      },
      seed: o.seed,
      epochs: o.epochs,
      steps: step,
      examplesSeen: step * batchSize,
      computeFlops: 3 * flops * step * batchSize,
      wallSeconds: Math.round(wallSeconds),
      engine: engine.name,
      trainImagesPerSecond: Math.round(imagesPerSecond),
    },
    metrics: last ? { testTop1: last.testAccuracy, testLoss: last.testLoss } : {},
  });
  await writeModelDir(modelDir, cfg, weights, card);
  await plot();
  say.line(
    `wrote ${modelDir} (test top-1 ${last ? (100 * last.testAccuracy).toFixed(2) + '%' : 'n/a'}, ${formatDuration(wallSeconds)}, ` +
      `${imagesPerSecond.toFixed(0)} img/s); serve it with MODELS_DIR=${resolve(o.out)} npm start`,
  );
  return { ...base, modelDir, card, weights, wallSeconds, stopped: false };
}
