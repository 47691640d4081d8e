// The fused onnxruntime training step against a float64 reference written here: gradients against central finite
// differences of the float64 loss, and whole LION steps (loss, weights, momenta) against the same update in float64.
// The reference's forward pass is itself checked against src/model/mlp.ts's forwardReference, so both sides agree on
// what the model is. Everything runs on the real onnxruntime-node CPU provider with tiny models (seconds).

import { afterAll, describe, expect, it } from 'vitest';
import { LAYER_NORM_EPS, forwardReference, gelu, initWeights, namedTensors, type MlpConfig, type MlpWeights } from '../../src/model/mlp.js';
import { createRng, normal } from '../../src/util/rng.js';
import type { StepHyper, TrainBatch } from '../../src/train/engines/engine.js';
import { createEngine as createTfjsEngine } from '../../src/train/engines/tfjs.js';
import { OrtEngine, createEngine, lossAndGradients, type LionPlacement } from '../../src/train/engines/ort.js';
import { lionInPlace } from '../../src/train/engines/ort-state.js';
import { lionUpdate } from '../../src/train/lion.js';
import { createLionArena, simdAvailable } from '../../src/train/engines/lion-simd.js';
import { buildTrainGraph, paramSpecs } from '../../src/train/engines/ort-graph.js';
import { randomBatch } from '../fixtures/batches.js';

const CFG: MlpConfig = { depth: 2, width: 8, expansion: 4, inputDim: 12, classes: 5 };
const OPTS = { executionProviders: ['cpu'] as const, intraOpNumThreads: 1 };

// ---------------------------------------------------------------------------------------------------------------
// float64 reference: parameters as Float64Array[] in namedTensors order.

type Params64 = Float64Array[];

function toParams64(w: MlpWeights): Params64 {
  return namedTensors(w).map((t) => Float64Array.from(t.data));
}

function linear(x: Float64Array, n: number, w: Float64Array, b: Float64Array): Float64Array {
  const out = b.length;
  const inDim = w.length / out;
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[i * out + o];
      y[r * out + o] = s;
    }
  return y;
}

function logits64(cfg: MlpConfig, p: Params64, x: ArrayLike<number>, n: number): Float64Array {
  const W = cfg.width;
  let k = 0;
  const next = () => p[k++];
  let h = linear(Float64Array.from(x), n, next(), next());
  for (let blk = 0; blk < cfg.depth; blk++) {
    const gamma = next();
    const beta = next();
    const normed = new Float64Array(n * W);
    for (let r = 0; r < n; r++) {
      let mean = 0;
      for (let i = 0; i < W; i++) mean += h[r * W + i] / W;
      let v = 0;
      for (let i = 0; i < W; i++) v += (h[r * W + i] - mean) ** 2 / W;
      for (let i = 0; i < W; i++)
        normed[r * W + i] = ((h[r * W + i] - mean) / Math.sqrt(v + LAYER_NORM_EPS)) * gamma[i] + beta[i];
    }
    const act = linear(normed, n, next(), next()).map(gelu);
    const branch = linear(act, n, next(), next());
    h = h.map((v, i) => v + branch[i]);
  }
  return linear(h, n, next(), next());
}

/** Mean soft-target cross-entropy in float64. */
function loss64(cfg: MlpConfig, p: Params64, b: TrainBatch): number {
  const z = logits64(cfg, p, b.x, b.size);
  const K = cfg.classes;
  let total = 0;
  for (let r = 0; r < b.size; r++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, z[r * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(z[r * K + k] - max);
    const lse = max + Math.log(s);
    for (let k = 0; k < K; k++) total -= b.y[r * K + k] * (z[r * K + k] - lse);
  }
  return total / b.size;
}

/** Central finite differences of loss64 w.r.t. every parameter (exact to ~1e-9 in float64). */
function gradFD(cfg: MlpConfig, p: Params64, b: TrainBatch, h = 1e-5): Params64 {
  return p.map((t) =>
    t.map((v, i) => {
      t[i] = v + h;
      const up = loss64(cfg, p, b);
      t[i] = v - h;
      const down = loss64(cfg, p, b);
      t[i] = v;
      return (up - down) / (2 * h);
    }),
  );
}

/** One LION step in float64, in place, head with lr and the rest with lr·bodyLrScale. Returns the loss before. */
function lionStep64(cfg: MlpConfig, p: Params64, m: Params64, b: TrainBatch, hp: StepHyper): number {
  const loss = loss64(cfg, p, b);
  const g = gradFD(cfg, p, b);
  paramSpecs(cfg).forEach((s, t) => {
    const lr = s.head ? hp.lr : hp.lr * (hp.bodyLrScale ?? 1);
    for (let i = 0; i < p[t].length; i++) {
      const c = hp.beta1 * m[t][i] + (1 - hp.beta1) * g[t][i];
      p[t][i] = p[t][i] * (1 - lr * hp.weightDecay) - lr * Math.sign(c);
      m[t][i] = hp.beta2 * m[t][i] + (1 - hp.beta2) * g[t][i];
    }
  });
  return loss;
}

// ---------------------------------------------------------------------------------------------------------------

/** initWeights with LayerNorm γ ≠ 1 and β ≠ 0, so a backward pass that drops γ or β cannot pass by accident. */
function weights(seed: number): MlpWeights {
  const w = initWeights(CFG, seed);
  const rng = createRng(seed + 1000);
  for (const b of w.blocks) {
    b.norm.gamma.forEach((_, i) => (b.norm.gamma[i] = 1 + 0.3 * normal(rng)));
    b.norm.beta.forEach((_, i) => (b.norm.beta[i] = 0.3 * normal(rng)));
  }
  return w;
}

/** Worst |a − b| / (|b| + floor) over all elements. */
function worstRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + floor));
  return worst;
}

