// The scaling-law fits of the study:
//  - a saturating power law  y = a·x^(−α) + c  (error against compute, parameters or examples), by Levenberg–
//    Marquardt, with Student-t confidence intervals from the covariance at the optimum and R²;
//  - the joint law  E(N, D) = c + A·N^(−α) + B·D^(−β)  over parameters N and examples D, whose minimum at fixed
//    compute C = k·N·D gives the compute-optimal allocation N_opt ∝ C^(β/(α+β)), D_opt ∝ C^(α/(α+β));
//  - the Pareto frontier of runs (lowest error for at most that much compute).
// Inside, x enters as exp(u − α·(ln x − m)) with m the mean log x: scale-free, and well conditioned whether x is
// 10⁴ examples or 10¹⁵ FLOPs. A negative floor c is no law for an error rate: when the free fit lands there, the
// bound c ≥ 0 is active and the law is refitted with c = 0 (reported as such), the usual treatment of a bound.

import { covariance, levenbergMarquardt, tQuantile, type LmResult } from './lm.js';

/** A fitted value with its standard error and confidence interval (NaN when the fit has no residual freedom). */
export interface Estimate {
  value: number;
  se: number;
  lo: number;
  hi: number;
}

export interface PowerLawFit {
  /** y = a·x^(−alpha) + c */
  a: Estimate;
  alpha: Estimate;
  c: Estimate;
  r2: number;
  rss: number;
  /** Points fitted. */
  n: number;
  /** Confidence level of the intervals (0.95). */
  level: number;
  /** The free fit put the floor below zero, so c was fixed at 0 (its bound) and the rest refitted. */
  floorAtZero?: boolean;
}

export interface PowerLawOptions {
  /** Fit the offset c (default true); false fits y = a·x^(−α). */
  offset?: boolean;
  /** Confidence level (default 0.95). */
  level?: number;
}

const mean = (v: readonly number[]) => v.reduce((s, x) => s + x, 0) / v.length;

function rSquared(y: readonly number[], rss: number): number {
  const m = mean(y);
  const tss = y.reduce((s, v) => s + (v - m) ** 2, 0);
  return tss > 0 ? 1 - rss / tss : rss === 0 ? 1 : 0;
}

function estimate(value: number, variance: number, t: number): Estimate {
  const se = Math.sqrt(Math.max(variance, 0));
  return { value, se, lo: value - t * se, hi: value + t * se };
}

/** Covariance and the t multiplier, or NaNs when n ≤ p (an exact fit says nothing about its uncertainty). */
function uncertainty(res: LmResult, level: number): { cov: number[][]; t: number } {
  const n = res.residuals.length;
  const p = res.theta.length;
  if (n <= p) return { cov: res.theta.map(() => res.theta.map(() => NaN)), t: NaN };
  try {
    return { cov: covariance(res), t: tQuantile(0.5 + level / 2, n - p) };
  } catch {
    return { cov: res.theta.map(() => res.theta.map(() => NaN)), t: NaN };
  }
}

const ZERO: Estimate = { value: 0, se: 0, lo: 0, hi: 0 };

function checkPoints(x: readonly number[], y: readonly number[], minPoints: number, what: string): void {
  if (x.length !== y.length) throw new RangeError(`${what}: ${x.length} x values, ${y.length} y values`);
  if (x.length < minPoints) throw new RangeError(`${what}: ${x.length} points, at least ${minPoints} needed`);
  x.forEach((v, i) => {
    if (!(v > 0 && Number.isFinite(v))) throw new RangeError(`${what}: x[${i}] = ${v} must be finite and > 0`);
    if (!Number.isFinite(y[i])) throw new RangeError(`${what}: y[${i}] = ${y[i]} is not finite`);
  });
}

