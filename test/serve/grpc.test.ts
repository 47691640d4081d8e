// The gRPC service (inference.GRPCInferenceService) driven by a client that is not ours: gRPC's C-core in Python
// (Debian's python3-grpcio), with stubs generated at test time from our .proto by grpc_tools.protoc
// (scripts/grpc-client.py, also the bench's gRPC load generator). Every RPC, results equal to HTTP v2 within 1e-5,
// API keys from metadata, the status codes of every failure (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE,
// DEADLINE_EXCEEDED, UNAUTHENTICATED), a fuzz of malformed messages after which the server still answers, metrics
// with protocol="grpc", and the drain.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PROTO_PATH } from '../../src/serve/grpc/server.js';
import { expectClose, makeModels, metricsText, type Running, sample, startApp, type TempModels } from './helpers.js';
import { v2Json } from './hostile.js';

const D = 16; // 1×4×4
const KEY = 'grpc-test-key-0123456789';
const SCRIPT = new URL('../../scripts/grpc-client.py', import.meta.url).pathname;

async function py(target: string, mode: string, ...args: string[]): Promise<any> {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [SCRIPT, PROTO_PATH, target, 'tiny4', String(D), mode, ...args], { maxBuffer: 1 << 26, timeout: 120_000 });
  return JSON.parse(stdout);
}

let models: TempModels;
let srv: Running;

beforeAll(async () => {
  models = await makeModels([{ name: 'tiny4', arch: 'B_1-Wi_8', channels: 1, size: 4, classes: 3, seed: 21 }]);
  srv = await startApp({ MODELS_DIR: models.dir, API_KEYS: KEY, MAX_FILES: '8' }, { grpc: true });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await models?.cleanup();
});

