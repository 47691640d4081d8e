// Security over a real socket: request limits (body, parts, files, pixels, frames, header size, slow uploads),
// decompression bombs refused from their headers, vector formats only when enabled, no path traversal through model
// names or versions, API keys (inference and admin), rate limiting, CORS off by default, security headers, and no
// stack trace, file path or version in any error answer.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { keyMatches, presentedKey } from '../../src/serve/plugins/security.js';
import { createHash } from 'node:crypto';
import {
  assertNoLeak,
  encodePattern,
  makeModels,
  metricsText,
  pngHeaderOnly,
  postFiles,
  postImage,
  postLarge,
  sample,
  startApp,
  type Running,
  type TempModels,
} from './helpers.js';
import { gifWithFrames, rawRequest, v2Get, v2Json } from './hostile.js';

let models: TempModels;
let png: Buffer;
const KEY = 'inference-key-0123456789';
const KEY2 = 'inference-key-abcdefghij';
const ADMIN = 'admin-key-0123456789abcdef';

beforeAll(async () => {
  models = await makeModels([{ name: 'tiny', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 3, seed: 11 }]);
  png = await encodePattern(8, 8, (s) => s.png());
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

function expectError(res: { status: number; json: any }, status: number, code: string): void {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
  expect(Object.keys(res.json.error).sort()).toEqual(['code', 'message']);
  assertNoLeak(res.json);
}

describe('limits (MAX_BODY_BYTES=65536, MAX_FILES=4, MAX_FRAMES=100, MAX_PIXELS=1000000, REQUEST_TIMEOUT_MS=1500)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, MAX_BODY_BYTES: '65536', MAX_FILES: '4', MAX_FRAMES: '100', MAX_PIXELS: '1000000', REQUEST_TIMEOUT_MS: '1500' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('a body, or the sum of the files, over MAX_BODY_BYTES → 413 PAYLOAD_TOO_LARGE', async () => {
    const raw = await postLarge(srv.base, '/classify', 70_000);
    expectError({ status: raw.status, json: JSON.parse(raw.body) }, 413, 'PAYLOAD_TOO_LARGE');
    const half = Buffer.alloc(40_000, 3);
    expectError(await postFiles(srv.base, '/classify', [{ bytes: half }, { bytes: half }]), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('more file parts than MAX_FILES → 413 TOO_MANY_FILES; a flood of form fields → 413', async () => {
    expectError(await postFiles(srv.base, '/classify', Array.from({ length: 5 }, () => ({ bytes: png }))), 413, 'TOO_MANY_FILES');
    const fields = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, 'x']));
    const res = await postFiles(srv.base, '/classify', [{ bytes: png }], fields);
    expect(res.status).toBe(413);
    assertNoLeak(res.json);
  });

  it('decompression bombs are refused from the header, fast: a 65000×65000 JPEG, a 20000×20000 PNG, a 2000-frame GIF', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).jpeg().toBuffer();
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    jpeg.writeUInt16BE(65000, sof + 5);
    jpeg.writeUInt16BE(65000, sof + 7);
    const gif = gifWithFrames(2000);
    expect(gif.length).toBeLessThan(65536);
    expect((await sharp(gif).metadata()).pages).toBe(2000);
    const t0 = Date.now();
    expectError(await postImage(srv.base, '/classify', jpeg, 'image/jpeg'), 413, 'TOO_MANY_PIXELS');
    expectError(await postImage(srv.base, '/classify', pngHeaderOnly(20000, 20000)), 413, 'TOO_MANY_PIXELS');
    const frames = await postImage(srv.base, '/classify', gif, 'image/gif');
    expectError(frames, 413, 'TOO_MANY_FRAMES');
    expect(frames.json.error.message).toBe('image has 2000 frames, the limit is 100');
    expect(Date.now() - t0).toBeLessThan(1500);
    // Under the limits: a 50-frame animation is read as its first frame.
    expect((await postImage(srv.base, '/classify', gifWithFrames(50), 'image/gif')).status).toBe(200);
  });

  it('SVG is refused by default (415), whatever content type it claims', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#fff"/></svg>';
    for (const type of ['image/svg+xml', 'image/png', 'application/octet-stream'])
      expectError(await postImage(srv.base, '/classify', svg, type), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('request headers over MAX_HEADER_BYTES → 431 in the API error format, and the server goes on', async () => {
    const res = await rawRequest(srv.base, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expectError({ status: res.status, json: JSON.parse(res.body) }, 431, 'HEADERS_TOO_LARGE');
    expect((await fetch(`${srv.base}/healthz`)).status).toBe(200);
  });

  it('garbage instead of HTTP → 400 in the API error format', async () => {
    const res = await rawRequest(srv.base, 'HELLO /\x00\x01 WORLD\r\n\r\n');
    expectError({ status: res.status, json: JSON.parse(res.body) }, 400, 'INVALID_REQUEST');
  });

  it('a slow upload is cut at REQUEST_TIMEOUT_MS with 408, while other clients are served', async () => {
    const head = `POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${png.length}\r\n\r\n`;
    const chunks = Array.from({ length: png.length }, (_, i) => png.subarray(i, i + 1));
    const slow = rawRequest(srv.base, head, chunks, 200); // would take png.length × 200 ms
    await new Promise((r) => setTimeout(r, 300));
    expect((await postImage(srv.base, '/classify', png)).status).toBe(200);
    const res = await slow;
    expect(res.status).toBe(408);
    expectError({ status: res.status, json: JSON.parse(res.body) }, 408, 'REQUEST_TIMEOUT');
    expect(res.ms).toBeGreaterThanOrEqual(1400);
    expect(res.ms).toBeLessThan(4000);
  });

  it('no path traversal: path-like model names and versions are refused (400) or unknown (404), on every route', async () => {
    const bad = ['../../etc/passwd', '..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', 'tiny%2F..%2F..', '..', '.hidden', 'tiny%00'];
    for (const name of bad) {
      for (const res of [
        await postImage(srv.base, `/classify?model=${name}`, png),
        await postImage(srv.base, `/classify?model=tiny&version=${name}`, png),
        await postImage(srv.base, `/embed?version=${name}`, png),
      ]) {
        expect([400, 404]).toContain(res.status);
        assertNoLeak(res.json);
        expect(JSON.stringify(res.json)).not.toContain('passwd');
      }
      // Raw requests: an HTTP client would resolve the dot segments before sending.
      for (const path of [`/v2/models/${name}`, `/v2/models/${name}/ready`, `/v2/models/tiny/versions/${name}`, `/v2/models/tiny/versions/${name}/ready`]) {
        const res = await rawRequest(srv.base, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        expect([400, 404], path).toContain(res.status);
        const json = JSON.parse(res.body);
        expect(Object.keys(json)).toEqual(['error']);
        expect(typeof json.error).toBe('string');
        assertNoLeak(json);
      }
    }
    expectError(await postImage(srv.base, '/classify?model=tiny&version=7', png), 404, 'UNKNOWN_VERSION');
  });
});

describe('vector images when ALLOW_VECTOR_IMAGES=1', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, ALLOW_VECTOR_IMAGES: '1' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('an SVG is rendered and classified', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="8" height="16" fill="#fff"/></svg>';
    const res = await postImage(srv.base, '/classify', svg, 'image/svg+xml');
    expect(res.status).toBe(200);
    expect(res.json.predictions).toHaveLength(3);
  });
});

