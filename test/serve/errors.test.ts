// Every error path, provoked for real over a socket, answers in the API's format with nothing internal in it: no
// stack trace, no file path, no version. The test walks the whole error table (src/serve/errors.ts): a code added
// there without a way to provoke it here makes this test fail. The two codes no request can provoke on purpose
// (INTERNAL, INFERENCE_FAILED: our own faults) are checked through toPublicError with errors that carry a stack and
// paths.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errors, errorBody, toPublicError } from '../../src/serve/errors.js';
import { InferenceError } from '../../src/serve/worker-pool.js';
import { assertNoLeak, encodePattern, makeModels, pngHeaderOnly, postFiles, postImage, postLarge, startApp, type Running, type TempModels } from './helpers.js';
import { copyModel, gifWithFrames, rawRequest, v2Json } from './hostile.js';

const KEY = 'errors-test-inference-key';
const ADMIN = 'errors-test-admin-key-123';
let models: TempModels;
let png: Buffer;
const seen = new Map<string, number>();

beforeAll(async () => {
  models = await makeModels([{ name: 'e', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 3, seed: 41 }]);
  png = await encodePattern(8, 8, (s) => s.png());
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

/** Checks one error answer (either format) and records its code. */
function check(status: number, body: unknown, code: string, expectedStatus: number, v2 = false): void {
  expect({ code, status }).toEqual({ code, status: expectedStatus });
  assertNoLeak(body);
  const text = JSON.stringify(body);
  expect(text).not.toMatch(/Error:|\bat \w+ \(|\n\s+at /);
  if (v2) {
    expect(Object.keys(body as object)).toEqual(['error']);
    expect(typeof (body as { error: unknown }).error).toBe('string');
  } else {
    expect((body as { error: { code: string } }).error.code).toBe(code);
    expect(Object.keys((body as { error: object }).error).sort()).toEqual(['code', 'message']);
  }
  seen.set(code, (seen.get(code) ?? 0) + 1);
}

const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

describe('S1: limits, bad inputs, lookups (MAX_FILES=2, QUEUE_MAX=1, MAX_FRAMES=10, MAX_BODY_BYTES=65536)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, MAX_FILES: '2', QUEUE_MAX: '1', MAX_FRAMES: '10', MAX_BODY_BYTES: '65536', MAX_PIXELS: '1000000' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('client mistakes → 4xx', async () => {
    const p = (path: string, body: Buffer | string, type?: string) => postImage(srv.base, path, body, type);
    const c = (r: { status: number; json: any }, code: string, st: number) => check(r.status, r.json, code, st);
    c(await p('/classify?top_k=-3', png), 'INVALID_PARAMETER', 400);
    c(await p('/classify', Buffer.alloc(0)), 'EMPTY_BODY', 400);
    c(await postFiles(srv.base, '/classify', [], { a: 'b' }), 'NO_FILE', 400);
    c(await postFiles(srv.base, '/classify', [{ bytes: Buffer.alloc(0) }]), 'EMPTY_FILE', 400);
    const b = 'B0undary';
    const trunc = await fetch(`${srv.base}/classify`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${b}` },
      body: `--${b}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nabc`,
    });
    const t = await json(trunc);
    check(t.status, t.body, 'MALFORMED_MULTIPART', 400);
    c(await p('/classify', 'not an image'), 'UNDECODABLE_IMAGE', 400);
    c(await p('/classify?model=nope', png), 'UNKNOWN_MODEL', 404);
    c(await p('/classify?version=9', png), 'UNKNOWN_VERSION', 404);
    const nf = await json(await fetch(`${srv.base}/nope/../../etc`));
    check(nf.status, nf.body, 'NOT_FOUND', 404);
    const big = await postLarge(srv.base, '/classify', 100_000);
    check(big.status, JSON.parse(big.body), 'PAYLOAD_TOO_LARGE', 413);
    c(await postFiles(srv.base, '/classify', [{ bytes: png }, { bytes: png }, { bytes: png }]), 'TOO_MANY_FILES', 413);
    c(await p('/classify', pngHeaderOnly(5000, 5000)), 'TOO_MANY_PIXELS', 413);
    c(await p('/classify', gifWithFrames(50), 'image/gif'), 'TOO_MANY_FRAMES', 413);
    c(await p('/classify', 'x', 'text/plain'), 'UNSUPPORTED_MEDIA_TYPE', 415);
    const head = await rawRequest(srv.base, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`);
    check(head.status, JSON.parse(head.body), 'HEADERS_TOO_LARGE', 431);
    const forbidden = await json(await fetch(`${srv.base}/admin/models/reload`, { method: 'POST' }));
    check(forbidden.status, forbidden.body, 'FORBIDDEN', 403);
  });

  it('v2 mistakes → 4xx {"error"}', async () => {
    const bad = await v2Json(srv.base, '/v2/models/e/infer', '{');
    check(bad.status, bad.json, 'INVALID_REQUEST', 400, true);
    const rows = await v2Json(srv.base, '/v2/models/e/infer', { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 64], data: new Array(192).fill(0) }] });
    check(rows.status, rows.json, 'BATCH_TOO_LARGE', 413, true);
  });

  it('load shedding and our faults → 503 + Retry-After', async () => {
    const full = await postFiles(srv.base, '/classify', [{ bytes: png }, { bytes: png }]);
    check(full.status, full.json, 'QUEUE_FULL', 503);
    expect(full.headers.get('retry-after')).toBe('1');
    const pool = srv.app.models.pool!;
    pool.once('dispatch', (i: number) => pool.workers[i].postMessage(null));
    const crashed = await postImage(srv.base, '/classify', png);
    check(crashed.status, crashed.json, 'WORKER_RESTARTING', 503);
    await new Promise((r) => pool.once('replaced', r));
    srv.app.serving.draining = true;
    const draining = await postImage(srv.base, '/classify', png);
    check(draining.status, draining.json, 'SHUTTING_DOWN', 503);
    const v2 = await v2Json(srv.base, '/v2/models/e/infer', {});
    check(v2.status, v2.json, 'SHUTTING_DOWN', 503, true);
  });
});

