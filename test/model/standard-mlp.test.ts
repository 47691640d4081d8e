// The standard MLP (S_<depth>-Wi_<width>) end to end: name, parameter and FLOP counts by hand; the fused
// onnxruntime gradients against finite differences of the float64 reference forward pass and against tfjs; a
// training step on both engines; export → onnxruntime → float64 reference; and a served /classify over a real
// socket on an exported S_ model, whose scores equal the float64 reference on the same preprocessed tensor.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import {
  archName,
  configFor,
  flopsPerImage,
  forwardReference,
  initWeights,
  namedTensors,
  paramCount,
  parseArch,
  type MlpConfig,
  type MlpWeights,
} from '../../src/model/mlp.js';
import { readOnnxWeights } from '../../src/export/export.js';
import { validateCard } from '../../src/model/card.js';
import { lossAndGradients as ortGradients, OrtEngine } from '../../src/train/engines/ort.js';
import { createEngine as createTfjs, lossAndGradients as tfjsGradients } from '../../src/train/engines/tfjs.js';
import { paramSpecs } from '../../src/train/engines/ort-graph.js';
import type { TrainBatch } from '../../src/train/engines/engine.js';
import { decodeToChw, normalizeChw } from '../../src/data/preprocess.js';
import { fashionMnistPngs, makeModels, postImage, softmax64, startApp, type Running, type TempModels } from '../serve/helpers.js';
import { randomBatch } from '../fixtures/batches.js';

const CFG = configFor('S_2-Wi_8', 4, 12, 5);

/** Mean soft-target cross-entropy of the float64 reference forward pass. */
function loss64(cfg: MlpConfig, w: MlpWeights, b: TrainBatch): number {
  const z = forwardReference(cfg, w, b.x, b.size).logits;
  const K = cfg.classes;
  let total = 0;
  for (let r = 0; r < b.size; r++) {
    const row = Array.from(z.subarray(r * K, (r + 1) * K));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    for (let k = 0; k < K; k++) total -= b.y[r * K + k] * (row[k] - lse);
  }
  return total / b.size;
}

