// The batching policies as pure functions (every branch of the adaptive one, with the numbers worked out), the
// online batch-cost fit (recovers a known line, follows a change, degrades safely), and the arrival-rate estimate.

import { describe, expect, it } from 'vitest';
import {
  ArrivalRate,
  BatchCostModel,
  adaptivePolicy,
  batchMs,
  fixedDelayPolicy,
  fillTarget,
  latencyBudgetMs,
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

  it('a cheap model never waits: its fixed cost is shorter than the time the queued images took to arrive', () => {
    // fixed 2 ms; at 1 image/ms the 3 queued images took 3 ms to arrive, longer than the fixed cost: send.
    expect(adaptivePolicy(state({ queued: 3, cost, arrivalsPerMs: 1, latencyTargetMs: 100 }))).toEqual({ kind: 'dispatch', size: 3 });
    const cheap = { fixedMs: 0.1, perImageMs: 0.02 };
    expect(adaptivePolicy(state({ queued: 1, cost: cheap, arrivalsPerMs: 5, latencyTargetMs: 100 }))).toEqual({ kind: 'dispatch', size: 1 });
  });

  it('a costly batch under load: waits for the largest batch the latency budget allows', () => {
    // fixed 2 ms, 0.05 ms/image, 2 images/ms, 1 queued: 2 > 1/2, so fuller is better. Budget 20 ms:
    // n ≤ (20 − 0 − 2 + 0.5) / (0.5 + 0.05) = 33.6 → capped at maxSize 32: wait (32 − 1)/2 = 15.5 ms.
    expect(adaptivePolicy(state({ queued: 1, cost, arrivalsPerMs: 2, latencyTargetMs: 20 }))).toEqual({ kind: 'wait', ms: 15.5 });
    // A tighter target: n ≤ (10 − 2 + 0.5)/0.55 = 15.45 → 15 images, wait 7 ms.
    expect(adaptivePolicy(state({ queued: 1, cost, arrivalsPerMs: 2, latencyTargetMs: 10 }))).toEqual({ kind: 'wait', ms: 7 });
  });

  it('closes the batch when the oldest image has used up its budget', () => {
    // Budget 10 ms, oldest waited 8: n ≤ (10 − 8 − 2 + 0.5)/0.55 = 0.9 < queued.
    expect(adaptivePolicy(state({ queued: 1, oldestWaitMs: 8, cost, arrivalsPerMs: 2, latencyTargetMs: 10 }))).toEqual({ kind: 'dispatch', size: 1 });
  });

  it('a model whose full batch outlasts the target gets twice the full batch as its budget, not batches of one', () => {
    // B_12-Wi_1024-like: a batch costs 40 ms + 4.35 ms per image; 0.3 images/ms arrive; target 20 ms.
    const big = { fixedMs: 40, perImageMs: 4.35 };
    expect(latencyBudgetMs(big, 32, 20)).toBeCloseTo(2 * (40 + 4.35 * 32), 9);
    expect(latencyBudgetMs(cost, 32, 20)).toBe(20);
    // 2 queued (took 6.7 ms to arrive < 40 ms fixed): wait for 32, (32 − 2)/0.3 = 100 ms.
    const d = adaptivePolicy(state({ queued: 2, cost: big, arrivalsPerMs: 0.3, latencyTargetMs: 20 }));
    expect(d.kind).toBe('wait');
    expect((d as { ms: number }).ms).toBeCloseTo(100, 9);
    // 16 queued (53 ms of arrivals > 40 ms fixed): sending now keeps the worker busier than waiting.
    expect(adaptivePolicy(state({ queued: 16, cost: big, arrivalsPerMs: 0.3, latencyTargetMs: 20 }))).toEqual({ kind: 'dispatch', size: 16 });
  });

  it('fillTarget is the size that keeps the worker busiest, checked against every size', () => {
    const c = { fixedMs: 30, perImageMs: 2 };
    for (const rate of [0.05, 0.3, 1, 4])
      for (const queued of [1, 4, 12]) {
        const n = fillTarget(c, queued, 64, rate, 0, 1e9);
        const rateAt = (k: number) => k / ((k - queued) / rate + batchMs(c, k));
        for (let k = queued; k <= 64; k++) expect(rateAt(n)).toBeGreaterThanOrEqual(rateAt(k) - 1e-12);
      }
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

  it('with one size only and a prior (the warm-up\'s fit), keeps the prior\'s shape scaled to the recent times', () => {
    const m = new BatchCostModel(0.98, { fixedMs: 10, perImageMs: 1 });
    for (let i = 0; i < 5; i++) m.observe(30, 80); // the prior says 40 ms at 30: the machine is now 2× slower
    const c = m.estimate()!;
    expect(c.fixedMs).toBeCloseTo(20, 9);
    expect(c.perImageMs).toBeCloseTo(2, 9);
    // Seeded with the warm-up's timings at several sizes, the fit is the warm-up's line.
    const seeded = new BatchCostModel();
    seeded.seed([1, 2, 4, 8, 16, 32].map((size) => ({ size, ms: batchMs(cost, size) })));
    expect(seeded.estimate()!.fixedMs).toBeCloseTo(2, 9);
    expect(seeded.estimate()!.perImageMs).toBeCloseTo(0.05, 9);
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
