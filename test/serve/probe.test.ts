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
import { localEmbeddings, toUploadBytes } from '../../src/probe/embeddings.js';
import { evaluateProbe, fitProbe } from '../../src/probe/logreg.js';
import { runProbe } from '../../src/probe/probe.js';
import { spawnServer, startApp, withTimeout, type Running } from './helpers.js';

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

describe('transfer', () => {
  it('MNIST digits from 50 training images each: served accuracy on 1,000 test images ≥ the library probe\'s on the same images (−1 point)', async () => {
    const mn = await openDataSource('mnist');
    const picked: number[] = [];
    const per = new Array(10).fill(0);
    for (let i = 0; picked.length < 500; i++) if (per[mn.train.label(i)]++ < 50) picked.push(i);
    const accepted = await teach('fashion-mlp', 'name=digits&seed=0', await parts(mn.train, picked));
    expect(accepted.status).toBe(202);
    const job = await waitJob(accepted.json.job);
    expect(job).toMatchObject({ status: 'done', model: 'digits', images: 500 });
    const served = await servedAccuracy('digits', mn.test, 1000);

    const list = (ids: number[]) => ({ size: ids.length, image: (k: number) => mn.train.image(ids[k]) });
    const xTrain = await localEmbeddings('models/fashion-mlp', list(picked));
    const fit = fitProbe(xTrain, Int32Array.from(picked, (i) => mn.train.label(i)), 10, { seed: 0 });
    const test = Array.from({ length: 1000 }, (_, i) => i);
    const xTest = await localEmbeddings('models/fashion-mlp', { size: 1000, image: (k) => mn.test.image(test[k]) });
    const library = evaluateProbe(fit, xTest, Int32Array.from(test, (i) => mn.test.label(i))).accuracy;
    console.log(`mnist 500: served ${served}, library ${library}, λ ${job.lambda} (library ${fit.lambda}), val ${job.valAccuracy}`);
    expect(served).toBeGreaterThanOrEqual(library - 0.01);
    expect(served).toBeGreaterThan(0.5); // chance is 0.1

    // Teaching the same name again adds a version, which then answers.
    const again = await teach('fashion-mlp', 'name=digits', await parts(mn.train, picked.slice(0, 100)));
    expect(await waitJob(again.json.job)).toMatchObject({ status: 'done', model: 'digits', version: '2' });
    const res = await fetch(`${srv.base}/classify?model=digits`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array((await parts(mn.test, [0]))[0].bytes) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-model-version')).toBe('2');
  }, 120_000);
});

describe('EXPECTED FAILURE - bad teaching requests', () => {
  it('unknown base, one label, too few images, an undecodable image named by its part, an unsafe name, no admin key', async () => {
    const fm = await openDataSource('fashion-mnist');
    const good = await parts(fm.train, Array.from({ length: 60 }, (_, i) => i));
    const err = (r: { status: number; json: any }, status: number, code: string, message?: RegExp) => {
      expect({ status: r.status, code: r.json.error?.code }).toEqual({ status, code });
      if (message) expect(r.json.error.message).toMatch(message);
    };
    err(await teach('no-such-model', 'name=x', good), 404, 'UNKNOWN_MODEL');
    err(await teach('fashion-mlp', 'name=x', good.map((p) => ({ ...p, label: 'same' }))), 400, 'INVALID_TRAINING_SET', /at least 2 labels/);
    const twoLabels = [...good.slice(0, 10).map((p) => ({ ...p, label: 'a' })), ...good.slice(10, 13).map((p) => ({ ...p, label: 'b' }))];
    err(await teach('fashion-mlp', 'name=x', twoLabels), 400, 'INVALID_TRAINING_SET', /at least 5 images.*"b" \(3\)/);
    const broken = [...good.slice(0, 10), { label: 'Bag', bytes: new TextEncoder().encode('not an image'), file: 'broken.png' }];
    err(await teach('fashion-mlp', 'name=x', broken), 400, 'UNDECODABLE_IMAGE', /part 11 \(label "Bag", file "broken.png"\)/);
    err(await teach('fashion-mlp', 'name=..%2Fescape', good), 400, 'INVALID_PARAMETER', /name/);
    err(await teach('fashion-mlp', 'name=x', good, {}), 401, 'UNAUTHORIZED');
    expect(await readdir(join(dir, 'models'))).not.toContain('x');
  }, 60_000);
});

describe('shutdown', () => {
  it('SIGTERM while a job runs: the job is abandoned, no model directory (or staging directory) is left, exit 0', async () => {
    const models = join(dir, 'sigterm-models');
    await cp(join(dir, 'models', 'fashion-mlp'), join(models, 'fashion-mlp'), { recursive: true });
    const srv = await spawnServer({ GRPC_PORT: 'off', MODELS_DIR: models, ADMIN_API_KEYS: ADMIN });
    const { base, logs } = srv;
    try {
      const fm = await openDataSource('fashion-mnist');
      const form = new FormData();
      for (const p of await parts(fm.train, Array.from({ length: 1000 }, (_, i) => i)))
        form.append(p.label, new Blob([new Uint8Array(p.bytes)], { type: 'image/png' }), 'x.png');
      const res = await fetch(`${base}/admin/models/fashion-mlp/probe?name=cut-short`, { method: 'POST', body: form, headers: auth });
      expect(res.status).toBe(202);
      const { job } = (await res.json()) as any;
      for (;;) {
        const j = (await (await fetch(`${base}/admin/jobs/${job}`, { headers: auth })).json()) as any;
        if (j.status === 'running') break;
        expect(j.status).toBe('queued');
        await new Promise((r) => setTimeout(r, 20));
      }
      srv.child.kill('SIGTERM');
      const { code } = await withTimeout(srv.exit, 30_000, 'exit after SIGTERM');
      expect({ code, logs: code === 0 ? [] : logs }).toEqual({ code: 0, logs: [] });
      expect(await readdir(models)).toEqual(['fashion-mlp']);
      expect(logs.join('\n')).toMatch(/probe job failed.*abandoned|abandoned: the server shut down/);
    } finally {
      if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
    }
  }, 90_000);
});
