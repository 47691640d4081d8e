// Opens the inference workers for a set of model versions, as many as the thread split says (src/serve/
// thread-plan.ts: pinned by the environment, or measured from the first worker's warm-up). When that fails, each
// version is tried alone (one worker, one warm-up run) to find the file at fault: MODEL_LOAD_POLICY=fail reports
// it, skip-bad leaves it out and starts the rest.

import { availableParallelism } from 'node:os';
import { inputDim } from '../model/card.js';
import { DEFAULT_EXECUTION_PROVIDERS, type Config } from '../config.js';
import { InferencePool, type PoolLogger } from './worker-pool.js';
import { GpuUnavailableError } from './session.js';
import type { WorkerInit } from './worker-protocol.js';
import { relativeToRepo, type ModelVersionDir, type SkippedModel } from './model-repo.js';
import { cheapestPerImage, measureDecodeMs, pinnedPlan, planThreads, type ThreadPlan } from './thread-plan.js';

/** Batch sizes each model is warmed up at: powers of two up to the largest batch, and the largest itself. */
export function warmupSizes(batchMaxSize: number): number[] {
  const sizes = new Set<number>();
  for (let s = 1; s < batchMaxSize; s *= 2) sizes.add(s);
  sizes.add(batchMaxSize);
  return [...sizes];
}

/** A model file onnxruntime would not load or run; the message names the file. */
export class ModelLoadError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: onnxruntime cannot load or run it: ${detail}`);
    this.name = 'ModelLoadError';
  }
}

export interface OpenedPool {
  pool: InferencePool;
  /** The versions the pool runs (all of them, or those left under skip-bad). */
  dirs: ModelVersionDir[];
  /** The versions left out under skip-bad. */
  skipped: SkippedModel[];
  threads: ThreadPlan;
}

export interface OpenPoolOptions {
  config: Readonly<Config>;
  log: PoolLogger;
  /** True once the server is shutting down: a failure then is no model's fault. */
  closing: () => boolean;
  /** The model whose costs decide a measured thread split (the default one). */
  splitFor: (dirs: ModelVersionDir[]) => ModelVersionDir;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function workerInit(config: Readonly<Config>, dirs: ModelVersionDir[], sizes: number[], intraOpThreads: number): WorkerInit {
  return {
    models: dirs.map((d) => ({
      name: `${d.name}:${d.version}`,
      path: d.onnxPath,
      inputDim: inputDim(d.card),
      classes: d.card.labels.length,
      embeddingDim: d.card.embeddingDim,
    })),
    providers: [...config.executionProviders],
    requireGpu: config.requireGpu,
    intraOpThreads,
    interOpThreads: config.ortInterOpThreads,
    warmupSizes: sizes,
    fallbackLevel: sameList(config.executionProviders, DEFAULT_EXECUTION_PROVIDERS) ? 'info' : 'warn',
  };
}

/**
 * The workers for `dirs` with the thread split: pinned by INFERENCE_WORKERS / ORT_INTRA_OP_THREADS, or measured
 * (one worker first; its warm-up timings of the default model and a decode timing decide whether more start).
 */
async function splitPool(dirs: ModelVersionDir[], o: OpenPoolOptions): Promise<{ pool: InferencePool; threads: ThreadPlan }> {
  const { config, log } = o;
  const cores = availableParallelism();
  const env = pinnedPlan(cores, config.inferenceWorkers, config.ortIntraOpThreads);
  const init = workerInit(config, dirs, warmupSizes(config.batchMaxSize), env.intraOpThreads);
  if (config.inferenceWorkers !== undefined || config.ortIntraOpThreads !== undefined)
    return { pool: await InferencePool.create({ workers: env.inferenceWorkers, log, init }), threads: env };
  // Measured on one single-threaded worker; a plan for more threads replaces it with a worker that has them.
  const probe = await InferencePool.create({ workers: 1, log, init: { ...init, intraOpThreads: 1 } });
  let t: ThreadPlan;
  try {
    const d = o.splitFor(dirs);
    t = planThreads(cores, await measureDecodeMs(d.card.input), cheapestPerImage(probe.timings[`${d.name}:${d.version}`] ?? []));
    log.info(
      `thread split measured for ${d.name}: decode ${t.decodeMs!.toFixed(3)} ms, onnxruntime ${t.inferMs!.toFixed(3)} ms per image ` +
        `(batch ${t.inferBatch}) → onnxruntime's share ${t.inferenceCores!.toFixed(2)} of ${cores} cores: ` +
        `${t.inferenceWorkers} inference worker × ${t.intraOpThreads} intra-op thread(s); UV_THREADPOOL_SIZE=${config.uvThreadpoolSize} for decoding`,
    );
  } catch (err) {
    await probe.close();
    throw err;
  }
  if (t.intraOpThreads === 1 && t.inferenceWorkers === 1) return { pool: probe, threads: t };
  await probe.close();
  return { pool: await InferencePool.create({ workers: t.inferenceWorkers, log, init: { ...init, intraOpThreads: t.intraOpThreads } }), threads: t };
}

/** Starts workers for `dirs`, loaded and warmed up; see the module comment for what a failure does. */
export async function openPool(dirs: ModelVersionDir[], o: OpenPoolOptions): Promise<OpenedPool> {
  const { config, log } = o;
  try {
    return { ...(await splitPool(dirs, o)), dirs, skipped: [] };
  } catch (err) {
    // No GPU when one is required is no model's fault; nor is anything once shutting down.
    if (o.closing() || err instanceof GpuUnavailableError) throw err;
    const bad: { dir: ModelVersionDir; error: ModelLoadError }[] = [];
    for (const d of dirs) {
      const probe = await InferencePool.create({ workers: 1, log: { ...log, error: () => undefined }, init: workerInit(config, [d], [1], 1) }).catch((e: Error) => e);
      if (probe instanceof Error) bad.push({ dir: d, error: new ModelLoadError(d.onnxPath, probe.message) });
      else await probe.close();
    }
    if (bad.length === 0) throw err;
    if (config.modelLoadPolicy === 'fail') throw bad[0].error;
    const good = dirs.filter((d) => !bad.some((b) => b.dir === d));
    if (good.length === 0) throw new Error(`no model could be loaded: ${bad.map((b) => b.error.message).join('; ')}`);
    const left = bad.map((b) => ({ path: relativeToRepo(b.dir.onnxPath, config.modelsDir), reason: relativeToRepo(b.error.message, config.modelsDir) }));
    for (const s of left) log.warn(`MODEL_LOAD_POLICY=skip-bad: skipping ${s.path}: ${s.reason}`);
    return { ...(await splitPool(good, o)), dirs: good, skipped: left };
  }
}
