// The Open Inference Protocol (KServe v2 REST) over a real socket: health, server and model metadata, inference with
// JSON tensors and with the binary tensor data extension, output selection, version pinning, errors as the
// specification says ({"error": "..."}), and the same batcher as /classify. Request and response shapes are checked
// against fixtures written after the specification's examples (test/fixtures/v2).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { assertNoLeak, encodePattern, expectClose, makeModels, metricsText, postImage, type Running, sample, startApp, type TempModels } from './helpers.js';
import { fp32, v2Binary, v2Get, v2Json, type V2Answer } from './hostile.js';

const FIXTURES = new URL('../fixtures/v2/', import.meta.url);
const fixture = (name: string) => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
const D = 16; // 1×4×4
const CLASSES = 3;
const WIDTH = 8;

let models: TempModels;
let srv: Running;
let session: ort.InferenceSession;

beforeAll(async () => {
  models = await makeModels([
    { name: 'tiny4', arch: 'B_1-Wi_8', channels: 1, size: 4, classes: CLASSES, seed: 21 },
    { name: 'zz', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 5, seed: 22 },
  ]);
  srv = await startApp({ MODELS_DIR: models.dir, MAX_FILES: '8', BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '20' });
  session = await ort.InferenceSession.create(join(models.dir, 'tiny4', 'model.onnx'), { executionProviders: ['cpu'] });
}, 60_000);

afterAll(async () => {
  await session?.release();
  await srv?.close();
  await models?.cleanup();
});

async function direct(rows: number[][]): Promise<{ logits: Float32Array; embedding: Float32Array }> {
  const out = await session.run({ input: new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, D]) });
  return { logits: out.logits.data as Float32Array, embedding: out.embedding.data as Float32Array };
}

function expectV2Error(res: V2Answer, status: number, message?: RegExp): void {
  expect(res.status).toBe(status);
  expect(Object.keys(res.json)).toEqual(['error']);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(typeof res.json.error).toBe('string');
  if (message) expect(res.json.error).toMatch(message);
  assertNoLeak(res.json);
}

const rowsOf = (req: any): number[][] => [req.inputs[0].data.slice(0, D), req.inputs[0].data.slice(D)];

describe('health and metadata', () => {
  it('GET /v2 → server metadata with the binary tensor data extension', async () => {
    const res = await v2Get(srv.base, '/v2');
    expect(res.status).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual(['extensions', 'name', 'version']);
    expect(res.json).toMatchObject({ name: 'mlp-serve', extensions: ['binary_tensor_data'] });
    expect(typeof res.json.version).toBe('string');
  });

  it('GET /v2/ (the specification\'s own path) answers the same server metadata', async () => {
    const [a, b] = await Promise.all([v2Get(srv.base, '/v2'), v2Get(srv.base, '/v2/')]);
    expect(b.status).toBe(200);
    expect(b.json).toEqual(a.json);
  });

  it('live and ready: 200 with KServe\'s bodies, typed exactly application/json', async () => {
    const cases: [string, unknown][] = [
      ['/v2/health/live', { live: true }],
      ['/v2/health/ready', { ready: true }],
      ['/v2/models/tiny4/ready', { name: 'tiny4', ready: true }],
      ['/v2/models/tiny4/versions/1/ready', { name: 'tiny4', ready: true }],
    ];
    for (const [path, body] of cases) {
      const res = await v2Get(srv.base, path);
      expect({ path, status: res.status, body: res.json, type: res.headers.get('content-type') }).toEqual({ path, status: 200, body, type: 'application/json' });
    }
  });

  it('GET /v2/models/{m}[/versions/{v}] → the model metadata of the fixture', async () => {
    expect((await v2Get(srv.base, '/v2/models/tiny4')).json).toEqual(fixture('model-metadata.json'));
    expect((await v2Get(srv.base, '/v2/models/tiny4/versions/1')).json).toEqual(fixture('model-metadata.json'));
    const zz = (await v2Get(srv.base, '/v2/models/zz')).json.inputs;
    expect(zz.map((t: any) => [t.name, t.datatype, t.shape])).toEqual([['input', 'FP32', [-1, 64]]]);
    const card = models.cards.zz;
    expect(zz[0].parameters).toMatchObject({ layout: 'CHW', channels: 1, height: 8, width: 8, mean: card.normalization.mean.join(','), std: card.normalization.std.join(',') });
  });

  it('unknown models and versions → 404 {"error"}', async () => {
    expectV2Error(await v2Get(srv.base, '/v2/models/nope'), 404, /no model named "nope"/);
    expectV2Error(await v2Get(srv.base, '/v2/models/nope/ready'), 404);
    expectV2Error(await v2Get(srv.base, '/v2/models/tiny4/versions/9'), 404, /no version "9"/);
    expectV2Error(await v2Get(srv.base, '/v2/models/tiny4/versions/9/ready'), 404);
    expectV2Error(await v2Get(srv.base, '/v2/nothing/here'), 404);
  });
});

