// The batching policies as pure functions (every branch of the adaptive one, with the numbers worked out), the
// online batch-cost fit (recovers a known line, follows a change, degrades safely), and the arrival-rate estimate.

import { describe, expect, it } from 'vitest';
import {
  ArrivalRate,
  BatchCostModel,
  adaptivePolicy,
  batchMs,
  fixedDelayPolicy,
  usefulBatchSize,
  type BatchState,
} from '../../src/serve/batch-policy.js';
import { createRng } from '../../src/util/rng.js';

const state = (s: Partial<BatchState>): BatchState => ({ queued: 0, oldestWaitMs: 0, freeWorkers: 1, maxSize: 32, maxDelayMs: 5, ...s });

// A model whose batch costs 2 ms + 0.05 ms per image: batching pays up to 9·2/0.05 = 360 images.
const cost = { fixedMs: 2, perImageMs: 0.05 };

describe('fixedDelayPolicy', () => {
  it('waits out maxDelayMs for a partial batch, sends a full one at once', () => {
    expect(fixedDelayPolicy(state({ queued: 1, oldestWaitMs: 1 }))).toEqual({ kind: 'wait', ms: 4 });
    expect(fixedDelayPolicy(state({ queued: 1, oldestWaitMs: 5 }))).toEqual({ kind: 'dispatch', size: 1 });
    expect(fixedDelayPolicy(state({ queued: 40 }))).toEqual({ kind: 'dispatch', size: 32 });
  });
});

describe('adaptivePolicy', () => {
  it('is idle with nothing queued or no free worker, and sends a full batch at once', () => {
    expect(adaptivePolicy(state({ queued: 0, cost, arrivalsPerMs: 5 }))).toEqual({ kind: 'idle' });
    expect(adaptivePolicy(state({ queued: 9, freeWorkers: 0, cost, arrivalsPerMs: 5 }))).toEqual({ kind: 'idle' });
    expect(adaptivePolicy(state({ queued: 50, cost, arrivalsPerMs: 5 }))).toEqual({ kind: 'dispatch', size: 32 });
  });

  it('sends at once while nothing is learned yet, or nothing arrives', () => {
    expect(adaptivePolicy(state({ queued: 3, arrivalsPerMs: 5 }))).toEqual({ kind: 'dispatch', size: 3 });
    expect(adaptivePolicy(state({ queued: 3, cost, arrivalsPerMs: 0 }))).toEqual({ kind: 'dispatch', size: 3 });
  });

  it('moderate load: a full batch would take longer than the budget allows, so it sends at once (never sits idle)', () => {
    // 1 image/ms: 31 more images take 31 ms, more than maxDelayMs (5 ms) allows.
    expect(adaptivePolicy(state({ queued: 1, cost, arrivalsPerMs: 1, latencyTargetMs: 100 }))).toEqual({ kind: 'dispatch', size: 1 });
  });

  it('a burst fast enough to fill the batch within the budget: waits exactly the expected fill time', () => {
    // 20 images/ms, 12 queued: 20 more in 1 ms; budget min(5 − 0.5, (20 − 0.5 − 2 − 0.6)/(1 + 20·0.05)) = 4.5 ms.
    const d = adaptivePolicy(state({ queued: 12, oldestWaitMs: 0.5, cost, arrivalsPerMs: 20, latencyTargetMs: 20 }));
    expect(d.kind).toBe('wait');
    expect((d as { ms: number }).ms).toBeCloseTo(1, 10);
  });

  it('closes the batch when waiting for the fill would miss LATENCY_TARGET_MS', () => {
    // Same burst, but the target leaves (4 − 1 − 2 − 0.6)/2 = 0.2 ms: less than the 1 ms fill.
    expect(adaptivePolicy(state({ queued: 12, oldestWaitMs: 1, cost, arrivalsPerMs: 20, latencyTargetMs: 4 }))).toEqual({ kind: 'dispatch', size: 12 });
    // The oldest has already used up its budget.
    expect(adaptivePolicy(state({ queued: 12, oldestWaitMs: 30, cost, arrivalsPerMs: 20, latencyTargetMs: 20, maxDelayMs: 100 }))).toEqual({
      kind: 'dispatch',
      size: 12,
    });
  });

  it('never waits past BATCH_MAX_DELAY_MS even with a generous target', () => {
    // 2 images/ms, 20 queued: 12 more take 6 ms; the target would allow it, maxDelayMs (5, 1 already spent) does not.
    expect(adaptivePolicy(state({ queued: 20, oldestWaitMs: 1, cost, arrivalsPerMs: 2, latencyTargetMs: 1000 }))).toEqual({ kind: 'dispatch', size: 20 });
    expect(adaptivePolicy(state({ queued: 20, oldestWaitMs: 0, cost, arrivalsPerMs: 2, latencyTargetMs: 1000, maxDelayMs: 10 }))).toEqual({ kind: 'wait', ms: 6 });
  });

  it('does not wait when the batch is already big enough for the fixed cost not to matter', () => {
    // Compute-bound: 0.1 ms fixed, 1 ms per image: useful size 1, batching saves nothing worth a wait.
    const heavy = { fixedMs: 0.1, perImageMs: 1 };
    expect(usefulBatchSize(heavy)).toBe(1);
    expect(adaptivePolicy(state({ queued: 2, cost: heavy, arrivalsPerMs: 50, latencyTargetMs: 1000, maxDelayMs: 100 }))).toEqual({ kind: 'dispatch', size: 2 });
    // Waits only up to the useful size (here 9·1/0.5 = 18), not to maxSize.
    const d = adaptivePolicy(state({ queued: 10, cost: { fixedMs: 1, perImageMs: 0.5 }, arrivalsPerMs: 8, latencyTargetMs: 1000, maxDelayMs: 100 }));
    expect(d).toEqual({ kind: 'wait', ms: 1 });
  });
});

