// The thread split chosen by measurement: the pure rule (onnxruntime's share of the cores is its share of the
// per-image cost, in whole single-threaded workers), the real decode timing it reads, and a real server that
// measures its split at start-up, shows it in /models and mlp_threads, and obeys the environment when pinned.

import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cheapestPerImage, measureDecodeMs, pinnedPlan, planThreads } from '../../src/serve/thread-plan.js';
import { makeModels, metricsText, startApp, type TempModels } from './helpers.js';

describe('planThreads', () => {
  it('decode-bound: one onnxruntime thread; compute-bound: one per core, all in one worker', () => {
    // 28×28 PNG + a small one-view model: decode 0.5 ms, inference 0.05 ms → share 2 × 0.05/0.55 = 0.18 core.
    expect(planThreads(2, 0.5, { batch: 32, ms: 0.05 })).toMatchObject({ inferenceWorkers: 1, intraOpThreads: 1, source: 'measured' });
    // B_12-Wi_1024: decode 0.5 ms, inference 5.5 ms → share 1.83 cores → 2 threads.
    const big = planThreads(2, 0.5, { batch: 64, ms: 5.5 });
    expect(big).toMatchObject({ inferenceWorkers: 1, intraOpThreads: 2, inferBatch: 64 });
    expect(big.inferenceCores).toBeCloseTo((2 * 5.5) / 6, 12);
    // Even a pure-inference load never gets more threads than cores; on 8 cores a 50/50 split is 4 threads.
    expect(planThreads(2, 0, { batch: 8, ms: 1 }).intraOpThreads).toBe(2);
    expect(planThreads(8, 1, { batch: 8, ms: 1 }).intraOpThreads).toBe(4);
  });

  it('the cheapest warm-up batch gives the per-image cost', () => {
    expect(cheapestPerImage([{ size: 1, ms: 3 }, { size: 8, ms: 8 }, { size: 32, ms: 24 }, { size: 16, ms: 14 }])).toEqual({ batch: 32, ms: 0.75 });
  });

  it('BAD CALL - no timings or nonsense costs are refused', () => {
    expect(() => cheapestPerImage([])).toThrow(/no warm-up timings/);
    expect(() => planThreads(2, -1, { batch: 8, ms: 1 })).toThrow(RangeError);
    expect(() => planThreads(2, 0, { batch: 8, ms: 0 })).toThrow(RangeError);
  });

  it('pinned: what the environment says, the old default for the rest', () => {
    expect(pinnedPlan(2, 2, undefined)).toEqual({ inferenceWorkers: 2, intraOpThreads: 1, source: 'env' });
    expect(pinnedPlan(8, undefined, 2)).toEqual({ inferenceWorkers: 1, intraOpThreads: 2, source: 'env' });
  });

  it('measureDecodeMs times the service\'s own decode of a real PNG: positive and small for 64×64', async () => {
    const ms = await measureDecodeMs({ width: 64, height: 64, channels: 3 }, 10);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThan(50);
  });
});

describe('a real server', () => {
  let models: TempModels;
  beforeAll(async () => {
    models = await makeModels([{ arch: 'B_2-Wi_64', name: 'm', size: 16, channels: 1 }]);
  }, 60_000);
  afterAll(async () => {
    await models?.cleanup();
  });

  it('measures its thread split at start-up and shows it in /models and mlp_threads', async () => {
    const srv = await startApp({ MODELS_DIR: models.dir, ORT_INTRA_OP_THREADS: '', INFERENCE_WORKERS: '' });
    try {
      const body = (await (await fetch(`${srv.base}/models`)).json()) as { threads: Record<string, unknown> };
      expect(body.threads.source).toBe('measured');
      expect(body.threads.inferenceWorkers).toBe(1);
      const threads = body.threads.intraOpThreads as number;
      expect(threads).toBeGreaterThanOrEqual(1);
      expect(threads).toBeLessThanOrEqual(availableParallelism());
      expect(body.threads.decodeMs as number).toBeGreaterThan(0);
      expect(body.threads.inferMs as number).toBeGreaterThan(0);
      expect(srv.app.models.pool!.size).toBe(1);
      const text = await metricsText(srv.base);
      expect(text).toContain('mlp_threads{role="inference_workers",source="measured"} 1');
      expect(text).toContain(`mlp_threads{role="intra_op",source="measured"} ${threads}`);
    } finally {
      await srv.close();
    }
  }, 60_000);

  it('INFERENCE_WORKERS pins the split: no measurement, that many workers', async () => {
    const srv = await startApp({ MODELS_DIR: models.dir, ORT_INTRA_OP_THREADS: '', INFERENCE_WORKERS: '2' });
    try {
      const body = (await (await fetch(`${srv.base}/models`)).json()) as { threads: Record<string, unknown> };
      expect(body.threads).toEqual({ inferenceWorkers: 2, intraOpThreads: 1, source: 'env', uvThreadpoolSize: 4 });
      expect(srv.app.models.pool!.size).toBe(2);
      expect(await metricsText(srv.base)).toContain('mlp_threads{role="inference_workers",source="env"} 2');
    } finally {
      await srv.close();
    }
  }, 60_000);
});