describe('S2: keys, rate limit and reloads (API_KEYS, ADMIN_API_KEYS, RATE_LIMIT_MAX=4)', () => {
  let srv: Running;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlp-serve-errors-'));
    await copyModel(join(models.dir, 'e'), join(dir, 'e', '1'), { name: 'e', version: '1' });
    srv = await startApp({ MODELS_DIR: dir, API_KEYS: KEY, ADMIN_API_KEYS: ADMIN, RATE_LIMIT_MAX: '4' });
  }, 60_000);
  afterAll(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('401, 409, 422, 429', async () => {
    const un = await postImage(srv.base, '/classify', png);
    check(un.status, un.json, 'UNAUTHORIZED', 401);
    const admin = { authorization: `Bearer ${ADMIN}` };
    // A new version makes the first reload take a while; a second one meanwhile is refused.
    await copyModel(join(models.dir, 'e'), join(dir, 'e', '2'), { name: 'e', version: '2' });
    const first = fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: admin });
    await new Promise((r) => setTimeout(r, 20));
    const second = await json(await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: admin }));
    check(second.status, second.body, 'RELOAD_IN_PROGRESS', 409);
    expect((await first).status).toBe(200);
    await copyModel(join(models.dir, 'e'), join(dir, 'e', '3'), { name: 'e', version: '3' });
    await writeFile(join(dir, 'e', '3', 'model.json'), '{"name":"e","version":"3"}');
    const failed = await json(await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: admin }));
    check(failed.status, failed.body, 'RELOAD_FAILED', 422);
    const limited = await v2Json(srv.base, '/v2/models/e/infer', {}, { authorization: `Bearer ${KEY}` });
    check(limited.status, limited.json, 'RATE_LIMITED', 429, true);
  });
});

describe('S3: deadlines, admission and slow clients (REQUEST_TIMEOUT_MS=300, BATCH_MAX_DELAY_MS=2000, MAX_INFLIGHT_REQUESTS=1)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, REQUEST_TIMEOUT_MS: '300', BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '2000', MAX_INFLIGHT_REQUESTS: '1' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('504, 503 OVERLOADED, 408', async () => {
    const first = postImage(srv.base, '/classify', png);
    await new Promise((r) => setTimeout(r, 100));
    const over = await v2Json(srv.base, '/v2/models/e/infer', {});
    check(over.status, over.json, 'OVERLOADED', 503, true);
    expect(over.headers.get('retry-after')).toBe('1');
    const late = await first;
    check(late.status, late.json, 'DEADLINE_EXCEEDED', 504);
    const slow = await rawRequest(srv.base, `POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n`, [Buffer.from('a')], 0);
    check(slow.status, JSON.parse(slow.body), 'REQUEST_TIMEOUT', 408);
  }, 20_000);
});

