// From uploaded image bytes to model outputs: the shared preprocessing of src/data/preprocess.ts (the trainer's own
// function, so serving cannot drift from training), then the model's batcher. Also the small maths of the
// responses: softmax and top-k.

import { performance } from 'node:perf_hooks';
import { decodeToChw, normalizeChw, type InputGeometry } from '../data/preprocess.js';
import { inputDim } from '../model/card.js';
import { ClientGoneError, DeadlineError, type Batcher, type ItemResult } from './batcher.js';
import type { LoadedModel } from './model-types.js';
import type { Metrics } from './metrics.js';

export interface Prediction {
  index: number;
  label: string;
  score: number;
}

export interface RunOptions {
  maxPixels: number;
  /** Most frames an animated image may declare (refused from its header). */
  maxFrames?: number;
  /** Accept SVG/PDF (ALLOW_VECTOR_IMAGES). */
  allowVector?: boolean;
  /** Aborts when the client has gone: its images are then dropped, not computed. */
  signal?: AbortSignal;
  /** Time left until the request's deadline, in ms. */
  remainingMs: () => number;
  timeoutMs: number;
  metrics: Metrics;
}

/** Decodes every image (concurrently, on sharp's threads) into the model's normalised input vector. */
export async function preprocessAll(model: LoadedModel, images: Buffer[], o: RunOptions): Promise<Float32Array[]> {
  const geo: InputGeometry = model.card.input;
  const norm = model.card.normalization;
  const dim = inputDim(model.card);
  const hist = o.metrics.preprocessDuration;
  return Promise.all(
    images.map(async (bytes) => {
      const t0 = performance.now();
      const chw = await decodeToChw(bytes, geo, { maxPixels: o.maxPixels, maxFrames: o.maxFrames, allowVector: o.allowVector });
      const x = normalizeChw(chw, geo, norm, new Float32Array(dim));
      hist.observe({ model: model.name }, (performance.now() - t0) / 1000);
      return x;
    }),
  );
}

/** Preprocesses and runs `images` through the model; results in upload order. */
export async function runImages(
  model: LoadedModel & { batcher: Batcher },
  images: Buffer[],
  o: RunOptions,
): Promise<ItemResult[]> {
  return runTensors(model, await preprocessAll(model, images, o), o);
}

/** Runs model inputs (each C·H·W normalised values, e.g. from the v2 protocol) through the model's batcher. */
export async function runTensors(
  model: LoadedModel & { batcher: Batcher },
  inputs: Float32Array[],
  o: Pick<RunOptions, 'remainingMs' | 'timeoutMs' | 'metrics' | 'signal'>,
): Promise<ItemResult[]> {
  if (o.signal?.aborted) {
    // Gone while its images were read or decoded: they never reach the queue.
    o.metrics.imagesCancelled.inc({ model: model.name }, inputs.length);
    throw new ClientGoneError();
  }
  const left = o.remainingMs();
  if (left <= 0) throw new DeadlineError(o.timeoutMs);
  const out = await model.batcher.submit(inputs, left, o.signal).catch((err: unknown) => {
    // The batcher counts from submission; the client's deadline counts from arrival.
    throw err instanceof DeadlineError ? new DeadlineError(o.timeoutMs) : err;
  });
  o.metrics.imagesTotal.inc({ model: model.name }, inputs.length);
  return out;
}

/** Numerically stable softmax, in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** The k most probable classes, highest first (ties: lower index first). */
export function topK(logits: ArrayLike<number>, labels: readonly string[], k: number): Prediction[] {
  const p = softmax(logits);
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
  return order.slice(0, Math.min(k, p.length)).map((index) => ({ index, label: labels[index], score: p[index] }));
}
