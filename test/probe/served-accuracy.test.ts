// The bundled models as published: a fixed, seeded sample of 2,000 Fashion-MNIST test images uploaded one by one as
// 28×28 PNGs to a real server's /classify (real socket, onnxruntime, sharp), with some concurrency. The accuracy
// must lie within the sample's 99% binomial interval around the card's test figure: a model, preprocessing or
// serving change that moves accuracy, or a card that overstates it, fails here. The full 10,000-image figure is
// `npm run eval:served`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import { readCard } from '../../src/model/card.js';
import { servedAccuracy } from '../../src/probe/classify.js';
import { createRng, permutation } from '../../src/util/rng.js';
import { startApp, type Running } from '../serve/helpers.js';

const SAMPLE = 2000;
const SEED = 12345;
/** Two-sided 99%: the standard normal's 0.995 quantile. */
const Z99 = 2.576;

/** Wilson score interval of a binomial proportion p over n trials. */
function wilson(p: number, n: number, z: number): [number, number] {
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = ((z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n)));
  return [centre - half, centre + half];
}

let server: Running;
beforeAll(async () => {
  server = await startApp({ MODELS_DIR: 'models' });
}, 120_000);
afterAll(async () => {
  await server?.close();
});

describe('the published accuracy of the bundled models', () => {
  for (const model of ['fashion-mlp', 'fashion-mlp-tta']) {
    it(`${model}: a seeded sample of ${SAMPLE} test images, served, lies in the 99% interval of the card's test top-1`, async () => {
      const card = await readCard(`models/${model}`);
      const published = card.metrics.testTop1;
      expect(published).toBeGreaterThan(0.8);
      const src = await openDataSource('fashion-mnist');
      const sample = permutation(createRng(SEED), src.test.size).subarray(0, SAMPLE);
      const r = await servedAccuracy(src.test, { url: server.base, model, indices: sample, concurrency: 8 });
      expect(r.images).toBe(SAMPLE);
      expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(SAMPLE);
      expect(r.correct).toBe(r.confusion.reduce((s, row, i) => s + row[i], 0));
      const [lo, hi] = wilson(published, SAMPLE, Z99);
      expect(r.top1, `served ${r.correct}/${SAMPLE}; card ${published}; 99% interval [${lo.toFixed(4)}, ${hi.toFixed(4)}]`).toBeGreaterThanOrEqual(lo);
      expect(r.top1).toBeLessThanOrEqual(hi);
    }, 120_000);
  }

  it('the interval is the textbook one (Wilson, z = 2.576): at 91% over 2,000 images about ±1.65 points', () => {
    const [lo, hi] = wilson(0.91, 2000, Z99);
    expect(lo).toBeCloseTo(0.8921, 4);
    expect(hi).toBeCloseTo(0.9252, 4);
  });

  it('EXPECTED FAILURE - an unknown model is reported with the API error, not counted as wrong', async () => {
    const src = await openDataSource('fashion-mnist');
    await expect(servedAccuracy(src.test, { url: server.base, model: 'no-such-model', limit: 3 })).rejects.toThrow(/404 UNKNOWN_MODEL/);
  });
});
