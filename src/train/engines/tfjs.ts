// The TensorFlow.js training engine: forward pass, hand-written matMul gradients and the LION step.
//
// Backend: tfjs-node-gpu or tfjs-node when they are installed (never required), else the wasm backend (XNNPACK).
// Why custom gradients: on wasm only the non-transposed matMul runs on XNNPACK, so every matMul here gets its
// gradient through tf.customGrad with an explicit tf.transpose: all three products of a Linear are plain a·b
// (measurements: docs/training.md, "Engines").
// LayerNorm, exact-erf GELU and the soft-target cross-entropy use tfjs's own gradients (no matMul in them).
// LION runs in plain TypeScript (src/train/lion.ts, the tested reference) on JS-side master copies of the weights.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { namedTensors, LAYER_NORM_EPS, assertWeightsMatch, isStandard, type MlpConfig, type MlpWeights } from '../../model/mlp.js';
import { weightsFromArrays } from '../checkpoint.js';
import { lionUpdate } from '../lion.js';
import type { Engine, OptimizerState, StepHyper, TrainBatch } from './engine.js';

let backendReady: Promise<string> | undefined;

/** Selects the fastest tfjs backend available once per process; returns its name ('tensorflow' or 'wasm'). */
export function initTfjsBackend(): Promise<string> {
  backendReady ??= (async () => {
    const require = createRequire(import.meta.url);
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        require.resolve(pkg);
      } catch {
        continue; // not installed: the usual case here
      }
      try {
        await import(pkg);
        if (await tf.setBackend('tensorflow')) return 'tensorflow';
      } catch {
        // Installed but broken (e.g. libtensorflow missing): fall through to wasm.
      }
    }
    const pkgDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    setWasmPaths(join(pkgDir, 'dist') + '/');
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend failed to initialise');
    await tf.ready();
    return 'wasm';
  })();
  return backendReady;
}

// ---------------------------------------------------------------------------------------------------------------
// Layers. Shapes in comments: n = batch, d = input dim, w = width, h = hidden (expansion·w), k = classes.

/**
 * a·b for a = activations [n, in], b = weights [in, out], with gradients
 *   dA = dY·bᵀ = (b·dYᵀ)ᵀ    and    dB = aᵀ·dY,
 * each a non-transposed product. Only activation-sized tensors (n rows) are transposed, never a weight (for a
 * 512×2048 weight at n = 128, 4× less data moved), and the right operand of dA, which XNNPACK packs on every call,
 * is the small dYᵀ.
 */
const matMul = tf.customGrad((a, b, save) => {
  (save as tf.GradSaveFunc)([a as tf.Tensor2D, b as tf.Tensor2D]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      const d = dy as tf.Tensor2D;
      return [tf.transpose(tf.matMul(sb, tf.transpose(d))), tf.matMul(tf.transpose(sa), d)];
    },
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** x·W for the stem, where x is data: only dW = xᵀ·dY is computed (dX would cost as much as the forward). */
function stemMatMul(x: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((w, save) => {
    (save as tf.GradSaveFunc)([]);
    return {
      value: tf.matMul(x, w as tf.Tensor2D),
      gradFunc: (dy) => [tf.matMul(tf.transpose(x), dy as tf.Tensor2D)],
    };
  }) as (w: tf.Tensor2D) => tf.Tensor2D;
  return f(weight);
}

function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor2D {
  const mean = tf.mean(x, -1, true); // [n, 1]
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true); // biased, as PyTorch's LayerNorm
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, LAYER_NORM_EPS))), gamma), beta);
}