describe('BatchCostModel', () => {
  it('recovers a known line from noisy batches of mixed sizes', () => {
    const m = new BatchCostModel();
    const rng = createRng(3);
    expect(m.estimate()).toBeUndefined();
    for (let i = 0; i < 300; i++) {
      const size = 1 + Math.floor(rng() * 32);
      m.observe(size, batchMs(cost, size) * (1 + 0.05 * (rng() - 0.5)));
    }
    const c = m.estimate()!;
    expect(c.fixedMs).toBeCloseTo(2, 0);
    expect(c.perImageMs).toBeGreaterThan(0.045);
    expect(c.perImageMs).toBeLessThan(0.055);
  });

  it('follows a machine that became slower (old batches are forgotten)', () => {
    const m = new BatchCostModel(0.95);
    for (let i = 0; i < 200; i++) m.observe(1 + (i % 16), batchMs(cost, 1 + (i % 16)));
    for (let i = 0; i < 200; i++) m.observe(1 + (i % 16), 3 * batchMs(cost, 1 + (i % 16)));
    const c = m.estimate()!;
    expect(c.fixedMs).toBeCloseTo(6, 3);
    expect(c.perImageMs).toBeCloseTo(0.15, 5);
  });

  it('with one size only, takes time as proportional to size; never returns negative terms', () => {
    const m = new BatchCostModel();
    for (let i = 0; i < 5; i++) m.observe(8, 4);
    expect(m.estimate()).toEqual({ fixedMs: 0, perImageMs: 0.5 });
    // (Forgetting made negligible so the expected values are plain means.)
    const down = new BatchCostModel(1 - 1e-12);
    // Bigger batches measured faster (noise): slope clamps to 0, the mean becomes the fixed cost.
    for (const [n, t] of [[1, 3], [8, 2], [16, 1]]) down.observe(n, t);
    expect(down.estimate()!.perImageMs).toBe(0);
    expect(down.estimate()!.fixedMs).toBeCloseTo(2, 9);
    const steep = new BatchCostModel(1 - 1e-12);
    for (const [n, t] of [[1, 0.1], [2, 1.1], [3, 2.1]]) steep.observe(n, t);
    // A line through (2, 1.1) with slope 1 would cross zero below size 1: intercept clamps to 0, mean time / mean size.
    const c = steep.estimate()!;
    expect(c.fixedMs).toBe(0);
    expect(c.perImageMs).toBeCloseTo(1.1 / 2, 9);
  });

  it('BAD CALL - a decay outside (0, 1) is refused; nonsense samples are ignored', () => {
    expect(() => new BatchCostModel(1)).toThrow(RangeError);
    const m = new BatchCostModel();
    m.observe(0, 1);
    m.observe(4, NaN);
    m.observe(4, -1);
    expect(m.samples).toBe(0);
  });
});

describe('ArrivalRate', () => {
  it('converges to the rate of a steady stream and decays after it stops', () => {
    const r = new ArrivalRate(50);
    expect(r.rate(0)).toBe(0);
    for (let t = 0; t <= 1000; t += 0.5) r.observe(t, 1); // 2 images/ms
    expect(r.rate(1000)).toBeCloseTo(2, 1);
    expect(r.rate(1000 + 50)).toBeCloseTo(2 / Math.E, 1);
    expect(r.rate(1000 + 1000)).toBeLessThan(1e-6);
  });

  it('counts a multi-image request as that many arrivals', () => {
    const a = new ArrivalRate(100);
    const b = new ArrivalRate(100);
    a.observe(10, 8);
    for (let i = 0; i < 8; i++) b.observe(10, 1);
    expect(a.rate(20)).toBeCloseTo(b.rate(20), 12);
  });
});