describe('inference with JSON tensors', () => {
  it('the fixture request → the fixture response, logits equal to a direct onnxruntime run', async () => {
    const req = fixture('infer-request.json');
    const res = await v2Json(srv.base, '/v2/models/tiny4/infer', req);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const expected = fixture('infer-response.json');
    expect({ ...res.json, outputs: res.json.outputs.map((o: any) => ({ ...o, data: expected.outputs[0].data })) }).toEqual(expected);
    expectClose(res.json.outputs[0].data, (await direct(rowsOf(req))).logits);
  });

  it('every output by default, in order; `outputs` selects; nested data equals flat data', async () => {
    const req = fixture('infer-request.json');
    const rows = rowsOf(req);
    const ref = await direct(rows);
    const all = await v2Json(srv.base, '/v2/models/tiny4/infer', { inputs: [{ ...req.inputs[0], data: rows }] });
    expect(all.status).toBe(200);
    expect(all.json.id).toBeUndefined();
    expect(all.json.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([
      ['logits', 'FP32', [2, CLASSES]],
      ['embedding', 'FP32', [2, WIDTH]],
    ]);
    expectClose(all.json.outputs[0].data, ref.logits);
    expectClose(all.json.outputs[1].data, ref.embedding, 1e-4);
    const emb = await v2Json(srv.base, '/v2/models/tiny4/infer', { ...req, outputs: [{ name: 'embedding' }] });
    expect(emb.json.outputs.map((o: any) => o.name)).toEqual(['embedding']);
    expectClose(emb.json.outputs[0].data, ref.embedding, 1e-4);
  });

  it('a pinned version answers with its model_version', async () => {
    const res = await v2Json(srv.base, '/v2/models/tiny4/versions/1/infer', fixture('infer-request.json'));
    expect(res.status).toBe(200);
    expect(res.json.model_version).toBe('1');
  });
});

describe('the binary tensor data extension', () => {
  const req = fixture('infer-request.json');
  const rows = rowsOf(req);
  const tensor = Float32Array.from(rows.flat());

  it('binary input and output → the fixture header, then the logits bytes', async () => {
    const res = await v2Binary(srv.base, '/v2/models/tiny4/infer', fixture('binary-request-header.json'), [tensor]);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.json).toEqual(fixture('binary-response-header.json'));
    expect(res.binary.length).toBe(24);
    expect(Number(res.headers.get('content-length'))).toBe(Number(res.headers.get('inference-header-content-length')) + 24);
    expectClose(fp32(res.binary), (await direct(rows)).logits);
  });

  it('binary_data_output for all outputs, and a per-output binary_data=false overriding it', async () => {
    const ref = await direct(rows);
    const all = await v2Json(srv.base, '/v2/models/tiny4/infer', { ...req, outputs: undefined, parameters: { binary_data_output: true } });
    expect(all.json.outputs.map((o: any) => [o.name, o.parameters])).toEqual([
      ['logits', { binary_data_size: 2 * CLASSES * 4 }],
      ['embedding', { binary_data_size: 2 * WIDTH * 4 }],
    ]);
    expectClose(fp32(all.binary.subarray(0, 24)), ref.logits);
    expectClose(fp32(all.binary.subarray(24)), ref.embedding, 1e-4);
    const mixed = await v2Json(srv.base, '/v2/models/tiny4/infer', {
      ...req,
      parameters: { binary_data_output: true },
      outputs: [{ name: 'embedding', parameters: { binary_data: false } }, { name: 'logits' }],
    });
    expect(mixed.json.outputs[0]).toMatchObject({ name: 'embedding', shape: [2, WIDTH] });
    expectClose(mixed.json.outputs[0].data, ref.embedding, 1e-4);
    expect(mixed.json.outputs[1]).toEqual({ name: 'logits', datatype: 'FP32', shape: [2, CLASSES], parameters: { binary_data_size: 24 } });
    expectClose(fp32(mixed.binary), ref.logits);
  });
});

