// When a batch leaves the queue: the two policies as small pure functions of the queue's state, and the two online
// estimates the adaptive one reads (the batch cost as a linear fit of time against batch size, refreshed with every
// batch as BentoML does, and the arrival rate). The batcher (batcher.ts) owns the queue and calls a policy at every
// arrival, timer and freed worker; a policy only decides.

/** What a policy sees at each decision point. Times in milliseconds. */
export interface BatchState {
  /** Requests (images) waiting. */
  queued: number;
  /** How long the oldest waiting request has waited. */
  oldestWaitMs: number;
  /** Workers that could take a batch right now. */
  freeWorkers: number;
  maxSize: number;
  maxDelayMs: number;
  /** adaptive: queue wait + batch time an image should stay under. */
  latencyTargetMs?: number;
  /** adaptive: the learned cost of a batch; undefined until enough batches were timed. */
  cost?: BatchCost;
  /** adaptive: recent arrivals, images per ms. */
  arrivalsPerMs?: number;
}

export type BatchDecision =
  /** Send the first `size` queued requests now. */
  | { kind: 'dispatch'; size: number }
  /** Decide again after `ms` (sooner if a request arrives or a worker frees up). */
  | { kind: 'wait'; ms: number }
  /** Nothing to do until a request arrives or a worker frees up. */
  | { kind: 'idle' };

export type BatchPolicy = (s: BatchState) => BatchDecision;

/** Time of one batch of `size` images, from dispatch to results: fixedMs + perImageMs × size. */
export interface BatchCost {
  fixedMs: number;
  perImageMs: number;
}

export const batchMs = (c: BatchCost, size: number): number => c.fixedMs + c.perImageMs * size;

/**
 * A full batch leaves at once; a partial one when its oldest request has waited `maxDelayMs`. While every worker
 * is busy nothing leaves, so the queue builds the next, larger batch meanwhile.
 */
export const fixedDelayPolicy: BatchPolicy = (s) => {
  if (s.queued === 0 || s.freeWorkers <= 0) return { kind: 'idle' };
  if (s.queued >= s.maxSize) return { kind: 'dispatch', size: s.maxSize };
  if (s.oldestWaitMs >= s.maxDelayMs) return { kind: 'dispatch', size: s.queued };
  return { kind: 'wait', ms: s.maxDelayMs - s.oldestWaitMs };
};

/**
 * The adaptive policy's latency budget for the oldest image (queue wait + batch time): LATENCY_TARGET_MS, but never
 * below twice the time of a full batch. A target under that cannot be honoured under load (an image arriving as a
 * full batch leaves waits for it, then for its own), and treating it as binding would send batches of one, each
 * paying the whole fixed cost (for a large model, streaming every weight from memory for one image).
 */
export function latencyBudgetMs(c: BatchCost, maxSize: number, latencyTargetMs: number): number {
  return Math.max(latencyTargetMs, 2 * batchMs(c, maxSize));
}

/**
 * How many images to wait for, weighing the batch cost at each size against the time the images take to arrive:
 * waiting for n ≥ queued images at `ratePerMs` keeps the worker at n / ((n − queued)/rate + fixed + perImage·n)
 * images per ms. That ratio is monotone in n: it grows exactly when fixed > queued / rate (the fixed cost of a batch
 * outlasts the time that many images take to arrive), and then the best n is the largest one the budget allows:
 * oldestWait + (n − queued)/rate + batchMs(n) ≤ budget. Returns `queued` when sending now is best.
 */
export function fillTarget(c: BatchCost, queued: number, maxSize: number, ratePerMs: number, oldestWaitMs: number, budgetMs: number): number {
  if (!(ratePerMs > 0) || queued >= maxSize) return Math.min(queued, maxSize);
  if (!(c.fixedMs > queued / ratePerMs)) return queued;
  const fits = Math.floor((budgetMs - oldestWaitMs - c.fixedMs + queued / ratePerMs) / (1 / ratePerMs + c.perImageMs));
  return Math.max(queued, Math.min(maxSize, fits));
}

/**
 * Latency-aware: a free worker gets the queue at once, unless a fuller batch is worth waiting for (`fillTarget`:
 * the learned cost at each size against the recent arrival rate) and reachable within the latency budget
 * (`latencyBudgetMs`). So at light load nothing waits, a cheap model never waits (its fixed cost is shorter than
 * the next arrival), and a costly one under load waits for the batch that keeps its worker busiest. Without a
 * learned cost or traffic it sends at once.
 */
