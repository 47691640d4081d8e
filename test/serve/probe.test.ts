// Teaching over HTTP, real socket and real onnxruntime, the bundled fashion-mlp as the base: 10 Fashion-MNIST classes
// from 20 images each, then /classify?model=… scored on 1,000 test images against the library probe on the same
// images (and the same head as `npm run probe -- --export`), MNIST digits from 50 each (transfer), the requests
// that must be refused, and a teach job abandoned by shutdown leaving no model directory behind.

import { cp, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import type { Dataset } from '../../src/data/dataset.js';
import { readOnnxWeights } from '../../src/export/export.js';
import { toUploadBytes } from '../../src/probe/embeddings.js';
import { runProbe } from '../../src/probe/probe.js';
import { startApp, type Running } from './helpers.js';

process.env.MLP_CACHE_DIR ??= '/work/cache';
const ADMIN = 'admin-key-for-probe-tests-0123';
const auth = { authorization: `Bearer ${ADMIN}` };
let dir: string;
let srv: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'probe-serve-'));
  await cp('models/fashion-mlp/model.onnx', join(dir, 'models', 'fashion-mlp', 'model.onnx'));
  await cp('models/fashion-mlp/model.json', join(dir, 'models', 'fashion-mlp', 'model.json'));
  srv = await startApp({ MODELS_DIR: join(dir, 'models'), ADMIN_API_KEYS: ADMIN });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Part = { label: string; bytes: Uint8Array; file?: string };

async function parts(ds: Dataset, indices: number[]): Promise<Part[]> {
  return Promise.all(indices.map(async (i) => ({ label: ds.classes[ds.label(i)], bytes: await toUploadBytes(await ds.image(i)), file: `${i}.png` })));
}

async function teach(base: string, query: string, ps: Part[], headers: Record<string, string> = auth) {
  const form = new FormData();
  for (const p of ps) form.append(p.label, new Blob([new Uint8Array(p.bytes)], { type: 'image/png' }), p.file ?? 'x.png');
  const res = await fetch(`${srv.base}/admin/models/${base}/probe?${query}`, { method: 'POST', body: form, headers });
  return { status: res.status, json: (await res.json()) as any };
}

async function waitJob(id: string): Promise<any> {
  for (;;) {
    const res = await fetch(`${srv.base}/admin/jobs/${id}`, { headers: auth });
    const j = (await res.json()) as any;
    if (j.status === 'done' || j.status === 'failed') return j;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Top-1 accuracy of /classify?model= on the first n test images, 64 per multipart request. */
async function servedAccuracy(model: string, ds: Dataset, n: number): Promise<number> {
  let correct = 0;
  for (let start = 0; start < n; start += 64) {
    const idx = Array.from({ length: Math.min(64, n - start) }, (_, k) => start + k);
    const form = new FormData();
    for (const p of await parts(ds, idx)) form.append('image', new Blob([new Uint8Array(p.bytes)], { type: 'image/png' }), 'x.png');
    const res = await fetch(`${srv.base}/classify?model=${model}&top_k=1`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    body.results.forEach((r: any, k: number) => (correct += r.predictions[0].label === ds.classes[ds.label(idx[k])] ? 1 : 0));
  }
  return correct / n;
}

describe('teaching a classifier over HTTP', () => {
  it('10 Fashion-MNIST classes from the first 200 training images: served accuracy ≥ the library probe\'s (−1 point), the same head as --export', async () => {
    const fm = await openDataSource('fashion-mnist');
    const upload = await parts(fm.train, Array.from({ length: 200 }, (_, i) => i));
    const t0 = performance.now();
    const accepted = await teach('fashion-mlp', 'name=fm-taught', upload);
    expect(accepted.status).toBe(202);
    expect(accepted.json).toEqual({ job: expect.any(String), status: 'queued' });
    const job = await waitJob(accepted.json.job);
    const jobSeconds = (performance.now() - t0) / 1000;
    expect(job).toMatchObject({ status: 'done', model: 'fm-taught', version: '1', base: 'fashion-mlp', images: 200 });

    const out = join(dir, 'export', 'fm-export');
    const report = await runProbe({ data: 'fashion-mnist', trainN: 200, testN: 1000, source: { kind: 'local', modelDir: 'models/fashion-mlp' }, exportTo: { dir: out, name: 'fm-export' } });
    const served = await servedAccuracy('fm-taught', fm.test, 1000);
    console.log(`fashion 200: served ${served}, library ${report.testAccuracy}, λ ${report.lambda} vs ${job.lambda}, job ${jobSeconds.toFixed(1)} s (fit ${job.fitSeconds.toFixed(2)} s)`);
    expect(job.lambda).toBe(report.lambda);
    expect(served).toBeGreaterThanOrEqual(report.testAccuracy - 0.01);

    // The same head, column by column (the upload's labels are in order of first appearance, the export's in class order).
    const httpModel = readOnnxWeights(new Uint8Array(await readFile(join(dir, 'models', 'fm-taught', '1', 'model.onnx'))));
    const cliModel = readOnnxWeights(new Uint8Array(await readFile(join(out, 'model.onnx'))));
    const hl = httpModel.card!.labels;
    const cl = cliModel.card!.labels;
    expect([...hl].sort()).toEqual([...cl].sort());
    const k = cl.length;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let c = 0; c < k; c++) {
      const h = hl.indexOf(cl[c]);
      maxDiff = Math.max(maxDiff, Math.abs(httpModel.weights.head.bias[h] - cliModel.weights.head.bias[c]));
      for (let j = 0; j < cliModel.cfg.width; j++) {
        const a = httpModel.weights.head.weight[j * k + h];
        const b = cliModel.weights.head.weight[j * k + c];
        maxDiff = Math.max(maxDiff, Math.abs(a - b));
        maxAbs = Math.max(maxAbs, Math.abs(b));
      }
    }
    console.log(`head parity: max |Δ| ${maxDiff.toExponential(2)} (max |w| ${maxAbs.toFixed(3)})`);
    expect(maxDiff).toBeLessThan(1e-5 * Math.max(1, maxAbs));
    // The body is the base model's, untouched.
    const baseModel = readOnnxWeights(new Uint8Array(await readFile('models/fashion-mlp/model.onnx')));
    expect(httpModel.weights.stem.weight).toEqual(baseModel.weights.stem.weight);
  }, 120_000);
});
