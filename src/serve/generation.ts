// A generation: the set of model versions served together, with their workers and batchers. A reload builds the
// next one while the current one serves; the old one is retired once no request holds it (leases) and its
// batchers are idle, and only then are its workers stopped. Also the metrics wiring of each version's batcher.

import { inputDim } from '../model/card.js';
import type { Config } from '../config.js';
import { Batcher } from './batcher.js';
import type { Metrics } from './metrics.js';
import type { InferencePool } from './worker-pool.js';
import type { ModelVersionDir } from './model-repo.js';
import type { LoadedModel } from './model-types.js';
import type { ThreadPlan } from './thread-plan.js';

export interface Generation {
  id: number;
  /** The model answering requests that name none. */
  defaultName: string;
  versions: LoadedModel[];
  byName: Map<string, LoadedModel[]>;
  dirs: ModelVersionDir[];
  pool: InferencePool | undefined;
  /** How its cores are split between decoding and inference. */
  threads: ThreadPlan | undefined;
  /** Requests holding this generation (resolved and not yet answered). */
  leases: number;
  onIdle: (() => void)[];
}

/** The generation's models, in the repository's order (by name, newest version first), not yet running. */
export function makeGeneration(id: number, dirs: ModelVersionDir[], defaultName: string): Generation {
  const byName = new Map<string, LoadedModel[]>();
  const versions: LoadedModel[] = [];
  for (const d of dirs) {
    const list = byName.get(d.name) ?? [];
    const m: LoadedModel = {
      name: d.name,
      version: d.version,
      key: `${d.name}:${d.version}`,
      card: d.card,
      onnxPath: d.onnxPath,
      isDefault: d.name === defaultName,
      latest: list.length === 0, // the repository lists the newest version first
      provider: undefined,
      batcher: undefined,
    };
    list.push(m);
    byName.set(d.name, list);
    versions.push(m);
  }
  return { id, defaultName, versions, byName, dirs, pool: undefined, threads: undefined, leases: 0, onIdle: [] };
}

/** Queue depth per model name: the sum over its versions and over generations still draining. */
export class QueueDepths {
  private readonly depths = new Map<string, Map<Batcher, number>>();

  constructor(private readonly gauge: Metrics['queueDepth']) {}

  /** Sets one batcher's depth; a negative depth forgets the batcher. */
  set(name: string, b: Batcher, d: number): void {
    const byBatcher = this.depths.get(name) ?? new Map<Batcher, number>();
    this.depths.set(name, byBatcher);
    if (d < 0) byBatcher.delete(b);
    else byBatcher.set(b, d);
    let sum = 0;
    for (const v of byBatcher.values()) sum += v;
    this.gauge.set({ model: name }, sum);
  }
}

/**
 * Gives every version of `gen` its batcher on `pool` (its batch cost known from the warm-up), reporting to
 * `metrics`: the generation can take traffic.
 */
export function attachBatchers(gen: Generation, pool: InferencePool, config: Readonly<Config>, metrics: Metrics, depths: QueueDepths): void {
  gen.pool = pool;
  pool.on('replaced', () => metrics.workerRestarts.inc());
  for (const model of gen.versions) {
    const labels = { model: model.name };
    model.provider = pool.providers[model.key];
    const batcher: Batcher = new Batcher({
      model: model.key,
      inputDim: inputDim(model.card),
      classes: model.card.labels.length,
      embeddingDim: model.card.embeddingDim,
      maxSize: config.batchMaxSize,
      maxDelayMs: config.batchMaxDelayMs,
      policy: config.batchPolicy,
      latencyTargetMs: config.latencyTargetMs,
      queueMax: config.queueMax,
      warmupTimings: pool.timings[model.key],
      runner: pool,
      observer: {
        queueDepth: (d) => depths.set(model.name, batcher, d),
        queueWait: (s) => metrics.queueWait.observe(labels, s),
        batch: (size, seconds) => {
          metrics.batchSize.observe(labels, size);
          metrics.inferenceDuration.observe(labels, seconds);
        },
        cancelled: (n) => metrics.imagesCancelled.inc(labels, n),
      },
    });
    model.batcher = batcher;
    depths.set(model.name, batcher, 0);
  }
}

/** Holds `gen` for one request; the returned function releases it (once). */
export function lease(gen: Generation): () => void {
  gen.leases++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--gen.leases === 0) for (const w of gen.onIdle.splice(0)) w();
  };
}

/** Waits until no request holds `gen`, then stops it (its queue-depth series are forgotten). */
export async function retire(gen: Generation, depths: QueueDepths): Promise<void> {
  if (gen.leases > 0) await new Promise<void>((r) => gen.onIdle.push(r));
  await stop(gen, depths);
}

/** Lets every batcher of `gen` finish its batches, closes them, then stops the workers. */
export async function stop(gen: Generation, depths?: QueueDepths): Promise<void> {
  for (const v of gen.versions) {
    await v.batcher?.idle();
    v.batcher?.close();
    if (v.batcher) depths?.set(v.name, v.batcher, -1);
  }
  await gen.pool?.close();
}

/** The thread split as the mlp_threads gauge shows it. */
export function showThreads(gauge: Metrics['threads'], t: ThreadPlan, uvThreadpoolSize: number): void {
  gauge.reset();
  gauge.set({ role: 'inference_workers', source: t.source }, t.inferenceWorkers);
  gauge.set({ role: 'intra_op', source: t.source }, t.intraOpThreads);
  gauge.set({ role: 'uv_threadpool', source: 'env' }, uvThreadpoolSize);
}
