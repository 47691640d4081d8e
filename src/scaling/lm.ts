// Nonlinear least squares for the scaling-law fits: Levenberg–Marquardt with Marquardt's diagonal scaling, the
// parameter covariance s²·(JᵀJ)⁻¹ at the optimum, and the Student-t quantiles its confidence intervals need.
// Problems here have 2–5 parameters and tens of points, so dense p×p algebra is all it takes.

/** Residuals r(θ) (model − data) and their Jacobian ∂r/∂θ (row-major [n, p]) at θ. */
export type ResidualFn = (theta: readonly number[]) => { r: number[]; J: number[][] };

export interface LmOptions {
  maxIter?: number;
  /** Stop when the relative decrease of the sum of squares falls below this (default 1e-12). */
  tol?: number;
}

export interface LmResult {
  theta: number[];
  /** Residual sum of squares. */
  rss: number;
  residuals: number[];
  /** Jacobian at the optimum. */
  J: number[][];
  iterations: number;
  converged: boolean;
}

/** Solves A·x = b for a small symmetric positive-definite A by Gaussian elimination with partial pivoting. */
export function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    if (Math.abs(M[piv][c]) < 1e-300) throw new RangeError('singular matrix');
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

/** Inverse of a small square matrix (column by column). */
export function invert(A: number[][]): number[][] {
  const n = A.length;
  const cols = Array.from({ length: n }, (_, j) => solve(A, Array.from({ length: n }, (_, i) => (i === j ? 1 : 0))));
  return Array.from({ length: n }, (_, i) => cols.map((c) => c[i]));
}

function jtj(J: number[][], p: number): number[][] {
  const A = Array.from({ length: p }, () => new Array<number>(p).fill(0));
  for (const row of J) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) A[i][j] += row[i] * row[j];
  return A;
}

const sumSq = (r: number[]) => r.reduce((s, v) => s + v * v, 0);

/** Minimises Σ r(θ)² from θ0. */
export function levenbergMarquardt(fn: ResidualFn, theta0: readonly number[], o: LmOptions = {}): LmResult {
  const maxIter = o.maxIter ?? 500;
  const tol = o.tol ?? 1e-12;
  const p = theta0.length;
  let theta = [...theta0];
  let { r, J } = fn(theta);
  let rss = sumSq(r);
  if (!Number.isFinite(rss)) throw new RangeError('the residuals are not finite at the starting point');
  let mu = 1e-3;
  let converged = false;
  let iter = 0;
  for (; iter < maxIter; iter++) {
    const A = jtj(J, p);
    const g = new Array<number>(p).fill(0);
    for (let k = 0; k < r.length; k++) for (let i = 0; i < p; i++) g[i] += J[k][i] * r[k];
    let improved = false;
    // Raise μ until a step lowers the sum of squares (or give up: we are at a minimum to working precision).
    for (let tries = 0; tries < 30; tries++) {
      const D = A.map((row, i) => row.map((v, j) => (i === j ? v + mu * Math.max(v, 1e-12) : v)));
      let step: number[];
      try {
        step = solve(D, g.map((v) => -v));
      } catch {
        mu *= 10;
        continue;
      }
      const cand = theta.map((t, i) => t + step[i]);
      const next = fn(cand);
      const nextRss = sumSq(next.r);
      if (Number.isFinite(nextRss) && nextRss < rss) {
        const rel = (rss - nextRss) / Math.max(rss, 1e-300);
        theta = cand;
        ({ r, J } = next);
        rss = nextRss;
        mu = Math.max(mu / 10, 1e-12);
        improved = true;
        if (rel < tol) converged = true;
        break;
      }
      mu *= 10;
    }
    if (!improved) {
      converged = true;
      break;
    }
    if (converged) break;
  }
  return { theta, rss, residuals: r, J, iterations: iter, converged };
}

/** Covariance of the parameters, s²·(JᵀJ)⁻¹ with s² = RSS/(n − p). */
export function covariance(res: LmResult): number[][] {
  const n = res.residuals.length;
  const p = res.theta.length;
  if (n <= p) throw new RangeError(`${n} points cannot give the uncertainty of ${p} parameters`);
  const s2 = res.rss / (n - p);
  return invert(jtj(res.J, p)).map((row) => row.map((v) => v * s2));
}

// ---------------------------------------------------------------------------------------------------------------
// Student t quantiles, via the regularised incomplete beta function (Numerical Recipes' continued fraction).

function lgamma(x: number): number {
  // Lanczos, g = 7: ~15 digits for x > 0.
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

function betacf(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a - 1 + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + 1 + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betacf(a, b, x)) / a : 1 - (front * betacf(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with ν degrees of freedom. */
export function tCdf(t: number, nu: number): number {
  const tail = 0.5 * incompleteBeta(nu / (nu + t * t), nu / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The q-quantile (0 < q < 1) of Student's t with ν degrees of freedom, by bisection on the CDF. */
export function tQuantile(q: number, nu: number): number {
  if (!(q > 0 && q < 1)) throw new RangeError(`quantile ${q} must be in (0, 1)`);
  if (!(nu > 0)) throw new RangeError(`degrees of freedom ${nu} must be > 0`);
  if (q < 0.5) return -tQuantile(1 - q, nu);
  let lo = 0;
  let hi = 1;
  while (tCdf(hi, nu) < q) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tCdf(mid, nu) < q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
