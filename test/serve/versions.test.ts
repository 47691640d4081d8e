// Model management over a real socket: versioned directories (MODELS_DIR/NAME/VERSION/) beside the flat layout, the
// newest version answering unless a request pins one, /models and mlp_model_info showing what is served, hot reload
// under concurrent traffic without a dropped request (new version warmed up before it takes traffic, the old one
// drained), and the policy for a bad model among several (MODEL_LOAD_POLICY) at start-up and at reload.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareVersions } from '../../src/serve/model-repo.js';
import { assertNoLeak, directRun, encodePattern, makeModels, metricsText, postImage, sample, startApp, type TempModels } from './helpers.js';
import { copyModel, modelRepos, v2Get, v2Json } from './hostile.js';

const ADMIN = 'admin-key-for-versions-test';
let src: TempModels;
let png: Buffer;
const repos = modelRepos(() => src.dir);
const repo = repos.make;

beforeAll(async () => {
  // Two different weight sets of the same geometry: versions 1 and 2 of model "a" give different answers.
  src = await makeModels([
    { name: 'w1', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 4, seed: 31 },
    { name: 'w2', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 4, seed: 32 },
    { name: 'w3', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 4, seed: 33 },
  ]);
  png = await encodePattern(8, 8, (s) => s.greyscale().png());
}, 60_000);

afterAll(async () => {
  await src?.cleanup();
  await repos.cleanup();
});


