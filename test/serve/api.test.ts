// The HTTP contract over a real socket, real onnxruntime and real sharp: response shapes, images of many kinds,
// agreement with a direct onnxruntime run, real Fashion-MNIST images, and every bad input of the issue.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { METRIC_NAME_LIST } from '../../src/serve/metrics.js';
import {
  assertNoLeak,
  directRun,
  encodePattern,
  fashionMnistPngs,
  makeModels,
  metricsText,
  pngHeaderOnly,
  postFiles,
  postImage,
  postLarge,
  sample,
  softmax64,
  startApp,
  type Running,
  type TempModels,
} from './helpers.js';

let models: TempModels;
let srv: Running;

beforeAll(async () => {
  models = await makeModels([
    // Default (first alphabetically): a grey 28×28 Fashion-MNIST-shaped model.
    { name: 'fmnist', arch: 'B_1-Wi_64', channels: 1, size: 28, labels: 'fashion-mnist', seed: 1 },
    { name: 'rgb', arch: 'B_2-Wi_32', channels: 3, size: 32, classes: 12, seed: 2 },
  ]);
  srv = await startApp({ MODELS_DIR: models.dir, MAX_FILES: '10', BATCH_MAX_DELAY_MS: '2' });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await models?.cleanup();
});

function expectPredictions(preds: any[], labels: readonly string[], k: number): void {
  expect(preds).toHaveLength(k);
  for (let i = 0; i < preds.length; i++) {
    const p = preds[i];
    expect(Object.keys(p).sort()).toEqual(['index', 'label', 'score']);
    expect(p.label).toBe(labels[p.index]);
    expect(p.score).toBeGreaterThan(0);
    expect(p.score).toBeLessThanOrEqual(1);
    if (i > 0) expect(p.score).toBeLessThanOrEqual(preds[i - 1].score);
  }
  expect(new Set(preds.map((p) => p.index)).size).toBe(k);
}

function expectError(res: { status: number; json: any }, status: number, code: string): void {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
  expect(Object.keys(res.json)).toEqual(['error']);
  expect(Object.keys(res.json.error).sort()).toEqual(['code', 'message']);
  expect(typeof res.json.error.message).toBe('string');
  assertNoLeak(res.json);
}

