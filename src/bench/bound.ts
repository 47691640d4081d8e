// The strict serving bound: what the machine could serve if it did nothing but the two unavoidable costs, each at
// its cheapest. t_decode is sharp's minimal decode+resize of the upload to the model's input on one thread (no
// header probe, no normalisation, one image at a time); t_infer is raw onnxruntime per image on one thread at its
// best batch size. Both are CPU time per image (on a busy machine wall time would include waiting for a core and
// make the bound easier to reach). bound = (cores − the load generator's cores) ÷ (t_decode + t_infer).

import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import type { InputGeometry } from '../data/preprocess.js';
import { sessionOptions } from '../serve/session.js';

/** One cost, measured: CPU and wall time per image, ms. */
export interface PerImage {
  cpuMs: number;
  wallMs: number;
  images: number;
}

export interface BoundInputs {
  cores: number;
  /** Cores the load generator used during the served window. */
  generatorCores: number;
  decodeMs: number;
  inferMs: number;
}

/** Images/s: (cores − generator) ÷ (t_decode + t_infer). */
export function strictBound(b: BoundInputs): number {
  if (!(b.decodeMs >= 0 && b.inferMs >= 0) || b.decodeMs + b.inferMs <= 0)
    throw new RangeError(`per-image costs must be ≥ 0 and not both 0, got decode ${b.decodeMs} ms, infer ${b.inferMs} ms`);
  return (Math.max(0, b.cores - b.generatorCores) * 1000) / (b.decodeMs + b.inferMs);
}

/** The cheapest of several measurements of one cost (the least disturbed by other work on the machine). */
export function cheapest(runs: readonly PerImage[]): PerImage {
  if (runs.length === 0) throw new RangeError('no measurements');
  return runs.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a));
}

/** The batch size with the lowest per-image cost. */
export function bestBatch(costs: ReadonlyMap<number, PerImage>): { batch: number; cost: PerImage } {
  let best: { batch: number; cost: PerImage } | undefined;
  for (const [batch, cost] of costs) if (!best || cost.cpuMs < best.cost.cpuMs) best = { batch, cost };
  if (!best) throw new RangeError('no batch sizes measured');
  return best;
}

async function timed(seconds: number, step: () => Promise<number>): Promise<PerImage> {
  const until = performance.now() + seconds * 1000;
  let images = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() < until) images += await step();
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000 / images, wallMs: (performance.now() - t0) / images, images };
}

/**
 * sharp's minimal decode of `bytes` resized to the model's input (the service's fit: cover), one image at a time
 * on one libvips thread; CPU ms per image, the cheapest of `repeats` runs.
 */
export async function minimalDecode(bytes: Uint8Array, geo: InputGeometry, o: { seconds: number; repeats?: number }): Promise<PerImage> {
  const previous = sharp.concurrency();
  sharp.concurrency(1);
  try {
    const once = async () => {
      let img = sharp(bytes).resize(geo.width, geo.height, { fit: 'cover' });
      img = geo.channels === 1 ? img.greyscale() : img.removeAlpha();
      await img.raw().toBuffer();
      return 1;
    };
    await once();
    const runs: PerImage[] = [];
    for (let r = 0; r < (o.repeats ?? 3); r++) runs.push(await timed(o.seconds, once));
    return cheapest(runs);
  } finally {
    sharp.concurrency(previous);
  }
}

/** A single-threaded onnxruntime session of the model, with the service's session options. */
export function openOneThreadSession(modelPath: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelPath, sessionOptions('cpu', { providers: ['cpu'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1 }));
}

/** session.run at `batch` over and over; CPU ms per image, the cheapest of `repeats` runs. */
export async function inferAt(
  session: ort.InferenceSession,
  inputDim: number,
  batch: number,
  o: { seconds: number; repeats?: number },
): Promise<PerImage> {
  const x = new Float32Array(batch * inputDim); // [batch, inputDim]
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
  const feeds = { input: new ort.Tensor('float32', x, [batch, inputDim]) };
  const once = async () => {
    const out = await session.run(feeds);
    for (const t of Object.values(out)) t.dispose();
    return batch;
  };
  await once();
  const runs: PerImage[] = [];
  for (let r = 0; r < (o.repeats ?? 3); r++) runs.push(await timed(o.seconds, once));
  return cheapest(runs);
}

/** Raw onnxruntime on one thread at each batch size; the best one is the bound's t_infer. */
export async function inferSweep(
  modelPath: string,
  inputDim: number,
  batches: readonly number[],
  o: { seconds: number; repeats?: number },
): Promise<Map<number, PerImage>> {
  const session = await openOneThreadSession(modelPath);
  try {
    const costs = new Map<number, PerImage>();
    for (const b of batches) costs.set(b, await inferAt(session, inputDim, b, o));
    return costs;
  } finally {
    await session.release();
  }
}
