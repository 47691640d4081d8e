// Worker-thread entry of the probe fit (src/probe/fit-thread.ts starts it): fits on the features it is handed and
// posts the fit back. The fit is seconds of pure arithmetic; here it cannot stall the server's event loop.

import { parentPort, workerData } from 'node:worker_threads';
import { fitProbe, type ProbeFit, type ProbeOptions } from './logreg.js';

export interface FitWorkerInput {
  data: Float32Array;
  rows: number;
  cols: number;
  labels: Int32Array;
  classes: number;
  options: ProbeOptions;
}

export type FitWorkerOutput = { ok: true; fit: ProbeFit } | { ok: false; message: string };

const input = workerData as FitWorkerInput;
let out: FitWorkerOutput;
try {
  out = { ok: true, fit: fitProbe({ data: input.data, rows: input.rows, cols: input.cols }, input.labels, input.classes, input.options) };
} catch (err) {
  out = { ok: false, message: (err as Error).message };
}
parentPort!.postMessage(out);