describe('S5: teaching (PROBE_QUEUE_MAX=1)', () => {
  let srv: Running;
  let dir: string;
  beforeAll(async () => {
    // A writable copy: teaching writes into MODELS_DIR.
    dir = await mkdtemp(join(tmpdir(), 'errors-probe-'));
    await cp(join(models.dir, 'e'), join(dir, 'e'), { recursive: true });
    srv = await startApp({ MODELS_DIR: dir, ADMIN_API_KEYS: ADMIN, PROBE_QUEUE_MAX: '1' });
  }, 60_000);
  afterAll(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const teach = async (query: string, labels: string[]) => {
    const form = new FormData();
    for (const l of labels) form.append(l, new Blob([new Uint8Array(png)], { type: 'image/png' }), 'a.png');
    return json(await fetch(`${srv.base}/admin/models/e/probe?${query}`, { method: 'POST', body: form, headers: { authorization: `Bearer ${ADMIN}` } }));
  };
  const ten = [...Array(5).fill('a'), ...Array(5).fill('b')] as string[];

  it('400 INVALID_TRAINING_SET, 404 UNKNOWN_JOB, 409 MODEL_NAME_TAKEN, 503 PROBE_QUEUE_FULL', async () => {
    const one = await teach('name=t', Array(6).fill('a'));
    check(one.status, one.body, 'INVALID_TRAINING_SET', 400);
    const job = await json(await fetch(`${srv.base}/admin/jobs/nope`, { headers: { authorization: `Bearer ${ADMIN}` } }));
    check(job.status, job.body, 'UNKNOWN_JOB', 404);
    const taken = await teach('name=e', ten);
    check(taken.status, taken.body, 'MODEL_NAME_TAKEN', 409);
    // One job runs, one waits, the third is refused.
    const three = await Promise.all([teach('name=t1', ten), teach('name=t2', ten), teach('name=t3', ten)]);
    const full = three.filter((r) => r.status === 503);
    expect(three.map((r) => r.status).sort()).toEqual([202, 202, 503]);
    check(full[0].status, full[0].body, 'PROBE_QUEUE_FULL', 503);
  }, 30_000);
});

describe('while loading', () => {
  it('503 NOT_READY, then 200 once the model has loaded', async () => {
    const srv = await startApp({ MODELS_DIR: models.dir }, { holdLoading: true });
    try {
      const res = await postImage(srv.base, '/classify', png);
      check(res.status, res.json, 'NOT_READY', 503);
      srv.releaseLoading();
      await srv.app.models.whenReady();
      expect((await postImage(srv.base, '/classify', png)).status).toBe(200);
    } finally {
      await srv.close();
    }
  }, 60_000);
});

describe('our own faults', () => {
  it('INTERNAL and INFERENCE_FAILED keep the details in the log, not the answer', () => {
    const limits = { maxBodyBytes: 1, maxFiles: 1 };
    const internal = new Error('ENOENT: no such file, open /work/main/models/x/model.onnx');
    internal.stack = 'Error: ENOENT\n    at Object.openSync (node:fs:573:18)\n    at /work/main/src/serve/app.ts:12:3';
    const onnx = new InferenceError('Non-zero status code returned while running Gemm node. Name:/blocks.0/Gemm onnxruntime v1.30.0 /usr/lib/libonnxruntime.so');
    const weird = Object.assign(new Error('kaboom at /tmp/x.js:1:1'), { statusCode: 500, code: 'ERR_SOMETHING' });
    for (const [err, code] of [[internal, 'INTERNAL'], [onnx, 'INFERENCE_FAILED'], [weird, 'INTERNAL'], ['a string', 'INTERNAL'], [null, 'INTERNAL']] as const) {
      const pub = toPublicError(err, limits);
      expect(pub.status).toBe(500);
      for (const url of ['/classify', '/v2/models/x/infer']) check(pub.status, errorBody(pub, url), code, 500, url.startsWith('/v2'));
    }
  });

  it('every code of the error table was provoked above, except the one no client can see', () => {
    const unseen = Object.keys(Errors).filter((c) => !seen.has(c));
    expect(unseen).toEqual(['CLIENT_GONE']);
  });
});