const embed = async (base: string, query: string) => {
  const res = await fetch(`${base}/embed?${query}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) });
  return { status: res.status, version: res.headers.get('x-model-version'), json: (await res.json()) as any };
};

describe('compareVersions', () => {
  it('orders numbers numerically and other names naturally', () => {
    expect(['10', '9', '1', '2'].sort(compareVersions)).toEqual(['1', '2', '9', '10']);
    expect(['v1.10', 'v1.2', 'v1.9'].sort(compareVersions)).toEqual(['v1.2', 'v1.9', 'v1.10']);
    expect(['2024-02-01', '2023-12-31'].sort(compareVersions)).toEqual(['2023-12-31', '2024-02-01']);
  });
});

describe('versioned and flat layouts side by side', () => {
  it('the newest version answers; ?version= and /v2/.../versions/{v} pin one; /models and metrics list them', async () => {
    const dir = await repo({ 'a/1': 'w1', 'a/2': 'w2', 'b': 'w3', 'c/9': 'w1', 'c/10': 'w2' });
    const srv = await startApp({ MODELS_DIR: dir });
    try {
      const models = ((await (await fetch(`${srv.base}/models`)).json()) as any).models;
      expect(models.map((m: any) => [m.name, m.version, m.versions.map((v: any) => v.version)])).toEqual([
        ['a', '2', ['2', '1']],
        ['b', '1', ['1']],
        ['c', '10', ['10', '9']],
      ]);
      expect(models[0].versions[0]).toEqual({ version: '2', arch: 'B_1-Wi_16', classes: 4, embeddingDim: 16, provider: 'cpu' });

      const latest = await embed(srv.base, 'model=a');
      const v1 = await embed(srv.base, 'model=a&version=1');
      const v2 = await embed(srv.base, 'model=a&version=2');
      expect([latest.version, v1.version, v2.version]).toEqual(['2', '1', '2']);
      expect(latest.json.embedding).toEqual(v2.json.embedding);
      expect(v1.json.embedding).not.toEqual(v2.json.embedding);
      const ref1 = await directRun(join(dir, 'a', '1'), srv.app.models.find('a', '1')!.card, png);
      v1.json.embedding.forEach((x: number, i: number) => expect(Math.abs(x - ref1.embedding[i])).toBeLessThan(1e-4));
      expect((await embed(srv.base, 'model=b')).version).toBe('1');
      expect((await embed(srv.base, 'model=c')).version).toBe('10');
      const unknown = await embed(srv.base, 'model=a&version=3');
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.code).toBe('UNKNOWN_VERSION');
      assertNoLeak(unknown.json);

      const meta = await v2Get(srv.base, '/v2/models/a');
      expect(meta.json.versions).toEqual(['2', '1']);
      const rows = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.5) }] };
      expect((await v2Json(srv.base, '/v2/models/a/infer', rows)).json.model_version).toBe('2');
      expect((await v2Json(srv.base, '/v2/models/a/versions/1/infer', rows)).json.model_version).toBe('1');

      const text = await metricsText(srv.base);
      for (const [m, v] of [['a', '1'], ['a', '2'], ['b', '1'], ['c', '9'], ['c', '10']])
        expect(sample(text, `mlp_model_info{model="${m}",version="${v}",arch="B_1-Wi_16",provider="cpu"}`), `${m}:${v}`).toBe(1);
    } finally {
      await srv.close();
    }
  }, 30_000);

  it('MAX_MODEL_VERSIONS=1 serves the newest only; a card whose version disagrees with its directory fails start-up', async () => {
    const dir = await repo({ 'a/1': 'w1', 'a/2': 'w2' });
    const srv = await startApp({ MODELS_DIR: dir, MAX_MODEL_VERSIONS: '1' });
    try {
      expect(srv.app.models.versions.map((v) => v.key)).toEqual(['a:2']);
      expect((await embed(srv.base, 'model=a&version=1')).status).toBe(404);
    } finally {
      await srv.close();
    }
    const bad = await repo({ 'a/1': 'w1' });
    const card = join(bad, 'a', '1', 'model.json');
    const json = JSON.parse(await (await import('node:fs/promises')).readFile(card, 'utf8'));
    await writeFile(card, JSON.stringify({ ...json, version: '7' }));
    const err = await startApp({ MODELS_DIR: bad }).then(
      async (s) => (await s.close(), undefined),
      (e: Error) => e,
    );
    expect(err?.message).toBe(`${card}: field "version" is "7" but must equal its directory name "1"`);
  }, 30_000);
});

describe('hot reload (POST /admin/models/reload)', () => {
  it('under concurrent traffic: every request answered 200, old version until the swap, new one after, old generation drained', async () => {
    const dir = await repo({ 'a/1': 'w1' });
    const srv = await startApp({ MODELS_DIR: dir, ADMIN_API_KEYS: ADMIN, MAX_MODEL_VERSIONS: '1', BATCH_MAX_DELAY_MS: '30' });
    try {
      const oldPool = srv.app.models.pool!;
      const seen: { status: number; version: string | null; start: number }[] = [];
      let stop = false;
      const loop = async () => {
        while (!stop) {
          const start = Date.now();
          const r = await embed(srv.base, 'model=a');
          seen.push({ status: r.status, version: r.version, start });
        }
      };
      const clients = Array.from({ length: 6 }, loop);
      await new Promise((r) => setTimeout(r, 300));
      await copyModel(join(src.dir, 'w2'), join(dir, 'a', '2'), { name: 'a', version: '2' });
      const t0 = Date.now();
      const res = await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      const tSwap = Date.now();
      const report = (await res.json()) as any;
      expect(res.status).toBe(200);
      expect(report).toMatchObject({ changed: true, generation: 2, served: ['a:2'], loaded: ['a:2'], unloaded: ['a:1'], skipped: [] });
      await new Promise((r) => setTimeout(r, 400));
      stop = true;
      await Promise.all(clients);

      expect(seen.length).toBeGreaterThan(20);
      expect(seen.filter((s) => s.status !== 200)).toEqual([]);
      // While the new generation loaded and warmed up, the old one kept answering; once the reload has answered,
      // only the new one does.
      expect(seen.filter((s) => s.start >= t0 && s.version === '1').length).toBeGreaterThan(0);
      const after = seen.filter((s) => s.start >= tSwap);
      expect(after.length).toBeGreaterThan(5);
      expect(after.filter((s) => s.version !== '2')).toEqual([]);
      // The old generation drains and its workers stop.
      for (let i = 0; i < 50 && srv.app.models.retiring > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(srv.app.models.retiring).toBe(0);
      expect(oldPool.freeSlots()).toBe(0);
      expect(srv.app.models.pool).not.toBe(oldPool);

      const text = await metricsText(srv.base);
      expect(sample(text, 'mlp_model_info{model="a",version="2",arch="B_1-Wi_16",provider="cpu"}')).toBe(1);
      expect(text).not.toContain('mlp_model_info{model="a",version="1"');
      expect(sample(text, 'mlp_model_reloads_total{outcome="ok"}')).toBe(1);
      const models = ((await (await fetch(`${srv.base}/models`)).json()) as any).models;
      expect(models[0].versions.map((v: any) => v.version)).toEqual(['2']);

      // Nothing changed on disk: nothing reloaded.
      const again = (await (await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })).json()) as any;
      expect(again).toMatchObject({ changed: false, generation: 2, served: ['a:2'] });
    } finally {
      await srv.close();
    }
  }, 60_000);

  it('a request already running on the old version completes on it, even when the swap happens meanwhile', async () => {
    const dir = await repo({ 'a/1': 'w1' });
    const srv = await startApp({ MODELS_DIR: dir, ADMIN_API_KEYS: ADMIN, MAX_MODEL_VERSIONS: '1', BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '1500', BATCH_MAX_SIZE: '64' });
    try {
      // Queued for 1.5 s in the old generation's batcher while the reload swaps the new one in.
      const slow = embed(srv.base, 'model=a');
      await new Promise((r) => setTimeout(r, 100));
      await copyModel(join(src.dir, 'w2'), join(dir, 'a', '2'), { name: 'a', version: '2' });
      const res = await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: { 'x-api-key': ADMIN } });
      expect(res.status).toBe(200);
      expect(srv.app.models.retiring).toBe(1);
      const r = await slow;
      expect([r.status, r.version]).toEqual([200, '1']);
      for (let i = 0; i < 50 && srv.app.models.retiring > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(srv.app.models.retiring).toBe(0);
    } finally {
      await srv.close();
    }
  }, 30_000);

  it('a bad new version: refused with 422 and the old one keeps serving (fail); skipped and reported (skip-bad)', async () => {
    for (const policy of ['fail', 'skip-bad'] as const) {
      const dir = await repo({ 'a/1': 'w1', 'b/1': 'w3' });
      const srv = await startApp({ MODELS_DIR: dir, ADMIN_API_KEYS: ADMIN, MODEL_LOAD_POLICY: policy });
      try {
        // A corrupt model file in the new version directory.
        await copyModel(join(src.dir, 'w2'), join(dir, 'a', '2'), { name: 'a', version: '2' });
        await writeFile(join(dir, 'a', '2', 'model.onnx'), Buffer.from('not an onnx model'));
        const res = await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
        const body = (await res.json()) as any;
        assertNoLeak(body);
        if (policy === 'fail') {
          expect(res.status).toBe(422);
          expect(body.error.code).toBe('RELOAD_FAILED');
          expect(body.error.message).toMatch(/^the reload was refused and the models served are unchanged: a\/2\/model\.onnx: onnxruntime cannot load or run it/);
          expect(srv.app.models.generation).toBe(1);
          expect(sample(await metricsText(srv.base), 'mlp_model_reloads_total{outcome="failed"}')).toBe(1);
        } else {
          expect(res.status).toBe(200);
          expect(body.served).toEqual(['a:1', 'b:1']);
          expect(body.skipped).toEqual([{ path: 'a/2/model.onnx', reason: expect.stringMatching(/^a\/2\/model\.onnx: onnxruntime cannot load or run it/) }]);
        }
        expect((await embed(srv.base, 'model=a')).version).toBe('1');
        expect((await embed(srv.base, 'model=b')).status).toBe(200);
      } finally {
        await srv.close();
      }
    }
  }, 60_000);
});

describe('one bad model among several at start-up (MODEL_LOAD_POLICY)', () => {
  it('fail (default): a corrupt model.onnx stops start-up with an error naming the file', async () => {
    const dir = await repo({ good: 'w1', broken: 'w2' });
    const onnx = join(dir, 'broken', 'model.onnx');
    await writeFile(onnx, Buffer.from('garbage'));
    const srv = await startApp({ MODELS_DIR: dir }, { waitReady: false });
    try {
      const err = await srv.app.models.whenReady().then(() => undefined, (e: Error) => e);
      expect(err?.message).toMatch(new RegExp(`^${onnx}: onnxruntime cannot load or run it: .*Protobuf parsing failed`));
      expect(srv.app.models.state).toBe('failed');
      expect((await fetch(`${srv.base}/readyz`)).status).toBe(503);
    } finally {
      await srv.close();
    }
  }, 30_000);

  it('skip-bad: a corrupt model.onnx and a bad card are skipped with a reason; the rest is served', async () => {
    const dir = await repo({ good: 'w1', broken: 'w2', 'badcard/1': 'w3' });
    await writeFile(join(dir, 'broken', 'model.onnx'), Buffer.from('garbage'));
    await writeFile(join(dir, 'badcard', '1', 'model.json'), '{ "name": "badcard", ');
    const srv = await startApp({ MODELS_DIR: dir, MODEL_LOAD_POLICY: 'skip-bad' });
    try {
      expect(srv.app.models.list.map((m) => m.name)).toEqual(['good']);
      expect(srv.app.models.skipped.map((s) => s.path).sort()).toEqual(['badcard/1', 'broken/model.onnx']);
      expect(srv.app.models.skipped.find((s) => s.path === 'badcard/1')!.reason).toMatch(/^badcard\/1\/model\.json: field "\(root\)" is not valid JSON/);
      expect((await fetch(`${srv.base}/readyz`)).status).toBe(200);
      expect((await postImage(srv.base, '/classify', png)).status).toBe(200);
      expect((await postImage(srv.base, '/classify?model=broken', png)).status).toBe(404);
    } finally {
      await srv.close();
    }
  }, 30_000);

  it('skip-bad with nothing loadable still fails start-up, naming what was skipped', async () => {
    const dir = await repo({ broken: 'w2' });
    await writeFile(join(dir, 'broken', 'model.json'), '[]');
    const err = await startApp({ MODELS_DIR: dir, MODEL_LOAD_POLICY: 'skip-bad' }).then(
      async (s) => (await s.close(), undefined),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/holds no model .*skipped: broken\/model\.json: field "\(root\)"/);
  });
});
