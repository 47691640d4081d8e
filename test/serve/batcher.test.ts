// The batcher's policy as a pure function, and the batcher itself over a real worker pool and onnxruntime:
// batch sizes, results routed back to the right request, queue bound, deadlines, and failure isolation.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Batcher, DeadlineError, QueueFullError, fixedDelayPolicy, type BatchState } from '../../src/serve/batcher.js';
import { InferencePool, WorkerCrashedError } from '../../src/serve/worker-pool.js';
import { makeModels, type TempModels } from './helpers.js';

const state = (s: Partial<BatchState>): BatchState => ({ queued: 0, oldestWaitMs: 0, freeWorkers: 1, maxSize: 8, maxDelayMs: 5, ...s });

describe('fixedDelayPolicy', () => {
  it('sends a full batch at once, a partial one when its oldest request has waited maxDelayMs', () => {
    expect(fixedDelayPolicy(state({ queued: 0 }))).toEqual({ kind: 'idle' });
    expect(fixedDelayPolicy(state({ queued: 8 }))).toEqual({ kind: 'dispatch', size: 8 });
    expect(fixedDelayPolicy(state({ queued: 20 }))).toEqual({ kind: 'dispatch', size: 8 });
    expect(fixedDelayPolicy(state({ queued: 3, oldestWaitMs: 1 }))).toEqual({ kind: 'wait', ms: 4 });
    expect(fixedDelayPolicy(state({ queued: 3, oldestWaitMs: 5 }))).toEqual({ kind: 'dispatch', size: 3 });
    expect(fixedDelayPolicy(state({ queued: 3, oldestWaitMs: 50 }))).toEqual({ kind: 'dispatch', size: 3 });
  });

  it('sends nothing while every worker is busy (the queue grows the next batch meanwhile)', () => {
    expect(fixedDelayPolicy(state({ queued: 20, oldestWaitMs: 100, freeWorkers: 0 }))).toEqual({ kind: 'idle' });
  });

  it('BATCH_MAX_SIZE=1 sends every request alone, without waiting', () => {
    expect(fixedDelayPolicy(state({ queued: 1, maxSize: 1, maxDelayMs: 1000 }))).toEqual({ kind: 'dispatch', size: 1 });
  });
});

