// How the cores are split between decoding (sharp, on the libuv pool) and onnxruntime (inference workers, one
// intra-op thread each), decided at start-up from measurement: the default model's onnxruntime cost per image at
// its cheapest warm-up batch size, and the decode cost of an image at its input size. Each side gets the share of
// the cores its per-image cost is of the total, as the serving bound (cores ÷ (t_decode + t_infer)) implies:
// onnxruntime as intra-op threads of one worker, decoding on the libuv pool.
// INFERENCE_WORKERS or ORT_INTRA_OP_THREADS pin the split instead.

import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { decodeToChw, type InputGeometry } from '../data/preprocess.js';
import { defaultIntraOpThreads } from '../config.js';
import type { WarmupTiming } from './worker-protocol.js';

export interface ThreadPlan {
  inferenceWorkers: number;
  intraOpThreads: number;
  /** `measured`: chosen here; `env`: INFERENCE_WORKERS or ORT_INTRA_OP_THREADS set. */
  source: 'measured' | 'env';
  /** The measurements behind a measured plan (ms per image, one thread each) and onnxruntime's share of the cores. */
  decodeMs?: number;
  inferMs?: number;
  inferBatch?: number;
  inferenceCores?: number;
}

/** The split when the environment pins it: what is set, the old defaults for the rest. */
export function pinnedPlan(cores: number, workers: number | undefined, intraOpThreads: number | undefined): ThreadPlan {
  const w = workers ?? 1;
  return { inferenceWorkers: w, intraOpThreads: intraOpThreads ?? defaultIntraOpThreads(cores, w), source: 'env' };
}

/** The cheapest per-image cost among the warm-up's batch sizes. */
export function cheapestPerImage(timings: readonly WarmupTiming[]): { batch: number; ms: number } {
  let best: { batch: number; ms: number } | undefined;
  for (const t of timings) if (t.size > 0 && t.ms > 0 && (!best || t.ms / t.size < best.ms)) best = { batch: t.size, ms: t.ms / t.size };
  if (!best) throw new RangeError('no warm-up timings');
  return best;
}

/**
 * onnxruntime's share of the cores is cores × t_infer ÷ (t_decode + t_infer), rounded to whole intra-op threads of
 * one inference worker (at least one, at most one per core). One worker running every batch keeps the batches as
 * large as the clients in flight allow: with 64 clients, two workers would halve them, and a compute-bound model
 * costs a third more CPU per image at batch 32 than at 64 (docs/performance.md).
 */
export function planThreads(cores: number, decodeMs: number, infer: { batch: number; ms: number }): ThreadPlan {
  if (!(decodeMs >= 0 && infer.ms >= 0) || decodeMs + infer.ms <= 0) throw new RangeError(`bad costs: decode ${decodeMs} ms, infer ${infer.ms} ms`);
  const inferenceCores = (cores * infer.ms) / (decodeMs + infer.ms);
  const threads = Math.min(Math.max(1, cores), Math.max(1, Math.round(inferenceCores)));
  return { inferenceWorkers: 1, intraOpThreads: threads, source: 'measured', decodeMs, inferMs: infer.ms, inferBatch: infer.batch, inferenceCores };
}

/**
 * The service's own decode of a PNG at the model's input size (the cheapest upload a client can send), one at a
 * time; wall ms per image, like the warm-up's onnxruntime timings, so the two shrink or grow alike on a busy machine.
 */
export async function measureDecodeMs(geo: InputGeometry, images = 40): Promise<number> {
  const pixels = Buffer.alloc(geo.width * geo.height * geo.channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + (i >> 5) * 11) & 0xff;
  const png = await sharp(pixels, { raw: { width: geo.width, height: geo.height, channels: geo.channels } }).png().toBuffer();
  await decodeToChw(png, geo);
  const t0 = performance.now();
  for (let i = 0; i < images; i++) await decodeToChw(png, geo);
  return (performance.now() - t0) / images;
}
