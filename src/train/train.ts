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
import { join, resolve } from 'node:path';
import { writeModelDir } from '../export/export.js';
import type { ModelCard } from '../model/card.js';
import {
  archName,
  assertWeightsMatch,
  configFor,
  flopsPerImage,
  initWeights,
  paramCount,
  trainingFlops,
  type MlpConfig,
  type MlpWeights,
} from '../model/mlp.js';
import { prepareSplit, type CachedSplit } from '../data/cache.js';
import { stratifiedHoldout, subsetSplit } from '../data/holdout.js';
import { normalizeChw, type InputGeometry, type Normalization } from '../data/preprocess.js';
import { openDataSource } from '../data/resolve.js';
import { openBatchSource } from './batch-source.js';
import type { BatchSpec } from './batches.js';
import { trainedCard } from './card.js';
import {
  checkpointName,
  latestCheckpoint,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  type EvalRecord,
} from './checkpoint.js';
import type { Engine } from './engines/engine.js';
import { createEngine } from './engines/index.js';
import { evaluate, type Score } from './evaluate.js';
import {
  chooseNormalization,
  defaultModelName,
  heldOutCount,
  recipeDifferences,
  recipeOf,
  validateOptions,
  type TrainOptions,
} from './options.js';
import { renderTrainingPlot } from './plot.js';
import { formatDuration, silentReporter, type Reporter } from './progress.js';
import { learningRate, type Schedule } from './schedule.js';

export { DEFAULT_TRAIN_OPTIONS, type TrainOptions } from './options.js';

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
  /** Validation score after the last epoch (none when nothing is held out). */
  val?: Score;
  /** The test split's score, read once after training (`finalTest`). */
  test?: Score;
}

async function resolveResume(o: TrainOptions, checkpointDir: string): Promise<string | undefined> {
  if (!o.resume) return undefined;
  const where = o.resume === true ? checkpointDir : resolve(o.resume);
  const st = await stat(where).catch(() => undefined);
  const path = st?.isDirectory() ? await latestCheckpoint(where) : st?.isFile() ? where : undefined;
  if (!path) throw new RangeError(`--resume: no checkpoint in ${where}`);
  return path;
}


