// The linear probe's solver: L-BFGS on a known minimum, the objective's gradient against finite differences, a
// separable problem solved perfectly, the same optimum as PyTorch's LBFGS in float64, and λ chosen on validation.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { lbfgs } from '../../src/probe/lbfgs.js';
import {
  evaluateProbe,
  fitProbe,
  fitSoftmax,
  fitStandardizer,
  softmaxObjective,
  standardize,
  type FeatureMatrix,
} from '../../src/probe/logreg.js';
import { createRng, normal } from '../../src/util/rng.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const REFERENCE = fileURLToPath(new URL('./logreg_reference.py', import.meta.url));

/**
 * Gaussian blobs: class c shifted by `spread` in the columns j ≡ c (mod classes), plus a shared offset; the noise
 * grows with the column (badly scaled raw features, what standardisation is for) unless `flat`.
 */
function blobs(seed: number, rows: number, cols: number, classes: number, spread: number, noise: number, flat = false) {
  const rng = createRng(seed);
  const data = new Float64Array(rows * cols);
  const y = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = i % classes;
    y[i] = c;
    for (let j = 0; j < cols; j++) data[i * cols + j] = 5 + (j % classes === c ? spread : 0) + noise * normal(rng) * (flat ? 1 : 1 + j);
  }
  return { x: { data, rows, cols } satisfies FeatureMatrix, y };
}

describe('lbfgs', () => {
  it('finds the minimum of the Rosenbrock function', () => {
    const rosen = (x: Float64Array, g: Float64Array) => {
      const [a, b] = [x[0], x[1]];
      g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
      g[1] = 200 * (b - a * a);
      return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
    };
    const r = lbfgs(rosen, Float64Array.of(-1.2, 1), { gradTol: 1e-10, fTol: 0 });
    expect(r.reason).toBe('gradient');
    expect(r.x[0]).toBeCloseTo(1, 6);
    expect(r.x[1]).toBeCloseTo(1, 6);
    expect(r.iterations).toBeLessThan(100);
  });

  it('BAD CALL - rejects a start where the objective is not finite', () => {
    expect(() => lbfgs(() => NaN, new Float64Array(2))).toThrow(/objective is NaN/);
  });
});

describe('softmax objective', () => {
  it('has the gradient finite differences give (odd class count exercises the unpaired class)', () => {
    const { x, y } = blobs(3, 17, 6, 3, 1, 0.5);
    const fn = softmaxObjective(x, y, 3, 0.07);
    const rng = createRng(9);
    const theta = Float64Array.from({ length: 3 * 6 + 3 }, () => normal(rng) * 0.3);
    const grad = new Float64Array(theta.length);
    fn(theta, grad);
    const h = 1e-6;
    for (let p = 0; p < theta.length; p++) {
      const plus = Float64Array.from(theta);
      const minus = Float64Array.from(theta);
      plus[p] += h;
      minus[p] -= h;
      const g = new Float64Array(theta.length);
      const fd = (fn(plus, g) - fn(minus, g)) / (2 * h);
      expect(Math.abs(fd - grad[p])).toBeLessThan(1e-7);
    }
  });
});

describe('fitProbe', () => {
  it('solves a linearly separable problem perfectly', () => {
    const train = blobs(1, 600, 8, 4, 6, 0.3);
    const test = blobs(2, 400, 8, 4, 6, 0.3);
    const fit = fitProbe(train.x, train.y, 4);
    expect(fit.trainAccuracy).toBe(1);
    expect(evaluateProbe(fit, test.x, test.y).accuracy).toBe(1);
  });

  it('chooses the λ with the best validation accuracy, searching from strong to weak', () => {
    const train = blobs(4, 300, 40, 5, 0.5, 1, true);
    const fit = fitProbe(train.x, train.y, 5, { lambdas: [1e-4, 1e-2, 1, 1e-3, 1e-1] });
    const lambdas = fit.path.map((p) => p.lambda);
    expect(lambdas).toEqual([...lambdas].sort((a, b) => b - a));
    const bestAcc = Math.max(...fit.path.map((p) => p.valAccuracy));
    const chosen = fit.path.find((p) => p.lambda === fit.lambda)!;
    expect(chosen.valAccuracy).toBe(bestAcc);
    // Noisy 40-d features from 240 fitting rows: learning something, but far from perfect.
    expect(bestAcc).toBeGreaterThan(0.4);
    expect(fit.lambda).toBeGreaterThan(1e-3);
  });

  it('BAD CALL - names the offending label and shape', () => {
    const { x } = blobs(1, 10, 3, 2, 1, 1);
    expect(() => fitProbe(x, new Int32Array(10).fill(2), 2)).toThrow(/label 2 at row 0 is not in 0\.\.1/);
    expect(() => fitProbe(x, new Int32Array(9), 2)).toThrow(/9 labels for 10 rows/);
    expect(() => fitProbe({ data: new Float64Array(5), rows: 2, cols: 3 }, new Int32Array(2), 2)).toThrow(/5 values for 2×3/);
  });
});

describe('agreement with PyTorch', () => {
  it('reaches the same optimum as torch.optim.LBFGS in float64', async () => {
    const rows = 240;
    const cols = 12;
    const classes = 5;
    const lambda = 0.01;
    const raw = blobs(7, rows, cols, classes, 1, 1);
    const x = standardize(raw.x, fitStandardizer(raw.x));
    const ours = fitSoftmax(x, raw.y, classes, lambda, { gradTol: 1e-12, fTol: 0, maxIter: 5000 });

    const dir = await mkdtemp(join(tmpdir(), 'logreg-'));
    try {
      const spec = { rows, cols, classes, lambda, x: Array.from(x.data), y: Array.from(raw.y) };
      await writeFile(join(dir, 'in.json'), JSON.stringify(spec));
      await run(PYTHON, [REFERENCE, join(dir, 'in.json'), join(dir, 'out.json')], { timeout: 60_000 });
      const ref = JSON.parse(await readFile(join(dir, 'out.json'), 'utf8')) as { weight: number[]; bias: number[]; objective: number };
      expect(Math.abs(ours.objective - ref.objective)).toBeLessThan(1e-10);
      let maxDiff = 0;
      ref.weight.forEach((w, i) => (maxDiff = Math.max(maxDiff, Math.abs(w - ours.model.weight[i]))));
      // The softmax is invariant to adding a constant to every class's bias; the L2 term pins W but not b.
      const shift = ref.bias[0] - ours.model.bias[0];
      ref.bias.forEach((b, c) => (maxDiff = Math.max(maxDiff, Math.abs(b - ours.model.bias[c] - shift))));
      expect(maxDiff).toBeLessThan(1e-5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
