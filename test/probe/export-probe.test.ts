// A probe exported as a model: the folded head gives the probe's own logits, and the written model directory,
// run by onnxruntime on test images, classifies exactly as the probe scored them (same argmax, same accuracy).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import { decodeToChw, normalizeChw } from '../../src/data/preprocess.js';
import { inputDim, readCard } from '../../src/model/card.js';
import { foldedHead } from '../../src/probe/export-probe.js';
import { fitProbe, predictLogits, standardize } from '../../src/probe/logreg.js';
import { runProbe } from '../../src/probe/probe.js';
import { createRng, normal } from '../../src/util/rng.js';

process.env.MLP_CACHE_DIR ??= '/work/cache';
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('probe export', () => {
  it('folds the standardisation into the head: the same logits as the probe on raw features', () => {
    const rng = createRng(3);
    const rows = 60;
    const cols = 7;
    const data = Float64Array.from({ length: rows * cols }, (_, i) => 10 * (i % cols) + (1 + (i % cols)) * normal(rng) + (Math.floor(i / cols) % 3) * 2);
    const y = Int32Array.from({ length: rows }, (_, i) => i % 3);
    const x = { data, rows, cols };
    const fit = fitProbe(x, y, 3, { seed: 1 });
    const expected = predictLogits(fit.model, standardize(x, fit.standardizer));
    const head = foldedHead(fit);
    for (let i = 0; i < rows; i++)
      for (let c = 0; c < 3; c++) {
        let s = head.bias[c];
        for (let j = 0; j < cols; j++) s += data[i * cols + j] * head.weight[j * 3 + c];
        expect(s).toBeCloseTo(expected[i * 3 + c], 3);
      }
  });

  it('writes a model onnxruntime serves with the probe\'s test accuracy, and a card naming its base', async () => {
    const out = await mkdtemp(join(tmpdir(), 'probe-export-'));
    dirs.push(out);
    const dir = join(out, 'fm-probe');
    const report = await runProbe({ data: 'fashion-mnist', trainN: 100, testN: 200, source: { kind: 'local', modelDir: 'models/fashion-mlp' }, exportTo: { dir, name: 'fm-probe' } });
    const card = await readCard(dir);
    const base = await readCard('models/fashion-mlp');
    expect(card.provenance).toMatchObject({ kind: 'probe', base: { name: 'fashion-mlp', version: base.version }, lambda: report.lambda, seed: 0 });
    expect(card.metrics.valAccuracy).toBe(report.valAccuracy);
    expect(card.input).toEqual(base.input);
    expect(card.normalization).toEqual(base.normalization);

    const src = await openDataSource('fashion-mnist');
    expect(card.labels).toEqual(src.train.classes);
    const n = 200;
    const d = inputDim(card);
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) normalizeChw(await decodeToChw(await src.test.image(i), card.input), card.input, card.normalization, x, i * d);
    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    const baseSession = await ort.InferenceSession.create('models/fashion-mlp/model.onnx');
    try {
      const res = await session.run({ input: new ort.Tensor('float32', x, [n, d]) });
      const baseRes = await baseSession.run({ input: new ort.Tensor('float32', x, [n, d]) });
      // The body is the base model's: the embedding is unchanged.
      expect(res.embedding.data).toEqual(baseRes.embedding.data);
      const logits = res.logits.data as Float32Array;
      const k = card.labels.length;
      let correct = 0;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (logits[i * k + c] > logits[i * k + best]) best = c;
        if (best === src.test.label(i)) correct++;
      }
      expect(correct / n).toBeCloseTo(report.testAccuracy, 2);
    } finally {
      await session.release();
      await baseSession.release();
    }
  }, 60_000);
});