describe('errors are {"error": "..."} with a 4xx, and name what is wrong', () => {
  const good = () => fixture('infer-request.json');
  const withInput = (patch: object) => ({ inputs: [{ ...good().inputs[0], ...patch }] });

  it('the specification\'s two-input example is refused (this model has one input, "input")', async () => {
    expectV2Error(await v2Json(srv.base, '/v2/models/tiny4/infer', fixture('spec-two-inputs-request.json')), 400, /has one input, "input"/);
  });

  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{"inputs": [', /not valid JSON/],
    ['not an object', '[1, 2]', /must be a JSON object/],
    ['no inputs', {}, /inputs must be a non-empty array/],
    ['another input name', withInput({ name: 'input0' }), /unknown input "input0"/],
    ['a datatype that is not FP32', withInput({ datatype: 'FP64' }), /datatype is FP64; input "input" is FP32/],
    ['an unknown datatype', withInput({ datatype: 'FLOAT' }), /datatype must be one of/],
    ['a wrong shape', withInput({ shape: [2, 15] }), /shape is \[2, 15\]; input "input" is \[n, 16\]/],
    ['a shape that disagrees with the data', withInput({ shape: [3, 16] }), /holds 32 values, its shape declares 48/],
    ['a batch of 0', withInput({ shape: [0, 16], data: [] }), /batch of 0/],
    ['strings in the data', withInput({ data: Array(32).fill('1') }), /finite numbers only/],
    ['data nested too deep', withInput({ data: [[[1]]] }), /nested deeper/],
    ['an unknown output', { ...good(), outputs: [{ name: 'probabilities' }] }, /unknown output "probabilities"/],
    ['an output named twice', { ...good(), outputs: [{ name: 'logits' }, { name: 'logits' }] }, /twice/],
    ['a non-string id', { ...good(), id: 42 }, /id must be a string/],
    ['a non-boolean binary_data_output', { ...good(), parameters: { binary_data_output: 'yes' } }, /must be a boolean/],
  ];
  for (const [what, body, message] of cases)
    it(`400 for ${what}`, async () => expectV2Error(await v2Json(srv.base, '/v2/models/tiny4/infer', body), 400, message));

  it('413 for more rows than MAX_FILES', async () => {
    const res = await v2Json(srv.base, '/v2/models/tiny4/infer', withInput({ shape: [9, 16], data: Array(9 * 16).fill(0) }));
    expectV2Error(res, 413, /at most 8 images per request/);
  });

  it('binary extension mistakes → 400', async () => {
    const head = fixture('binary-request-header.json');
    const t = new Float32Array(32);
    expectV2Error(await v2Binary(srv.base, '/v2/models/tiny4/infer', head, [t.subarray(0, 31)]), 400, /carries 124 bytes/);
    expectV2Error(await v2Binary(srv.base, '/v2/models/tiny4/infer', head, [t, new Float32Array(1)]), 400, /carries 132 bytes/);
    const nan = t.slice();
    nan[5] = NaN;
    expectV2Error(await v2Binary(srv.base, '/v2/models/tiny4/infer', head, [nan]), 400, /NaN or infinite/);
    const wrongSize = { ...head, inputs: [{ ...head.inputs[0], parameters: { binary_data_size: 64 } }] };
    expectV2Error(await v2Binary(srv.base, '/v2/models/tiny4/infer', wrongSize, [t]), 400, /binary_data_size is 64/);
    const tooLong = await fetch(`${srv.base}/v2/models/tiny4/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '99999' },
      body: JSON.stringify(good()),
    });
    expectV2Error({ status: tooLong.status, json: await tooLong.json(), headers: tooLong.headers, binary: Buffer.alloc(0) }, 400, /larger than the body/);
    const raw = await fetch(`${srv.base}/v2/models/tiny4/infer`, { method: 'POST', headers: { 'inference-header-content-length': '0' }, body: new Uint8Array(60) });
    expectV2Error({ status: raw.status, json: await raw.json(), headers: raw.headers, binary: Buffer.alloc(0) }, 400, /carries 60 bytes, not a whole number of 64-byte rows/);
    // binary_data_size without the header that says where the JSON ends
    expectV2Error(await v2Json(srv.base, '/v2/models/tiny4/infer', head), 400, /no Inference-Header-Content-Length/);
  });

  it('a content type other than JSON or octet-stream → 415 (none at all is JSON); no body → 400; unknown model → 404', async () => {
    for (const type of ['text/plain', 'image/png', 'multipart/form-data; boundary=x']) {
      const res = await fetch(`${srv.base}/v2/models/tiny4/infer`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(good()) });
      expectV2Error({ status: res.status, json: await res.json(), headers: res.headers, binary: Buffer.alloc(0) }, 415, /application\/json, application\/octet-stream .*or with no Content-Type/);
    }
    const untyped = await fetch(`${srv.base}/v2/models/tiny4/infer`, { method: 'POST', body: Buffer.from(JSON.stringify(good())) });
    expect(untyped.headers.get('content-type')).toBe('application/json');
    expect(((await untyped.json()) as any).outputs[0].shape).toEqual([2, CLASSES]);
    const empty = await fetch(`${srv.base}/v2/models/tiny4/infer`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expectV2Error({ status: empty.status, json: await empty.json(), headers: empty.headers, binary: Buffer.alloc(0) }, 400);
    expectV2Error(await v2Json(srv.base, '/v2/models/nope/infer', good()), 404, /no model named "nope"/);
  });

  it('JSON bodies stay refused on the other routes (415 in their own format)', async () => {
    const res = await postImage(srv.base, '/classify', '{"inputs": []}', 'application/json');
    expect(res.status).toBe(415);
    expect(res.json.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('one batcher for every route', () => {
  it('concurrent v2 and /classify requests share batches and are counted per route', async () => {
    const before = await metricsText(srv.base);
    const png = await encodePattern(4, 4, (s) => s.greyscale().png());
    const req = fixture('infer-request.json');
    const res = await Promise.all([
      ...Array.from({ length: 6 }, () => v2Json(srv.base, '/v2/models/tiny4/infer', req).then((r) => r.status)),
      ...Array.from({ length: 6 }, () => postImage(srv.base, '/classify?model=tiny4', png).then((r) => r.status)),
    ]);
    expect(res).toEqual(new Array(12).fill(200));
    const after = await metricsText(srv.base);
    const d = (s: string) => sample(after, s) - sample(before, s);
    expect(d('mlp_batch_size_sum{model="tiny4"}')).toBe(6 * 2 + 6);
    expect(d('mlp_batch_size_count{model="tiny4"}')).toBeLessThan(12);
    expect(d('mlp_requests_total{route="/v2/models/:model/infer",model="tiny4",outcome="ok"}')).toBe(6);
    expect(d('mlp_images_total{model="tiny4"}')).toBe(18);
  });

  it('the OpenAPI document lists the v2 routes with their request body', async () => {
    const doc = (await (await fetch(`${srv.base}/docs/json`)).json()) as any;
    for (const p of ['/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/{model}', '/v2/models/{model}/ready', '/v2/models/{model}/infer', '/v2/models/{model}/versions/{version}/infer'])
      expect(doc.paths, p).toHaveProperty([p]);
    expect(Object.keys(doc.paths['/v2/models/{model}/infer'].post.requestBody.content).sort()).toEqual(['application/json', 'application/octet-stream']);
  });
});

describe('readiness in v2 terms', () => {
  it('503 {"ready": false} while loading and while draining', async () => {
    const s = await startApp({ MODELS_DIR: models.dir }, { holdLoading: true });
    try {
      const [server, model] = await Promise.all([v2Get(s.base, '/v2/health/ready'), v2Get(s.base, '/v2/models/tiny4/ready')]);
      expect(s.app.models.state).toBe('loading');
      expect([server.status, server.json, model.status, model.json]).toEqual([503, { ready: false }, 503, { name: 'tiny4', ready: false }]);
      expect(await v2Get(s.base, '/v2/health/live')).toMatchObject({ status: 200, json: { live: true } });
      s.releaseLoading();
      await s.app.models.whenReady();
      expect(await v2Get(s.base, '/v2/health/ready')).toMatchObject({ status: 200, json: { ready: true } });
      s.app.serving.draining = true;
      expect(await v2Get(s.base, '/v2/health/ready')).toMatchObject({ status: 503, json: { ready: false } });
      const infer = await v2Json(s.base, '/v2/models/tiny4/infer', fixture('infer-request.json'));
      expect(infer.status).toBe(503);
      expect(infer.json).toEqual({ error: expect.stringContaining('shutting down') });
    } finally {
      await s.close();
    }
  }, 30_000);
});