describe('S_ architecture', () => {
  it('parses, names and counts: stem + depth square layers + head, no norms', () => {
    expect(parseArch('S_3-Wi_64')).toEqual({ depth: 3, width: 64, kind: 'standard' });
    expect(parseArch('B_3-Wi_64')).toEqual({ depth: 3, width: 64 });
    expect(() => parseArch('S_3-W_64')).toThrow(/S_<depth>-Wi_<width>/);
    const cfg = configFor('S_3-Wi_64', 4, 784, 10);
    expect(cfg).toEqual({ kind: 'standard', depth: 3, width: 64, expansion: 1, inputDim: 784, classes: 10 });
    expect(archName(cfg)).toBe('S_3-Wi_64');
    expect(paramCount(cfg)).toBe(784 * 64 + 64 + 3 * (64 * 64 + 64) + 64 * 10 + 10);
    expect(flopsPerImage(cfg)).toBe(2 * (784 * 64 + 3 * 64 * 64 + 64 * 10));
    const w = initWeights(cfg, 1);
    const named = namedTensors(w);
    expect(named.map((t) => t.name)).toEqual([
      'stem.weight', 'stem.bias', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias',
      'layers.2.weight', 'layers.2.bias', 'head.weight', 'head.bias',
    ]);
    expect(named.reduce((s, t) => s + t.data.length, 0)).toBe(paramCount(cfg));
    expect(paramSpecs(cfg).map((s) => s.name)).toEqual(named.map((t) => t.name));
  });

  it('the fused ort gradients equal finite differences of the float64 reference and tfjs’s gradients', async () => {
    const w = initWeights(CFG, 3);
    const b = randomBatch(CFG, 6, 4);
    const ortRes = await ortGradients(CFG, w, b, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const tfRes = await tfjsGradients(CFG, w, b);
    expect(Math.abs(ortRes.loss - loss64(CFG, w, b))).toBeLessThan(1e-5);
    expect(Math.abs(tfRes.loss - ortRes.loss)).toBeLessThan(1e-5);
    namedTensors(w).forEach((t, ti) => {
      for (let i = 0; i < t.data.length; i += 3) {
        // Central difference over the float32-representable perturbation actually applied.
        const v = t.data[i];
        t.data[i] = v + 1e-3;
        const up = loss64(CFG, w, b);
        const du = t.data[i] - v;
        t.data[i] = v - 1e-3;
        const down = loss64(CFG, w, b);
        const dd = v - t.data[i];
        t.data[i] = v;
        const fd = (up - down) / (du + dd);
        expect(Math.abs(ortRes.grads[ti][i] - fd), `${t.name}[${i}] ort`).toBeLessThan(2e-5 + 1e-3 * Math.abs(fd));
        expect(Math.abs(tfRes.grads[ti][i] - fd), `${t.name}[${i}] tfjs`).toBeLessThan(2e-5 + 1e-3 * Math.abs(fd));
      }
    });
  });

  it('one LION step on the ort and tfjs engines gives the same weights; predict equals the reference', async () => {
    const w = initWeights(CFG, 5);
    const b = randomBatch(CFG, 8, 6);
    const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 };
    const o = new OrtEngine({ executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const t = await createTfjs();
    try {
      await o.init(CFG, w);
      await t.init(CFG, w);
      await o.step(b, hyper);
      await t.step(b, hyper);
      const [wo, wt] = [await o.readWeights(), await t.readWeights()];
      expect(wo.layers).toHaveLength(2);
      namedTensors(wo).forEach((x, i) => {
        const y = namedTensors(wt)[i];
        for (let k = 0; k < x.data.length; k++) expect(Math.abs(x.data[k] - y.data[k]), x.name).toBeLessThan(1e-5);
      });
      const ref = forwardReference(CFG, wo, b.x, b.size).logits;
      const got = await o.predict(b.x, b.size);
      got.forEach((v, i) => expect(Math.abs(v - ref[i])).toBeLessThan(1e-4));
    } finally {
      await o.dispose();
      await t.dispose();
    }
  });
});

describe('S_ exported and served', () => {
  let models: TempModels;
  let srv: Running | undefined;
  afterAll(async () => {
    await srv?.close();
    await models?.cleanup();
  });

  it('exports (ONNX = float64 reference, weights read back as standard) and /classify serves it over a socket', async () => {
    models = await makeModels([{ name: 'std', arch: 'S_2-Wi_32', size: 28, channels: 1, labels: 'fashion-mnist', seed: 7 }]);
    const card = models.cards.std;
    expect(card.arch).toMatchObject({ name: 'S_2-Wi_32', depth: 2, width: 32 });
    expect(validateCard(card, 'card').params).toBe(paramCount(configFor('S_2-Wi_32', 4, 784, 10)));
    const bytes = await readFile(join(models.dir, 'std', 'model.onnx'));
    const { cfg, weights } = readOnnxWeights(bytes);
    expect(cfg).toMatchObject({ kind: 'standard', depth: 2, width: 32, inputDim: 784, classes: 10 });

    const [img] = await fashionMnistPngs(1);
    const x = normalizeChw(await decodeToChw(img.png, card.input), card.input, card.normalization);
    const ref = forwardReference(cfg, weights, x, 1);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
    try {
      const out = await session.run({ input: new ort.Tensor('float32', x, [1, x.length]) });
      (out.logits.data as Float32Array).forEach((v, i) => expect(Math.abs(v - ref.logits[i])).toBeLessThan(1e-4));
      (out.embedding.data as Float32Array).forEach((v, i) => expect(Math.abs(v - ref.embedding[i])).toBeLessThan(1e-4));
    } finally {
      await session.release();
    }

    srv = await startApp({ MODELS_DIR: models.dir });
    const res = await postImage(srv.base, '/classify?model=std&top_k=10', img.png);
    expect(res.status).toBe(200);
    const probs = softmax64(ref.logits);
    expect(res.json.predictions).toHaveLength(10);
    for (const p of res.json.predictions) expect(Math.abs(p.score - probs[p.index])).toBeLessThan(1e-5);
    const models2 = await fetch(`${srv.base}/models`).then((r) => r.json() as Promise<unknown>);
    expect(JSON.stringify(models2)).toContain('S_2-Wi_32');
  });
});