const engines: OrtEngine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.dispose()));
});
function newEngine(lion?: LionPlacement): OrtEngine {
  const e = new OrtEngine({ ...OPTS, lion });
  engines.push(e);
  return e;
}

describe('ort training graph', () => {
  it('names its parameters exactly as namedTensors, in the same order', () => {
    const named = namedTensors(weights(0)).map((t) => ({ name: t.name, shape: t.shape }));
    expect(paramSpecs(CFG).map((s) => ({ name: s.name, shape: s.shape }))).toEqual(named);
    expect(paramSpecs(CFG).filter((s) => s.head).map((s) => s.name)).toEqual(['head.weight', 'head.bias']);
  });

  it('the float64 test reference computes the same logits as the project reference forward pass', () => {
    const w = weights(3);
    const b = randomBatch(CFG, 4, 4);
    const mine = logits64(CFG, toParams64(w), b.x, b.size);
    const ref = forwardReference(CFG, w, b.x, b.size).logits;
    expect(worstRelErr(mine, ref, 1e-9)).toBeLessThan(1e-12);
  });

  it.each(['gemm', 'transpose'] as const)('gradients match central finite differences (%s matmuls)', async (matmul) => {
    const w = weights(5);
    const b = randomBatch(CFG, 6, 6);
    const p = toParams64(w);
    const { loss, grads } = await lossAndGradients(CFG, w, b, { ...OPTS, matmul });
    expect(Math.abs(loss - loss64(CFG, p, b)) / loss64(CFG, p, b)).toBeLessThan(1e-6);
    const fd = gradFD(CFG, p, b);
    const specs = paramSpecs(CFG);
    for (let t = 0; t < specs.length; t++) {
      // Relative to the tensor's largest gradient: float32 rounding is relative to the magnitudes summed.
      const scale = fd[t].reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      expect(scale, `${specs[t].name} has a non-zero gradient`).toBeGreaterThan(1e-4);
      expect(worstRelErr(grads[t], fd[t], 1e-2 * scale), specs[t].name).toBeLessThan(1e-4);
    }
  });
});

