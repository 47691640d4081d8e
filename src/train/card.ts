// The card of a trained model: what was trained on what, with which recipe, and what each figure was measured on.
// Validation figures are the ones choices were made on; the test figure is read once, after training, and chose
// nothing.

import { buildCard } from '../export/export.js';
import type { ModelCard } from '../model/card.js';
import { trainingFlops, type MlpConfig } from '../model/mlp.js';
import type { InputGeometry, Normalization } from '../data/preprocess.js';
import type { Score } from './evaluate.js';
import type { TrainOptions } from './options.js';

export interface TrainedRun {
  name: string;
  cfg: MlpConfig;
  labels: readonly string[];
  input: InputGeometry;
  normalization: Normalization;
  data: { name: string; trainSplit: string; testSplit: string };
  /** Images trained on, and the held-out validation indices into the loaded training split (ascending). */
  trainExamples: number;
  valIndices: Uint32Array;
  testExamples: number;
  batchSize: number;
  steps: number;
  wallSeconds: number;
  engine: string;
  imagesPerSecond: number;
  /** After the last epoch. */
  val?: Score;
  test?: Score;
}

export function trainedCard(o: TrainOptions, r: TrainedRun): ModelCard {
  const examplesSeen = r.steps * r.batchSize;
  const metrics: Record<string, number> = {};
  if (r.val) Object.assign(metrics, { valTop1: r.val.accuracy, valLoss: r.val.loss });
  if (r.test) Object.assign(metrics, { testTop1: r.test.accuracy, testLoss: r.test.loss });
  return buildCard({
    name: r.name,
    cfg: r.cfg,
    labels: r.labels,
    input: r.input,
    normalization: r.normalization,
    provenance: {
      kind: o.init && !o.init.momentum ? 'finetuned' : 'trained',
      command: o.command,
      ...(o.init && !o.init.momentum ? { from: o.init.from, bodyLrScale: o.bodyLrScale ?? 1 } : {}),
      // A checkpoint continued under a new schedule: the first phase's command is in the checkpoint's directory.
      ...(o.init?.momentum ? { continuedFrom: o.init.from } : {}),
      dataset: {
        name: r.data.name, trainSplit: r.data.trainSplit, testSplit: r.data.testSplit,
        trainExamples: r.trainExamples, valExamples: r.valIndices.length, testExamples: r.testExamples,
      },
      split: {
        refit: o.refit,
        validation: r.valIndices.length
          ? {
              from: r.data.trainSplit, examples: r.valIndices.length, stratified: true, seed: o.valSeed,
              ...(o.maxExamples !== undefined ? { ofFirst: o.maxExamples } : {}),
              indices: Array.from(r.valIndices),
            }
          : null,
        // Which split each figure comes from and what it was allowed to decide.
        metrics: {
          ...(r.val ? { valTop1: 'validation images after the last epoch; recipe and epoch count are compared on it' } : {}),
          ...(r.test ? { testTop1: `${r.data.testSplit} split, read once after training; chose nothing` } : {}),
        },
        ...(o.refit ? { note: 'trained on training + validation images with a recipe and epoch count chosen on validation' } : {}),
      },
      recipe: {
        optimizer: 'lion', lr: o.lr, weightDecay: o.weightDecay, betas: [o.beta1, o.beta2], batchSize: r.batchSize,
        schedule: o.schedule, warmupEpochs: o.warmupEpochs, labelSmoothing: o.labelSmoothing, mixupAlpha: o.mixup,
        augment: o.augment,
      },
      seed: o.seed,
      epochs: o.epochs,
      steps: r.steps,
      examplesSeen,
      computeFlops: trainingFlops(r.cfg, examplesSeen),
      wallSeconds: Math.round(r.wallSeconds),
      engine: r.engine,
      trainImagesPerSecond: Math.round(r.imagesPerSecond),
    },
    metrics,
  });
}
