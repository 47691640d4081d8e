// The two costs the serving bound is made of, each measured alone with every core on it, in this process:
// decode+resize (the service's own preprocessing, sharp on the libuv pool) and onnxruntime at a given batch size
// (the service's own session options). As rates r (images/s with all cores busy), a per-image cost in core-seconds
// is cores / r, so the bound  cores ÷ (decode per image + onnxruntime per image)  is  1 / (1/r_decode + 1/r_ort).
// Measuring rates on the same, possibly busy, machine in the same run makes the bound share the server's conditions.

import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { preprocessImage, type InputGeometry, type Normalization } from '../data/preprocess.js';
import { sessionOptions } from '../serve/session.js';

export interface Rate {
  /** Images per second with every core on it. */
  imagesPerSecond: number;
  /** CPU time of this process per image, ms (all threads). */
  cpuMsPerImage: number;
  images: number;
  seconds: number;
}

function rate(images: number, t0: number, cpu0: NodeJS.CpuUsage): Rate {
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { imagesPerSecond: images / seconds, cpuMsPerImage: (cpu.user + cpu.system) / 1000 / images, images, seconds };
}

/**
 * Decode+resize+normalise `bytes` over and over for `seconds`, `inflight` at a time (enough to keep every libuv
 * thread busy: sharp works there).
 */
export async function decodeRate(
  bytes: Uint8Array,
  geo: InputGeometry,
  norm: Normalization,
  o: { seconds: number; inflight?: number; maxPixels?: number },
): Promise<Rate> {
  const inflight = o.inflight ?? 16;
  for (let i = 0; i < inflight; i++) await preprocessImage(bytes, geo, norm, { maxPixels: o.maxPixels });
  const until = performance.now() + o.seconds * 1000;
  let images = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() < until) {
        await preprocessImage(bytes, geo, norm, { maxPixels: o.maxPixels });
        images++;
      }
    }),
  );
  return rate(images, t0, cpu0);
}

/** An onnxruntime session of the model as the service opens it (CPU), with every core as intra-op threads. */
export async function openBoundSession(modelPath: string, intraOpThreads = availableParallelism()): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(
    modelPath,
    sessionOptions('cpu', { providers: ['cpu'], requireGpu: false, intraOpThreads, interOpThreads: 1 }),
  );
}

/** session.run at batch `batch` for `seconds` (after one warm-up run of that size). */
export async function onnxRate(session: ort.InferenceSession, inputDim: number, batch: number, o: { seconds: number }): Promise<Rate> {
  const x = new Float32Array(batch * inputDim);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37); // [batch, inputDim]
  const feeds = { input: new ort.Tensor('float32', x, [batch, inputDim]) };
  const dispose = (out: ort.InferenceSession.OnnxValueMapType) => {
    for (const t of Object.values(out)) t.dispose();
  };
  dispose(await session.run(feeds));
  const until = performance.now() + o.seconds * 1000;
  let images = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() < until) {
    dispose(await session.run(feeds));
    images += batch;
  }
  return rate(images, t0, cpu0);
}

/** Images/s the machine could serve if decoding and inference were all it did: 1 / (1/r_decode + 1/r_ort). */
export function servingBound(decodePerSecond: number, onnxPerSecond: number): number {
  return 1 / (1 / decodePerSecond + 1 / onnxPerSecond);
}
