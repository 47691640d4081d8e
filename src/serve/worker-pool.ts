// The main thread's handle on the inference workers: starts them, hands each free worker one batch at a time, routes
// results back, and replaces a worker that dies (its in-flight batch fails with WorkerCrashedError, nothing else).

import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ExecutionProvider } from '../config.js';
import type { FromWorker, RunRequest, WarmupTiming, WorkerInit } from './worker-protocol.js';
import { GpuUnavailableError } from './session.js';
import { workerEntry } from '../util/worker-entry.js';

export interface BatchResult {
  /** [size, classes] */
  logits: Float32Array;
  /** [size, embeddingDim] */
  embedding: Float32Array;
  /** session.run wall time, in the worker. */
  runMs: number;
}

/** The worker running a batch died; the batch's requests get 503 and may be retried. */
export class WorkerCrashedError extends Error {
  constructor(detail: string) {
    super(`inference worker stopped: ${detail}`);
    this.name = 'WorkerCrashedError';
  }
}

/** onnxruntime refused or failed a batch (a server-side fault, not the client's). */
export class InferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InferenceError';
  }
}

export interface PoolLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface PoolOptions {
  workers: number;
  init: WorkerInit;
  log: PoolLogger;
  /** Delay before replacing a worker whose replacement also failed to start. Default 1000 ms. */
  restartBackoffMs?: number;
}

interface Job {
  id: number;
  req: RunRequest;
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  job: Job | undefined;
  exited: boolean;
}

/**
 * Events: 'free' when a worker can take a batch (batchers wait for it), 'dispatch' (index, model, size) just before a
 * batch is posted to a worker, 'replaced' (index) when a dead worker's successor is ready.
 */
export class InferencePool extends EventEmitter {
  private readonly slots: Slot[] = [];
  private readonly backlog: Job[] = [];
  private nextId = 1;
  private closing = false;
  private freeTurn = 0;
  private _providers: Record<string, ExecutionProvider> = {};
  private _timings: Record<string, WarmupTiming[]> = {};
  /** Workers that died and were replaced since start (exposed for /readyz and tests). */
  restarts = 0;

  private constructor(private readonly opts: PoolOptions) {
    super();
  }

  /** Starts every worker and resolves once all have loaded and warmed up every model. */
  static async create(opts: PoolOptions): Promise<InferencePool> {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new RangeError(`workers must be ≥ 1, got ${opts.workers}`);
    const pool = new InferencePool(opts);
    try {
      await Promise.all(Array.from({ length: opts.workers }, (_, i) => pool.spawn(i)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Provider per model name, as the workers reported it. */
  get providers(): Readonly<Record<string, ExecutionProvider>> {
    return this._providers;
  }

  /** Warm-up timings per model (`name:version`), from the first worker that reported them. */
  get timings(): Readonly<Record<string, readonly WarmupTiming[]>> {
    return this._timings;
  }

  /** Workers started (ready or not). */
  get size(): number {
    return this.slots.length;
  }

  /** Workers ready and idle right now. */
  freeSlots(): number {
    let n = 0;
    for (const s of this.slots) if (s.ready && !s.job) n++;
    return n - this.backlog.length;
  }

  /** Live worker handles (tests terminate one to prove crash recovery). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Runs one batch on a free worker, or on the first one to become free. `input` is transferred. */
  run(model: string, input: Float32Array, size: number): Promise<BatchResult> {
    if (this.closing) return Promise.reject(new WorkerCrashedError('the pool is closing'));
    return new Promise<BatchResult>((resolve, reject) => {
      const id = this.nextId++;
      const job: Job = { id, req: { type: 'run', id, model, size, input }, resolve, reject };
      const slot = this.slots.find((s) => s.ready && !s.job);
      if (slot) this.dispatch(slot, job);
      else this.backlog.push(job);
    });
  }

  /** Terminates every worker; batches still running fail with WorkerCrashedError. */
  async close(): Promise<void> {
    this.closing = true;
    for (const j of this.backlog.splice(0)) j.reject(new WorkerCrashedError('the pool is closing'));
    await Promise.all(this.slots.map((s) => (s.exited ? undefined : s.worker.terminate())));
  }

  private dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    this.emit('dispatch', slot.index, job.req.model, job.req.size);
    slot.worker.postMessage(job.req, [job.req.input.buffer as ArrayBuffer]);
  }

  private spawn(index: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const { entry, eval: isEval } = workerEntry('inference-worker', import.meta.url);
      const worker = new Worker(entry, { eval: isEval, workerData: this.opts.init, name: `inference-${index}` });
      const slot: Slot = { index, worker, ready: false, job: undefined, exited: false };
      this.slots[index] = slot;
      let started = false;

      worker.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'log':
            this.opts.log[msg.level](`inference worker ${index}: ${msg.message}`);
            break;
          case 'ready':
            started = true;
            slot.ready = true;
            this._providers = { ...this._providers, ...msg.providers };
            for (const [model, t] of Object.entries(msg.timings)) this._timings[model] ??= t;
            // The thread split is a tuning knob (docs/performance.md): say what this worker runs with.
            this.opts.log.info(
              `inference worker ${index} ready (warm-up ${msg.warmupMs.toFixed(0)} ms, onnxruntime intra-op threads ${this.opts.init.intraOpThreads})`,
            );
            resolve();
            this.onFree(slot);
            break;
          case 'init-error':
            reject(msg.kind === 'gpu-unavailable' ? new GpuUnavailableError(msg.message) : new Error(msg.message));
            void worker.terminate();
            break;
          case 'result':
          case 'error': {
            const job = slot.job;
            if (!job || job.id !== msg.id) break;
            slot.job = undefined;
            if (msg.type === 'result') job.resolve({ logits: msg.logits, embedding: msg.embedding, runMs: msg.runMs });
            else job.reject(new InferenceError(msg.message));
            this.onFree(slot);
            break;
          }
        }
      });
      worker.on('error', (err) => {
        this.opts.log.error(`inference worker ${index} failed: ${err.message}`);
        if (!started) reject(err);
      });
      worker.on('exit', (code) => {
        slot.exited = true;
        slot.ready = false;
        const job = slot.job;
        slot.job = undefined;
        if (!started) {
          reject(new Error(`inference worker ${index} exited with code ${code} before it was ready`));
          return;
        }
        job?.reject(new WorkerCrashedError(`exit code ${code}`));
        if (this.closing) return;
        this.opts.log.error(`inference worker ${index} exited (code ${code}); starting a replacement`);
        this.replace(index);
      });
    });
  }

  private replace(index: number): void {
    this.spawn(index).then(
      () => {
        this.restarts++;
        this.emit('replaced', index);
      },
      (err: Error) => {
        if (this.closing) return;
        this.opts.log.error(`replacement inference worker ${index} failed to start: ${err.message}`);
        setTimeout(() => this.replace(index), this.opts.restartBackoffMs ?? 1000).unref();
      },
    );
  }

  private onFree(slot: Slot): void {
    const next = this.backlog.shift();
    if (next) {
      this.dispatch(slot, next);
      return;
    }
    // Each model's batcher listens; the first to act takes the worker. Starting from a different one each time
    // keeps one busy model from starving the others.
    const listeners = this.listeners('free') as (() => void)[];
    const start = this.freeTurn++ % Math.max(1, listeners.length);
    for (let i = 0; i < listeners.length; i++) listeners[(start + i) % listeners.length]();
  }
}