describe('every RPC from python grpcio', () => {
  let r: any;
  let http: any;
  beforeAll(async () => {
    r = await py(srv.grpc!, 'rpcs', KEY);
    const req = { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, D], data: r.input }] };
    http = (await v2Json(srv.base, '/v2/models/tiny4/infer', req, { authorization: `Bearer ${KEY}` })).json;
  }, 120_000);

  it('ServerLive, ServerReady, ServerMetadata, ModelReady answer as /v2 does', async () => {
    expect([r.server_live, r.server_ready, r.model_ready, r.model_ready_v1]).toEqual([true, true, true, true]);
    const meta = (await (await fetch(`${srv.base}/v2`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as object;
    expect(r.server_metadata).toEqual(meta);
  });

  it('ModelMetadata equals GET /v2/models/{m}, the preprocessing parameters included', async () => {
    const meta = (await (await fetch(`${srv.base}/v2/models/tiny4`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as any;
    expect(r.model_metadata).toEqual(meta);
  });

  it('ModelInfer with typed contents: id echoed, both outputs, equal to HTTP v2 within 1e-5', () => {
    const t = r.infer_typed;
    expect([t.model_name, t.model_version, t.id, t.raw]).toEqual(['tiny4', '1', 'py-1', 0]);
    expect(Object.keys(t.outputs)).toEqual(['logits', 'embedding']);
    expect(t.outputs.logits.shape).toEqual([3, 3]);
    expectClose(t.outputs.logits.data, http.outputs[0].data);
    expectClose(t.outputs.embedding.data, http.outputs[1].data);
  });

  it('ModelInfer with raw_input_contents and one requested output: raw_output_contents, equal to HTTP v2', () => {
    const t = r.infer_raw_embedding;
    expect([t.id, t.raw, t.order]).toEqual(['', 1, ['embedding']]);
    expect(t.outputs.embedding.shape).toEqual([3, 8]);
    expectClose(t.outputs.embedding.data, http.outputs[1].data);
  });

  it('EXPECTED FAILURE - unknown model NOT_FOUND, no or wrong key UNAUTHENTICATED (liveness stays open)', () => {
    expect(r.errors.unknown_model).toEqual(['NOT_FOUND', 'no model named "nope"; GET /models lists them']);
    expect(r.errors.unknown_model_metadata[0]).toBe('NOT_FOUND');
    expect(r.errors.unknown_version_ready[0]).toBe('NOT_FOUND');
    expect(r.errors.no_key).toEqual(['UNAUTHENTICATED', expect.stringContaining('a valid API key is required')]);
    expect(r.errors.bad_key[0]).toBe('UNAUTHENTICATED');
    expect(r.errors.no_key_live).toBe('OK');
  });

  it('gRPC calls are counted with protocol="grpc" beside HTTP\'s', async () => {
    const text = await metricsText(srv.base);
    expect(sample(text, 'mlp_requests_total{route="/inference.GRPCInferenceService/ModelInfer",model="tiny4",outcome="ok",protocol="grpc"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'mlp_requests_total{model="tiny4",outcome="ok",protocol="http"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mlp_rejections_total{reason="unauthorized",protocol="grpc"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'mlp_grpc_request_duration_seconds_count{method="ModelInfer",code="NOT_FOUND"}')).toBeGreaterThanOrEqual(1);
  });
});

describe('EXPECTED FAILURE - malformed messages', () => {
  it('300 malformed ModelInfer messages each get INVALID_ARGUMENT (never INTERNAL), and the server stays up', async () => {
    const s = await startApp({ MODELS_DIR: models.dir, MAX_FILES: '8' }, { grpc: true });
    try {
      const f = await py(s.grpc!, 'fuzz', '300', '5');
      expect(f.results).toHaveLength(300);
      // Byte-level damage may still decode as a valid message (a flipped bit in a value, or in the model's name):
      // those may succeed or name a model that does not exist; every structured mistake is INVALID_ARGUMENT.
      const byteLevel = new Set(['random_bytes', 'truncated', 'bit_flips']);
      for (const x of f.results)
        expect(byteLevel.has(x.kind) ? ['INVALID_ARGUMENT', 'NOT_FOUND', 'OK'] : ['INVALID_ARGUMENT'], `${x.kind}: ${x.code} ${x.details}`).toContain(x.code);
      const random = f.results.filter((x: any) => x.kind === 'random_bytes');
      expect(random.filter((x: any) => x.code === 'INVALID_ARGUMENT').length).toBeGreaterThan(random.length / 2);
      for (const x of f.results) expect(x.details, x.kind).not.toMatch(/\/(work|usr|tmp)\/|node_modules|\.ts\b|at .+:\d+/);
      expect(f.results.find((x: any) => x.kind === 'huge_dims').details).toMatch(/shape|at most 8/);
      expect(f.results.find((x: any) => x.kind === 'too_many_rows').details).toBe('at most 8 images per request');
      expect([f.live_after, f.infer_after]).toEqual(['OK', 'OK']);
      expect((await fetch(`${s.base}/readyz`)).status).toBe(200);
    } finally {
      await s.close();
    }
  }, 180_000);
});

describe('EXPECTED FAILURE - load and deadlines', () => {
  it('queue full → UNAVAILABLE; the server\'s own deadline → DEADLINE_EXCEEDED', async () => {
    const s = await startApp(
      { MODELS_DIR: models.dir, BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '3000', BATCH_MAX_SIZE: '64', QUEUE_MAX: '4', REQUEST_TIMEOUT_MS: '600' },
      { grpc: true },
    );
    try {
      const p = await py(s.grpc!, 'pressure', '3');
      const codes = p.results.map((x: any) => x.code).sort();
      expect(codes).toEqual(['DEADLINE_EXCEEDED', 'UNAVAILABLE', 'UNAVAILABLE']);
      expect(p.results.find((x: any) => x.code === 'UNAVAILABLE').details).toBe('model tiny4:1 is at capacity; retry shortly');
      expect(p.results.find((x: any) => x.code === 'DEADLINE_EXCEEDED').details).toBe('the request did not complete within 600 ms');
    } finally {
      await s.close();
    }
  }, 60_000);

  it('SIGTERM\'s drain: calls already queued are answered OK before the models close', async () => {
    const s = await startApp({ MODELS_DIR: models.dir, BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '3000', BATCH_MAX_SIZE: '64' }, { grpc: true });
    const calls = py(s.grpc!, 'pressure', '2');
    // Both calls (3 rows each) wait in the batch queue for the batch delay; drain while they do.
    while (sample(await metricsText(s.base), 'mlp_queue_depth{model="tiny4"}') < 6) await new Promise((r) => setTimeout(r, 50));
    s.app.serving.draining = true;
    const closed = s.close();
    const r = await calls;
    await closed;
    expect(r.results).toEqual([{ code: 'OK', details: '' }, { code: 'OK', details: '' }]);
  }, 60_000);

  it('draining: ModelInfer UNAVAILABLE; after close() the port no longer answers', async () => {
    const s = await startApp({ MODELS_DIR: models.dir }, { grpc: true });
    s.app.serving.draining = true;
    const r = await py(s.grpc!, 'pressure', '1');
    expect(r.results[0]).toEqual({ code: 'UNAVAILABLE', details: 'the server is shutting down; retry on another instance' });
    await s.close();
    const after = await py(s.grpc!, 'pressure', '1');
    expect(after.results[0].code).toBe('UNAVAILABLE');
  }, 60_000);
});
