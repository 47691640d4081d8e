// The paper's three further claims as small grids: which configurations each compares, the candidate recipes of
// each (learning rates and, for augmentation, strengths) tried on the validation split, and the scale they run at.
// Pure data and arithmetic; src/claims/run.ts trains the cells, src/claims/report.ts judges and draws them.

import { configFor, paramCount } from '../model/mlp.js';
import type { SweepRecipe } from '../scaling/sweep.js';
import type { AugmentOptions } from '../train/augment.js';

export type ClaimId = 'architecture' | 'augmentation' | 'batch-size';
export const CLAIM_IDS: readonly ClaimId[] = ['architecture', 'augmentation', 'batch-size'];

/** What the paper says, quoted in the report beside what we measured. */
export const PAPER_STATEMENTS: Record<ClaimId, { title: string; statement: string }> = {
  architecture: {
    title: 'Inverted-bottleneck MLP vs standard MLP',
    statement:
      'The inverted-bottleneck MLP (pre-norm residual blocks, expansion 4) beats a standard MLP of the same parameter ' +
      'count (stacked Linear + GELU, no residuals, no norm) by a wide margin.',
  },
  augmentation: {
    title: 'Data augmentation vs a bigger model',
    statement:
      'Data augmentation is what lets an MLP overcome its missing inductive bias: the same MLP gains more from ' +
      'augmentation (crops/shifts, flips, MixUp) than from doubling its width or its depth.',
  },
  'batch-size': {
    title: 'Large batches',
    statement:
      'Large batches help MLPs (unlike CNNs): at a fixed number of epochs and a learning rate tuned per batch size, ' +
      'accuracy does not fall, or rises, as the batch grows from 64 to 4,096.',
  },
};

/** How big the study is: data, splits, schedule, seeds and the grid's sizes. */
export interface ClaimsScale {
  name: 'default' | 'quick';
  data: string;
  size: number;
  /** Training images per run (the validation images are held out on top of these). */
  trainImages: number;
  /** Validation images held out of the training split (stratified, seeded by the trainer). */
  val: number;
  /** Test images read once per run; undefined = the whole test split. */
  evalExamples?: number;
  epochs: number;
  /** Seeds per reported cell (the first also runs every candidate). */
  seeds: number;
  /** The base model of the augmentation and batch-size claims (claim 2 doubles its width and depth). */
  base: { depth: number; width: number };
  /** The B_ models of the architecture claim; each gets an S_ of the same depth and (nearly) the same parameters. */
  architectures: { depth: number; width: number }[];
  /** Further data sets the architecture claim is also run on (same sizes, same splits). */
  architectureData?: string[];
  /** Batch size of claims 1 and 2, and the batch sizes of claim 3. */
  batchSize: number;
  batchSizes: number[];
  /** The LION lr of the base model at `batchSize`; the candidates are it × lrFactors (scaled for width and batch). */
  lr: number;
  lrFactors: number[];
}

/**
 * Sized for a 2-core machine shared with other jobs (a run got 5–200 s of wall time at nice 10 under load 17–24):
 * 73 runs of 50,000 examples seen each, 0.1–0.4M-parameter models. At 10,000 images, batch 4,096 makes 2 steps an
 * epoch, 10 in all.
 */
export const DEFAULT_SCALE: ClaimsScale = Object.freeze({
  name: 'default' as const,
  data: 'fashion-mnist',
  size: 28,
  trainImages: 10000,
  val: 5000,
  epochs: 5,
  seeds: 3,
  base: { depth: 2, width: 64 },
  architectures: [{ depth: 2, width: 64 }, { depth: 4, width: 64 }],
  architectureData: ['mnist'],
  batchSize: 128,
  batchSizes: [64, 128, 256, 1024, 4096],
  lr: 2e-3,
  lrFactors: [1 / 3, 1, 3],
});

/** Minutes on a busy 2-core machine: 12×12 input, hundreds of images, tiny models; for CI and the report's shape. */
export const QUICK_SCALE: ClaimsScale = Object.freeze({
  name: 'quick' as const,
  data: 'fashion-mnist',
  size: 12,
  trainImages: 512,
  val: 256,
  evalExamples: 500,
  epochs: 2,
  seeds: 3,
  base: { depth: 1, width: 16 },
  architectures: [{ depth: 1, width: 16 }],
  batchSize: 32,
  batchSizes: [16, 64, 256],
  lr: 3e-3,
  lrFactors: [1 / 3, 1],
});

/** The recipe without augmentation: LION, cosine, light smoothing; what every "no aug" cell uses. */
const PLAIN_AUGMENT: AugmentOptions = { cropScale: null, cropRatio: [3 / 4, 4 / 3], flip: false, translate: 0 };

/** The augmentation strengths claim 2 chooses between on validation: light (shifts, flips) and the paper's family. */
export const AUGMENTATIONS: readonly { label: string; augment: AugmentOptions; mixup: number }[] = [
  { label: 'flip + 2px shifts', augment: { cropScale: null, cropRatio: [3 / 4, 4 / 3], flip: true, translate: 2 }, mixup: 0 },
  {
    label: 'crops (0.35–1) + flip + MixUp 0.8',
    augment: { cropScale: [0.35, 1], cropRatio: [3 / 4, 4 / 3], flip: true, translate: 0 },
    mixup: 0.8,
  },
];

