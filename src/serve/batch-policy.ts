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
 * Batching beyond this size saves under a tenth of the per-image cost: the fixed part of a batch is ≤ 10% of it.
 * (fixed ≤ 0.1 · (fixed + perImage · n)  ⇔  n ≥ 9 · fixed / perImage.)
 */
export function usefulBatchSize(c: BatchCost): number {
  return c.perImageMs > 0 ? Math.ceil((9 * c.fixedMs) / c.perImageMs) : Infinity;
}

/**
 * Latency-aware: a free worker gets the queue at once, unless waiting is both worth it and safe. Worth it: the
 * batch is still below the size where the fixed cost stops mattering (`usefulBatchSize`). Safe: at the recent
 * arrival rate that size (capped at maxSize) is expected before the latest moment the batch may leave, the moment
 * after which the oldest image, with the learned batch time of the grown batch, would miss `latencyTargetMs`
 * (and never later than `maxDelayMs`). So at light and moderate load nothing waits, and under a burst fast enough
 * to fill a batch it waits just long enough to fill it. Without a learned cost or traffic it behaves like
 * `maxDelayMs = 0`.
 */
export const adaptivePolicy: BatchPolicy = (s) => {
  if (s.queued === 0 || s.freeWorkers <= 0) return { kind: 'idle' };
  if (s.queued >= s.maxSize) return { kind: 'dispatch', size: s.maxSize };
  const send = { kind: 'dispatch', size: s.queued } as const;
  const c = s.cost;
  const rate = s.arrivalsPerMs ?? 0;
  if (!c || !(rate > 0)) return send;
  const goal = Math.min(s.maxSize, usefulBatchSize(c));
  if (s.queued >= goal) return send;
  // Waiting t more: the oldest finishes at oldestWait + t + fixed + perImage · (queued + rate · t) ≤ target.
  const target = s.latencyTargetMs ?? s.maxDelayMs + batchMs(c, s.maxSize);
  const byTarget = (target - s.oldestWaitMs - batchMs(c, s.queued)) / (1 + rate * c.perImageMs);
  const slack = Math.min(byTarget, s.maxDelayMs - s.oldestWaitMs);
  const fill = (goal - s.queued) / rate;
  if (!(fill <= slack)) return send;
  return { kind: 'wait', ms: fill };
};

/**
 * Online least-squares fit of batch time against batch size, with exponential forgetting (each new batch weighs
 * 1, the one before `decay`, …: about 1/(1−decay) recent batches count), so the fit follows a machine whose load
 * changes. Until two different sizes were seen, time is taken as proportional to size (no fixed part): that only
 * errs on the side of expecting big batches to be slow.
 */
export class BatchCostModel {
  private s0 = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private n = 0;

  constructor(private readonly decay = 0.98) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`decay must be in (0, 1), got ${decay}`);
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
    if (varX < 1e-6 * Math.max(1, meanX * meanX)) return { fixedMs: 0, perImageMs: meanY / meanX };
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
