// Scaling-law fits: t quantiles against tables, a known power law recovered from noisy points with intervals that
// cover it at about the stated rate, the joint law and its compute-optimal allocation, the Pareto frontier.

import { describe, expect, it } from 'vitest';
import {
  computeOptimal,
  fitJointLaw,
  fitPowerLaw,
  jointLaw,
  paretoFrontier,
  powerLaw,
} from '../../src/scaling/fit.js';
import { levenbergMarquardt, tQuantile } from '../../src/scaling/lm.js';
import { createRng, normal } from '../../src/util/rng.js';

const logspace = (lo: number, hi: number, n: number) =>
  Array.from({ length: n }, (_, i) => 10 ** (lo + ((hi - lo) * i) / (n - 1)));

describe('tQuantile', () => {
  it('matches the tables', () => {
    expect(tQuantile(0.975, 1)).toBeCloseTo(12.7062, 3);
    expect(tQuantile(0.975, 5)).toBeCloseTo(2.5706, 4);
    expect(tQuantile(0.975, 30)).toBeCloseTo(2.0423, 4);
    expect(tQuantile(0.95, 10)).toBeCloseTo(1.8125, 4);
    expect(tQuantile(0.975, 1e6)).toBeCloseTo(1.96, 2);
    expect(tQuantile(0.025, 5)).toBeCloseTo(-2.5706, 4);
  });
});

describe('levenbergMarquardt', () => {
  it('solves a nonlinear problem from a poor start (exponential decay)', () => {
    const t = [0, 1, 2, 3, 4, 5, 6];
    const y = t.map((v) => 3 * Math.exp(-0.7 * v) + 0.2);
    const res = levenbergMarquardt((th) => ({
      r: t.map((v, i) => th[0] * Math.exp(-th[1] * v) + th[2] - y[i]),
      J: t.map((v) => [Math.exp(-th[1] * v), -v * th[0] * Math.exp(-th[1] * v), 1]),
    }), [1, 0.1, 0]);
    expect(res.theta[0]).toBeCloseTo(3, 6);
    expect(res.theta[1]).toBeCloseTo(0.7, 6);
    expect(res.theta[2]).toBeCloseTo(0.2, 6);
  });
});

describe('fitPowerLaw', () => {
  // error = 2·C^(−0.3) + 0.05 over six decades of compute, as a scaling sweep would see it.
  const truth = { a: 2, alpha: 0.3, c: 0.05 };
  const C = logspace(6, 12, 12);
  const clean = C.map((x) => truth.a * x ** -truth.alpha + truth.c);

  it('recovers exact data to high precision', () => {
    const fit = fitPowerLaw(C, clean);
    expect(fit.a.value).toBeCloseTo(2, 5);
    expect(fit.alpha.value).toBeCloseTo(0.3, 7);
    expect(fit.c.value).toBeCloseTo(0.05, 7);
    expect(fit.r2).toBeCloseTo(1, 10);
  });

  it('recovers a known power law from noisy points, the 95% intervals covering the truth', () => {
    const rng = createRng(11);
    const y = clean.map((v) => v + 0.002 * normal(rng));
    const fit = fitPowerLaw(C, y);
    // The noise (σ 0.002) is a tenth of the curve's span (0.03): R² near 0.97.
    expect(fit.r2).toBeGreaterThan(0.95);
    expect(Math.abs(fit.alpha.value - 0.3)).toBeLessThan(0.03);
    for (const [k, v] of Object.entries(truth)) {
      const e = fit[k as keyof typeof truth];
      expect(e.lo).toBeLessThan(v);
      expect(e.hi).toBeGreaterThan(v);
    }
    expect(powerLaw(fit, 1e9)).toBeCloseTo(2 * 1e9 ** -0.3 + 0.05, 2);
  });

  it('has intervals with about the stated coverage over many noisy data sets', () => {
    const rng = createRng(5);
    let covered = 0;
    const trials = 200;
    for (let k = 0; k < trials; k++) {
      const y = clean.map((v) => v + 0.004 * normal(rng));
      const fit = fitPowerLaw(C, y);
      if (fit.alpha.lo <= 0.3 && 0.3 <= fit.alpha.hi) covered++;
    }
    // Linearised intervals are approximate: anything near 95% is right; 80% or 100% would not be.
    expect(covered / trials).toBeGreaterThan(0.88);
    expect(covered / trials).toBeLessThan(0.995);
  });

  it('fits a pure power law when asked (no offset), and says nothing about uncertainty with no spare points', () => {
    const x = [1e3, 1e4, 1e5];
    const y = x.map((v) => 5 * v ** -0.5);
    const pure = fitPowerLaw(x, y, { offset: false });
    expect(pure.alpha.value).toBeCloseTo(0.5, 8);
    expect(pure.c.value).toBe(0);
    const exact = fitPowerLaw(x, y.map((v) => v + 0.01));
    expect(Number.isNaN(exact.alpha.se)).toBe(true);
  });

  it('fixes the floor at its bound 0 when the free fit would put it below zero', () => {
    const x = logspace(2, 5, 8);
    const fit = fitPowerLaw(x, x.map((v) => 5 * v ** -0.5 - 0.01));
    expect(fit.floorAtZero).toBe(true);
    expect(fit.c.value).toBe(0);
    expect(fit.alpha.value).toBeGreaterThan(0.5);
  });

  it('BAD CALL - names the bad point', () => {
    expect(() => fitPowerLaw([1, 0, 3], [1, 2, 3])).toThrow(/x\[1\] = 0 must be finite and > 0/);
    expect(() => fitPowerLaw([1, 2], [1, 2])).toThrow(/2 points, at least 3 needed/);
  });
});

