// The linear probe: multinomial logistic regression on standardised features, L2 strength chosen on a validation
// split, fitted full-batch with L-BFGS. Objective (bias not penalised):
//   L(W, b) = (1/n) Σ_i −log softmax(W·x_i + b)[y_i] + (λ/2)·‖W‖²
// Strictly convex for λ > 0, so the minimiser is unique and can be compared with any other solver.

import { createRng, permutation } from '../util/rng.js';
import { lbfgs, type LbfgsOptions } from './lbfgs.js';

/** Row-major [rows, cols] features, one row per example. */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}

export interface Standardizer {
  mean: Float64Array;
  /** Per-column std; constant columns get 1, so they standardise to 0 rather than to NaN. */
  std: Float64Array;
}

/** A fitted probe. Weights are class-major [classes, cols] (the objective's inner loops then run over features). */
export interface SoftmaxModel {
  classes: number;
  cols: number;
  weight: Float64Array;
  bias: Float64Array;
}

function checkMatrix(x: FeatureMatrix, what: string): void {
  if (!(Number.isInteger(x.rows) && x.rows >= 1 && Number.isInteger(x.cols) && x.cols >= 1))
    throw new RangeError(`${what}: ${x.rows}×${x.cols} is not a non-empty matrix`);
  if (x.data.length !== x.rows * x.cols)
    throw new RangeError(`${what}: ${x.data.length} values for ${x.rows}×${x.cols}`);
}

function checkLabels(labels: ArrayLike<number>, rows: number, classes: number, what: string): void {
  if (labels.length !== rows) throw new RangeError(`${what}: ${labels.length} labels for ${rows} rows`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!(Number.isInteger(y) && y >= 0 && y < classes)) throw new RangeError(`${what}: label ${y} at row ${i} is not in 0..${classes - 1}`);
  }
}

/** Column means and stds (population) of `x`. */
export function fitStandardizer(x: FeatureMatrix): Standardizer {
  checkMatrix(x, 'features');
  const { rows, cols, data } = x;
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const off = i * cols;
    for (let j = 0; j < cols; j++) mean[j] += data[off + j];
  }
  for (let j = 0; j < cols; j++) mean[j] /= rows;
  for (let i = 0; i < rows; i++) {
    const off = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = data[off + j] - mean[j];
      sq[j] += v * v;
    }
  }
  const std = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    const s = Math.sqrt(sq[j] / rows);
    std[j] = s > 1e-8 * Math.max(1, Math.abs(mean[j])) ? s : 1;
  }
  return { mean, std };
}