describe('API keys (API_KEYS, ADMIN_API_KEYS)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, API_KEYS: `${KEY},${KEY2}`, ADMIN_API_KEYS: ADMIN });
  }, 60_000);
  afterAll(() => srv?.close());

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(srv.base + path, { headers });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };
  const classify = async (headers: Record<string, string>) => {
    const res = await fetch(`${srv.base}/classify`, { method: 'POST', headers: { 'content-type': 'image/png', ...headers }, body: new Uint8Array(png) });
    return { status: res.status, headers: res.headers, json: (await res.json()) as any };
  };

  it('inference without a key, or with a wrong one → 401 UNAUTHORIZED with WWW-Authenticate', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer nope' }, { 'x-api-key': KEY.slice(0, -1) }, { authorization: `Basic ${KEY}` }, { authorization: 'Bearer ' }];
    for (const headers of attempts) {
      const res = await classify(headers);
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="mlp-serve"');
    }
    expectError(await get('/models'), 401, 'UNAUTHORIZED');
  });

  it('any configured key works, as Bearer or X-API-Key; an admin key works for inference too', async () => {
    expect((await classify({ authorization: `Bearer ${KEY}` })).status).toBe(200);
    expect((await classify({ 'x-api-key': KEY2 })).status).toBe(200);
    expect((await classify({ authorization: `bearer ${ADMIN}` })).status).toBe(200);
    expect((await get('/models', { 'x-api-key': KEY })).status).toBe(200);
  });

  it('admin routes take only admin keys', async () => {
    const reload = (headers: Record<string, string>) => fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers });
    const noKey = await reload({});
    expectError({ status: noKey.status, json: await noKey.json() }, 401, 'UNAUTHORIZED');
    const inferenceKey = await reload({ authorization: `Bearer ${KEY}` });
    expectError({ status: inferenceKey.status, json: await inferenceKey.json() }, 401, 'UNAUTHORIZED');
    const ok = await reload({ authorization: `Bearer ${ADMIN}` });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as any).changed).toBe(false);
  });

  it('probes, metrics and the API document stay open; v2 answers 401 in its own format', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/docs/json', '/v2/health/live', '/v2/health/ready']) expect((await fetch(srv.base + path)).status, path).toBe(200);
    const v2 = await v2Get(srv.base, '/v2/models/tiny');
    expect(v2.status).toBe(401);
    expect(v2.json).toEqual({ error: expect.stringContaining('API key') });
    const ok = await v2Get(srv.base, '/v2/models/tiny', { authorization: `Bearer ${KEY}` });
    expect(ok.status).toBe(200);
  });

  it('refusals are counted by reason', async () => {
    const text = await metricsText(srv.base);
    expect(sample(text, 'mlp_rejections_total{model="unknown",reason="unauthorized"}')).toBeGreaterThanOrEqual(5);
  });
});