/** Exact GELU: x·Φ(x) = ½·x·(1 + erf(x/√2)), as the paper's nn.GELU(). */
function gelu(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** Parameter tensors in `namedTensors` order: stem (W, b), per block (γ, β, We, be, Wc, bc), head (W, b). */
type Params = tf.Tensor[];

function forward(cfg: MlpConfig, p: Params, x: tf.Tensor2D): tf.Tensor2D {
  let h = tf.add(stemMatMul(x, p[0] as tf.Tensor2D), p[1]) as tf.Tensor2D; // [n, w]
  if (isStandard(cfg)) {
    // S_ (src/model/standard-mlp.ts): stem, layers and head in namedTensors order, GELU after all but the head.
    h = gelu(h);
    for (let i = 0; i < cfg.depth; i++) h = gelu(tf.add(matMul(h, p[2 + 2 * i] as tf.Tensor2D), p[3 + 2 * i]));
    const head = 2 + 2 * cfg.depth;
    return tf.add(matMul(h, p[head] as tf.Tensor2D), p[head + 1]); // [n, k]
  }
  for (let i = 0; i < cfg.depth; i++) {
    const [gamma, beta, we, be, wc, bc] = p.slice(2 + 6 * i, 8 + 6 * i);
    const normed = layerNorm(h, gamma as tf.Tensor1D, beta as tf.Tensor1D); // [n, w]
    const hidden = gelu(tf.add(matMul(normed, we as tf.Tensor2D), be)); // [n, h]
    h = tf.add(h, tf.add(matMul(hidden, wc as tf.Tensor2D), bc)); // [n, w]
  }
  const head = 2 + 6 * cfg.depth;
  return tf.add(matMul(h, p[head] as tf.Tensor2D), p[head + 1]); // [n, k]
}

/** Mean over the batch of −Σ_k y_k·log softmax(z)_k: cross-entropy against soft (smoothed, mixed) targets. */
function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/** Loss and gradients of every parameter (namedTensors order), read back as Float32Arrays. */
async function gradients(cfg: MlpConfig, params: Params, batch: TrainBatch): Promise<{ loss: number; grads: Float32Array[] }> {
  const x = tf.tensor2d(batch.x, [batch.size, cfg.inputDim]);
  const y = tf.tensor2d(batch.y, [batch.size, cfg.classes]);
  try {
    const { value, grads } = tf.valueAndGrads((...p: tf.Tensor[]) => softCrossEntropy(forward(cfg, p, x), y))(params);
    const loss = (await value.data())[0];
    const out = grads.map((t) => t.dataSync() as Float32Array);
    value.dispose();
    for (const t of grads) t.dispose();
    return { loss, grads: out };
  } finally {
    x.dispose();
    y.dispose();
  }
}

/** What a step computes before LION, for given weights: the gradient check's entry point. */
export async function lossAndGradients(
  cfg: MlpConfig,
  weights: MlpWeights,
  batch: TrainBatch,
): Promise<{ loss: number; grads: Float32Array[] }> {
  await initTfjsBackend();
  assertWeightsMatch(cfg, weights);
  const params = namedTensors(weights).map((t) => tf.tensor(t.data, t.shape));
  try {
    return await gradients(cfg, params, batch);
  } finally {
    for (const t of params) t.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------

class TfjsEngine implements Engine {
  readonly name: string;
  private cfg?: MlpConfig;
  /** Master copies of the weights and LION momentum, in `namedTensors` order (updated in place by lionUpdate). */
  private master: Float32Array[] = [];
  private shapes: number[][] = [];
  private momentum: Float32Array[] = [];
  /** The same weights as tensors, re-uploaded after each step. */
  private params: Params = [];

  constructor(backend: string) {
    this.name = `tfjs-${backend}`;
  }

  async init(cfg: MlpConfig, weights: MlpWeights, momentum?: OptimizerState): Promise<void> {
    assertWeightsMatch(cfg, weights);
    this.disposeParams();
    this.cfg = cfg;
    const named = namedTensors(weights);
    this.master = named.map((t) => Float32Array.from(t.data));
    this.shapes = named.map((t) => t.shape);
    if (momentum) {
      if (momentum.length !== named.length || momentum.some((m, i) => m.length !== named[i].data.length))
        throw new RangeError(`momentum does not match the weights of ${cfg.depth} blocks × width ${cfg.width}`);
      this.momentum = momentum.map((m) => Float32Array.from(m));
    } else {
      this.momentum = named.map((t) => new Float32Array(t.data.length));
    }
    this.upload();
  }

  private upload(): void {
    this.disposeParams();
    this.params = this.master.map((data, i) => tf.tensor(data, this.shapes[i]));
  }

  private disposeParams(): void {
    for (const t of this.params) t.dispose();
    this.params = [];
  }

  private config(): MlpConfig {
    if (!this.cfg) throw new Error('tfjs engine: init() must be called first');
    return this.cfg;
  }

  async step(batch: TrainBatch, hyper: StepHyper): Promise<{ loss: number }> {
    const { loss, grads } = await gradients(this.config(), this.params, batch);
    const headFrom = this.master.length - 2;
    const bodyScale = hyper.bodyLrScale ?? 1;
    for (let i = 0; i < this.master.length; i++) {
      const lr = i >= headFrom ? hyper.lr : hyper.lr * bodyScale;
      lionUpdate(this.master[i], grads[i], this.momentum[i], { ...hyper, lr });
    }
    this.upload();
    return { loss };
  }

  async predict(x: Float32Array, n: number): Promise<Float32Array> {
    const cfg = this.config();
    const logits = tf.tidy(() => forward(cfg, this.params, tf.tensor2d(x, [n, cfg.inputDim])));
    const out = (await logits.data()) as Float32Array;
    logits.dispose();
    return out;
  }

  async readWeights(): Promise<MlpWeights> {
    return weightsFromArrays(this.config(), this.master.map((a) => Float32Array.from(a)));
  }

  async readMomentum(): Promise<OptimizerState> {
    return this.momentum.map((m) => Float32Array.from(m));
  }

  async dispose(): Promise<void> {
    this.disposeParams();
    this.master = [];
    this.momentum = [];
    this.cfg = undefined;
  }
}

export async function createEngine(): Promise<Engine> {
  return new TfjsEngine(await initTfjsBackend());
}
