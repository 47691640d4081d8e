// A random-initialised, servable model directory of any size: for tests, benchmarks and the placeholder default
// model until a trained one lands. Weights are PyTorch-style init from a seed, so a seed reproduces the file.

import { FASHION_MNIST_LABELS, CIFAR10_LABELS, CIFAR100_LABELS, NORMALIZATIONS, genericLabels } from '../data/labels.js';
import { configFor, initWeights, type MlpConfig } from '../model/mlp.js';
import type { ModelCard } from '../model/card.js';
import { buildCard, writeModelDir } from './export.js';

/** The label sets a random model can carry (`generic`: class_0, class_1, …). */
export const LABEL_SETS = ['generic', 'fashion-mnist', 'cifar10', 'cifar100'] as const;
export type LabelSet = (typeof LABEL_SETS)[number];

export interface RandomModelOptions {
  /** `B_<depth>-Wi_<width>` or `S_<depth>-Wi_<width>`. */
  arch: string;
  /** Directory to write model.onnx + model.json into. */
  out: string;
  /** Served name. */
  name: string;
  /** Number of classes; must match the label set when it is not `generic`. Default: the label set's, else 10. */
  classes?: number;
  /** Square input side in pixels. Default 64. */
  size?: number;
  /** 1 (grey) or 3 (RGB). Default 3. */
  channels?: 1 | 3;
  /** Init seed. Default 0. */
  seed?: number;
  /** Hidden width / width. Default 4. */
  expansion?: number;
  /** Class names: `class_<i>` (generic) or a data set's. Default generic. */
  labels?: LabelSet;
  /** Command line recorded in the card's provenance. */
  command?: string;
}

const NAMED_LABELS: Record<Exclude<LabelSet, 'generic'>, readonly string[]> = {
  'fashion-mnist': FASHION_MNIST_LABELS,
  cifar10: CIFAR10_LABELS,
  cifar100: CIFAR100_LABELS,
};

export async function writeRandomModel(opts: RandomModelOptions): Promise<ModelCard> {
  const size = opts.size ?? 64;
  const channels = opts.channels ?? 3;
  const labelSet = opts.labels ?? 'generic';
  const named = labelSet === 'generic' ? undefined : NAMED_LABELS[labelSet];
  const classes = opts.classes ?? named?.length ?? 10;
  if (named && named.length !== classes)
    throw new RangeError(`--labels ${labelSet} has ${named.length} classes, --classes says ${classes}`);
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`classes must be a positive integer, got ${classes}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const cfg: MlpConfig = configFor(opts.arch, opts.expansion ?? 4, channels * size * size, classes);
  // Grey models get Fashion-MNIST's statistics, colour models ImageNet's: plausible inputs for the random weights.
  const normalization = channels === 1 ? NORMALIZATIONS['fashion-mnist'] : NORMALIZATIONS.imagenet;
  const card = buildCard({
    name: opts.name,
    cfg,
    labels: named ?? genericLabels(classes),
    input: { width: size, height: size, channels },
    normalization,
    provenance: { kind: 'random', seed: opts.seed ?? 0, ...(opts.command ? { command: opts.command } : {}) },
  });
  await writeModelDir(opts.out, cfg, initWeights(cfg, opts.seed ?? 0), card);
  return card;
}
