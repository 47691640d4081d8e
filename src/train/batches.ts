// A training batch as a pure function of (seed, step): the epoch's data order, then each image's augmentation,
// normalisation, smoothed targets and MixUp, all seeded by the step. The batch worker (batch-worker.ts) builds
// batches with this same function, so a batch is bit-identical whichever thread built it.

import type { CachedSplit } from '../data/cache.js';
import { normalizeChw, type InputGeometry, type Normalization } from '../data/preprocess.js';
import { createRng, permutation } from '../util/rng.js';
import { augment, isIdentity, type AugmentOptions } from './augment.js';
import type { TrainBatch } from './engines/engine.js';
import { mixup, smoothedTargets } from './targets.js';

/** Everything a batch depends on besides the data itself (plain data: it is posted to the batch worker). */
export interface BatchSpec {
  seed: number;
  batchSize: number;
  /** Examples of the training split (the epoch's permutation is over these). */
  examples: number;
  stepsPerEpoch: number;
  geo: InputGeometry;
  norm: Normalization;
  classes: number;
  augment: AugmentOptions;
  labelSmoothing: number;
  mixup: number;
}

/** Where a batch is built: x and y are handed to the engine, labels and view are scratch space. */
export interface BatchBuffers {
  x: Float32Array;
  y: Float32Array;
  labels: Uint16Array;
  view: Uint8Array;
}

/** Independent random streams from one seed: stream 1 = epoch order, 2 = a step's augmentation and MixUp. */
export function streamSeed(seed: number, stream: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35) ^ Math.imul(index + 1, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const inputSize = (geo: InputGeometry) => geo.channels * geo.height * geo.width;

export function allocBatchBuffers(spec: BatchSpec, x?: ArrayBuffer, y?: ArrayBuffer): BatchBuffers {
  const d = inputSize(spec.geo);
  return {
    x: x ? new Float32Array(x) : new Float32Array(spec.batchSize * d),
    y: y ? new Float32Array(y) : new Float32Array(spec.batchSize * spec.classes),
    labels: new Uint16Array(spec.batchSize),
    view: new Uint8Array(d),
  };
}

/** `(step, buffers) → batch` over `data`; keeps the current epoch's order (and the next one's near its end). */
export function batchMaker(spec: BatchSpec, data: CachedSplit): (step: number, buf: BatchBuffers) => TrainBatch {
  const orders = new Map<number, Uint32Array>();
  const d = inputSize(spec.geo);
  const plain = isIdentity(spec.augment);
  return (step, buf) => {
    const epoch = Math.floor(step / spec.stepsPerEpoch);
    let perm = orders.get(epoch);
    if (!perm) {
      perm = permutation(createRng(streamSeed(spec.seed, 1, epoch)), spec.examples);
      orders.set(epoch, perm);
      orders.delete(epoch - 1);
    }
    const at = (step % spec.stepsPerEpoch) * spec.batchSize;
    const indices = perm.subarray(at, at + spec.batchSize);
    const rng = createRng(streamSeed(spec.seed, 2, step));
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      const pixels = plain ? data.pixels(i) : augment(data.pixels(i), spec.geo, spec.augment, rng, buf.view);
      normalizeChw(pixels, spec.geo, spec.norm, buf.x, k * d);
      buf.labels[k] = data.labels[i];
    }
    smoothedTargets(buf.labels, spec.classes, spec.labelSmoothing, buf.y);
    mixup(buf.x, buf.y, indices.length, spec.mixup, rng);
    return { x: buf.x, y: buf.y, size: indices.length };
  };
}