describe('OrtEngine', () => {
  const hyper: StepHyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0.1, bodyLrScale: 0.5 };

  it.each(['host', 'graph'] as const)('three LION steps (%s) match the float64 reference: loss, weights and momenta within 1e-4 relative', async (lion) => {
    const w = weights(7);
    const rng = createRng(8);
    // Non-zero starting momenta exercise β1/β2 mixing and the resume path of init().
    const m0 = namedTensors(w).map((t) => Float32Array.from(t.data, () => 0.01 * normal(rng)));
    const engine = newEngine(lion);
    await engine.init(CFG, w, m0);
    const p = toParams64(w);
    const m = m0.map((t) => Float64Array.from(t));
    for (let s = 0; s < 3; s++) {
      const batch = randomBatch(CFG, 6, 100 + s);
      const { loss } = await engine.step(batch, hyper);
      const refLoss = lionStep64(CFG, p, m, batch, hyper);
      expect(Math.abs(loss - refLoss) / refLoss, `loss of step ${s}`).toBeLessThan(1e-5);
      const got = namedTensors(await engine.readWeights());
      const gotM = await engine.readMomentum();
      got.forEach((t, i) => {
        expect(worstRelErr(t.data, p[i], 1e-3), `${t.name} after step ${s}`).toBeLessThan(1e-4);
        expect(worstRelErr(gotM[i], m[i], 1e-4), `momentum of ${t.name} after step ${s}`).toBeLessThan(1e-4);
      });
    }
    // The steps really moved the weights (by ≈ lr per coordinate), so the comparison above is not vacuous.
    const start = namedTensors(w)[0].data;
    const now = namedTensors(await engine.readWeights())[0].data;
    expect(Math.abs(now[0] - start[0])).toBeGreaterThan(0.005);
  });

  it.each(['host', 'graph'] as const)('predict gives the reference logits, and a different batch size gets its own step graph (%s)', async (lion) => {
    const w = weights(9);
    const engine = newEngine(lion);
    await engine.init(CFG, w);
    const b = randomBatch(CFG, 5, 10);
    const got = await engine.predict(b.x, b.size);
    expect(worstRelErr(got, forwardReference(CFG, w, b.x, b.size).logits, 1e-3)).toBeLessThan(1e-4);

    await engine.step(randomBatch(CFG, 6, 11), hyper);
    const odd = randomBatch(CFG, 3, 12);
    const p = toParams64(await engine.readWeights());
    const m = (await engine.readMomentum()).map((t) => Float64Array.from(t));
    const { loss } = await engine.step(odd, hyper);
    const refLoss = lionStep64(CFG, p, m, odd, hyper);
    expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-5);
    namedTensors(await engine.readWeights()).forEach((t, i) => expect(worstRelErr(t.data, p[i], 1e-3), t.name).toBeLessThan(1e-4));
    // predict reads the live (post-step) weights
    const after = await engine.predict(b.x, b.size);
    expect(worstRelErr(after, forwardReference(CFG, await engine.readWeights(), b.x, b.size).logits, 1e-3)).toBeLessThan(1e-4);
  });

  it('steps with more batch sizes than cached sessions, and with SharedArrayBuffer-backed batches, stay exact', async () => {
    const w = weights(20);
    const [plain, shared] = [newEngine(), newEngine()];
    await plain.init(CFG, w);
    await shared.init(CFG, w);
    const toShared = (a: Float32Array) => {
      const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
      s.set(a);
      return s;
    };
    for (const [k, size] of [2, 3, 4, 5, 2, 3].entries()) {
      const b = randomBatch(CFG, size, 30 + k);
      const a = await plain.step(b, hyper);
      const s = await shared.step({ size, x: toShared(b.x), y: toShared(b.y) }, hyper);
      expect(s.loss).toBe(a.loss);
    }
    const [wp, ws] = [namedTensors(await plain.readWeights()), namedTensors(await shared.readWeights())];
    wp.forEach((t, i) => expect(ws[i].data, t.name).toEqual(t.data));
    // …and the steps did move the weights.
    expect(wp[0].data).not.toEqual(namedTensors(w)[0].data);
  });

  it('init copies: the caller’s arrays are not modified by steps', async () => {
    const w = weights(13);
    const before = namedTensors(w).map((t) => t.data.slice());
    const engine = (await createEngine(OPTS)) as OrtEngine;
    engines.push(engine);
    await engine.init(CFG, w);
    await engine.step(randomBatch(CFG, 4, 14), hyper);
    namedTensors(w).forEach((t, i) => expect(t.data).toEqual(before[i]));
    expect(engine.provider).toBe('cpu');
  });

  it('the stem is held transposed inside, yet weights and momenta read back in their public layout, unchanged', async () => {
    expect(paramSpecs(CFG).filter((s) => s.transposed).map((s) => s.name)).toEqual(['stem.weight']);
    const w = weights(16);
    const momentum = namedTensors(weights(17)).map((t) => t.data);
    const engine = (await createEngine(OPTS)) as OrtEngine;
    engines.push(engine);
    await engine.init(CFG, w, momentum);
    namedTensors(await engine.readWeights()).forEach((t, i) => expect(t.data, t.name).toEqual(namedTensors(w)[i].data));
    (await engine.readMomentum()).forEach((m, i) => expect(m).toEqual(momentum[i]));
  });

  it('the host-side LION kernel is bit-identical to the reference lionUpdate, including zero directions', () => {
    const rng = createRng(15);
    const n = 1000;
    const p = Float32Array.from({ length: n }, () => normal(rng));
    const m = Float32Array.from({ length: n }, () => 0.1 * normal(rng));
    const g = Float32Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 0 : normal(rng)));
    m.fill(0, 0, 50); // with g = 0 too, c = 0: only decayed
    const [p2, m2] = [p.slice(), m.slice()];
    lionInPlace(p, m, g, 0.003, 1 - 0.003 * 0.2, 0.9, 0.99);
    lionUpdate(p2, g, m2, { lr: 0.003, weightDecay: 0.2, beta1: 0.9, beta2: 0.99 });
    expect(p).toEqual(p2);
    expect(m).toEqual(m2);
  });

  it('the WebAssembly SIMD kernel matches lionUpdate on odd-sized tensors (float32 arithmetic: within an ulp)', () => {
    expect(simdAvailable()).toBe(true);
    const sizes = [1, 7, 1001];
    const arena = createLionArena(sizes)!;
    const rng = createRng(16);
    sizes.forEach((n, t) => {
      for (let i = 0; i < n; i++) {
        arena.params[t][i] = normal(rng);
        arena.momenta[t][i] = i < n / 10 ? 0 : 0.1 * normal(rng);
        arena.grads[t][i] = i % 5 === 0 ? 0 : normal(rng);
      }
      expect(arena.params[t].byteOffset % 16).toBe(0);
    });
    const hp = { lr: 0.003, weightDecay: 0.2, beta1: 0.9, beta2: 0.99 };
    sizes.forEach((n, t) => {
      const [p, m] = [arena.params[t].slice(), arena.momenta[t].slice()];
      lionUpdate(p, arena.grads[t], m, hp);
      arena.update(t, hp.lr, 1 - hp.lr * hp.weightDecay, hp.beta1, hp.beta2);
      for (let i = 0; i < n; i++) {
        // A wrong sign would be off by 2·lr = 0.006; float32 rounding is ~1e-7.
        expect(Math.abs(arena.params[t][i] - p[i]), `param ${t}[${i}]`).toBeLessThan(1e-6 * Math.abs(p[i]) + 1e-9);
        expect(Math.abs(arena.momenta[t][i] - m[i]), `momentum ${t}[${i}]`).toBeLessThan(1e-6 * Math.abs(m[i]) + 1e-12);
      }
    });
  });

  it('one step matches the tfjs engine: same loss, weights and momenta within 1e-4 relative', async () => {
    const w = weights(17);
    const rng = createRng(18);
    const m0 = namedTensors(w).map((t) => Float32Array.from(t.data, () => 0.01 * normal(rng)));
    const b = randomBatch(CFG, 6, 19);
    const ortEngine = newEngine();
    const tfjs = await createTfjsEngine();
    try {
      await ortEngine.init(CFG, w, m0);
      await tfjs.init(CFG, w, m0);
      const a = await ortEngine.step(b, hyper);
      const t = await tfjs.step(b, hyper);
      expect(Math.abs(a.loss - t.loss) / t.loss).toBeLessThan(1e-4);
      const [wa, wt] = [namedTensors(await ortEngine.readWeights()), namedTensors(await tfjs.readWeights())];
      const [ma, mt] = [await ortEngine.readMomentum(), await tfjs.readMomentum()];
      wa.forEach((t, i) => {
        expect(worstRelErr(t.data, wt[i].data, 1e-3), t.name).toBeLessThan(1e-4);
        expect(worstRelErr(ma[i], mt[i], 1e-4), `momentum of ${t.name}`).toBeLessThan(1e-4);
      });
    } finally {
      await tfjs.dispose();
    }
  });

  it('BAD CALL - step before init, short inputs, non-finite lr, wrong momentum count', async () => {
    const engine = newEngine();
    await expect(engine.step(randomBatch(CFG, 2, 1), hyper)).rejects.toThrow(/call init\(\)/);
    await engine.init(CFG, weights(1));
    const b = randomBatch(CFG, 2, 1);
    await expect(engine.step({ ...b, x: b.x.subarray(1) }, hyper)).rejects.toThrow(/batch\.x has 23 values/);
    await expect(engine.step(b, { ...hyper, lr: NaN })).rejects.toThrow(/lr is NaN/);
    await expect(engine.init(CFG, weights(1), [new Float32Array(1)])).rejects.toThrow(/momentum has 1 tensors/);
    expect(() => new OrtEngine({ intraOpNumThreads: 0 })).toThrow(RangeError);
    expect(() => new OrtEngine({ lion: 'gpu' as LionPlacement })).toThrow(/lion "gpu"/);
    expect(() => buildTrainGraph(CFG, { batch: 0, mode: 'step' })).toThrow(/batch 0/);
  });
});
