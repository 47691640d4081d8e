// Batching and back-pressure over a real socket: concurrent requests share batches (seen in mlp_batch_size),
// BATCH_MAX_SIZE=1 turns batching off, a full queue sheds with 503 + Retry-After, a deadline gives 504, and a worker
// that dies mid-batch fails only that batch's requests (503) and is replaced.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePattern, makeModels, metricsText, postFiles, postImage, sample, startApp, type Running, type TempModels } from './helpers.js';

let models: TempModels;
let png: Buffer;
const M = 'm';
const batchCount = (t: string) => sample(t, `mlp_batch_size_count{model="${M}"}`);
const batchSum = (t: string) => sample(t, `mlp_batch_size_sum{model="${M}"}`);

beforeAll(async () => {
  models = await makeModels([{ name: M, arch: 'B_2-Wi_64', channels: 3, size: 32, seed: 3 }]);
  png = await encodePattern(32, 32, (s) => s.png());
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

describe('dynamic batching (BATCH_POLICY=fixed, BATCH_MAX_SIZE=16, BATCH_MAX_DELAY_MS=10000, QUEUE_MAX=16)', () => {
  let srv: Running;
  beforeAll(async () => {
    // The fixed policy sends a batch when it is full and holds a partial one for the delay: with a delay no test
    // reaches, the batches that form depend on the count of images alone, not on how fast they arrive.
    srv = await startApp({ MODELS_DIR: models.dir, BATCH_POLICY: 'fixed', BATCH_MAX_SIZE: '16', BATCH_MAX_DELAY_MS: '10000', QUEUE_MAX: '16', MAX_FILES: '32' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('16 concurrent requests run in one batch, every image counted once', async () => {
    const before = await metricsText(srv.base);
    const res = await Promise.all(Array.from({ length: 16 }, () => postImage(srv.base, '/classify', png)));
    expect(res.map((r) => r.status)).toEqual(new Array(16).fill(200));
    // Same image, same model: every request gets the same answer, whatever batch it rode in.
    for (const r of res) expect(r.json).toEqual(res[0].json);
    const after = await metricsText(srv.base);
    const batches = batchCount(after) - batchCount(before);
    expect(batchSum(after) - batchSum(before)).toBe(16);
    expect(batches).toBe(1);
    // The queue-wait histogram saw each image; the batch-size histogram saw a batch of more than 8.
    expect(sample(after, `mlp_queue_wait_seconds_count{model="${M}"}`) - sample(before, `mlp_queue_wait_seconds_count{model="${M}"}`)).toBe(16);
    expect(sample(after, `mlp_batch_size_bucket{le="+Inf",model="${M}"}`) - sample(after, `mlp_batch_size_bucket{le="8",model="${M}"}`)).toBe(1);
  });

  it('a request that cannot fit in the queue → 503 QUEUE_FULL with Retry-After, and nothing of it is queued', async () => {
    const res = await postFiles(srv.base, '/classify', Array.from({ length: 17 }, () => ({ bytes: png })));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.json).toEqual({ error: { code: 'QUEUE_FULL', message: expect.stringContaining('capacity') } });
    const text = await metricsText(srv.base);
    expect(sample(text, `mlp_rejections_total{model="${M}",reason="queue_full"}`)).toBe(1);
    expect(sample(text, `mlp_requests_total{route="/classify",model="${M}",outcome="rejected"}`)).toBe(1);
    expect(sample(text, `mlp_queue_depth{model="${M}"}`)).toBe(0);
    expect((await postFiles(srv.base, '/classify', Array.from({ length: 16 }, () => ({ bytes: png })))).status).toBe(200);
  });
});

describe('BATCH_MAX_SIZE=1 turns batching off', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, BATCH_MAX_SIZE: '1', BATCH_MAX_DELAY_MS: '1000' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('8 concurrent requests → 8 batches of one, without waiting for the delay', async () => {
    const t0 = Date.now();
    const res = await Promise.all(Array.from({ length: 8 }, () => postImage(srv.base, '/classify', png)));
    expect(Date.now() - t0).toBeLessThan(900);
    expect(res.every((r) => r.status === 200)).toBe(true);
    const text = await metricsText(srv.base);
    expect(batchCount(text)).toBe(8);
    expect(batchSum(text)).toBe(8);
  });
});

describe('the default adaptive policy (BATCH_MAX_DELAY_MS=3000)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, BATCH_MAX_DELAY_MS: '3000' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('answers a lone request without holding it for companions that are not coming', async () => {
    expect(srv.config.batchPolicy).toBe('adaptive');
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) expect((await postImage(srv.base, '/classify', png)).status).toBe(200);
    // The fixed policy would hold each of them 3 s.
    expect(Date.now() - t0).toBeLessThan(2500);
    const text = await metricsText(srv.base);
    expect(sample(text, `mlp_queue_wait_seconds_count{model="${M}"}`)).toBe(3);
    expect(sample(text, `mlp_queue_wait_seconds_bucket{le="0.1",model="${M}"}`)).toBe(3);
  });
});