describe('Batcher over a real worker pool', () => {
  let models: TempModels;
  let pool: InferencePool;
  const D = 3 * 16 * 16;

  beforeAll(async () => {
    models = await makeModels([{ name: 'b', arch: 'B_1-Wi_32', channels: 3, size: 16, classes: 7, seed: 5 }]);
    pool = await InferencePool.create({
      workers: 1,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      init: {
        models: [{ name: 'b', path: join(models.dir, 'b', 'model.onnx'), inputDim: D, classes: 7, embeddingDim: 32 }],
        providers: ['cpu'],
        requireGpu: false,
        intraOpThreads: 1,
        interOpThreads: 1,
        warmupSizes: [1, 4],
        fallbackLevel: 'warn',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await pool?.close();
    await models?.cleanup();
  });

  const make = (
    o: { maxSize?: number; maxDelayMs?: number; queueMax?: number; sizes?: number[]; waits?: number[]; policy?: 'fixed' | 'adaptive' } = {},
  ) =>
    new Batcher({
      model: 'b',
      inputDim: D,
      classes: 7,
      embeddingDim: 32,
      maxSize: o.maxSize ?? 4,
      maxDelayMs: o.maxDelayMs ?? 30,
      queueMax: o.queueMax ?? 100,
      runner: pool,
      policy: o.policy,
      latencyTargetMs: 50,
      observer: { batch: (size) => o.sizes?.push(size), queueWait: (s) => o.waits?.push(s) },
    });
  const input = (seed: number) => Float32Array.from({ length: D }, (_, i) => Math.sin(seed * 7.1 + i * 0.37));

  it('10 requests at once with maxSize 4 → batches of 4, 4, 2, each result routed to its own request', async () => {
    const sizes: number[] = [];
    const b = make({ sizes });
    const inputs = Array.from({ length: 10 }, (_, i) => input(i));
    const results = await Promise.all(inputs.map((x) => b.submit([x.slice()], 5000)));
    expect(sizes).toEqual([4, 4, 2]);
    for (let i = 0; i < 10; i++) {
      const alone = await pool.run('b', inputs[i].slice(), 1);
      for (let c = 0; c < 7; c++) expect(results[i][0].logits[c]).toBeCloseTo(alone.logits[c], 5);
      expect(results[i][0].embedding).toHaveLength(32);
    }
    expect(b.depth).toBe(0);
    b.close();
  });

  it('a multi-image request resolves in image order', async () => {
    const b = make({ maxSize: 3 });
    const xs = [input(20), input(21), input(22), input(23), input(24)];
    const out = await b.submit(xs.map((x) => x.slice()), 5000);
    for (let i = 0; i < xs.length; i++) {
      const alone = await pool.run('b', xs[i].slice(), 1);
      expect(out[i].logits[0]).toBeCloseTo(alone.logits[0], 5);
    }
    b.close();
  });

  it('EXPECTED FAILURE - a request that does not fit in queueMax throws QueueFullError and queues nothing', async () => {
    const b = make({ maxSize: 8, maxDelayMs: 50, queueMax: 5 });
    const first = b.submit([input(1), input(2), input(3)], 5000);
    expect(() => b.submit([input(4), input(5), input(6)], 5000)).toThrow(QueueFullError);
    expect(b.depth).toBe(3);
    expect(await first).toHaveLength(3);
    b.close();
  });

  it('EXPECTED FAILURE - a request still queued at its deadline rejects with DeadlineError and leaves the queue', async () => {
    const sizes: number[] = [];
    const b = make({ maxSize: 8, maxDelayMs: 5000, sizes });
    const t0 = Date.now();
    await expect(b.submit([input(1)], 40)).rejects.toBeInstanceOf(DeadlineError);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(b.depth).toBe(0);
    await b.idle();
    expect(sizes).toEqual([]);
    b.close();
  });

  it('adaptive: learns the batch time from the batches it sends, and a lone request does not wait for companions', async () => {
    const waits: number[] = [];
    const b = make({ maxSize: 8, maxDelayMs: 1000, waits, policy: 'adaptive' });
    expect(b.cost).toBeUndefined();
    // Bursts of 1..8 images: batches of several sizes, so the fit has a slope to find.
    for (const n of [1, 8, 3, 6, 2, 8]) await Promise.all(Array.from({ length: n }, (_, i) => b.submit([input(i)], 5000)));
    const c = b.cost!;
    expect(c.fixedMs + c.perImageMs * 8).toBeGreaterThan(0);
    expect(c.fixedMs).toBeGreaterThanOrEqual(0);
    expect(c.perImageMs).toBeGreaterThanOrEqual(0);
    // BATCH_MAX_DELAY_MS is 1000, yet the first lone request left the queue at once (the fixed policy would hold it).
    waits.length = 0;
    await b.submit([input(99)], 5000);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeLessThan(0.5);
    b.close();
  });

  it('BAD CALL - an input of the wrong size is refused', () => {
    const b = make();
    expect(() => b.submit([new Float32Array(5)], 1000)).toThrow(/5 values/);
    b.close();
  });

  it('a batch whose worker dies fails only its own requests; the next batch runs on the replacement', async () => {
    const b = make({ maxSize: 2, maxDelayMs: 1 });
    pool.once('dispatch', (index: number) => pool.workers[index].postMessage(null)); // crashes it before the batch
    const doomed = b.submit([input(1), input(2)], 5000);
    const later = b.submit([input(3)], 5000);
    await expect(doomed).rejects.toBeInstanceOf(WorkerCrashedError);
    expect(await later).toHaveLength(1);
    b.close();
  });
});