/** Caching progress: a line every 5 s between the cache's own first and last lines (60k images take ~30 s). */
function cacheOptions(o: TrainOptions, say: Reporter, what: string, limit?: number) {
  let last = performance.now();
  return {
    root: o.cacheDir,
    limit,
    log: (line: string) => say.line(line),
    onProgress: (done: number, total: number) => {
      if (done === total || performance.now() - last < 5000) return;
      last = performance.now();
      say.line(`caching ${what} at ${o.size}×${o.size}×${o.channels}: ${done}/${total} images`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

export async function train(o: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  validateOptions(o);
  const say = hooks.reporter ?? silentReporter;
  const sessionStart = performance.now();
  const checkpointDir = resolve(o.checkpointDir ?? join(o.out, '.checkpoints'));
  const resumeFrom = await resolveResume(o, checkpointDir);

  // --- Data: every image decoded once, through the server's preprocessing, into the cache; the validation images
  // held out of the training ones. The test split is not opened until training is over.
  const geo: InputGeometry = { width: o.size, height: o.size, channels: o.channels };
  const source = await openDataSource(o.data, { log: (m) => say.line(m) });
  const loaded = await prepareSplit(source.train, geo, cacheOptions(o, say, `${source.name} ${source.train.split}`, o.maxExamples));
  const holdout = stratifiedHoldout(loaded.labels, heldOutCount(o, loaded.size), o.valSeed);
  const trainData = holdout.val.length ? subsetSplit(loaded, holdout.train) : loaded;
  const valData = holdout.val.length ? subsetSplit(loaded, holdout.val) : undefined;
  const classes = source.train.classes.length;
  const norm = o.normalization ?? chooseNormalization(source.normalization, loaded.meta.stats, o.channels);

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
    await engine.init(cfg, o.init?.weights ?? initWeights(cfg, o.seed), o.init?.momentum);
  }
  const log: WriteStream = createWriteStream(join(modelDir, 'train.jsonl'), { flags: resumeFrom ? 'a' : 'w' });
  const record = (r: Record<string, unknown>) => log.write(JSON.stringify(r) + '\n');

  const batchSize = Math.min(o.batchSize, trainData.size);
  const stepsPerEpoch = Math.floor(trainData.size / batchSize); // the last partial batch is dropped, as FFCV does
  const totalSteps = o.epochs * stepsPerEpoch;
  const schedule: Schedule = { kind: o.schedule, lr: o.lr, totalSteps, warmupSteps: Math.round(o.warmupEpochs * stepsPerEpoch) };
  const flops = flopsPerImage(cfg);
  const wall = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
  record({
    type: 'start', time: new Date().toISOString(), options: { ...o, resume: resumeFrom ?? null, init: o.init ? { from: o.init.from } : null }, engine: engine.name,
    cfg, params: paramCount(cfg), flopsPerImage: flops, trainExamples: trainData.size, valExamples: holdout.val.length,
    normalization: norm, stepsPerEpoch, totalSteps,
  });
  say.line(
    `${archName(cfg)} (${(paramCount(cfg) / 1e6).toFixed(2)}M params, ${(flops / 1e6).toFixed(1)} MFLOPs/image) on ` +
      `${source.name} ${trainData.size} train / ${holdout.val.length} validation images${o.refit ? ' (refit on train + validation)' : ''} ` +
      `at ${o.size}×${o.size}×${o.channels}, ${o.epochs} epochs × ${stepsPerEpoch} steps of ${batchSize}, engine ${engine.name}`,
  );

  // Batches are built on a worker thread, the next one while the engine steps on this one (from the training images
  // only: the worker opens the cache and takes the same indices).
  const batchSpec: BatchSpec = {
    seed: o.seed, batchSize, examples: trainData.size, stepsPerEpoch, geo, norm, classes, augment: o.augment,
    labelSmoothing: o.labelSmoothing, mixup: o.mixup,
  };
  const { source: batches, note: batchNote } = await openBatchSource(batchSpec, loaded, holdout.val.length ? holdout.train : undefined);
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
    const label = checkpointName(Math.floor(step / stepsPerEpoch), step, trainingFlops(cfg, step * batchSize));
    checkpoint = await saveCheckpoint(checkpointDir, label, meta, await engine.readWeights(), await engine.readMomentum());
    await pruneCheckpoints(checkpointDir, o.keepCheckpoints);
  };
  const plot = async () => {
    const scored = evals.flatMap((e) => (e.valLoss === undefined ? [] : [{ epoch: e.epoch, valLoss: e.valLoss, valAccuracy: e.valAccuracy! }]));
    const svg = await renderTrainingPlot({ train: curve, evals: scored }, `${archName(cfg)} on ${source.name}, ${o.size}×${o.size}×${o.channels}, seed ${o.seed}`);
    await writeFile(join(modelDir, 'training.svg'), svg);
  };

  try {
    for (; ; step++) {
      const epoch = Math.floor(step / stepsPerEpoch);

      // 1. End of an epoch: score the validation images and checkpoint when due.
      if (step > startStep && step % stepsPerEpoch === 0) {
        const trainLoss = epochLoss.sum / Math.max(1, epochLoss.count);
        epochLoss = { sum: 0, count: 0 };
        if (epoch % o.evalEvery === 0 || step === totalSteps) {
          const val = valData && (await evaluate(engine, valData, geo, norm, classes));
          const e: EvalRecord = {
            epoch, step, examplesSeen: step * batchSize, trainLoss, elapsedSeconds: wall(),
            ...(val ? { valAccuracy: val.accuracy, valLoss: val.loss } : {}),
          };
          evals.push(e);
          record({ type: 'eval', ...e });
          say.line(
            `epoch ${epoch}/${o.epochs}  train loss ${e.trainLoss.toFixed(4)}` +
              (val ? `  val loss ${val.loss.toFixed(4)}  val top-1 ${(100 * val.accuracy).toFixed(2)}%` : '') +
              `  (${formatDuration(e.elapsedSeconds)})`,
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

    // 6. Once, after the last epoch: the test split.
    const imagesPerSecond = ((step - startStep) * batchSize) / Math.max(trainSeconds, 1e-9);
    const last = evals.at(-1);
    const val = last?.valAccuracy !== undefined ? { accuracy: last.valAccuracy, loss: last.valLoss! } : undefined;
    const base = { cfg, normalization: norm, evals, steps: step, examplesSeen: step * batchSize, engine: engine.name, checkpoint, imagesPerSecond, val };
    if (stopped) return { ...base, wallSeconds: wall(), stopped: true };
    let test: Score | undefined;
    let testExamples = 0;
    if (o.finalTest) {
      const testData = await prepareSplit(source.test, geo, cacheOptions(o, say, `${source.name} ${source.test.split}`, o.maxEvalExamples));
      try {
        test = await evaluate(engine, testData, geo, norm, classes);
        testExamples = testData.size;
      } finally {
        testData.close();
      }
      record({ type: 'test', split: source.test.split, examples: testExamples, accuracy: test.accuracy, loss: test.loss });
      say.line(`${source.test.split} (read once, ${testExamples} images): loss ${test.loss.toFixed(4)}  top-1 ${(100 * test.accuracy).toFixed(2)}%`);
    }

    // --- Export: the same weights, ONNX + card, servable as is.
    const weights = await engine.readWeights();
    const wallSeconds = wall();
    const card = trainedCard(o, {
      name, cfg, labels: source.train.classes, input: geo, normalization: norm,
      data: { name: source.name, trainSplit: source.train.split, testSplit: source.test.split },
      trainExamples: trainData.size, valIndices: holdout.val, testExamples, batchSize, steps: step, wallSeconds,
      engine: engine.name, imagesPerSecond, val, test,
    });
    await writeModelDir(modelDir, cfg, weights, card);
    await plot();
    const pct = (s?: Score) => (s ? `${(100 * s.accuracy).toFixed(2)}%` : 'n/a');
    say.line(
      `wrote ${modelDir} (val top-1 ${pct(val)}, test top-1 ${pct(test)}, ${formatDuration(wallSeconds)}, ` +
        `${imagesPerSecond.toFixed(0)} img/s); serve it with MODELS_DIR=${o.out} npm start`,
    );
    return { ...base, modelDir, card, weights, wallSeconds, stopped: false, test };
  } finally {
    say.done();
    await new Promise<void>((res) => log.end(res));
    await batches.close();
    loaded.close();
    await engine.dispose();
  }
}
