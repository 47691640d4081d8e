// An imported scaling_mlps checkpoint served over a real socket agrees with PyTorch: a state_dict written by
// Debian's torch (reference key names, random init), imported by `importCheckpoint`, loaded by the server.
// /classify's probabilities match torch's softmax, and /v2 infer's logits match torch's logits, within 1e-4.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preprocessImage } from '../../src/data/preprocess.js';
import { prepareImportedParityModel, type ImportedParityModel } from '../fixtures/torch-parity.js';
import { postImage, startApp, type Running } from './helpers.js';

let work: string;
let server: Running;
let m: ImportedParityModel;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlp-import-serve-'));
  m = await prepareImportedParityModel(work, join(work, 'models'), 'torch-parity');
  server = await startApp({ MODELS_DIR: join(work, 'models') });
}, 120_000);
afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

describe('an imported PyTorch checkpoint, served', () => {
  it('/classify gives torch\'s softmax probabilities for each uploaded PNG', async () => {
    const classes = m.card.labels.length;
    for (let i = 0; i < m.images.length; i++) {
      const res = await postImage(server.base, `/classify?model=torch-parity&top_k=${classes}`, m.images[i].png);
      expect(res.status).toBe(200);
      const body = res.json as { predictions: { index: number; score: number }[] };
      const served = new Array<number>(classes).fill(NaN);
      for (const p of body.predictions) served[p.index] = p.score;
      expect(maxAbsDiff(served, m.probabilities[i])).toBeLessThan(1e-4);
    }
  });

  it('/v2/models/torch-parity/infer gives torch\'s logits for the preprocessed tensor', async () => {
    const geo = m.card.input;
    const dim = geo.channels * geo.width * geo.height;
    const inputs = await Promise.all(m.images.map((im) => preprocessImage(im.png, geo, m.card.normalization)));
    const data = inputs.flatMap((x) => Array.from(x));
    const res = await fetch(`${server.base}/v2/models/torch-parity/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ name: 'input', shape: [inputs.length, dim], datatype: 'FP32', data }],
        outputs: [{ name: 'logits' }],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] };
    const logits = body.outputs.find((o) => o.name === 'logits');
    expect(logits?.shape).toEqual([inputs.length, m.card.labels.length]);
    const diff = maxAbsDiff(logits!.data, m.logits.flat());
    expect(diff).toBeLessThan(1e-4);
  });
});