/** (x − mean) / std, as a new float64 matrix. */
export function standardize(x: FeatureMatrix, s: Standardizer): FeatureMatrix {
  checkMatrix(x, 'features');
  if (s.mean.length !== x.cols) throw new RangeError(`standardizer has ${s.mean.length} columns, features ${x.cols}`);
  const out = new Float64Array(x.rows * x.cols);
  for (let i = 0; i < x.rows; i++) {
    const off = i * x.cols;
    for (let j = 0; j < x.cols; j++) out[off + j] = (x.data[off + j] - s.mean[j]) / s.std[j];
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

/**
 * The objective and its gradient at θ = [W (classes×cols, class-major), b (classes)], written into `grad`.
 * Two passes over the data; classes are taken two at a time so each row is read half as often (≈1.7× faster).
 */
export function softmaxObjective(
  x: FeatureMatrix,
  labels: ArrayLike<number>,
  classes: number,
  lambda: number,
): (theta: Float64Array, grad: Float64Array) => number {
  const { rows: n, cols: d } = x;
  const X = x.data;
  const k = classes;
  const z = new Float64Array(k);
  return (theta, grad) => {
    const W = theta;
    const bOff = k * d;
    grad.fill(0);
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const off = i * d;
      // logits z = W·x_i + b
      let c = 0;
      for (; c + 1 < k; c += 2) {
        const w0 = c * d;
        const w1 = w0 + d;
        let s0 = 0;
        let s1 = 0;
        for (let j = 0; j < d; j++) {
          const xv = X[off + j];
          s0 += xv * W[w0 + j];
          s1 += xv * W[w1 + j];
        }
        z[c] = s0 + theta[bOff + c];
        z[c + 1] = s1 + theta[bOff + c + 1];
      }
      for (; c < k; c++) {
        const w0 = c * d;
        let s = 0;
        for (let j = 0; j < d; j++) s += X[off + j] * W[w0 + j];
        z[c] = s + theta[bOff + c];
      }
      // log-sum-exp, then residual r = softmax(z) − onehot(y)
      let max = -Infinity;
      for (c = 0; c < k; c++) if (z[c] > max) max = z[c];
      let sum = 0;
      for (c = 0; c < k; c++) {
        z[c] = Math.exp(z[c] - max);
        sum += z[c];
      }
      const y = labels[i];
      loss += Math.log(sum) - Math.log(z[y]);
      for (c = 0; c < k; c++) z[c] = z[c] / sum - (c === y ? 1 : 0);
      // ∇W += r ⊗ x_i, ∇b += r
      for (c = 0; c + 1 < k; c += 2) {
        const g0 = c * d;
        const g1 = g0 + d;
        const r0 = z[c];
        const r1 = z[c + 1];
        for (let j = 0; j < d; j++) {
          const xv = X[off + j];
          grad[g0 + j] += r0 * xv;
          grad[g1 + j] += r1 * xv;
        }
      }
      for (; c < k; c++) {
        const g0 = c * d;
        const r = z[c];
        for (let j = 0; j < d; j++) grad[g0 + j] += r * X[off + j];
      }
      for (c = 0; c < k; c++) grad[bOff + c] += z[c];
    }
    const inv = 1 / n;
    let reg = 0;
    for (let p = 0; p < bOff; p++) {
      grad[p] = grad[p] * inv + lambda * W[p];
      reg += W[p] * W[p];
    }
    for (let c = 0; c < k; c++) grad[bOff + c] *= inv;
    return loss * inv + 0.5 * lambda * reg;
  };
}

export interface FitOptions extends LbfgsOptions {
  /** Start from this model (warm start along a λ path). */
  init?: SoftmaxModel;
}

export interface FitResult {
  model: SoftmaxModel;
  /** Final objective value. */
  objective: number;
  iterations: number;
  evaluations: number;
  reason: string;
}

/** Fits W, b minimising the objective above on (already standardised) features. */
export function fitSoftmax(
  x: FeatureMatrix,
  labels: ArrayLike<number>,
  classes: number,
  lambda: number,
  o: FitOptions = {},
): FitResult {
  checkMatrix(x, 'features');
  if (!(Number.isInteger(classes) && classes >= 2)) throw new RangeError(`classes ${classes} must be a whole number ≥ 2`);
  if (!(lambda >= 0 && Number.isFinite(lambda))) throw new RangeError(`lambda ${lambda} must be a finite number ≥ 0`);
  checkLabels(labels, x.rows, classes, 'fitSoftmax');
  const size = classes * x.cols + classes;
  const theta0 = new Float64Array(size);
  if (o.init) {
    if (o.init.classes !== classes || o.init.cols !== x.cols)
      throw new RangeError(`init model is ${o.init.classes}×${o.init.cols}, the problem ${classes}×${x.cols}`);
    theta0.set(o.init.weight, 0);
    theta0.set(o.init.bias, classes * x.cols);
  }
  const r = lbfgs(softmaxObjective(x, labels, classes, lambda), theta0, {
    maxIter: o.maxIter ?? 1000,
    gradTol: o.gradTol ?? 1e-6,
    fTol: o.fTol ?? 1e-12,
    memory: o.memory ?? 10,
  });
  const model: SoftmaxModel = {
    classes,
    cols: x.cols,
    weight: r.x.slice(0, classes * x.cols),
    bias: r.x.slice(classes * x.cols),
  };
  return { model, objective: r.f, iterations: r.iterations, evaluations: r.evaluations, reason: r.reason };
}

/** Logits [rows, classes] of the model on `x`. */
export function predictLogits(model: SoftmaxModel, x: FeatureMatrix): Float64Array {
  checkMatrix(x, 'features');
  if (x.cols !== model.cols) throw new RangeError(`features have ${x.cols} columns, the model ${model.cols}`);
  const { classes: k, cols: d } = model;
  const out = new Float64Array(x.rows * k);
  for (let i = 0; i < x.rows; i++) {
    for (let c = 0; c < k; c++) {
      let s = model.bias[c];
      for (let j = 0; j < d; j++) s += x.data[i * d + j] * model.weight[c * d + j];
      out[i * k + c] = s;
    }
  }
  return out;
}

/** Top-1 accuracy and mean cross-entropy of the model on labelled features. */
export function scoreSoftmax(model: SoftmaxModel, x: FeatureMatrix, labels: ArrayLike<number>): { accuracy: number; loss: number } {
  checkLabels(labels, x.rows, model.classes, 'scoreSoftmax');
  const logits = predictLogits(model, x);
  const k = model.classes;
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < x.rows; i++) {
    let best = 0;
    let max = -Infinity;
    for (let c = 0; c < k; c++) if (logits[i * k + c] > max) [max, best] = [logits[i * k + c], c];
    let sum = 0;
    for (let c = 0; c < k; c++) sum += Math.exp(logits[i * k + c] - max);
    loss += Math.log(sum) + max - logits[i * k + labels[i]];
    if (best === labels[i]) correct++;
  }
  return { accuracy: correct / x.rows, loss: loss / x.rows };
}

/** λ grid searched by default: 10^-6 … 10^0 in half-decade steps (standardised features; mean loss). */
export const DEFAULT_LAMBDAS: readonly number[] = Array.from({ length: 13 }, (_, i) => 10 ** (-i / 2));

export interface ProbeOptions {
  /** L2 strengths tried (any order; fitted from strongest to weakest, each warm-starting the next). */
  lambdas?: readonly number[];
  /** Fraction of the training rows held out to choose λ (default 0.2). */
  valFraction?: number;
  /** Seed of the train/validation split. */
  seed?: number;
  /** Stop the λ path after this many weaker λ in a row without a better validation accuracy (default 3). */
  patience?: number;
  /** Solver settings of the final fit (default gradTol 1e-5); the λ path uses a 10× looser gradient tolerance. */
  solver?: LbfgsOptions;
}

