// L-BFGS with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5 and 3.6): the minimiser of the
// linear probe's smooth convex objective. Plain float64 arrays; the caller supplies f and its gradient.

/** Writes ∇f(x) into `grad` and returns f(x). */
export type ObjectiveFn = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Most iterations (default 500). */
  maxIter?: number;
  /** Stop when ‖∇f‖∞ ≤ gradTol · max(1, |f|) (default 1e-6). */
  gradTol?: number;
  /** Stop when the objective changes by ≤ fTol · max(1, |f|) in an iteration (default 1e-10). */
  fTol?: number;
  /** Correction pairs kept (default 10). */
  memory?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  grad: Float64Array;
  iterations: number;
  evaluations: number;
  /** Why it stopped. */
  reason: 'gradient' | 'objective' | 'maxIter' | 'lineSearch';
}

// Wolfe constants: sufficient decrease c1 and curvature c2 (0.9 is the usual quasi-Newton choice).
const C1 = 1e-4;
const C2 = 0.9;
const MAX_LINE_SEARCH = 25;

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Minimiser of the cubic through (a, fa, da) and (b, fb, db), clamped inside the interval; bisection if undefined. */
function cubicMin(a: number, fa: number, da: number, b: number, fb: number, db: number): number {
  const d1 = da + db - (3 * (fa - fb)) / (a - b);
  const sq = d1 * d1 - da * db;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (sq >= 0) {
    const d2 = Math.sign(b - a) * Math.sqrt(sq);
    const t = b - (b - a) * ((db + d2 - d1) / (db - da + 2 * d2));
    // Keep away from the ends so the bracket shrinks.
    const margin = 0.1 * (hi - lo);
    if (Number.isFinite(t)) return Math.min(Math.max(t, lo + margin), hi - margin);
  }
  return (lo + hi) / 2;
}

interface Point {
  t: number;
  f: number;
  g: Float64Array;
  /** Directional derivative ∇f·d at this point. */
  d: number;
}

/**
 * Strong-Wolfe line search along `dir` from x (value f0, slope d0 < 0), starting at step t0.
 * Returns the accepted point (or the best one seen when the search gives up).
 */
function lineSearch(
  fn: ObjectiveFn,
  x: Float64Array,
  f0: number,
  d0: number,
  dir: Float64Array,
  t0: number,
  counter: { evals: number },
): { point: Point; xNew: Float64Array; ok: boolean } {
  const n = x.length;
  const xt = new Float64Array(n);
  const evalAt = (t: number): Point => {
    for (let i = 0; i < n; i++) xt[i] = x[i] + t * dir[i];
    const g = new Float64Array(n);
    const f = fn(xt, g);
    counter.evals++;
    return { t, f, g, d: dot(g, dir) };
  };
  const done = (p: Point, ok: boolean) => {
    const xNew = new Float64Array(n);
    for (let i = 0; i < n; i++) xNew[i] = x[i] + p.t * dir[i];
    return { point: p, xNew, ok };
  };
  const armijo = (p: Point) => p.f <= f0 + C1 * p.t * d0;
  const curvature = (p: Point) => Math.abs(p.d) <= -C2 * d0;

  const zoom = (lo: Point, hi: Point) => {
    for (let i = 0; i < MAX_LINE_SEARCH; i++) {
      const p = evalAt(cubicMin(lo.t, lo.f, lo.d, hi.t, hi.f, hi.d));
      if (!Number.isFinite(p.f) || !armijo(p) || p.f >= lo.f) {
        hi = p;
      } else {
        if (curvature(p)) return done(p, true);
        if (p.d * (hi.t - lo.t) >= 0) hi = lo;
        lo = p;
      }
      if (Math.abs(hi.t - lo.t) < 1e-14 * Math.max(1, lo.t)) break;
    }
    // Out of patience: lo always satisfies sufficient decrease, so it is a safe (if not Wolfe) step.
    return done(lo, lo.t > 0);
  };

  let prev: Point = { t: 0, f: f0, g: new Float64Array(0), d: d0 };
  let t = t0;
  for (let i = 0; i < MAX_LINE_SEARCH; i++) {
    const p = evalAt(t);
    if (!Number.isFinite(p.f) || !armijo(p) || (i > 0 && p.f >= prev.f)) return zoom(prev, p);
    if (curvature(p)) return done(p, true);
    if (p.d >= 0) return zoom(p, prev);
    prev = p;
    t *= 2;
  }
  return done(prev, prev.t > 0);
}

