// The bundled default model, end to end: Fashion-MNIST test images uploaded one by one as 28×28 PNGs to a real
// server's /classify (real socket, onnxruntime, sharp), scored by servedAccuracy. The full 10,000-image figure is
// `npm run eval:served`; here the first 500 must agree with the card, and the client must count correctly.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import { readCard } from '../../src/model/card.js';
import { servedAccuracy } from '../../src/probe/classify.js';
import { startApp, type Running } from '../serve/helpers.js';

let server: Running;
beforeAll(async () => {
  server = await startApp({ MODELS_DIR: 'models' });
}, 120_000);
afterAll(async () => {
  await server?.close();
});

describe('servedAccuracy on the bundled default model', () => {
  it('scores the first 500 Fashion-MNIST test images near the card\'s test top-1', async () => {
    const card = await readCard('models/fashion-mlp');
    expect(card.provenance.kind).toBe('trained');
    expect(card.metrics.testTop1).toBeGreaterThanOrEqual(0.9);
    const src = await openDataSource('fashion-mnist');
    const r = await servedAccuracy(src.test, { url: server.base, limit: 500, concurrency: 8 });
    expect(r.images).toBe(500);
    expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(500);
    expect(r.correct).toBe(r.confusion.reduce((s, row, i) => s + row[i], 0));
    // 500 images: the binomial standard error at 91% is 1.3 points; 4 points below the card means something broke.
    expect(r.top1).toBeGreaterThan(card.metrics.testTop1 - 0.04);
  }, 120_000);

  it('EXPECTED FAILURE - an unknown model is reported with the API error, not counted as wrong', async () => {
    const src = await openDataSource('fashion-mnist');
    await expect(servedAccuracy(src.test, { url: server.base, model: 'no-such-model', limit: 3 })).rejects.toThrow(/404 UNKNOWN_MODEL/);
  });
});
