// Dynamic batching for one model: requests queue here (bounded), and whenever a worker is free a batch of up to
// `maxSize` leaves, at the latest `maxDelayMs` after its oldest request arrived. Each request has a deadline; a batch
// that fails fails only its own requests. When to send is decided by a small pure policy function
// (batch-policy.ts: fixed delay, or adaptive from the batch cost learned here and the arrival rate), so the policy
// can change without touching the queue mechanics.

import { performance } from 'node:perf_hooks';
import type { BatchPolicyName } from '../config.js';
import { ArrivalRate, BatchCostModel, adaptivePolicy, fixedDelayPolicy, type BatchCost, type BatchPolicy } from './batch-policy.js';
import type { BatchResult } from './worker-pool.js';

export { adaptivePolicy, fixedDelayPolicy, type BatchDecision, type BatchPolicy, type BatchState } from './batch-policy.js';

/** What the batcher needs from the worker pool. */
export interface BatchRunner {
  freeSlots(): number;
  run(model: string, input: Float32Array, size: number): Promise<BatchResult>;
  on(event: 'free', listener: () => void): unknown;
  off(event: 'free', listener: () => void): unknown;
}

/** One image's outputs. */
export interface ItemResult {
  /** [classes] */
  logits: Float32Array;
  /** [embeddingDim] */
  embedding: Float32Array;
}

/** Hooks for metrics; all optional. Seconds, as Prometheus wants them. */
export interface BatcherObserver {
  queueDepth?(depth: number): void;
  queueWait?(seconds: number): void;
  batch?(size: number, inferenceSeconds: number): void;
  /** Images taken out of the queue uncomputed because their client went away. */
  cancelled?(images: number): void;
}

export class QueueFullError extends Error {
  constructor(
    readonly model: string,
    readonly queueMax: number,
  ) {
    super(`the queue of model ${model} is full (${queueMax} images)`);
    this.name = 'QueueFullError';
  }
}

