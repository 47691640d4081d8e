// The v2 REST routes as other people's clients speak them: Python's http.client (test/fixtures/triton_http_requests.py)
// sends requests shaped exactly as Triton's tritonclient.http and KServe's SDK send them (no Content-Type, the binary
// extension, a raw binary request, gzip and deflate bodies, binary_data_size as a string, a zip bomb), numpy builds
// the input and reads the binary outputs, and every answer is checked against a direct onnxruntime run.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { expectClose, makeModels, type Running, startApp, type TempModels } from './helpers.js';

const D = 16; // 1×4×4
const MAX_BODY = 64 * 1024;
const SCRIPT = new URL('../fixtures/triton_http_requests.py', import.meta.url).pathname;

interface Case {
  status: number;
  content_type: string | null;
  json: any;
  binary?: Record<string, number[]>;
}

let models: TempModels;
let srv: Running;
let cases: Record<string, Case>;
let ref: { logits: Float32Array; embedding: Float32Array };

beforeAll(async () => {
  models = await makeModels([{ name: 'tiny4', arch: 'B_1-Wi_8', channels: 1, size: 4, classes: 3, seed: 21 }]);
  srv = await startApp({ MODELS_DIR: models.dir, MAX_BODY_BYTES: String(MAX_BODY) });
  const port = new URL(srv.base).port;
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [SCRIPT, '127.0.0.1', port, 'tiny4', String(D), String(MAX_BODY)], { maxBuffer: 1 << 24 });
  const out = JSON.parse(stdout) as { input: number[]; cases: Record<string, Case> };
  cases = out.cases;
  const session = await ort.InferenceSession.create(join(models.dir, 'tiny4', 'model.onnx'), { executionProviders: ['cpu'] });
  const r = await session.run({ input: new ort.Tensor('float32', Float32Array.from(out.input), [2, D]) });
  ref = { logits: r.logits.data as Float32Array, embedding: r.embedding.data as Float32Array };
  await session.release();
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await models?.cleanup();
});

const logitsOf = (c: Case) => c.binary?.logits ?? c.json.outputs.find((o: any) => o.name === 'logits').data;

describe('KServe SDK and Triton client shapes, from python http.client', () => {
  it('health bodies parse as KServe\'s SDK reads them, typed exactly application/json', () => {
    expect([cases.live.status, cases.live.json, cases.live.content_type]).toEqual([200, { live: true }, 'application/json']);
    expect([cases.ready.status, cases.ready.json]).toEqual([200, { ready: true }]);
    expect(cases.server_metadata_slash).toMatchObject({ status: 200, json: { name: 'mlp-serve', extensions: ['binary_tensor_data'] } });
  });

  it('the model metadata carries what a client needs to build the input from an image', () => {
    const p = cases.model_metadata.json.inputs[0].parameters;
    const card = models.cards.tiny4;
    expect(p).toMatchObject({ layout: 'CHW', channels: 1, height: 4, width: 4, pixel_scale: '0-255' });
    expect(p.mean.split(',').map(Number)).toEqual(card.normalization.mean);
    expect(p.std.split(',').map(Number)).toEqual(card.normalization.std);
  });

  it('JSON with no Content-Type → 200, the id echoed, logits equal to onnxruntime', () => {
    const c = cases.json_no_content_type;
    expect([c.status, c.content_type, c.json.id]).toEqual([200, 'application/json', 'triton-1']);
    expectClose(logitsOf(c), ref.logits);
    expectClose(c.json.outputs[1].data, ref.embedding, 1e-4);
  });

  it('the binary extension with no Content-Type, and binary_data_size as a numeric string → binary logits', () => {
    for (const name of ['binary_no_content_type', 'binary_size_as_string', 'gzip_binary']) {
      const c = cases[name];
      expect({ name, status: c.status, type: c.content_type }).toEqual({ name, status: 200, type: 'application/octet-stream' });
      expect(c.json.outputs).toEqual([{ name: 'logits', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } }]);
      expectClose(logitsOf(c), ref.logits);
    }
  });

  it('a raw binary request (Inference-Header-Content-Length: 0) → every output, as JSON', () => {
    const c = cases.raw_binary;
    expect(c.status).toBe(200);
    expect(c.json.outputs.map((o: any) => [o.name, o.shape])).toEqual([['logits', [2, 3]], ['embedding', [2, 8]]]);
    expectClose(logitsOf(c), ref.logits);
  });

  it('a deflate body (zlib, as tritonclient compresses) → 200', () => {
    expect(cases.deflate_json.status).toBe(200);
    expectClose(logitsOf(cases.deflate_json), ref.logits);
  });

  it('EXPECTED FAILURE - binary_data_size that is no number, corrupt gzip, unknown encoding, zip bomb: precise 4xx', () => {
    const expectError = (c: Case, status: number, message: RegExp) => {
      expect({ status: c.status, type: c.content_type }).toEqual({ status, type: 'application/json' });
      expect(Object.keys(c.json)).toEqual(['error']);
      expect(c.json.error).toMatch(message);
    };
    expectError(cases.binary_size_not_a_number, 400, /binary_data_size must be a non-negative integer number of bytes, got "16 KiB"/);
    expectError(cases.gzip_corrupt, 400, /not valid gzip data/);
    expectError(cases.br_encoding, 415, /Content-Encoding "br" is not supported/);
    expect((cases.bomb_size as unknown as { compressed_bytes: number }).compressed_bytes).toBeLessThan(MAX_BODY);
    expectError(cases.gzip_bomb, 413, new RegExp(`over the limit of ${MAX_BODY} bytes`));
  });

  it('the server is still serving afterwards', async () => {
    expect((await fetch(`${srv.base}/v2/health/ready`)).status).toBe(200);
  });
});