export const adaptivePolicy: BatchPolicy = (s) => {
  if (s.queued === 0 || s.freeWorkers <= 0) return { kind: 'idle' };
  if (s.queued >= s.maxSize) return { kind: 'dispatch', size: s.maxSize };
  const send = { kind: 'dispatch', size: s.queued } as const;
  const c = s.cost;
  const rate = s.arrivalsPerMs ?? 0;
  if (!c || !(rate > 0)) return send;
  const budget = latencyBudgetMs(c, s.maxSize, s.latencyTargetMs ?? s.maxDelayMs + batchMs(c, s.maxSize));
  const n = fillTarget(c, s.queued, s.maxSize, rate, s.oldestWaitMs, budget);
  if (n <= s.queued) return send;
  return { kind: 'wait', ms: (n - s.queued) / rate };
};

/**
 * Online least-squares fit of batch time against batch size, with exponential forgetting (each new batch weighs
 * 1, the one before `decay`, …: about 1/(1−decay) recent batches count), so the fit follows a machine whose load
 * changes.
 */
export class BatchCostModel {
  private s0 = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private n = 0;

  /**
   * `prior`: the cost measured at start-up (warm-up runs every batch size). While the recent batches are all about
   * one size, which cannot separate the fixed part from the per-image part, the prior's shape is kept and scaled
   * to the recent times; without a prior, time is taken as proportional to size.
   */
  constructor(
    private readonly decay = 0.98,
    private readonly prior?: BatchCost,
  ) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`decay must be in (0, 1), got ${decay}`);
  }

  /** Feeds timings measured at several sizes (the warm-up's) as ordinary observations. */
  seed(timings: readonly { size: number; ms: number }[]): void {
    for (const t of timings) this.observe(t.size, t.ms);
  }

  /** Batches observed so far. */
  get samples(): number {
    return this.n;
  }

  observe(size: number, ms: number): void {
    if (!(size >= 1) || !(ms >= 0) || !Number.isFinite(ms)) return;
    const d = this.decay;
    this.s0 = this.s0 * d + 1;
    this.sx = this.sx * d + size;
    this.sy = this.sy * d + ms;
    this.sxx = this.sxx * d + size * size;
    this.sxy = this.sxy * d + size * ms;
    this.n++;
  }

  /** The current fit; undefined before `minSamples` batches. Both terms are kept ≥ 0. */
  estimate(minSamples = 3): BatchCost | undefined {
    if (this.n < minSamples) return undefined;
    const meanX = this.sx / this.s0;
    const meanY = this.sy / this.s0;
    const varX = this.sxx / this.s0 - meanX * meanX;
    // Sizes (nearly) all equal: slope and intercept cannot be told apart.
    if (varX < 1e-6 * Math.max(1, meanX * meanX)) {
      const p = this.prior;
      if (!p || !(batchMs(p, meanX) > 0)) return { fixedMs: 0, perImageMs: meanY / meanX };
      const k = meanY / batchMs(p, meanX);
      return { fixedMs: p.fixedMs * k, perImageMs: p.perImageMs * k };
    }
    let perImageMs = (this.sxy / this.s0 - meanX * meanY) / varX;
    let fixedMs = meanY - perImageMs * meanX;
    if (perImageMs < 0) {
      perImageMs = 0;
      fixedMs = meanY;
    } else if (fixedMs < 0) {
      fixedMs = 0;
      perImageMs = meanY / meanX;
    }
    return { fixedMs, perImageMs };
  }
}

/**
 * Arrival rate as an exponentially decaying count: each image adds 1/τ, and the sum decays with time constant τ.
 * For a steady stream it converges to the stream's rate; after a burst it falls back within a few τ.
 */
export class ArrivalRate {
  private value = 0;
  private at = -Infinity;

  constructor(private readonly tauMs = 100) {
    if (!(tauMs > 0)) throw new RangeError(`tauMs must be > 0, got ${tauMs}`);
  }

  observe(nowMs: number, images = 1): void {
    this.value = this.rate(nowMs) + images / this.tauMs;
    this.at = nowMs;
  }

  /** Images per ms at `nowMs`. */
  rate(nowMs: number): number {
    if (this.at === -Infinity) return 0;
    return this.value * Math.exp(-Math.max(0, nowMs - this.at) / this.tauMs);
  }
}