export interface ProbeFit {
  lambda: number;
  /** Accuracy and loss on the validation rows for each λ tried, strongest first. */
  path: { lambda: number; valAccuracy: number; valLoss: number; iterations: number; evaluations: number }[];
  /** The final model, refitted on all training rows with the chosen λ, and the standardiser it expects. */
  model: SoftmaxModel;
  standardizer: Standardizer;
  trainAccuracy: number;
  seconds: number;
}

/** Rows `idx` of x (and their labels). */
function rowsOf(x: FeatureMatrix, labels: ArrayLike<number>, idx: ArrayLike<number>): { x: FeatureMatrix; y: Int32Array } {
  const out = new Float64Array(idx.length * x.cols);
  const y = new Int32Array(idx.length);
  for (let r = 0; r < idx.length; r++) {
    out.set(x.data.subarray(idx[r] * x.cols, (idx[r] + 1) * x.cols), r * x.cols);
    y[r] = labels[idx[r]];
  }
  return { x: { data: out, rows: idx.length, cols: x.cols }, y };
}

/**
 * The probe as the issue specifies it: standardise with the training statistics, choose λ by validation accuracy
 * (ties → the lower validation loss) on a held-out part of the training rows, then refit on all training rows.
 */
export function fitProbe(x: FeatureMatrix, labels: ArrayLike<number>, classes: number, o: ProbeOptions = {}): ProbeFit {
  const started = performance.now();
  checkMatrix(x, 'training features');
  checkLabels(labels, x.rows, classes, 'fitProbe');
  const valFraction = o.valFraction ?? 0.2;
  if (!(valFraction > 0 && valFraction < 1)) throw new RangeError(`valFraction ${valFraction} must be in (0, 1)`);
  const lambdas = [...(o.lambdas ?? DEFAULT_LAMBDAS)].sort((a, b) => b - a);
  if (lambdas.length === 0 || lambdas.some((l) => !(l > 0 && Number.isFinite(l))))
    throw new RangeError('lambdas must be a non-empty list of finite numbers > 0');
  const nVal = Math.round(x.rows * valFraction);
  if (nVal < 1 || x.rows - nVal < 1) throw new RangeError(`${x.rows} rows are too few to hold out ${valFraction} for validation`);

  const perm = permutation(createRng(o.seed ?? 0), x.rows);
  const fitPart = rowsOf(x, labels, perm.subarray(nVal));
  const valPart = rowsOf(x, labels, perm.subarray(0, nVal));
  // λ is chosen with statistics of the fitting rows only, as the final probe will see unseen test rows.
  const sFit = fitStandardizer(fitPart.x);
  const xFit = standardize(fitPart.x, sFit);
  const xVal = standardize(valPart.x, sFit);

  const path: ProbeFit['path'] = [];
  let warm: SoftmaxModel | undefined;
  let best: { lambda: number; acc: number; loss: number; model: SoftmaxModel } | undefined;
  const patience = o.patience ?? 3;
  // Accuracy settles long before the weights do: 1e-5 (relative) for the final fit, 10× looser to rank λ.
  const finalSolver = { ...o.solver, gradTol: o.solver?.gradTol ?? 1e-5 };
  const pathSolver = { ...o.solver, gradTol: 10 * finalSolver.gradTol };
  let sinceBest = 0;
  // Weak λ are the slow fits and, past the optimum, only get worse: stop once `patience` of them did not help.
  for (const lambda of lambdas) {
    if (sinceBest >= patience) break;
    const r = fitSoftmax(xFit, fitPart.y, classes, lambda, { ...pathSolver, init: warm });
    warm = r.model;
    const v = scoreSoftmax(r.model, xVal, valPart.y);
    path.push({ lambda, valAccuracy: v.accuracy, valLoss: v.loss, iterations: r.iterations, evaluations: r.evaluations });
    if (!best || v.accuracy > best.acc || (v.accuracy === best.acc && v.loss < best.loss)) {
      best = { lambda, acc: v.accuracy, loss: v.loss, model: r.model };
      sinceBest = 0;
    } else sinceBest++;
  }

  const standardizer = fitStandardizer(x);
  const xAll = standardize(x, standardizer);
  // Warm start from the chosen validation model: the standardisation differs only slightly.
  const final = fitSoftmax(xAll, labels, classes, best!.lambda, { ...finalSolver, init: best!.model });
  return {
    lambda: best!.lambda,
    path,
    model: final.model,
    standardizer,
    trainAccuracy: scoreSoftmax(final.model, xAll, labels).accuracy,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Accuracy and loss of a fitted probe on new (raw, unstandardised) features. */
export function evaluateProbe(
  fit: Pick<ProbeFit, 'model' | 'standardizer'>,
  x: FeatureMatrix,
  labels: ArrayLike<number>,
): { accuracy: number; loss: number } {
  return scoreSoftmax(fit.model, standardize(x, fit.standardizer), labels);
}