describe('operations', () => {
  it('GET /healthz and /readyz are 200 once warmed up, /readyz names the provider', async () => {
    expect(await (await fetch(`${srv.base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${srv.base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      models: [
        { name: 'fmnist', provider: 'cpu' },
        { name: 'rgb', provider: 'cpu' },
      ],
    });
  });

  it('GET /models lists every model with the contract fields', async () => {
    const body = (await (await fetch(`${srv.base}/models`)).json()) as any;
    expect(body.models.map((m: any) => [m.name, m.default])).toEqual([
      ['fmnist', true],
      ['rgb', false],
    ]);
    const f = body.models[0];
    expect(f.labels).toEqual(models.cards.fmnist.labels);
    expect(f.labels[9]).toBe('Ankle boot');
    expect(f.input).toEqual({ width: 28, height: 28, channels: 1 });
    expect(f.embeddingDim).toBe(64);
    expect(f.provider).toBe('cpu');
    expect(f.arch).toBe('B_1-Wi_64');
    expect(body.models[1].input).toEqual({ width: 32, height: 32, channels: 3 });
  });

  it('GET /docs/json is the OpenAPI document generated from the route schemas', async () => {
    const doc = (await (await fetch(`${srv.base}/docs/json`)).json()) as any;
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of ['/classify', '/embed', '/models', '/healthz', '/readyz', '/metrics']) expect(doc.paths).toHaveProperty(p);
    const params = doc.paths['/classify'].post.parameters.map((p: any) => p.name).sort();
    expect(params).toEqual(['model', 'top_k', 'version']);
    expect(doc.paths['/classify'].post.parameters.every((p: any) => p.required === false)).toBe(true);
    expect(doc.paths['/classify'].post.responses).toHaveProperty('413');
    for (const path of ['/classify', '/embed'])
      expect(Object.keys(doc.paths[path].post.requestBody.content).sort()).toEqual(['application/octet-stream', 'image/*', 'multipart/form-data']);
  });
});

describe('images of many kinds', () => {
  const kinds: [string, () => Promise<Buffer>, string][] = [
    ['JPEG', () => encodePattern(40, 30, (s) => s.jpeg()), 'image/jpeg'],
    ['RGBA PNG', () => encodePattern(30, 30, (s) => s.ensureAlpha(0.5).png()), 'image/png'],
    ['grey PNG', () => encodePattern(28, 28, (s) => s.greyscale().png()), 'image/png'],
    ['16-bit PNG', () => encodePattern(33, 20, (s) => s.toColourspace('rgb16').png()), 'image/png'],
    ['palette PNG', () => encodePattern(25, 25, (s) => s.png({ palette: true, colours: 16 })), 'image/png'],
    ['WebP', () => encodePattern(50, 40, (s) => s.webp()), 'image/webp'],
    ['GIF', () => encodePattern(30, 30, (s) => s.gif()), 'image/gif'],
    ['TIFF', () => encodePattern(30, 45, (s) => s.tiff()), 'image/tiff'],
    ['CMYK JPEG', () => encodePattern(40, 40, (s) => s.toColourspace('cmyk').jpeg()), 'image/jpeg'],
    ['octet-stream PNG', () => encodePattern(28, 28, (s) => s.png()), 'application/octet-stream'],
    ['large JPEG (2000×1500)', () => encodePattern(2000, 1500, (s) => s.jpeg()), 'image/jpeg'],
  ];

  for (const [name, make, type] of kinds) {
    it(`classifies a ${name} with both the grey and the colour model`, async () => {
      const bytes = await make();
      for (const model of ['fmnist', 'rgb']) {
        const res = await postImage(srv.base, `/classify?model=${model}&top_k=3`, bytes, type);
        expect(res.status).toBe(200);
        expect(res.json.model).toBe(model);
        expectPredictions(res.json.predictions, models.cards[model].labels, 3);
      }
    });
  }

  it('an animated GIF is read as its first frame', async () => {
    const frame = (v: number) => sharp({ create: { width: 24, height: 24, channels: 3, background: { r: v, g: v, b: v } } }).png().toBuffer();
    const anim = await sharp([await frame(200), await frame(10)], { join: { animated: true } }).gif().toBuffer();
    const first = await sharp(await frame(200)).gif().toBuffer();
    const a = await postImage(srv.base, '/embed?model=rgb', anim, 'image/gif');
    const b = await postImage(srv.base, '/embed?model=rgb', first, 'image/gif');
    expect(a.status).toBe(200);
    expect(a.json.embedding).toEqual(b.json.embedding);
  });

  it('a JPEG with EXIF orientation is turned upright before it is classified', async () => {
    // Stored pixels rotated 90° counter-clockwise, tagged orientation 6 ("rotate 90° clockwise to display").
    const upright = await encodePattern(48, 32, (s) => s.png());
    const stored = await sharp(upright).rotate(270).toBuffer();
    const tagged = await sharp(stored).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const untagged = await sharp(stored).jpeg({ quality: 95 }).toBuffer();
    expect((await sharp(tagged).metadata()).orientation).toBe(6);
    const emb = async (b: Buffer) => (await postImage(srv.base, '/embed?model=rgb', b, 'image/jpeg')).json.embedding as number[];
    const [u, t, n] = [await emb(upright), await emb(tagged), await emb(untagged)];
    const dist = (a: number[], b: number[]) => Math.hypot(...a.map((v, i) => v - b[i]));
    expect(dist(t, u)).toBeLessThan(dist(n, u) / 4);
  });
});

describe('agreement with onnxruntime', () => {
  it('/classify scores and /embed equal a direct onnxruntime run on the same preprocessed tensor', async () => {
    const images = [
      await encodePattern(64, 48, (s) => s.jpeg()),
      await encodePattern(20, 20, (s) => s.toColourspace('cmyk').jpeg()),
      await encodePattern(31, 17, (s) => s.ensureAlpha(0.3).png()),
    ];
    for (const model of ['fmnist', 'rgb']) {
      const card = models.cards[model];
      for (const img of images) {
        const direct = await directRun(join(models.dir, model), card, img);
        const probs = softmax64(direct.logits);
        const res = await postImage(srv.base, `/classify?model=${model}&top_k=1000`, img, 'image/jpeg');
        expect(res.status).toBe(200);
        expect(res.json.predictions).toHaveLength(card.labels.length);
        for (const p of res.json.predictions) expect(Math.abs(p.score - probs[p.index])).toBeLessThan(1e-5);
        const top = probs.indexOf(Math.max(...probs));
        expect(res.json.predictions[0].index).toBe(top);
        const e = await postImage(srv.base, `/embed?model=${model}`, img, 'image/jpeg');
        expect(e.json.dim).toBe(card.embeddingDim);
        expect(e.json.embedding).toHaveLength(card.embeddingDim);
        e.json.embedding.forEach((v: number, i: number) => expect(Math.abs(v - direct.embedding[i])).toBeLessThan(1e-4));
      }
    }
  });

  it('real Fashion-MNIST test images in one multipart request: one result per part, in order, equal to direct runs', async () => {
    const samples = await fashionMnistPngs(8);
    const card = models.cards.fmnist;
    const res = await postFiles(srv.base, '/classify?top_k=10', samples.map((s) => ({ bytes: s.png })));
    expect(res.status).toBe(200);
    expect(res.json.model).toBe('fmnist');
    expect(res.json.results).toHaveLength(8);
    for (let i = 0; i < samples.length; i++) {
      const probs = softmax64((await directRun(join(models.dir, 'fmnist'), card, samples[i].png)).logits);
      const preds = res.json.results[i].predictions;
      expectPredictions(preds, card.labels, 10);
      for (const p of preds) expect(Math.abs(p.score - probs[p.index])).toBeLessThan(1e-5);
    }
    const emb = await postFiles(srv.base, '/embed', samples.map((s) => ({ bytes: s.png })));
    expect(emb.status).toBe(200);
    expect(emb.json.dim).toBe(64);
    expect(emb.json.embeddings).toHaveLength(8);
    expect(emb.json.embeddings[3]).toHaveLength(64);
  });

  it('multipart keeps part order, ignores form fields, and top_k is clamped to the number of classes', async () => {
    const a = await encodePattern(28, 28, (s) => s.png());
    const b = await encodePattern(28, 28, (s) => s.negate().png());
    const res = await postFiles(srv.base, '/classify?top_k=50', [{ bytes: a }, { bytes: b }, { bytes: a }], { note: 'ignored' });
    expect(res.status).toBe(200);
    const [ra, rb, ra2] = res.json.results;
    expect(ra2).toEqual(ra);
    expect(rb).not.toEqual(ra);
    expect(ra.predictions).toHaveLength(10);
    const one = await postImage(srv.base, '/classify?top_k=1', a);
    expect(one.json.predictions).toHaveLength(1);
    expect(one.json.predictions[0].index).toBe(ra.predictions[0].index);
    const dflt = await postImage(srv.base, '/classify', a);
    expect(dflt.json.predictions).toHaveLength(5);
  });
});

describe('bad inputs are 4xx with a JSON error and nothing internal', () => {
  let png: Buffer;
  let jpeg: Buffer;
  beforeAll(async () => {
    png = await encodePattern(28, 28, (s) => s.png());
    jpeg = await encodePattern(200, 150, (s) => s.jpeg());
  });

  it('empty body → 400 EMPTY_BODY (raw, and with no content type at all)', async () => {
    expectError(await postImage(srv.base, '/classify', Buffer.alloc(0)), 400, 'EMPTY_BODY');
    const res = await fetch(`${srv.base}/embed`, { method: 'POST' });
    expectError({ status: res.status, json: await res.json() }, 400, 'EMPTY_BODY');
  });

  it('random bytes, a truncated JPEG and text sent as an image → 400 UNDECODABLE_IMAGE', async () => {
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
    expectError(await postImage(srv.base, '/classify', random, 'image/jpeg'), 400, 'UNDECODABLE_IMAGE');
    expectError(await postImage(srv.base, '/classify', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), 'image/jpeg'), 400, 'UNDECODABLE_IMAGE');
    expectError(await postImage(srv.base, '/embed', 'hello, I am not a picture', 'image/png'), 400, 'UNDECODABLE_IMAGE');
  });

  it('text, JSON and SVG → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    expectError(await postImage(srv.base, '/classify', 'hello', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await postImage(srv.base, '/classify', '{"image":"x"}', 'application/json'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>';
    expectError(await postImage(srv.base, '/classify', svg, 'image/svg+xml'), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('a 20000×20000 PNG → 413 TOO_MANY_PIXELS, refused from its header', async () => {
    const huge = pngHeaderOnly(20000, 20000);
    expect(huge.length).toBeLessThan(50_000);
    const meta = await sharp(huge, { limitInputPixels: false }).metadata();
    expect([meta.width, meta.height]).toEqual([20000, 20000]);
    const t0 = Date.now();
    expectError(await postImage(srv.base, '/classify', huge), 413, 'TOO_MANY_PIXELS');
    expect(Date.now() - t0).toBeLessThan(2000);
    expectError(await postFiles(srv.base, '/embed', [{ bytes: png }, { bytes: huge }]), 413, 'TOO_MANY_PIXELS');
  });

  it('a 60 MB body → 413 PAYLOAD_TOO_LARGE (raw and multipart)', async () => {
    const raw = await postLarge(srv.base, '/classify', 60 * 1024 * 1024);
    expectError({ status: raw.status, json: JSON.parse(raw.body) }, 413, 'PAYLOAD_TOO_LARGE');
    const big = Buffer.alloc(11 * 1024 * 1024, 1);
    expectError(await postFiles(srv.base, '/classify', [{ bytes: big }]), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('multipart without a file → 400 NO_FILE; an empty file part → 400; more than MAX_FILES → 413', async () => {
    expectError(await postFiles(srv.base, '/classify', [], { just: 'a field' }), 400, 'NO_FILE');
    expectError(await postFiles(srv.base, '/classify', [{ bytes: png }, { bytes: Buffer.alloc(0) }]), 400, 'EMPTY_FILE');
    expectError(await postFiles(srv.base, '/classify', [{ bytes: png }, { bytes: Buffer.from('nope') }]), 400, 'UNDECODABLE_IMAGE');
    const eleven = Array.from({ length: 11 }, () => ({ bytes: png }));
    expectError(await postFiles(srv.base, '/embed', eleven), 413, 'TOO_MANY_FILES');
  });

  it('a truncated multipart body → 400 MALFORMED_MULTIPART', async () => {
    const boundary = 'XyZ123';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n${png.toString('latin1')}`;
    const res = await fetch(`${srv.base}/classify`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: Buffer.from(body, 'latin1'),
    });
    expectError({ status: res.status, json: await res.json() }, 400, 'MALFORMED_MULTIPART');
  });

  it('unknown model → 404 UNKNOWN_MODEL; top_k=-3 and other bad parameters → 400 INVALID_PARAMETER', async () => {
    expectError(await postImage(srv.base, '/classify?model=resnet50', png), 404, 'UNKNOWN_MODEL');
    expectError(await postImage(srv.base, '/embed?model=fmnist.onnx', png), 404, 'UNKNOWN_MODEL');
    for (const q of ['top_k=-3', 'top_k=0', 'top_k=abc', 'top_k=2.5', 'top_k=100000'])
      expectError(await postImage(srv.base, `/classify?${q}`, png), 400, 'INVALID_PARAMETER');
  });

  it('path-like model names → 400, never a file read or a path in the answer', async () => {
    for (const name of ['../../etc/passwd', '..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', 'fmnist/../rgb', '.', '..', '']) {
      const res = await postImage(srv.base, `/classify?model=${name}`, png);
      expectError(res, 400, 'INVALID_PARAMETER');
      expect(JSON.stringify(res.json)).not.toContain('passwd');
    }
  });

  it('unknown routes and methods → 404 NOT_FOUND in the same format', async () => {
    for (const [method, path] of [['GET', '/nope'], ['GET', '/classify'], ['DELETE', '/models'], ['GET', '/../../etc/passwd']]) {
      const res = await fetch(srv.base + path, { method });
      expectError({ status: res.status, json: await res.json() }, 404, 'NOT_FOUND');
    }
  });
});

describe('metrics', () => {
  it('exposes every metric of the contract, counts refusals by reason, and passes promtool check metrics', async () => {
    await postImage(srv.base, '/classify?model=rgb', Buffer.from('garbage'), 'image/png');
    const text = await metricsText(srv.base);
    for (const name of METRIC_NAME_LIST) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toContain(`# TYPE ${name} `);
    }
    for (const name of ['process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes'])
      expect(text).toContain(`# TYPE ${name} `);
    expect(sample(text, 'mlp_model_info{model="fmnist",version="1",arch="B_1-Wi_64",provider="cpu"}')).toBe(1);
    expect(sample(text, 'mlp_rejections_total{model="rgb",reason="undecodable_image"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mlp_requests_total{route="/classify",model="fmnist",outcome="ok"}')).toBeGreaterThan(5);
    expect(sample(text, 'mlp_images_total{model="fmnist"}')).toBeGreaterThan(5);
    expect(sample(text, 'mlp_http_request_duration_seconds_count{route="/classify",method="POST",status="200"}')).toBeGreaterThan(5);
    expect(sample(text, 'mlp_inflight_requests')).toBe(1); // this scrape itself

    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect({ status: check.status, out: check.stdout + check.stderr }).toEqual({ status: 0, out: '' });
  });
});