/** Least-squares line through (x, y): slope and intercept. */
export function linearFit(x: readonly number[], y: readonly number[]): { slope: number; intercept: number } {
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  x.forEach((v, i) => {
    sxy += (v - mx) * (y[i] - my);
    sxx += (v - mx) ** 2;
  });
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

/** Fits y = a·x^(−α) + c (see the module comment); several starting offsets, the best fit kept. */
export function fitPowerLaw(x: readonly number[], y: readonly number[], o: PowerLawOptions = {}): PowerLawFit {
  const offset = o.offset ?? true;
  const level = o.level ?? 0.95;
  checkPoints(x, y, offset ? 3 : 2, 'fitPowerLaw');
  const lx = x.map(Math.log);
  const m = mean(lx);
  const z = lx.map((v) => v - m);
  // θ = [u, α, c]: y = c + exp(u − α·z)
  const fn = (th: readonly number[]) => {
    const [u, alpha, c] = [th[0], th[1], offset ? th[2] : 0];
    const r: number[] = [];
    const J: number[][] = [];
    z.forEach((zi, i) => {
      const e = Math.exp(u - alpha * zi);
      r.push(c + e - y[i]);
      J.push(offset ? [e, -zi * e, 1] : [e, -zi * e]);
    });
    return { r, J };
  };
  const yMin = Math.min(...y);
  const offsets = offset ? [0, 0.5 * yMin, 0.9 * yMin, 0.99 * yMin] : [0];
  let best: LmResult | undefined;
  for (const c0 of offsets) {
    // Start from the line through log(y − c0) against log x.
    const line = linearFit(z, y.map((v) => Math.log(Math.max(v - c0, 1e-12))));
    const start = offset ? [line.intercept, -line.slope, c0] : [line.intercept, -line.slope];
    let res: LmResult;
    try {
      res = levenbergMarquardt(fn, start);
    } catch {
      continue;
    }
    if (!best || res.rss < best.rss) best = res;
  }
  if (!best) throw new RangeError('fitPowerLaw: no starting point gave a finite fit');
  if (offset && best.theta[2] < 0) return { ...fitPowerLaw(x, y, { ...o, offset: false }), floorAtZero: true };
  const { cov, t } = uncertainty(best, level);
  const [u, alpha] = best.theta;
  // a = exp(u + α·m); its interval from the delta method in log space, so it stays positive.
  const logA = u + alpha * m;
  const varLogA = cov[0][0] + m * m * cov[1][1] + 2 * m * cov[0][1];
  const seLogA = Math.sqrt(Math.max(varLogA, 0));
  const a: Estimate = {
    value: Math.exp(logA),
    se: Math.exp(logA) * seLogA,
    lo: Math.exp(logA - t * seLogA),
    hi: Math.exp(logA + t * seLogA),
  };
  return {
    a,
    alpha: estimate(alpha, cov[1][1], t),
    c: offset ? estimate(best.theta[2], cov[2][2], t) : ZERO,
    r2: rSquared(y, best.rss),
    rss: best.rss,
    n: x.length,
    level,
  };
}

/** The fitted curve at x. */
export function powerLaw(fit: Pick<PowerLawFit, 'a' | 'alpha' | 'c'>, x: number): number {
  return fit.a.value * Math.pow(x, -fit.alpha.value) + fit.c.value;
}

// ---------------------------------------------------------------------------------------------------------------
// Joint law in parameters and examples, and the compute-optimal allocation.

export interface JointLawFit {
  /** E(N, D) = c + A·N^(−alpha) + B·D^(−beta) */
  A: Estimate;
  alpha: Estimate;
  B: Estimate;
  beta: Estimate;
  c: Estimate;
  r2: number;
  rss: number;
  n: number;
  level: number;
  /** c was fixed at 0: the free fit put it below zero. */
  floorAtZero?: boolean;
  /** Covariance of the exponents and the t multiplier: the allocation's intervals come from them. */
  exponentCov: { alphaAlpha: number; betaBeta: number; alphaBeta: number };
  t: number;
}

/** Fits the joint law to runs (N parameters, D examples seen, error E); a grid of starting exponents. */
export function fitJointLaw(
  N: readonly number[],
  D: readonly number[],
  E: readonly number[],
  o: { level?: number; floorAtZero?: boolean } = {},
): JointLawFit {
  const level = o.level ?? 0.95;
  checkPoints(N, E, 5, 'fitJointLaw');
  checkPoints(D, E, 5, 'fitJointLaw');
  const mN = mean(N.map(Math.log));
  const mD = mean(D.map(Math.log));
  const zN = N.map((v) => Math.log(v) - mN);
  const zD = D.map((v) => Math.log(v) - mD);
  const free = o.floorAtZero !== true;
  // θ = [uA, α, uB, β, c] (c fixed at 0 when refitting at the bound)
  const fn = (th: readonly number[]) => {
    const [uA, alpha, uB, beta] = th;
    const c = free ? th[4] : 0;
    const r: number[] = [];
    const J: number[][] = [];
    E.forEach((e, i) => {
      const pa = Math.exp(uA - alpha * zN[i]);
      const pb = Math.exp(uB - beta * zD[i]);
      r.push(c + pa + pb - e);
      const row = [pa, -zN[i] * pa, pb, -zD[i] * pb];
      J.push(free ? [...row, 1] : row);
    });
    return { r, J };
  };
  const eMin = Math.min(...E);
  const eMean = mean(E);
  let best: LmResult | undefined;
  for (const c0 of free ? [0, 0.5 * eMin, 0.9 * eMin] : [0])
    for (const a0 of [0.1, 0.3, 0.7])
      for (const b0 of [0.1, 0.3, 0.7]) {
        const u0 = Math.log(Math.max((eMean - c0) / 2, 1e-6));
        let res: LmResult;
        try {
          res = levenbergMarquardt(fn, free ? [u0, a0, u0, b0, c0] : [u0, a0, u0, b0]);
        } catch {
          continue;
        }
        if (!best || res.rss < best.rss) best = res;
      }
  if (!best) throw new RangeError('fitJointLaw: no starting point gave a finite fit');
  const { cov, t } = uncertainty(best, level);
  if (free && best.theta[4] < 0) return fitJointLaw(N, D, E, { ...o, floorAtZero: true });
  const [uA, alpha, uB, beta] = best.theta;
  const coef = (u: number, e: number, m: number, iu: number, ie: number): Estimate => {
    const log = u + e * m;
    const se = Math.sqrt(Math.max(cov[iu][iu] + m * m * cov[ie][ie] + 2 * m * cov[iu][ie], 0));
    return { value: Math.exp(log), se: Math.exp(log) * se, lo: Math.exp(log - t * se), hi: Math.exp(log + t * se) };
  };
  return {
    A: coef(uA, alpha, mN, 0, 1),
    alpha: estimate(alpha, cov[1][1], t),
    B: coef(uB, beta, mD, 2, 3),
    beta: estimate(beta, cov[3][3], t),
    c: free ? estimate(best.theta[4], cov[4][4], t) : ZERO,
    ...(free ? {} : { floorAtZero: true }),
    r2: rSquared(E, best.rss),
    rss: best.rss,
    n: E.length,
    level,
    exponentCov: { alphaAlpha: cov[1][1], betaBeta: cov[3][3], alphaBeta: cov[1][3] },
    t,
  };
}

export function jointLaw(fit: Pick<JointLawFit, 'A' | 'alpha' | 'B' | 'beta' | 'c'>, N: number, D: number): number {
  return fit.c.value + fit.A.value * Math.pow(N, -fit.alpha.value) + fit.B.value * Math.pow(D, -fit.beta.value);
}

export interface Allocation {
  /** N_opt ∝ C^paramsExponent, D_opt ∝ C^examplesExponent (they sum to 1). */
  paramsExponent: Estimate;
  examplesExponent: Estimate;
  /** Compute per parameter per example: C = k·N·D (3 × forward FLOPs per parameter). */
  k: number;
  /** N_opt and D_opt at compute C. */
  at(C: number): { params: number; examples: number; error: number };
}

/** The compute-optimal allocation implied by a joint law, with C = k·N·D. */
export function computeOptimal(fit: JointLawFit, k: number): Allocation {
  const a = fit.alpha.value;
  const b = fit.beta.value;
  const s = a + b;
  const cv = fit.exponentCov;
  const t = fit.t;
  // p = β/(α+β): ∂p/∂α = −β/s², ∂p/∂β = α/s²; var(1 − p) = var(p).
  const gA = -b / (s * s);
  const gB = a / (s * s);
  const varP = gA * gA * cv.alphaAlpha + gB * gB * cv.betaBeta + 2 * gA * gB * cv.alphaBeta;
  const p = b / s;
  const G = Math.pow((a * fit.A.value) / (b * fit.B.value), 1 / s);
  return {
    paramsExponent: estimate(p, varP, t),
    examplesExponent: estimate(1 - p, varP, t),
    k,
    at(C: number) {
      const params = G * Math.pow(C / k, p);
      const examples = C / (k * params);
      return { params, examples, error: jointLaw(fit, params, examples) };
    },
  };
}

/** Indices of the runs on the compute–error Pareto frontier: each has lower error than every cheaper run. */
export function paretoFrontier(compute: readonly number[], error: readonly number[]): number[] {
  const order = compute.map((_, i) => i).sort((i, j) => compute[i] - compute[j] || error[i] - error[j]);
  const out: number[] = [];
  let bestErr = Infinity;
  for (const i of order) {
    if (error[i] < bestErr) {
      out.push(i);
      bestErr = error[i];
    }
  }
  return out;
}
