// Training targets: label smoothing and MixUp, folded into the soft targets the engine's cross-entropy reads.
// Cross-entropy is linear in the target, so mixing targets is exactly the paper's λ·CE(y) + (1 − λ)·CE(y_perm).

import { beta, permutation, type Rng } from '../util/rng.js';

/** Smoothed one-hot rows, [n, classes]: the true class gets 1 − ε + ε/K, every other class ε/K (PyTorch's rule). */
export function smoothedTargets(
  labels: ArrayLike<number>,
  classes: number,
  smoothing: number,
  out: Float32Array = new Float32Array(labels.length * classes),
): Float32Array {
  if (!(smoothing >= 0 && smoothing < 1)) throw new RangeError(`label smoothing ${smoothing} is not in [0, 1)`);
  const off = smoothing / classes;
  out.fill(off, 0, labels.length * classes);
  for (let r = 0; r < labels.length; r++) {
    const c = labels[r];
    if (!(c >= 0 && c < classes)) throw new RangeError(`label ${c} at row ${r} is not in 0..${classes - 1}`);
    out[r * classes + c] = 1 - smoothing + off;
  }
  return out;
}

export interface MixResult {
  /** Weight of the original rows. */
  lambda: number;
  /** Row i was mixed with row perm[i]. */
  perm: Uint32Array;
}

/**
 * MixUp with one λ ~ Beta(α, α) for the whole batch: x_i ← λ·x_i + (1 − λ)·x_perm(i), and the same for the targets.
 * In place on `x` [n, dx] and `y` [n, dy]. α = 0 turns it off (λ = 1, identity permutation).
 */
export function mixup(x: Float32Array, y: Float32Array, n: number, alpha: number, rng: Rng): MixResult {
  if (!(alpha >= 0)) throw new RangeError(`MixUp alpha ${alpha} must be ≥ 0`);
  if (alpha === 0 || n < 2) return { lambda: 1, perm: Uint32Array.from({ length: n }, (_, i) => i) };
  const lambda = beta(rng, alpha, alpha);
  const perm = permutation(rng, n);
  mixRows(x, n, lambda, perm);
  mixRows(y, n, lambda, perm);
  return { lambda, perm };
}

function mixRows(a: Float32Array, n: number, lambda: number, perm: Uint32Array): void {
  const d = a.length / n;
  const src = a.slice(0, n * d); // the permuted rows are read from the unmixed batch
  const mu = 1 - lambda;
  for (let r = 0; r < n; r++) {
    const o = r * d;
    const p = perm[r] * d;
    for (let i = 0; i < d; i++) a[o + i] = lambda * src[o + i] + mu * src[p + i];
  }
}
