// Models plugin: what is served, and swapping it without dropping a request.
// At start-up the repository (src/serve/model-repo.ts) is read and validated before the app starts (a bad card fails
// start-up naming the file and the field, unless MODEL_LOAD_POLICY=skip-bad), then, in the background, inference
// workers load and warm up every served version and each version gets its batcher; `/readyz` turns 200 then.
// A reload builds the next *generation* the same way (new workers, warmed up) while the current one keeps serving,
// then swaps: new requests go to the new generation, and the old one is retired once every request that resolved
// it has been answered (leases) and its batchers are idle; only then are its workers stopped.

import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { inputDim, type ModelCard } from '../../model/card.js';
import type { Config, ExecutionProvider } from '../../config.js';
import { Batcher } from '../batcher.js';
import { Errors } from '../errors.js';
import { InferencePool, type PoolLogger } from '../worker-pool.js';
import type { WorkerInit } from '../worker-protocol.js';
import { relativeToRepo, scanRepository, type ModelVersionDir, type SkippedModel } from '../model-repo.js';
import { whenClosed } from '../closed.js';

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelRegistry;
  }
}

/** One served version of a model. */
export interface LoadedModel {
  name: string;
  version: string;
  /** `name:version`: how workers and batchers know this version. */
  key: string;
  card: ModelCard;
  /** Absolute path of model.onnx. */
  onnxPath: string;
  /** This model name is the one answering requests that name none. */
  isDefault: boolean;
  /** The newest served version of its name: the one answering requests that pin none. */
  latest: boolean;
  /** Set once the workers are up. */
  provider: ExecutionProvider | undefined;
  batcher: Batcher | undefined;
}

export type ModelsState = 'loading' | 'ready' | 'failed';

/** What POST /admin/models/reload answers. */
export interface ReloadReport {
  /** false when nothing on disk changed (nothing was reloaded). */
  changed: boolean;
  generation: number;
  /** `name:version` now served, loaded by this reload, no longer served. */
  served: string[];
  loaded: string[];
  unloaded: string[];
  /** Left out under MODEL_LOAD_POLICY=skip-bad (paths relative to MODELS_DIR). */
  skipped: SkippedModel[];
  reloadMs: number;
}

export interface ModelRegistry {
  /** The newest served version of every model, by name (what answers requests that pin no version). */
  readonly list: readonly LoadedModel[];
  /** Every served version, by name then newest first. */
  readonly versions: readonly LoadedModel[];
  readonly defaultName: string;
  readonly state: ModelsState;
  /** Why loading failed (state 'failed'); for the log, never for clients. */
  readonly failure: Error | undefined;
  /** The current generation's inference workers, once started. */
  readonly pool: InferencePool | undefined;
  /** Increments with every reload that changed what is served. */
  readonly generation: number;
  /** Generations replaced by a reload and still finishing their requests. */
  readonly retiring: number;
  /** Models skipped at the last load under MODEL_LOAD_POLICY=skip-bad. */
  readonly skipped: readonly SkippedModel[];
  /**
   * The named (or default) model at the pinned (or newest) version, ready to run; throws UNKNOWN_MODEL,
   * UNKNOWN_VERSION or NOT_READY as API errors. With `reply`, the version's generation is kept alive (its workers
   * running) until that reply is finished or its client has gone.
   */
  resolve(name: string | undefined, version?: string, reply?: FastifyReply): LoadedModel & { batcher: Batcher };
  /** Looks a model up without requiring it to be ready. */
  find(name: string | undefined, version?: string): LoadedModel | undefined;
  /** Every served version of one model, newest first (empty for an unknown name). */
  versionsOf(name: string): readonly LoadedModel[];
  /** Resolves when every model is loaded and warmed up; rejects with the reason start-up failed. */
  whenReady(): Promise<void>;
  /** Re-reads MODELS_DIR and swaps in what changed, warmed up, without dropping a request. */
  reload(): Promise<ReloadReport>;
}

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

interface Generation {
  id: number;
  /** The model answering requests that name none. */
  defaultName: string;
  versions: LoadedModel[];
  byName: Map<string, LoadedModel[]>;
  dirs: ModelVersionDir[];
  pool: InferencePool | undefined;
  /** Requests holding this generation (resolved and not yet answered). */
  leases: number;
  onIdle: (() => void)[];
}