/** Minimises `fn` from `x0` (not modified). */
export function lbfgs(fn: ObjectiveFn, x0: Float64Array, o: LbfgsOptions = {}): LbfgsResult {
  const maxIter = o.maxIter ?? 500;
  const gradTol = o.gradTol ?? 1e-6;
  const fTol = o.fTol ?? 1e-10;
  const m = o.memory ?? 10;
  if (!(Number.isInteger(maxIter) && maxIter >= 0)) throw new RangeError(`maxIter ${maxIter} must be a whole number ≥ 0`);
  if (!(Number.isInteger(m) && m >= 1)) throw new RangeError(`memory ${m} must be a whole number ≥ 1`);
  const n = x0.length;
  const counter = { evals: 0 };

  let x: Float64Array = Float64Array.from(x0);
  let g: Float64Array = new Float64Array(n);
  let f = fn(x, g);
  counter.evals++;
  if (!Number.isFinite(f)) throw new RangeError(`the objective is ${f} at the starting point`);

  // Correction pairs s = Δx, y = Δg, newest last.
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(m);
  const dir = new Float64Array(n);

  let reason: LbfgsResult['reason'] = 'maxIter';
  let iter = 0;
  for (; iter < maxIter; iter++) {
    if (maxAbs(g) <= gradTol * Math.max(1, Math.abs(f))) {
      reason = 'gradient';
      break;
    }
    // Two-loop recursion: dir = −H·g with H0 = (sᵀy / yᵀy)·I.
    for (let i = 0; i < n; i++) dir[i] = -g[i];
    for (let k = S.length - 1; k >= 0; k--) {
      alpha[k] = rho[k] * dot(S[k], dir);
      const y = Y[k];
      for (let i = 0; i < n; i++) dir[i] -= alpha[k] * y[i];
    }
    if (S.length > 0) {
      const last = S.length - 1;
      const gamma = dot(S[last], Y[last]) / dot(Y[last], Y[last]);
      for (let i = 0; i < n; i++) dir[i] *= gamma;
    }
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k] * dot(Y[k], dir);
      const s = S[k];
      for (let i = 0; i < n; i++) dir[i] += (alpha[k] - beta) * s[i];
    }
    let d0 = dot(g, dir);
    if (!(d0 < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let i = 0; i < n; i++) dir[i] = -g[i];
      d0 = dot(g, dir);
    }
    // First step: scaled so it moves by ~1 in the largest coordinate; afterwards the quasi-Newton step of 1.
    const t0 = S.length === 0 ? Math.min(1, 1 / maxAbs(g)) : 1;
    const ls = lineSearch(fn, x, f, d0, dir, t0, counter);
    if (!ls.ok) {
      reason = 'lineSearch';
      break;
    }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = ls.xNew[i] - x[i];
      y[i] = ls.point.g[i] - g[i];
    }
    const sy = dot(s, y);
    const fPrev = f;
    x = ls.xNew;
    g = ls.point.g;
    f = ls.point.f;
    // Keep the pair only with positive curvature, so the implicit Hessian stays positive definite.
    if (sy > 1e-12 * dot(y, y)) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
    }
    if (Math.abs(fPrev - f) <= fTol * Math.max(1, Math.abs(f))) {
      iter++;
      reason = 'objective';
      break;
    }
  }
  return { x, f, grad: g, iterations: iter, evaluations: counter.evals, reason };
}
