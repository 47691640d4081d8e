// The messages between the main thread and an inference worker: plain data, so both sides agree on one type.

import type { ExecutionProvider } from '../config.js';

export interface WorkerModel {
  name: string;
  /** Absolute path of model.onnx. */
  path: string;
  /** C·H·W values per image. */
  inputDim: number;
  classes: number;
  embeddingDim: number;
}

/** `workerData` of every inference worker. */
export interface WorkerInit {
  models: WorkerModel[];
  providers: ExecutionProvider[];
  requireGpu: boolean;
  intraOpThreads: number;
  interOpThreads: number;
  /** Batch sizes run (twice) per model before the worker reports ready. */
  warmupSizes: number[];
  /**
   * How a provider that could not start is reported: `info` when it was only tried on the chance (the default
   * providers, cuda then cpu, on a machine without CUDA), `warn` when the operator asked for it.
   */
  fallbackLevel: 'info' | 'warn';
}

/** session.run time of one batch size at warm-up (the second run: the first allocates). */
export interface WarmupTiming {
  size: number;
  ms: number;
}

/** Main → worker: run one batch. `input` is row-major [size, inputDim], its buffer transferred. */
export interface RunRequest {
  type: 'run';
  id: number;
  model: string;
  size: number;
  input: Float32Array;
}

export type ToWorker = RunRequest;

/** Why a worker could not start: no GPU although one is required (GpuUnavailableError), or anything else. */
export type InitErrorKind = 'gpu-unavailable' | 'other';

export type FromWorker =
  | { type: 'log'; level: 'warn' | 'info'; message: string }
  | { type: 'ready'; providers: Record<string, ExecutionProvider>; warmupMs: number; timings: Record<string, WarmupTiming[]> }
  /** `kind` carries the error's class across the thread boundary (src/serve/worker-pool.ts rebuilds it). */
  | { type: 'init-error'; message: string; kind: InitErrorKind }
  | {
      type: 'result';
      id: number;
      /** [size, classes] */
      logits: Float32Array;
      /** [size, embeddingDim] */
      embedding: Float32Array;
      /** Wall time of session.run alone. */
      runMs: number;
    }
  | { type: 'error'; id: number; message: string };