describe('joint law and compute-optimal allocation', () => {
  const truth = { c: 0.05, A: 30, alpha: 0.35, B: 80, beta: 0.45 };
  const Ns = logspace(4.5, 7, 5);
  const Ds = logspace(3.5, 5.5, 5);
  const N: number[] = [];
  const D: number[] = [];
  const E: number[] = [];
  const rng = createRng(2);
  for (const n of Ns)
    for (const d of Ds) {
      N.push(n);
      D.push(d);
      E.push(truth.c + truth.A * n ** -truth.alpha + truth.B * d ** -truth.beta + 0.001 * normal(rng));
    }

  it('recovers both exponents with intervals covering them', () => {
    const fit = fitJointLaw(N, D, E);
    expect(fit.r2).toBeGreaterThan(0.995);
    expect(Math.abs(fit.alpha.value - truth.alpha)).toBeLessThan(0.05);
    expect(Math.abs(fit.beta.value - truth.beta)).toBeLessThan(0.05);
    for (const k of ['alpha', 'beta', 'c'] as const) {
      expect(fit[k].lo).toBeLessThan(truth[k]);
      expect(fit[k].hi).toBeGreaterThan(truth[k]);
    }
  });

  it('allocates compute as N ∝ C^(β/(α+β)), D ∝ C^(α/(α+β)), at the minimum of the law', () => {
    const fit = fitJointLaw(N, D, E);
    const k = 6;
    const opt = computeOptimal(fit, k);
    const p = fit.beta.value / (fit.alpha.value + fit.beta.value);
    expect(opt.paramsExponent.value).toBeCloseTo(p, 12);
    expect(opt.paramsExponent.value + opt.examplesExponent.value).toBeCloseTo(1, 12);
    // The truth: β/(α+β) = 0.5625 of the growth goes to parameters.
    expect(opt.paramsExponent.lo).toBeLessThan(0.5625);
    expect(opt.paramsExponent.hi).toBeGreaterThan(0.5625);
    for (const C of [1e12, 1e15]) {
      const at = opt.at(C);
      expect(k * at.params * at.examples).toBeCloseTo(C, -Math.log10(C) + 6);
      // Any other split of the same compute is worse.
      for (const f of [0.5, 0.8, 1.25, 2]) {
        const n = at.params * f;
        expect(jointLaw(fit, n, C / (k * n))).toBeGreaterThan(at.error);
      }
    }
    const grow = opt.at(1e15).params / opt.at(1e12).params;
    expect(Math.log10(grow) / 3).toBeCloseTo(p, 10);
  });
});

describe('paretoFrontier', () => {
  it('keeps the runs that beat every cheaper run', () => {
    const compute = [1, 2, 3, 4, 5, 2];
    const error = [0.5, 0.6, 0.4, 0.45, 0.3, 0.42];
    expect(paretoFrontier(compute, error)).toEqual([0, 5, 2, 4]);
  });
});
