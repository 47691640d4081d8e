// The validation split: a stratified, seeded hold-out of a training split, and index views over a cached split so
// the trainer reads the two parts without copying pixels. Every choice (recipe, epochs, TTA views, sweep settings)
// is made on this split; the test split is read once, at the end.

import type { CachedSplit } from './cache.js';
import { createRng, permutation } from '../util/rng.js';

export interface Holdout {
  /** Indices into the split that stay for training, ascending. */
  train: Uint32Array;
  /** Indices held out for validation, ascending. */
  val: Uint32Array;
}

/**
 * Holds out `n` images with each class in proportion to its share of the split (largest remainders decide the last
 * few), chosen uniformly within a class by `seed`. The same (labels, n, seed) always gives the same indices.
 */
export function stratifiedHoldout(labels: ArrayLike<number>, n: number, seed: number): Holdout {
  const total = labels.length;
  if (!(Number.isInteger(n) && n >= 0 && n < total)) throw new RangeError(`validation size ${n} must be a whole number in [0, ${total})`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < total; i++) {
    const c = labels[i];
    let members = byClass.get(c);
    if (!members) byClass.set(c, (members = []));
    members.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const exact = classes.map((c) => (n * byClass.get(c)!.length) / total);
  const take = exact.map(Math.floor);
  const order = classes.map((_, k) => k).sort((a, b) => exact[b] - take[b] - (exact[a] - take[a]) || a - b);
  for (let r = n - take.reduce((s, v) => s + v, 0), k = 0; r > 0; r--, k++) take[order[k]]++;

  const rng = createRng(seed);
  const held = new Uint8Array(total);
  classes.forEach((c, k) => {
    const members = byClass.get(c)!;
    const perm = permutation(rng, members.length);
    for (let j = 0; j < take[k]; j++) held[members[perm[j]]] = 1;
  });
  const val = new Uint32Array(n);
  const train = new Uint32Array(total - n);
  for (let i = 0, v = 0, t = 0; i < total; i++) held[i] ? (val[v++] = i) : (train[t++] = i);
  return { train, val };
}

/** The images of `split` at `indices`, as a split of their own; closing it leaves the parent open. */
export function subsetSplit(split: CachedSplit, indices: Uint32Array): CachedSplit {
  const labels = new Uint16Array(indices.length);
  for (let k = 0; k < indices.length; k++) labels[k] = split.labels[indices[k]];
  return {
    meta: split.meta,
    dir: split.dir,
    size: indices.length,
    labels,
    pixels: (i: number) => split.pixels(indices[i]),
    close: () => {},
  };
}