describe('deadline (BATCH_POLICY=fixed, REQUEST_TIMEOUT_MS=80, BATCH_MAX_DELAY_MS=3000)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, BATCH_POLICY: 'fixed', REQUEST_TIMEOUT_MS: '80', BATCH_MAX_DELAY_MS: '3000' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('a request still queued at its deadline → 504 DEADLINE_EXCEEDED, and it leaves the queue', async () => {
    const t0 = Date.now();
    const res = await postImage(srv.base, '/classify', png);
    const took = Date.now() - t0;
    expect(res.status).toBe(504);
    expect(res.json).toEqual({ error: { code: 'DEADLINE_EXCEEDED', message: 'the request did not complete within 80 ms' } });
    expect(took).toBeLessThan(2000);
    const text = await metricsText(srv.base);
    expect(sample(text, `mlp_queue_depth{model="${M}"}`)).toBe(0);
    expect(sample(text, `mlp_rejections_total{model="${M}",reason="deadline_exceeded"}`)).toBe(1);
    expect(sample(text, `mlp_requests_total{route="/classify",model="${M}",outcome="timeout"}`)).toBe(1);
    expect(batchCount(text)).toBe(0);
  });
});

describe('a worker that dies mid-batch', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, BATCH_MAX_SIZE: '8', BATCH_MAX_DELAY_MS: '20' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('fails only that batch, with 503 WORKER_RESTARTING; its replacement serves the next requests', async () => {
    const pool = srv.app.models.pool!;
    const restarts = pool.restarts;
    // Just before the batch is posted, the worker is sent a message that makes it crash: it dies with the batch
    // unread, as after a fatal error (a real crash, not terminate(), which could stop it inside onnxruntime).
    pool.once('dispatch', (index: number) => pool.workers[index].postMessage(null));
    const doomed = await postFiles(srv.base, '/embed', Array.from({ length: 8 }, () => ({ bytes: png })));
    expect(doomed.status).toBe(503);
    expect(doomed.json).toEqual({ error: { code: 'WORKER_RESTARTING', message: expect.any(String) } });
    expect(doomed.headers.get('retry-after')).toBe('1');
    // Requests sent while the replacement starts wait for it in the queue instead of failing.
    const next = await Promise.all(Array.from({ length: 3 }, () => postImage(srv.base, '/embed', png)));
    expect(next.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(pool.restarts).toBe(restarts + 1);
    expect((await fetch(`${srv.base}/readyz`)).status).toBe(200);
    const text = await metricsText(srv.base);
    expect(sample(text, `mlp_requests_total{route="/embed",model="${M}",outcome="rejected"}`)).toBe(1);
    expect(sample(text, `mlp_requests_total{route="/embed",model="${M}",outcome="ok"}`)).toBe(3);
  });
});
