// The TensorFlow.js engine on a tiny model (real wasm backend): its custom matMul gradients against central finite
// differences of the float64 reference loss (src/model/mlp.ts), its forward pass against forwardReference, and a
// whole step against the reference LION update applied to its own gradients (head lr vs body lr).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardReference, initWeights, namedTensors, type MlpConfig, type MlpWeights } from '../../src/model/mlp.js';
import { createRng, normal } from '../../src/util/rng.js';
import type { Engine, StepHyper, TrainBatch } from '../../src/train/engines/engine.js';
import { createEngine, lossAndGradients } from '../../src/train/engines/tfjs.js';
import { weightsFromArrays } from '../../src/train/checkpoint.js';
import { lionUpdate } from '../../src/train/lion.js';

const CFG: MlpConfig = { depth: 2, width: 6, expansion: 4, inputDim: 10, classes: 4 };
const N = 5;

/** Weights with every tensor non-trivial (LayerNorm γ, β too) and O(1) activations. */
function weights(seed: number): MlpWeights {
  const w = initWeights(CFG, seed);
  const rng = createRng(seed + 100);
  for (const b of w.blocks) {
    b.norm.gamma.forEach((_, i) => (b.norm.gamma[i] = 1 + 0.3 * normal(rng)));
    b.norm.beta.forEach((_, i) => (b.norm.beta[i] = 0.3 * normal(rng)));
  }
  return w;
}

function batch(seed: number): TrainBatch {
  const rng = createRng(seed);
  const x = Float32Array.from({ length: N * CFG.inputDim }, () => normal(rng));
  // Soft targets: random positive rows summing to 1 (what smoothing + MixUp produce).
  const y = new Float32Array(N * CFG.classes);
  for (let r = 0; r < N; r++) {
    const row = Array.from({ length: CFG.classes }, () => 0.05 + rng());
    const s = row.reduce((a, b) => a + b, 0);
    row.forEach((v, c) => (y[r * CFG.classes + c] = v / s));
  }
  return { x, y, size: N };
}

/** Mean soft-target cross-entropy of the float64 reference forward pass. */
function loss64(w: MlpWeights, b: TrainBatch): number {
  const { logits } = forwardReference(CFG, w, b.x, b.size);
  let total = 0;
  for (let r = 0; r < b.size; r++) {
    const row = logits.subarray(r * CFG.classes, (r + 1) * CFG.classes);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    for (let c = 0; c < CFG.classes; c++) total -= b.y[r * CFG.classes + c] * (row[c] - lse);
  }
  return total / b.size;
}

let engine: Engine;
beforeAll(async () => {
  engine = await createEngine();
});
afterAll(async () => {
  await engine.dispose();
});

describe('tfjs engine', () => {
  it('gradients of every parameter match central finite differences of the float64 loss', async () => {
    const w = weights(1);
    const b = batch(2);
    const { loss, grads } = await lossAndGradients(CFG, w, b);
    expect(loss).toBeCloseTo(loss64(w, b), 5);
    const named = namedTensors(w);
    let checked = 0;
    named.forEach((t, k) => {
      for (let i = 0; i < t.data.length; i++) {
        const orig = t.data[i];
        t.data[i] = orig + 1e-3;
        const up = t.data[i];
        const fUp = loss64(w, b);
        t.data[i] = orig - 1e-3;
        const down = t.data[i];
        const fDown = loss64(w, b);
        t.data[i] = orig;
        const fd = (fUp - fDown) / (up - down); // the float32-rounded step actually taken
        const got = grads[k][i];
        if (Math.abs(got - fd) > 1e-4 + 2e-3 * Math.abs(fd))
          throw new Error(`${t.name}[${i}]: tfjs gradient ${got}, finite difference ${fd}`);
        checked++;
      }
    });
    expect(checked).toBe(named.reduce((s, t) => s + t.data.length, 0));
  });

  it('predict equals the float64 reference forward pass', async () => {
    const w = weights(3);
    const b = batch(4);
    await engine.init(CFG, w);
    const got = await engine.predict(b.x, b.size);
    const want = forwardReference(CFG, w, b.x, b.size).logits;
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-5 * (1 + Math.abs(want[i])));
  });

  it('a step is LION on its own gradients: head at lr, body at lr·bodyLrScale, momentum from β2', async () => {
    const w = weights(5);
    const b = batch(6);
    const m0 = namedTensors(w).map((t, k) => Float32Array.from(t.data, (_, i) => 0.01 * Math.sin(k + i)));
    await engine.init(CFG, w, m0);
    const hyper: StepHyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0.5, bodyLrScale: 0.25 };
    const { loss } = await engine.step(b, hyper);

    const ref = await lossAndGradients(CFG, w, b);
    expect(loss).toBe(ref.loss);
    const params = namedTensors(w).map((t) => Float32Array.from(t.data));
    const mom = m0.map((m) => Float32Array.from(m));
    params.forEach((p, k) => {
      const lr = k >= params.length - 2 ? hyper.lr : hyper.lr * 0.25;
      lionUpdate(p, ref.grads[k], mom[k], { ...hyper, lr });
    });
    expect(namedTensors(await engine.readWeights()).map((t) => t.data)).toEqual(params);
    expect(await engine.readMomentum()).toEqual(mom);
    // The step moved every weight (LION moves each coordinate by lr unless its update is exactly 0).
    expect(namedTensors(await engine.readWeights())[0].data).not.toEqual(namedTensors(w)[0].data);
  });

  it('the weights it holds are its own copies (init does not alias, readWeights copies)', async () => {
    const w = weights(7);
    await engine.init(CFG, w);
    const before = namedTensors(w).map((t) => Float32Array.from(t.data));
    await engine.step(batch(8), { lr: 0.1, beta1: 0.9, beta2: 0.99, weightDecay: 0 });
    expect(namedTensors(w).map((t) => t.data)).toEqual(before);
    const read = await engine.readWeights();
    read.stem.weight.fill(0);
    expect((await engine.readWeights()).stem.weight.some((v) => v !== 0)).toBe(true);
    expect(weightsFromArrays(CFG, namedTensors(read).map((t) => t.data)).stem.weight).toBe(read.stem.weight);
  });

  it('BAD CALL - weights of another config are refused, naming the tensor', async () => {
    const other = initWeights({ ...CFG, width: 8 }, 0);
    await expect(engine.init(CFG, other)).rejects.toThrow(/stem\.weight/);
  });
});
