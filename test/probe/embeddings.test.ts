// The probe's feature extractors against the real service over a socket: served embeddings of real Fashion-MNIST
// images (uploaded as PNG) equal the local onnxruntime ones; a service shedding load (503 + Retry-After) is waited
// out; a 4xx is not retried. Then a whole probe run (local, random-init twin, pixels) on a small subset.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import type { DataSource } from '../../src/data/dataset.js';
import { writeRandomModel } from '../../src/export/random.js';
import {
  EmbedRequestError,
  localEmbeddings,
  pixelFeatures,
  retryAfterMs,
  servedEmbeddings,
} from '../../src/probe/embeddings.js';
import type { ImageList } from '../../src/data/dataset.js';
import { resolveModelDir, runProbe } from '../../src/probe/probe.js';
import { startApp, type Running } from '../serve/helpers.js';

const exec = promisify(execFile);
let dir: string;
let modelDir: string;
let fashion: DataSource;
const N = 40;
let images: ImageList;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'probe-embed-'));
  modelDir = join(dir, 'tiny');
  // 32×32 input: the 28×28 uploads are resized by the server's preprocessing, as for a real model.
  await writeRandomModel({ arch: 'B_1-Wi_32', name: 'tiny', out: modelDir, size: 32, channels: 1, labels: 'fashion-mnist', seed: 3 });
  fashion = await openDataSource('fashion-mnist');
  images = { size: N, image: (i) => fashion.test.image(i) };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('retryAfterMs', () => {
  it('reads delta-seconds and HTTP dates, and ignores what it cannot read', () => {
    expect(retryAfterMs('1')).toBe(1000);
    expect(retryAfterMs(' 30 ')).toBe(30_000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });
});

describe('served embeddings', () => {
  let server: Running;
  beforeAll(async () => {
    server = await startApp({ MODELS_DIR: dir });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('equal the local onnxruntime embeddings of the same images (PNG uploads, several batches in flight)', async () => {
    const progress: number[] = [];
    const served = await servedEmbeddings(images, {
      url: server.base,
      model: 'tiny',
      batchSize: 7,
      concurrency: 3,
      onProgress: (d) => progress.push(d),
    });
    const local = await localEmbeddings(modelDir, images, { batchSize: 16 });
    expect(served.rows).toBe(N);
    expect(served.cols).toBe(32);
    expect(served.retries).toBe(0);
    expect(maxAbsDiff(served.data as Float32Array, local.data as Float32Array)).toBeLessThan(1e-4);
    // The embeddings differ between images (a row-order mix-up would not go unnoticed).
    expect(maxAbsDiff(served.data.subarray(0, 32) as Float32Array, served.data.subarray(32, 64) as Float32Array)).toBeGreaterThan(1e-3);
    expect(progress.at(-1)).toBe(N);
    expect(progress.length).toBe(Math.ceil(N / 7));
  });

  it('npm run probe -- --url … fetches, fits and reports (the CLI against the running service)', async () => {
    const out = join(dir, 'probe.json');
    const { stdout } = await exec(
      'npx',
      ['tsx', 'scripts/probe.ts', '--url', server.base, '--model', 'tiny', '--data', 'fashion-mnist', '--train-n', '200', '--test-n', '100', '--json', out],
      { timeout: 60_000 },
    );
    expect(stdout).toMatch(/served tiny via http:\/\/127\.0\.0\.1:\d+ on fashion-mnist \(train 200 \/ test 100\): test top-1 \d+\.\d+%/);
    const json = JSON.parse(await readFile(out, 'utf8')) as { reports: { dim: number; testAccuracy: number }[] };
    expect(json.reports[0].dim).toBe(32);
    expect(json.reports[0].testAccuracy).toBeGreaterThan(0.3);
  }, 60_000);

  it('EXPECTED FAILURE - an unknown model is a 404 with the API error code, not retried', async () => {
    const err = await servedEmbeddings(images, { url: server.base, model: 'nope', batchSize: 8 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmbedRequestError);
    expect((err as EmbedRequestError).status).toBe(404);
    expect((err as EmbedRequestError).code).toBe('UNKNOWN_MODEL');
  });
});

describe('a service shedding load', () => {
  let server: Running;
  beforeAll(async () => {
    // A queue of 16 images and batches that wait 300 ms for company (the fixed policy: the adaptive one would not
    // wait): of 6 concurrent 8-image requests, only two fit.
    server = await startApp({ MODELS_DIR: dir, QUEUE_MAX: '16', BATCH_MAX_SIZE: '64', BATCH_MAX_DELAY_MS: '300', BATCH_POLICY: 'fixed' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('is waited out: 503s retried after Retry-After, every embedding still right', async () => {
    const waits: number[] = [];
    const served = await servedEmbeddings(images, {
      url: server.base,
      model: 'tiny',
      batchSize: 8,
      concurrency: 5,
      // Record what the client would wait, but wait only briefly so the test stays fast.
      sleep: (ms) => {
        waits.push(ms);
        return new Promise((r) => setTimeout(r, 50));
      },
    });
    expect(served.retries).toBeGreaterThan(0);
    expect(waits.length).toBe(served.retries);
    // The service's Retry-After is 1 s.
    expect(new Set(waits)).toEqual(new Set([1000]));
    const local = await localEmbeddings(modelDir, images);
    expect(maxAbsDiff(served.data as Float32Array, local.data as Float32Array)).toBeLessThan(1e-4);
  });

  it('EXPECTED FAILURE - gives up after maxRetries with the 503 code', async () => {
    const err = await servedEmbeddings(images, {
      url: server.base,
      model: 'tiny',
      batchSize: 20, // more than the queue can ever hold alongside another request
      concurrency: 2,
      maxRetries: 1,
      sleep: () => Promise.resolve(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmbedRequestError);
    expect((err as EmbedRequestError).status).toBe(503);
    expect((err as EmbedRequestError).code).toBe('QUEUE_FULL');
  });
});

describe('pixel features', () => {
  it('are the data set pixels themselves', async () => {
    const x = await pixelFeatures({ size: 3, image: (i) => fashion.train.image(i) });
    expect(x.cols).toBe(784);
    const first = (await fashion.train.image(0)) as { raw: Uint8Array };
    expect(Array.from(x.data.subarray(0, 784))).toEqual(Array.from(first.raw));
  });
});

describe('resolveModelDir', () => {
  it('finds the model in the flat layout, else the newest version, as the server does', async () => {
    expect(resolveModelDir(modelDir)).toBe(modelDir);
    const versioned = join(dir, 'versioned');
    for (const v of ['2', '10']) await writeRandomModel({ arch: 'B_0-Wi_8', name: 'versioned', out: join(versioned, v), size: 8, channels: 1 });
    expect(resolveModelDir(versioned)).toBe(join(versioned, '10'));
    expect(resolveModelDir(join(dir, 'missing'))).toBeUndefined();
  });
});

describe('runProbe', () => {
  it('probes a model, its random-init twin and raw pixels on real data', async () => {
    const common = { data: 'fashion-mnist', trainN: 400, testN: 200, probe: { lambdas: [1, 1e-1, 1e-2] } };
    const local = await runProbe({ ...common, source: { kind: 'local', modelDir } });
    const twin = await runProbe({ ...common, source: { kind: 'random-init', modelDir, seed: 3 } });
    const pixels = await runProbe({ ...common, source: { kind: 'pixels' } });
    expect(local.dim).toBe(32);
    expect(pixels.dim).toBe(784);
    // The model is itself a random init with seed 3: its twin with the same seed is the same network.
    expect(twin.testAccuracy).toBe(local.testAccuracy);
    // Fashion-MNIST is far from chance (10%) even for a 32-d random projection and 400 examples.
    for (const r of [local, pixels]) expect(r.testAccuracy).toBeGreaterThan(0.55);
    expect(local.data).toMatch(/fashion-mnist \(train 400 \/ test 200\)/);
  }, 60_000);
});
