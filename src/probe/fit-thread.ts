// fitProbe on a worker thread (src/probe/fit-worker.ts), abortable: the server fits probe heads here so requests
// keep being answered meanwhile; an abort (shutdown) terminates the thread at once.

import { Worker } from 'node:worker_threads';
import { workerEntry } from '../util/worker-entry.js';
import type { FeatureMatrix, ProbeFit, ProbeOptions } from './logreg.js';
import type { FitWorkerInput, FitWorkerOutput } from './fit-worker.js';

/** An aborted fit. */
export class FitAbortedError extends Error {
  constructor() {
    super('the probe fit was aborted');
    this.name = 'FitAbortedError';
  }
}

/** Same result as `fitProbe(x, labels, classes, options)`, computed on a worker thread. */
export function fitProbeOffThread(
  x: FeatureMatrix,
  labels: Int32Array,
  classes: number,
  options: ProbeOptions,
  signal?: AbortSignal,
): Promise<ProbeFit> {
  if (signal?.aborted) return Promise.reject(new FitAbortedError());
  const data = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
  const input: FitWorkerInput = { data, rows: x.rows, cols: x.cols, labels, classes, options };
  const { entry, eval: isEval } = workerEntry('fit-worker', import.meta.url);
  const worker = new Worker(entry, { eval: isEval, workerData: input, name: 'probe-fit' });
  return new Promise<ProbeFit>((resolve, reject) => {
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    const onAbort = () => finish(() => { void worker.terminate(); reject(new FitAbortedError()); });
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: FitWorkerOutput) => finish(() => (m.ok ? resolve(m.fit) : reject(new Error(m.message)))));
    worker.once('error', (err) => finish(() => reject(err)));
    worker.once('exit', (code) => finish(() => reject(new Error(`the probe fit thread exited with code ${code}`))));
  });
}