function makeGeneration(id: number, dirs: ModelVersionDir[], defaultName: string): Generation {
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
  return { id, defaultName, versions, byName, dirs, pool: undefined, leases: 0, onIdle: [] };
}

const LEASED = Symbol('mlp.modelLease');

async function modelsPlugin(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const config = opts.config;
  const scan = () => scanRepository(config.modelsDir, { policy: config.modelLoadPolicy, maxVersions: config.maxModelVersions });
  const first = await scan();
  const pickDefault = (dirs: ModelVersionDir[]): string => {
    const names = [...new Set(dirs.map((d) => d.name))];
    const name = config.defaultModel ?? names[0];
    if (!names.includes(name)) throw new Error(`DEFAULT_MODEL "${name}" is not among the models in ${config.modelsDir} (${names.join(', ')})`);
    return name;
  };
  for (const s of first.skipped) app.log.warn(`MODEL_LOAD_POLICY=skip-bad: skipping ${s.path}: ${s.reason}`);

  const log: PoolLogger = { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) };
  const m = app.metrics;
  // Queue depth is reported per model name: the sum over its versions and over generations still draining.
  const depths = new Map<string, Map<Batcher, number>>();
  const setDepth = (name: string, b: Batcher, d: number) => {
    const byBatcher = depths.get(name) ?? new Map<Batcher, number>();
    depths.set(name, byBatcher);
    if (d < 0) byBatcher.delete(b);
    else byBatcher.set(b, d);
    let sum = 0;
    for (const v of byBatcher.values()) sum += v;
    m.queueDepth.set({ model: name }, sum);
  };

  let current = makeGeneration(1, first.versions, pickDefault(first.versions));
  let skipped: SkippedModel[] = first.skipped;
  let state: ModelsState = 'loading';
  let failure: Error | undefined;
  let closing = false;
  let reloading = false;
  const retiring = new Set<Promise<void>>();

  const workerInit = (dirs: ModelVersionDir[], sizes: number[]): WorkerInit => ({
    models: dirs.map((d) => ({
      name: `${d.name}:${d.version}`,
      path: d.onnxPath,
      inputDim: inputDim(d.card),
      classes: d.card.labels.length,
      embeddingDim: d.card.embeddingDim,
    })),
    providers: [...config.executionProviders],
    requireGpu: config.requireGpu,
    intraOpThreads: config.ortIntraOpThreads,
    interOpThreads: config.ortInterOpThreads,
    warmupSizes: sizes,
  });

  /**
   * Starts workers for `dirs`. When that fails, each version is tried alone (one worker, one warm-up run) to find
   * the file at fault: MODEL_LOAD_POLICY=fail reports it, skip-bad leaves it out and starts the rest.
   */
  const openPool = async (dirs: ModelVersionDir[]): Promise<{ pool: InferencePool; dirs: ModelVersionDir[]; skipped: SkippedModel[] }> => {
    try {
      return { pool: await InferencePool.create({ workers: config.inferenceWorkers, log, init: workerInit(dirs, warmupSizes(config.batchMaxSize)) }), dirs, skipped: [] };
    } catch (err) {
      // No GPU when one is required is no model's fault; nor is anything once shutting down.
      if (closing || /^REQUIRE_GPU=1/.test((err as Error).message)) throw err;
      const bad: { dir: ModelVersionDir; error: ModelLoadError }[] = [];
      for (const d of dirs) {
        const probe = await InferencePool.create({ workers: 1, log: { ...log, error: () => undefined }, init: workerInit([d], [1]) }).catch((e: Error) => e);
        if (probe instanceof Error) bad.push({ dir: d, error: new ModelLoadError(d.onnxPath, probe.message) });
        else await probe.close();
      }
      if (bad.length === 0) throw err;
      if (config.modelLoadPolicy === 'fail') throw bad[0].error;
      const good = dirs.filter((d) => !bad.some((b) => b.dir === d));
      if (good.length === 0) throw new Error(`no model could be loaded: ${bad.map((b) => b.error.message).join('; ')}`);
      const left = bad.map((b) => ({ path: relativeToRepo(b.dir.onnxPath, config.modelsDir), reason: relativeToRepo(b.error.message, config.modelsDir) }));
      for (const s of left) app.log.warn(`MODEL_LOAD_POLICY=skip-bad: skipping ${s.path}: ${s.reason}`);
      const pool = await InferencePool.create({ workers: config.inferenceWorkers, log, init: workerInit(good, warmupSizes(config.batchMaxSize)) });
      return { pool, dirs: good, skipped: left };
    }
  };

  /** Loads and warms up a generation; returns it with its batchers, ready to take traffic. */
  const startGeneration = async (id: number, dirs: ModelVersionDir[]): Promise<{ gen: Generation; skipped: SkippedModel[] }> => {
    const opened = await openPool(dirs);
    let dflt: string;
    try {
      if (closing) throw new Error('the server is shutting down');
      // A version left out may change which one is newest, or which model is the default (a DEFAULT_MODEL that
      // could not be loaded fails, whatever the policy): rebuild from what actually loaded.
      dflt = pickDefault(opened.dirs);
    } catch (err) {
      await opened.pool.close();
      throw err;
    }
    const gen = makeGeneration(id, opened.dirs, dflt);
    gen.pool = opened.pool;
    opened.pool.on('replaced', () => m.workerRestarts.inc());
    for (const model of gen.versions) {
      const labels = { model: model.name };
      model.provider = opened.pool.providers[model.key];
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
        runner: opened.pool,
        observer: {
          queueDepth: (d) => setDepth(model.name, batcher, d),
          queueWait: (s) => m.queueWait.observe(labels, s),
          batch: (size, seconds) => {
            m.batchSize.observe(labels, size);
            m.inferenceDuration.observe(labels, seconds);
          },
          cancelled: (n) => m.imagesCancelled.inc(labels, n),
        },
      });
      model.batcher = batcher;
      setDepth(model.name, batcher, 0);
    }
    return { gen, skipped: opened.skipped };
  };

  const infoLabels = (v: LoadedModel) => ({ model: v.name, version: v.version, arch: v.card.arch.name, provider: v.provider ?? 'none' });

  /** Waits until no request holds `gen` and its batchers are idle, then stops its workers. */
  const retire = async (gen: Generation): Promise<void> => {
    if (gen.leases > 0) await new Promise<void>((r) => gen.onIdle.push(r));
    for (const v of gen.versions) {
      await v.batcher?.idle();
      v.batcher?.close();
      if (v.batcher) setDepth(v.name, v.batcher, -1);
    }
    await gen.pool?.close();
  };

  const release = (gen: Generation) => {
    if (--gen.leases === 0) for (const w of gen.onIdle.splice(0)) w();
  };

  const ready = startGeneration(1, first.versions).then(
    ({ gen, skipped: more }) => {
      current = gen;
      skipped = [...skipped, ...more];
      for (const v of gen.versions) m.modelInfo.set(infoLabels(v), 1);
      state = 'ready';
    },
    (err: Error) => {
      state = 'failed';
      failure = err;
      throw err;
    },
  );
  // The failure is reported through whenReady() and /readyz; this keeps it from also being an unhandled rejection.
  ready.catch(() => undefined);

  const lookup = (name: string | undefined, version: string | undefined): LoadedModel => {
    const n = name ?? current.defaultName;
    const list = current.byName.get(n);
    if (!list) throw Errors.UNKNOWN_MODEL(n);
    const model = version === undefined ? list[0] : list.find((v) => v.version === version);
    if (!model) throw Errors.UNKNOWN_VERSION(n, version ?? '');
    return model;
  };

  let reloadRun: Promise<unknown> = Promise.resolve();
  const reload = (): Promise<ReloadReport> => {
    if (reloading || state === 'loading') return Promise.reject(Errors.RELOAD_IN_PROGRESS());
    if (closing) return Promise.reject(Errors.SHUTTING_DOWN());
    reloading = true;
    const run = swapIn();
    reloadRun = run.catch(() => undefined);
    return run;
  };

  const swapIn = async (): Promise<ReloadReport> => {
    const t0 = performance.now();
    try {
      let scanned;
      try {
        scanned = await scan();
        pickDefault(scanned.versions);
      } catch (err) {
        m.modelReloads.inc({ outcome: 'failed' });
        throw Errors.RELOAD_FAILED(relativeToRepo((err as Error).message, config.modelsDir));
      }
      const keyOf = (d: ModelVersionDir) => `${d.name}:${d.version}`;
      const sig = (dirs: ModelVersionDir[]) => dirs.map((d) => `${keyOf(d)}@${d.fingerprint}`).join('\n');
      const before = current.versions.map((v) => v.key);
      if (state === 'ready' && sig(scanned.versions) === sig(current.dirs)) {
        m.modelReloads.inc({ outcome: 'unchanged' });
        return { changed: false, generation: current.id, served: before, loaded: [], unloaded: [], skipped: scanned.skipped, reloadMs: performance.now() - t0 };
      }
      let next;
      try {
        next = await startGeneration(current.id + 1, scanned.versions);
      } catch (err) {
        m.modelReloads.inc({ outcome: 'failed' });
        if (closing) throw Errors.SHUTTING_DOWN();
        throw Errors.RELOAD_FAILED(relativeToRepo((err as Error).message, config.modelsDir));
      }
      // The swap: from here on new requests resolve the new generation.
      const old = current;
      current = next.gen;
      skipped = [...scanned.skipped, ...next.skipped];
      state = 'ready';
      failure = undefined;
      for (const v of old.versions) if (v.provider) m.modelInfo.remove(infoLabels(v));
      for (const v of current.versions) m.modelInfo.set(infoLabels(v), 1);
      m.modelReloads.inc({ outcome: 'ok' });
      const after = current.versions.map((v) => v.key);
      // Fingerprints decide: a version whose files changed in place is reloaded too.
      const kept = new Set(old.dirs.map((d) => `${keyOf(d)}@${d.fingerprint}`));
      const loaded = current.dirs.filter((d) => !kept.has(`${keyOf(d)}@${d.fingerprint}`)).map(keyOf);
      const unloaded = before.filter((k) => !after.includes(k));
      app.log.info({ generation: current.id, loaded, unloaded }, 'models reloaded; the previous generation drains');
      const done: Promise<void> = retire(old).then(
        () => app.log.info({ generation: old.id }, 'previous model generation drained and stopped'),
        (err: Error) => app.log.error({ err }, 'retiring the previous model generation failed'),
      );
      retiring.add(done);
      void done.finally(() => retiring.delete(done));
      return { changed: true, generation: current.id, served: after, loaded, unloaded, skipped, reloadMs: performance.now() - t0 };
    } finally {
      reloading = false;
    }
  };

  const registry: ModelRegistry = {
    get list() {
      return current.versions.filter((v) => v.latest);
    },
    get versions() {
      return current.versions;
    },
    get defaultName() {
      return current.defaultName;
    },
    get state() {
      return state;
    },
    get failure() {
      return failure;
    },
    get pool() {
      return current.pool;
    },
    get generation() {
      return current.id;
    },
    get retiring() {
      return retiring.size;
    },
    get skipped() {
      return skipped;
    },
    find(name, version) {
      try {
        return lookup(name, version);
      } catch {
        return undefined;
      }
    },
    versionsOf: (name) => current.byName.get(name) ?? [],
    resolve(name, version, reply) {
      const model = lookup(name, version);
      if (state !== 'ready' || !model.batcher) throw Errors.NOT_READY();
      if (reply) {
        const holder = reply as FastifyReply & { [LEASED]?: boolean };
        if (!holder[LEASED]) {
          holder[LEASED] = true;
          const gen = current;
          gen.leases++;
          whenClosed(reply, () => release(gen));
        }
      }
      return model as LoadedModel & { batcher: Batcher };
    },
    whenReady: () => ready,
    reload,
  };
  app.decorate('models', registry);

  // Runs after fastify has answered every accepted request: let batches finish, then stop the workers.
  app.addHook('onClose', async () => {
    closing = true;
    await ready.catch(() => undefined);
    await reloadRun;
    await Promise.all([...retiring]);
    for (const v of current.versions) {
      await v.batcher?.idle();
      v.batcher?.close();
    }
    await current.pool?.close();
  });
}

export default fp(modelsPlugin, { name: 'mlp-models', fastify: '5.x', dependencies: ['mlp-metrics'] });