export class DeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the request did not complete within ${timeoutMs} ms`);
    this.name = 'DeadlineError';
  }
}

/** The client went away before its answer: its images leave the queue uncomputed. */
export class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before the answer');
    this.name = 'ClientGoneError';
  }
}

export interface BatcherOptions {
  model: string;
  /** Values per image (C·H·W). */
  inputDim: number;
  classes: number;
  embeddingDim: number;
  maxSize: number;
  maxDelayMs: number;
  queueMax: number;
  runner: BatchRunner;
  /** A policy by name (BATCH_POLICY) or as a function. Default fixed. */
  policy?: BatchPolicy | BatchPolicyName;
  /** The adaptive policy's LATENCY_TARGET_MS: queue wait + batch time. */
  latencyTargetMs?: number;
  /** session.run times at several batch sizes from the workers' warm-up: the batch cost known before traffic. */
  warmupTimings?: readonly { size: number; ms: number }[];
  observer?: BatcherObserver;
}

interface Item {
  input: Float32Array;
  enqueuedAt: number;
  group: Group;
  index: number;
}

/** The images of one request: they share a deadline and settle together. */
interface Group {
  results: (ItemResult | undefined)[];
  remaining: number;
  done: boolean;
  timer: NodeJS.Timeout | undefined;
  resolve: (r: ItemResult[]) => void;
  reject: (e: Error) => void;
}

export class Batcher {
  private queue: Item[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private inFlight = 0;
  private readonly policy: BatchPolicy;
  private readonly onFree = () => this.pump();
  private idleWaiters: (() => void)[] = [];
  // Learned online for the adaptive policy: time from dispatch to results against batch size, and arrivals.
  private readonly costModel: BatchCostModel;
  private readonly arrivals = new ArrivalRate();

  constructor(private readonly o: BatcherOptions) {
    if (!Number.isInteger(o.maxSize) || o.maxSize < 1) throw new RangeError(`maxSize must be ≥ 1, got ${o.maxSize}`);
    if (!(o.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be ≥ 0, got ${o.maxDelayMs}`);
    if (o.latencyTargetMs !== undefined && !(o.latencyTargetMs > 0)) throw new RangeError(`latencyTargetMs must be > 0, got ${o.latencyTargetMs}`);
    const seed = new BatchCostModel(0.98);
    seed.seed(o.warmupTimings ?? []);
    this.costModel = new BatchCostModel(0.98, seed.estimate(2));
    this.costModel.seed(o.warmupTimings ?? []);
    this.policy = o.policy === 'adaptive' ? adaptivePolicy : o.policy === 'fixed' || o.policy === undefined ? fixedDelayPolicy : o.policy;
    o.runner.on('free', this.onFree);
  }

  /** Images waiting (not yet sent to a worker). */
  get depth(): number {
    return this.queue.length;
  }

  /** The batch time learned so far (dispatch to results), or undefined before a few batches ran. */
  get cost(): BatchCost | undefined {
    return this.costModel.estimate();
  }

  /**
   * Queues the images of one request; resolves with their outputs in the same order. Throws QueueFullError at once
   * (nothing queued) when they do not all fit; rejects with DeadlineError `timeoutMs` from now, and with
   * ClientGoneError as soon as `signal` aborts (queued images are dropped, not computed).
   */
  submit(inputs: Float32Array[], timeoutMs: number, signal?: AbortSignal): Promise<ItemResult[]> {
    if (inputs.length === 0) return Promise.resolve([]);
    if (signal?.aborted) return Promise.reject(new ClientGoneError());
    for (const x of inputs)
      if (x.length !== this.o.inputDim) throw new RangeError(`input has ${x.length} values, model ${this.o.model} takes ${this.o.inputDim}`);
    if (this.queue.length + inputs.length > this.o.queueMax) throw new QueueFullError(this.o.model, this.o.queueMax);
    return new Promise<ItemResult[]>((resolve, reject) => {
      const group: Group = { results: new Array(inputs.length), remaining: inputs.length, done: false, timer: undefined, resolve, reject };
      group.timer = setTimeout(() => this.expire(group, timeoutMs), timeoutMs);
      if (signal) {
        const onAbort = () => this.cancel(group);
        signal.addEventListener('abort', onAbort, { once: true });
        const settle = group.resolve;
        const fail = group.reject;
        const detach = () => signal.removeEventListener('abort', onAbort);
        group.resolve = (r) => (detach(), settle(r));
        group.reject = (e) => (detach(), fail(e));
      }
      const now = performance.now();
      this.arrivals.observe(now, inputs.length);
      inputs.forEach((input, index) => this.queue.push({ input, enqueuedAt: now, group, index }));
      this.o.observer?.queueDepth?.(this.queue.length);
      this.pump();
    });
  }

  /** Resolves once nothing is queued or running (graceful shutdown waits for it). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops listening to the pool; queued requests stay queued (call after `idle()`). */
  close(): void {
    this.o.runner.off('free', this.onFree);
    if (this.timer) clearTimeout(this.timer);
  }

  /** Runs the policy until it stops dispatching; called on every arrival, timer and freed worker. */
  private pump(): void {
    for (;;) {
      const now = performance.now();
      const decision = this.policy({
        queued: this.queue.length,
        oldestWaitMs: this.queue.length ? now - this.queue[0].enqueuedAt : 0,
        freeWorkers: this.o.runner.freeSlots(),
        maxSize: this.o.maxSize,
        maxDelayMs: this.o.maxDelayMs,
        latencyTargetMs: this.o.latencyTargetMs,
        cost: this.costModel.estimate(),
        arrivalsPerMs: this.arrivals.rate(now),
      });
      if (decision.kind === 'dispatch') {
        const size = Math.min(Math.max(1, Math.floor(decision.size)), this.o.maxSize, this.queue.length);
        this.dispatch(this.queue.splice(0, size), now);
        continue;
      }
      if (decision.kind === 'wait') this.arm(now + Math.max(0, decision.ms));
      return;
    }
  }

  private arm(at: number): void {
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - performance.now()));
  }

  private dispatch(items: Item[], now: number): void {
    this.o.observer?.queueDepth?.(this.queue.length);
    // Requests that already timed out are not worth a slot in the batch.
    const live = items.filter((it) => !it.group.done);
    if (live.length === 0) return;
    const dim = this.o.inputDim;
    const input = new Float32Array(live.length * dim); // [size, inputDim]
    live.forEach((it, row) => {
      input.set(it.input, row * dim);
      this.o.observer?.queueWait?.((now - it.enqueuedAt) / 1000);
    });
    this.inFlight++;
    const sent = performance.now();
    this.o.runner.run(this.o.model, input, live.length).then(
      (r) => {
        // The cost that matters for latency is the whole round trip (copy, post, run, post back), not run alone.
        this.costModel.observe(live.length, performance.now() - sent);
        this.o.observer?.batch?.(live.length, r.runMs / 1000);
        const { classes, embeddingDim: e } = this.o;
        live.forEach((it, row) =>
          this.settle(it, {
            logits: r.logits.subarray(row * classes, (row + 1) * classes),
            embedding: r.embedding.subarray(row * e, (row + 1) * e),
          }),
        );
        this.finished();
      },
      (err: Error) => {
        for (const it of live) this.fail(it.group, err);
        this.finished();
      },
    );
  }

  private finished(): void {
    this.inFlight--;
    if (this.queue.length === 0 && this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private settle(it: Item, r: ItemResult): void {
    const g = it.group;
    if (g.done) return;
    g.results[it.index] = r;
    if (--g.remaining === 0) {
      g.done = true;
      clearTimeout(g.timer);
      g.resolve(g.results as ItemResult[]);
    }
  }

  private fail(g: Group, err: Error): void {
    if (g.done) return;
    g.done = true;
    clearTimeout(g.timer);
    g.reject(err);
  }

  private expire(g: Group, timeoutMs: number): void {
    if (g.done) return;
    this.fail(g, new DeadlineError(timeoutMs));
    this.dequeue(g);
  }

  private cancel(g: Group): void {
    if (g.done) return;
    this.fail(g, new ClientGoneError());
    const dropped = this.dequeue(g);
    if (dropped > 0) this.o.observer?.cancelled?.(dropped);
  }

  /** Takes a settled group's images out of the queue, so they neither count against QUEUE_MAX nor take a batch slot. */
  private dequeue(g: Group): number {
    const before = this.queue.length;
    this.queue = this.queue.filter((it) => it.group !== g);
    const removed = before - this.queue.length;
    if (removed !== 0) this.o.observer?.queueDepth?.(this.queue.length);
    if (this.queue.length === 0 && this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    return removed;
  }
}
