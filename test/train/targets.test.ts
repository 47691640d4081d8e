// Soft targets: label smoothing's exact values, MixUp's one-λ-per-batch mixing of inputs and targets, λ's Beta(α, α)
// law, and that a mixed target's cross-entropy is the paper's λ·CE(y) + (1 − λ)·CE(y_perm).
import { describe, expect, it } from 'vitest';
import { createRng } from '../../src/util/rng.js';
import { mixup, smoothedTargets } from '../../src/train/targets.js';

describe('smoothedTargets', () => {
  it('puts 1 − ε + ε/K on the label and ε/K elsewhere; rows sum to 1', () => {
    const y = smoothedTargets([2, 0], 4, 0.3);
    const off = 0.3 / 4;
    expect(Array.from(y)).toEqual(Array.from(Float32Array.from([off, off, 0.7 + off, off, 0.7 + off, off, off, off])));
    expect(y[0] + y[1] + y[2] + y[3]).toBeCloseTo(1, 6);
  });

  it('ε = 0 is one-hot', () => {
    expect(Array.from(smoothedTargets([1], 3, 0))).toEqual([0, 1, 0]);
  });

  it('BAD CALL - a label outside the classes, or ε outside [0, 1), is a RangeError', () => {
    expect(() => smoothedTargets([3], 3, 0.1)).toThrow(/label 3 at row 0/);
    expect(() => smoothedTargets([0], 3, 1)).toThrow(RangeError);
  });
});

describe('mixup', () => {
  it('mixes every row of x and y with the same λ and the returned permutation', () => {
    const n = 6;
    const x = Float32Array.from({ length: n * 3 }, (_, i) => i);
    const y = smoothedTargets([0, 1, 2, 0, 1, 2], 3, 0);
    const x0 = x.slice();
    const y0 = y.slice();
    const { lambda, perm } = mixup(x, y, n, 0.8, createRng(7));
    expect(lambda).toBeGreaterThan(0);
    expect(lambda).toBeLessThan(1);
    expect([...perm].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < 3; i++) {
        expect(x[r * 3 + i]).toBeCloseTo(lambda * x0[r * 3 + i] + (1 - lambda) * x0[perm[r] * 3 + i], 5);
        expect(y[r * 3 + i]).toBeCloseTo(lambda * y0[r * 3 + i] + (1 - lambda) * y0[perm[r] * 3 + i], 6);
      }
      expect(y[r * 3] + y[r * 3 + 1] + y[r * 3 + 2]).toBeCloseTo(1, 6);
    }
  });

  it('the loss on the mixed target is λ·CE(y) + (1 − λ)·CE(y_perm) for any logits', () => {
    const y = smoothedTargets([0, 1, 2, 1], 3, 0.3);
    const y0 = y.slice();
    const { lambda, perm } = mixup(new Float32Array(4), y, 4, 0.8, createRng(3));
    const logp = [-0.2, -1.9, -3.1];
    const ce = (t: Float32Array, r: number) => -[0, 1, 2].reduce((s, c) => s + t[r * 3 + c] * logp[c], 0);
    for (let r = 0; r < 4; r++) expect(ce(y, r)).toBeCloseTo(lambda * ce(y0, r) + (1 - lambda) * ce(y0, perm[r]), 5);
  });

  it('λ follows Beta(α, α): mean ½ and variance 1/(4(2α + 1)) over many batches', () => {
    const rng = createRng(11);
    const alpha = 0.8;
    const draws = Array.from({ length: 20000 }, () => mixup(new Float32Array(2), new Float32Array(2), 2, alpha, rng).lambda);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / draws.length;
    expect(mean).toBeCloseTo(0.5, 2);
    expect(variance).toBeCloseTo(1 / (4 * (2 * alpha + 1)), 2);
  });

  it('α = 0 leaves the batch untouched; the same seed gives the same mix', () => {
    const x = Float32Array.from([1, 2, 3, 4]);
    expect(mixup(x, new Float32Array(4), 2, 0, createRng(1)).lambda).toBe(1);
    expect(Array.from(x)).toEqual([1, 2, 3, 4]);
    const a = mixup(new Float32Array(8), new Float32Array(8), 4, 0.8, createRng(5));
    const b = mixup(new Float32Array(8), new Float32Array(8), 4, 0.8, createRng(5));
    expect(a).toEqual(b);
  });
});
