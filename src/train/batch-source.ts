// Where the train loop gets its batches: from a worker thread that builds the next batch while the engine steps on
// this one (onnxruntime-node runs a session on the calling thread, so building it here would wait for the step), or
// in this thread when a worker cannot start. Either way batch s is batchMaker(spec)(s): bit-identical.

import { Worker } from 'node:worker_threads';
import type { CachedSplit } from '../data/cache.js';
import { subsetSplit } from '../data/holdout.js';
import { workerEntry } from '../util/worker-entry.js';
import type { TrainBatch } from './engines/engine.js';
import { allocBatchBuffers, batchMaker, type BatchBuffers, type BatchSpec } from './batches.js';

export interface BatchWorkerData {
  spec: BatchSpec;
  /** The training split's cache directory and example count (openCache's arguments). */
  dir: string;
  examples: number;
  /** The examples trained on, as indices into the cache (the rest are held out for validation); default all. */
  select?: Uint32Array;
}
export type ToBatchWorker = { step: number; x: ArrayBuffer; y: ArrayBuffer };
export type FromBatchWorker =
  | { kind: 'ready' }
  | { kind: 'batch'; step: number; x: ArrayBuffer; y: ArrayBuffer; size: number }
  | { kind: 'error'; message: string };

export interface BatchSource {
  /** Where batches are built: `worker` or `main thread`. */
  readonly where: string;
  /** Starts building batch `step` (at most one batch ahead of the one the engine holds). */
  prefetch(step: number): void;
  /** Batch `step` (prefetched or built now). Hand it back with release() once the engine is done with it. */
  take(step: number): Promise<TrainBatch>;
  release(batch: TrainBatch): void;
  close(): Promise<void>;
}

/** Batches built in this thread, into two alternating sets of buffers. */
function inThread(spec: BatchSpec, data: CachedSplit): BatchSource {
  const make = batchMaker(spec, data);
  const buffers = [allocBatchBuffers(spec), allocBatchBuffers(spec)];
  return {
    where: 'main thread',
    prefetch: () => undefined,
    take: async (step) => make(step, buffers[step % 2]),
    release: () => undefined,
    close: async () => undefined,
  };
}

class WorkerSource implements BatchSource {
  readonly where = 'worker';
  private readonly free: BatchBuffers[];
  private readonly pending = new Map<number, { resolve: (b: TrainBatch) => void; reject: (e: Error) => void; promise: Promise<TrainBatch> }>();
  private failure?: Error;

  constructor(
    private readonly worker: Worker,
    private readonly spec: BatchSpec,
  ) {
    this.free = [allocBatchBuffers(spec), allocBatchBuffers(spec)];
    worker.on('message', (m: FromBatchWorker) => {
      if (m.kind === 'batch') {
        const p = this.pending.get(m.step);
        const buf = allocBatchBuffers(this.spec, m.x, m.y);
        if (p) p.resolve({ x: buf.x, y: buf.y, size: m.size });
        else this.free.push(buf);
      } else if (m.kind === 'error') this.fail(new Error(m.message));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`the batch worker exited (code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  prefetch(step: number): void {
    if (this.failure || this.pending.has(step)) return;
    const buf = this.free.pop();
    if (!buf) throw new Error('internal: no free batch buffers (release() each batch before prefetching two ahead)');
    let resolve!: (b: TrainBatch) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<TrainBatch>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => undefined); // a prefetch nobody takes (a stopped run) must not become an unhandled rejection
    this.pending.set(step, { resolve, reject, promise });
    const msg: ToBatchWorker = { step, x: buf.x.buffer as ArrayBuffer, y: buf.y.buffer as ArrayBuffer };
    this.worker.postMessage(msg, [msg.x, msg.y]);
  }

  async take(step: number): Promise<TrainBatch> {
    if (this.failure) throw this.failure;
    if (!this.pending.has(step)) this.prefetch(step);
    const p = this.pending.get(step);
    if (!p) throw this.failure ?? new Error(`internal: batch ${step} was not requested`);
    try {
      return await p.promise;
    } finally {
      this.pending.delete(step);
    }
  }

  release(batch: TrainBatch): void {
    this.free.push(allocBatchBuffers(this.spec, batch.x.buffer as ArrayBuffer, batch.y.buffer as ArrayBuffer));
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/** A worker-backed source when a worker starts and opens the cache, else batches in this thread (with the reason). */
export async function openBatchSource(
  spec: BatchSpec,
  data: CachedSplit,
  select?: Uint32Array,
): Promise<{ source: BatchSource; note?: string }> {
  const init: BatchWorkerData = { spec, dir: data.dir, examples: data.size, ...(select ? { select } : {}) };
  try {
    const { entry, eval: isEval } = workerEntry('batch-worker', import.meta.url);
    const worker = new Worker(entry, { eval: isEval, workerData: init, name: 'batches' });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromBatchWorker) => {
        worker.off('error', reject);
        worker.off('message', onMessage);
        if (m.kind === 'ready') resolve();
        else reject(new Error(m.kind === 'error' ? m.message : `unexpected ${m.kind}`));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return { source: new WorkerSource(worker, spec) };
  } catch (err) {
    return { source: inThread(spec, select ? subsetSplit(data, select) : data), note: `batches built in the main thread (no worker: ${(err as Error).message})` };
  }
}
