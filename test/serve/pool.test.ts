// Sessions and workers with real onnxruntime: explicit session options, provider fallback (cuda → cpu with a
// warning; REQUIRE_GPU fails clearly), and a worker that exits mid-batch being reported and replaced.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { GpuUnavailableError, openSession, sessionOptions } from '../../src/serve/session.js';
import { InferencePool, WorkerCrashedError } from '../../src/serve/worker-pool.js';
import type { WorkerInit } from '../../src/serve/worker-protocol.js';
import { makeModels, type TempModels } from './helpers.js';

let models: TempModels;
let onnx: string;
const D = 1 * 8 * 8;

beforeAll(async () => {
  models = await makeModels([{ name: 'p', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 3, seed: 6 }]);
  onnx = join(models.dir, 'p', 'model.onnx');
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

const init = (o: Partial<WorkerInit> = {}): WorkerInit => ({
  models: [{ name: 'p', path: onnx, inputDim: D, classes: 3, embeddingDim: 16 }],
  providers: ['cpu'],
  requireGpu: false,
  intraOpThreads: 1,
  interOpThreads: 1,
  warmupSizes: [1, 2],
  fallbackLevel: 'warn',
  ...o,
});

function logger() {
  const lines: string[] = [];
  return { lines, log: { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) } };
}

describe('openSession', () => {
  it('spells out every session option', () => {
    const o = sessionOptions('cpu', { providers: ['cpu'], requireGpu: false, intraOpThreads: 3, interOpThreads: 1 });
    expect(o).toMatchObject({
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: 3,
      interOpNumThreads: 1,
    });
  });

  it('falls back from an unavailable CUDA provider to CPU with one warning naming it', async () => {
    const warnings: string[] = [];
    const s = await openSession(onnx, { providers: ['cuda', 'cpu'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1, warn: (m) => warnings.push(m) });
    try {
      expect(['cuda', 'cpu']).toContain(s.provider);
      if (s.provider === 'cpu') {
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/execution provider cuda unavailable/);
      }
      expect([...s.session.outputNames].sort()).toEqual(['embedding', 'logits']);
    } finally {
      await s.session.release();
    }
  });

  it('EXPECTED FAILURE - REQUIRE_GPU without a usable GPU provider fails with a clear message', async () => {
    const probe = await openSession(onnx, { providers: ['cuda', 'cpu'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1 });
    await probe.session.release();
    if (probe.provider === 'cuda') return; // a machine with a working GPU: nothing to refuse
    const err = await openSession(onnx, { providers: ['cuda', 'cpu'], requireGpu: true, intraOpThreads: 1, interOpThreads: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(GpuUnavailableError);
    expect(err.message).toMatch(/^REQUIRE_GPU=1 but no GPU execution provider could start \(cuda: /);
  });
});

describe('InferencePool', () => {
  it('runs a batch in a worker and returns [size, classes] logits and [size, width] embeddings', async () => {
    const { log } = logger();
    const pool = await InferencePool.create({ workers: 2, log, init: init() });
    try {
      expect(pool.providers).toEqual({ p: 'cpu' });
      expect(pool.freeSlots()).toBe(2);
      const [a, b] = await Promise.all([pool.run('p', new Float32Array(3 * D).fill(0.5), 3), pool.run('p', new Float32Array(D), 1)]);
      expect(a.logits).toHaveLength(9);
      expect(a.embedding).toHaveLength(48);
      expect(b.logits).toHaveLength(3);
      // Same row, same answer, whichever worker and batch position.
      expect(Array.from(a.logits.subarray(0, 3))).toEqual(Array.from(a.logits.subarray(6, 9)));
      expect(a.runMs).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('a worker that exits with a batch in flight fails that batch with WorkerCrashedError and is replaced', async () => {
    const { log, lines } = logger();
    const pool = await InferencePool.create({ workers: 1, log, init: init() });
    try {
      const replaced = new Promise((r) => pool.once('replaced', r));
      // A protocol violation crashes the worker; the batch posted right after it is lost with the worker.
      pool.workers[0].postMessage(null);
      const lost = pool.run('p', new Float32Array(D), 1);
      await expect(lost).rejects.toBeInstanceOf(WorkerCrashedError);
      await replaced;
      expect(pool.restarts).toBe(1);
      expect(lines.some((l) => /exited \(code 1\); starting a replacement/.test(l))).toBe(true);
      expect(lines.some((l) => /failed: inference worker: unexpected message null/.test(l))).toBe(true);
      expect((await pool.run('p', new Float32Array(D), 1)).logits).toHaveLength(3);
    } finally {
      await pool.close();
    }
  });

  it('EXPECTED FAILURE - a model without the contract outputs fails start-up naming the model', async () => {
    const { log } = logger();
    const err = await InferencePool.create({
      workers: 1,
      log,
      init: init({ models: [{ name: 'p', path: onnx, inputDim: D + 1, classes: 3, embeddingDim: 16 }] }),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(GpuUnavailableError);
    expect(err.message).toMatch(/input|dimension|shape/i);
  });

  it('EXPECTED FAILURE - REQUIRE_GPU makes start-up fail when only CPU works', async () => {
    const { log } = logger();
    const probe = await openSession(onnx, { providers: ['cuda'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1 }).catch(() => undefined);
    if (probe) {
      await probe.session.release();
      return; // CUDA works here
    }
    const err = await InferencePool.create({ workers: 1, log, init: init({ providers: ['cuda', 'cpu'], requireGpu: true }) }).catch((e) => e);
    // The worker's error class survives the thread boundary: callers test the kind, not the wording.
    expect(err).toBeInstanceOf(GpuUnavailableError);
    expect(err.message).toMatch(/REQUIRE_GPU=1/);
  });
});