/** One configuration a claim compares; lr (and any alternatives) chosen on validation with the first seed. */
export interface Variant {
  claim: ClaimId;
  /** Row label in the table and plot. */
  label: string;
  arch: string;
  batchSize: number;
  /** Seed-free recipes tried with the first seed; the best on validation accuracy gets the other seeds. */
  candidates: { recipe: SweepRecipe; note: string }[];
  /** Numeric x of the plot when the claim has one (batch size). */
  x?: number;
  /** Which side of the comparison this variant is on (the verdict reads these). */
  role: 'bottleneck' | 'standard' | 'base' | 'augmented' | 'wider' | 'deeper' | 'batch';
  /** For the architecture claim: the B_ model a standard variant is matched to. */
  pair?: string;
}

/** The S_ of `depth` layers whose parameter count is closest to `target` (widths 1..4096). */
export function matchedStandard(depth: number, target: number, inputDim: number, classes: number): string {
  let best = { arch: '', gap: Infinity };
  for (let w = 1; w <= 4096; w++) {
    const arch = `S_${depth}-Wi_${w}`;
    const gap = Math.abs(paramCount(configFor(arch, 1, inputDim, classes)) - target);
    if (gap < best.gap) best = { arch, gap };
  }
  return best.arch;
}

function baseRecipe(s: ClaimsScale): Omit<SweepRecipe, 'lr' | 'batchSize'> {
  return {
    data: s.data,
    size: s.size,
    channels: 1,
    expansion: 4,
    weightDecay: 0.1,
    labelSmoothing: 0.1,
    mixup: 0,
    augment: PLAIN_AUGMENT,
    schedule: 'cosine',
    seed: 0,
    val: s.val,
    ...(s.evalExamples ? { evalExamples: s.evalExamples } : {}),
  };
}

/**
 * LION lr candidates for a model at a batch size: the base lr scaled by 1/width (as the scaling sweep found) and by
 * √(batch / base batch) (sign updates: the step does not shrink with the gradient's noise), times each factor.
 */
export function lrCandidates(s: ClaimsScale, width: number, batchSize: number): number[] {
  const centre = s.lr * (s.base.width / width) * Math.sqrt(batchSize / s.batchSize);
  return s.lrFactors.map((f) => Number((centre * f).toPrecision(3)));
}

function variant(
  s: ClaimsScale,
  v: Omit<Variant, 'candidates' | 'batchSize'> & { batchSize?: number; data?: string },
  width: number,
  options: { note: string; augment?: AugmentOptions; mixup?: number }[] = [{ note: 'no augmentation' }],
): Variant {
  const { data, ...rest } = v;
  const batchSize = v.batchSize ?? s.batchSize;
  const candidates = options.flatMap((o) =>
    lrCandidates(s, width, batchSize).map((lr) => ({
      recipe: { ...baseRecipe(s), data: data ?? s.data, batchSize, lr, augment: o.augment ?? PLAIN_AUGMENT, mixup: o.mixup ?? 0 },
      note: `${o.note}, lr ${lr}`,
    })),
  );
  return { ...rest, batchSize, candidates };
}

const bName = (a: { depth: number; width: number }) => `B_${a.depth}-Wi_${a.width}`;

/** Every variant of every claim at this scale (variants with the same arch and recipe share their runs). */
export function claimVariants(s: ClaimsScale, classes = 10): Variant[] {
  const inputDim = s.size * s.size;
  const out: Variant[] = [];
  for (const data of [s.data, ...(s.architectureData ?? [])])
    for (const a of s.architectures) {
      const b = bName(a);
      const std = matchedStandard(a.depth, paramCount(configFor(b, 4, inputDim, classes)), inputDim, classes);
      const on = data === s.data ? '' : ` (${data})`;
      const pair = `${b}${on}`;
      out.push(variant(s, { claim: 'architecture', label: pair, arch: b, role: 'bottleneck', pair, data }, a.width));
      out.push(variant(s, { claim: 'architecture', label: `${std}${on}`, arch: std, role: 'standard', pair, data }, Number(std.split('Wi_')[1])));
    }
  const base = bName(s.base);
  const { depth, width } = s.base;
  out.push(variant(s, { claim: 'augmentation', label: `${base} no aug`, arch: base, role: 'base' }, width));
  out.push(
    variant(s, { claim: 'augmentation', label: `${base} + aug`, arch: base, role: 'augmented' }, width, AUGMENTATIONS.map((g) => ({ note: g.label, augment: g.augment, mixup: g.mixup }))),
  );
  out.push(variant(s, { claim: 'augmentation', label: `${bName({ depth, width: 2 * width })} (2× width)`, arch: bName({ depth, width: 2 * width }), role: 'wider' }, 2 * width));
  out.push(variant(s, { claim: 'augmentation', label: `${bName({ depth: 2 * depth, width })} (2× depth)`, arch: bName({ depth: 2 * depth, width }), role: 'deeper' }, width));
  for (const batchSize of s.batchSizes)
    out.push(variant(s, { claim: 'batch-size', label: `batch ${batchSize}`, arch: base, role: 'batch', batchSize, x: batchSize }, width));
  return out;
}