describe('keyMatches / presentedKey', () => {
  const keys = [KEY, KEY2].map((k) => createHash('sha256').update(k).digest());
  it('accepts exactly the configured keys', () => {
    expect(keyMatches(KEY, keys)).toBe(true);
    expect(keyMatches(KEY2, keys)).toBe(true);
    for (const k of [undefined, '', KEY + 'x', KEY.slice(1), KEY.toUpperCase(), ' ' + KEY]) expect(keyMatches(k, keys)).toBe(false);
    expect(keyMatches(KEY, [])).toBe(false);
  });
  it('reads Bearer and X-API-Key, nothing else', () => {
    expect(presentedKey({ headers: { authorization: `Bearer ${KEY}` } })).toBe(KEY);
    expect(presentedKey({ headers: { 'x-api-key': KEY } })).toBe(KEY);
    expect(presentedKey({ headers: { authorization: `Basic ${KEY}` } })).toBeUndefined();
    expect(presentedKey({ headers: {} })).toBeUndefined();
  });
});

describe('admin routes without ADMIN_API_KEYS', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir });
  }, 60_000);
  afterAll(() => srv?.close());

  it('are refused with 403 FORBIDDEN, even with a key', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${ADMIN}` }];
    for (const headers of attempts) {
      const res = await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers });
      expectError({ status: res.status, json: await res.json() }, 403, 'FORBIDDEN');
    }
  });

  it('rate limiting is off by default and CORS answers nothing', async () => {
    const statuses = await Promise.all(Array.from({ length: 40 }, () => fetch(`${srv.base}/models`).then((r) => r.status)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    const res = await fetch(`${srv.base}/models`, { headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await fetch(`${srv.base}/classify`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(404);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('every answer carries the security headers and names no server software', async () => {
    const answers = [
      await fetch(`${srv.base}/healthz`),
      await fetch(`${srv.base}/nope`),
      await fetch(`${srv.base}/classify`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }),
      await fetch(`${srv.base}/classify`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) }),
    ];
    for (const res of answers) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=/);
      expect(res.headers.get('x-powered-by')).toBeNull();
      expect(res.headers.get('server')).toBeNull();
      await res.arrayBuffer();
    }
  });
});

describe('rate limiting (RATE_LIMIT_MAX=5) and CORS (CORS_ORIGINS)', () => {
  let srv: Running;
  beforeAll(async () => {
    srv = await startApp({ MODELS_DIR: models.dir, RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000', CORS_ORIGINS: 'https://app.example.com' });
  }, 60_000);
  afterAll(() => srv?.close());

  it('the 6th request in the window → 429 RATE_LIMITED with Retry-After; probes are never limited', async () => {
    const res = [];
    for (let i = 0; i < 6; i++) res.push(await postImage(srv.base, '/classify', png));
    expect(res.slice(0, 5).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expectError(res[5], 429, 'RATE_LIMITED');
    expect(Number(res[5].headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res[5].headers.get('x-ratelimit-limit')).toBe('5');
    for (let i = 0; i < 10; i++) expect((await fetch(`${srv.base}/readyz`)).status).toBe(200);
    const v2 = await v2Json(srv.base, '/v2/models/tiny/infer', {});
    expect(v2.status).toBe(429);
    expect(v2.json).toEqual({ error: expect.stringContaining('too many requests') });
  });

  it('CORS answers the configured origin only', async () => {
    const pre = await fetch(`${srv.base}/healthz`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    const ok = await fetch(`${srv.base}/healthz`, { headers: { origin: 'https://app.example.com' } });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const other = await fetch(`${srv.base}/healthz`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
