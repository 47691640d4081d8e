// The serving bench's cases, each measured in one pass: a model and an upload; the real server driven by hey at N
// concurrent uploads with the default settings and with BATCH_MAX_SIZE=1 (the batching gain), the server's own
// metrics read around each measured window, and the strict bound (bound.ts) timed on the same machine right after.

import { cp, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { inputDim, readCard, ONNX_FILE, type ModelCard } from '../model/card.js';
import { writeRandomModel } from '../export/random.js';
import { bestBatch, minimalDecode, inferSweep, strictBound, type PerImage } from './bound.js';
import { runHey, writeBody, type HeyResult } from './hey.js';
import type { Upload } from './load.js';
import { delta, startServer, type Samples, type ServerProcess } from './server-process.js';

/** A model for a case: a directory as it is, or a random model of an architecture (written once, then reused). */
export type CaseModel = { dir: string } | { arch: string; size: number; channels: 1 | 3 };

export interface BenchCase {
  name: string;
  model: CaseModel;
  upload: Upload;
}

export interface CaseSettings {
  cores: number;
  concurrency: number;
  /** Measured window of each hey run, s (after a warm-up run of `warmupSeconds`). */
  seconds: number;
  warmupSeconds: number;
  /** Seconds per timing run of the bound's two costs (three runs each; the cheapest counts). */
  boundSeconds: number;
  /** Batch sizes onnxruntime is timed at for the bound. */
  boundBatches: readonly number[];
  /** Extra server environment for both servers (e.g. BATCH_POLICY=fixed). */
  env: Record<string, string>;
  /** Where random models are kept between runs. */
  modelCache: string;
  hey: string;
  log: (msg: string) => void;
}

/** One server under hey: what the client saw, what the generator cost, what the server's metrics say. */
export interface ServedWindow {
  env: Record<string, string>;
  hey: Omit<HeyResult, 'failed'> & { failed: Record<string, number> };
  imagesPerSecond: number;
  generatorCores: number;
  serverCores: number;
  meanBatch: number;
  /** Mean per-image time of each stage, from the server's histograms, ms. */
  stageMs: { preprocess: number; queueWait: number; inferencePerImage: number; request: number };
  /** The thread split the server chose or was given (from /models). */
  threads: unknown;
}

export interface CaseResult {
  name: string;
  model: { name: string; arch: string; input: ModelCard['input']; params: number };
  upload: { label: string; bytes: number };
  batched: ServedWindow;
  single: ServedWindow;
  decode: PerImage;
  infer: { batch: number; cost: PerImage; byBatch: Record<number, PerImage> };
  bound: number;
  efficiency: number;
  /** The bound's CPU per image over the server's: the efficiency if the server had the cores to itself. */
  cpuEfficiency: number;
  gain: number;
}

/** A model directory for the case: copied into a fresh MODELS_DIR of its own so the server loads nothing else. */
async function modelDirFor(m: CaseModel, cache: string, log: (msg: string) => void): Promise<string> {
  if ('dir' in m) return resolve(m.dir);
  // The directory's name is the model's name (the server requires them equal).
  const name = `${m.arch}-${m.size}x${m.size}x${m.channels}`;
  const dir = join(cache, name);
  const exists = await stat(join(dir, ONNX_FILE)).then(() => true, () => false);
  if (!exists) {
    log(`writing a random ${m.arch} (${m.size}×${m.size}×${m.channels}) to ${dir}`);
    await mkdir(cache, { recursive: true });
    await writeRandomModel({ arch: m.arch, out: dir, name, size: m.size, channels: m.channels });
  }
  return dir;
}

async function served(server: ServerProcess, upload: Upload, bodyFile: string, s: CaseSettings, env: Record<string, string>): Promise<ServedWindow> {
  const url = `${server.base}/classify`;
  const common = { url, bodyFile, contentType: upload.contentType, concurrency: s.concurrency };
  await runHey(s.hey, { ...common, seconds: s.warmupSeconds });
  const before: Samples = await server.scrape();
  const h = await runHey(s.hey, { ...common, seconds: s.seconds });
  const after: Samples = await server.scrape();
  const d = (name: string) => delta(before, after, name);
  const batches = d('mlp_batch_size_count');
  const images = d('mlp_batch_size_sum');
  const perImage = (name: string) => (d(`${name}_count`) ? (d(`${name}_sum`) * 1000) / d(`${name}_count`) : NaN);
  const threads = await fetch(`${server.base}/models`)
    .then((r) => r.json() as Promise<{ threads?: unknown }>)
    .then((j) => j.threads)
    .catch(() => undefined);
  return {
    env,
    hey: h,
    imagesPerSecond: h.okPerSecond,
    generatorCores: h.cores,
    serverCores: d('process_cpu_seconds_total') / h.seconds,
    meanBatch: batches ? images / batches : NaN,
    stageMs: {
      preprocess: perImage('mlp_preprocess_duration_seconds'),
      queueWait: perImage('mlp_queue_wait_seconds'),
      inferencePerImage: images ? (d('mlp_inference_duration_seconds_sum') * 1000) / images : NaN,
      request: perImage('mlp_http_request_duration_seconds'),
    },
    threads,
  };
}

/** Runs one case: the two served windows (default settings, then BATCH_MAX_SIZE=1), then the strict bound. */
export async function runCase(c: BenchCase, s: CaseSettings): Promise<CaseResult> {
  const modelDir = await modelDirFor(c.model, s.modelCache, s.log);
  const card = await readCard(modelDir);
  const work = await mkdtemp(join(tmpdir(), 'mlp-bench-'));
  try {
    const modelsDir = join(work, 'models');
    await cp(modelDir, join(modelsDir, basename(modelDir)), { recursive: true });
    const bodyFile = await writeBody(c.upload, join(work, 'body'));
    const window = async (extra: Record<string, string>): Promise<ServedWindow> => {
      const env = { ...s.env, ...extra };
      const server = await startServer(modelsDir, env);
      try {
        return await served(server, c.upload, bodyFile, s, env);
      } finally {
        await server.stop();
      }
    };
    s.log(`${c.name}: served with defaults${Object.keys(s.env).length ? ' + ' + JSON.stringify(s.env) : ''}`);
    const batched = await window({});
    s.log(`${c.name}: served with BATCH_MAX_SIZE=1`);
    const single = await window({ BATCH_MAX_SIZE: '1' });
    s.log(`${c.name}: timing the bound`);
    const decode = await minimalDecode(c.upload.bytes, card.input, { seconds: s.boundSeconds });
    const byBatch = await inferSweep(join(modelDir, ONNX_FILE), inputDim(card), s.boundBatches, { seconds: s.boundSeconds });
    const best = bestBatch(byBatch);
    const bound = strictBound({ cores: s.cores, generatorCores: batched.generatorCores, decodeMs: decode.cpuMs, inferMs: best.cost.cpuMs });
    return {
      name: c.name,
      model: { name: card.name, arch: card.arch.name, input: card.input, params: card.params },
      upload: { label: c.upload.label, bytes: c.upload.bytes.length },
      batched,
      single,
      decode,
      infer: { ...best, byBatch: Object.fromEntries(byBatch) },
      bound,
      efficiency: batched.imagesPerSecond / bound,
      cpuEfficiency: (decode.cpuMs + best.cost.cpuMs) / ((batched.serverCores * 1000) / batched.imagesPerSecond),
      gain: batched.imagesPerSecond / single.imagesPerSecond,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The cases `npm run bench:serve` knows by name; the first three are the standard run. */
export const CASE_NAMES = ['default-png', 'b6-jpeg', 'b12-png', 'tta-png'] as const;
export type CaseName = (typeof CASE_NAMES)[number];

/**
 * default-png: the default model (models/fashion-mlp) and a 28×28 PNG; b6-jpeg: a random B_6-Wi_512 (64×64×3) and a
 * 500×375 JPEG (decode-bound); b12-png: a random B_12-Wi_1024 (64×64×3) and the PNG (compute-bound: ~450 MB of
 * weights); tta-png: the TTA graph of the default model's weights (models/fashion-mlp-tta) and the PNG.
 */
export function namedCase(name: CaseName, modelsDir: string, uploads: { png: Upload; jpeg: Upload }): BenchCase {
  switch (name) {
    case 'default-png':
      return { name, model: { dir: join(modelsDir, 'fashion-mlp') }, upload: uploads.png };
    case 'b6-jpeg':
      return { name, model: { arch: 'B_6-Wi_512', size: 64, channels: 3 }, upload: uploads.jpeg };
    case 'b12-png':
      return { name, model: { arch: 'B_12-Wi_1024', size: 64, channels: 3 }, upload: uploads.png };
    case 'tta-png':
      return { name, model: { dir: join(modelsDir, 'fashion-mlp-tta') }, upload: uploads.png };
  }
}
