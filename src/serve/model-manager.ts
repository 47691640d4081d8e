// What is served, and swapping it without dropping a request: the state machine behind `app.models`.
// `ModelManager.start` reads and validates the repository (src/serve/model-repo.ts; a bad card throws, naming the
// file and the field, unless MODEL_LOAD_POLICY=skip-bad), then, in the background, loads and warms up every served
// version (src/serve/model-pool.ts) and gives each its batcher (src/serve/generation.ts); `whenReady` resolves then.
// `reload` builds the next generation the same way while the current one keeps serving, then swaps: new requests
// resolve the new generation, and the old one is retired once every request holding it has been answered.
// `close` lets the batches in flight finish, then stops the workers.

import type { Config } from '../config.js';
import { Errors } from './errors.js';
import type { Metrics } from './metrics.js';
import type { InferencePool, PoolLogger } from './worker-pool.js';
import { relativeToRepo, scanRepository, type ModelVersionDir, type Repository, type SkippedModel } from './model-repo.js';
import { openPool } from './model-pool.js';
import { QueueDepths, attachBatchers, lease, makeGeneration, retire, showThreads, stop, type Generation } from './generation.js';
import type { ThreadPlan } from './thread-plan.js';
import type { Hold, LoadedModel, ManagerLog, ModelRegistry, ModelsState, ReadyModel, ReloadReport } from './model-types.js';

export interface ManagerDeps {
  metrics: Metrics;
  log: ManagerLog;
  /** Loading starts once this settles (at once without it): how a test holds the not-ready window open. */
  loadAfter?: Promise<unknown>;
}

const keyOf = (d: ModelVersionDir) => `${d.name}:${d.version}`;
/** What a reload compares: names, versions and the files' fingerprints. */
const signature = (dirs: ModelVersionDir[]) => dirs.map((d) => `${keyOf(d)}@${d.fingerprint}`);

export class ModelManager implements ModelRegistry {
  private current: Generation;
  private _skipped: SkippedModel[];
  private _state: ModelsState = 'loading';
  private _failure: Error | undefined;
  private closing = false;
  private reloading = false;
  private reloadRun: Promise<unknown> = Promise.resolve();
  private readonly retiringRuns = new Set<Promise<void>>();
  private readonly ready: Promise<void>;
  private readonly depths: QueueDepths;
  private readonly poolLog: PoolLogger;

  private constructor(
    private readonly config: Readonly<Config>,
    private readonly deps: ManagerDeps,
    first: Repository,
  ) {
    const { log } = deps;
    this.poolLog = { info: (m) => log.info(m), warn: (m) => log.warn(m), error: (m) => log.error(m) };
    this.depths = new QueueDepths(deps.metrics.queueDepth);
    this._skipped = first.skipped;
    this.current = makeGeneration(1, first.versions, this.pickDefault(first.versions));
    this.ready = Promise.resolve(deps.loadAfter).then(() => this.startGeneration(1, first.versions)).then(
      ({ gen, skipped }) => {
        this.current = gen;
        this._skipped = [...this._skipped, ...skipped];
        for (const v of gen.versions) deps.metrics.modelInfo.set(infoLabels(v), 1);
        if (gen.threads) showThreads(deps.metrics.threads, gen.threads, config.uvThreadpoolSize);
        this._state = 'ready';
      },
      (err: Error) => {
        this._state = 'failed';
        this._failure = err;
        throw err;
      },
    );
    // The failure is reported through whenReady() and /readyz; this keeps it from also being an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /**
   * Reads the repository (throws on a bad card or an unknown DEFAULT_MODEL) and starts loading it in the
   * background; `whenReady()` says when every version is warmed up.
   */
  static async start(config: Readonly<Config>, deps: ManagerDeps): Promise<ModelManager> {
    const first = await scanRepository(config.modelsDir, { policy: config.modelLoadPolicy, maxVersions: config.maxModelVersions });
    for (const s of first.skipped) deps.log.warn(`MODEL_LOAD_POLICY=skip-bad: skipping ${s.path}: ${s.reason}`);
    return new ModelManager(config, deps, first);
  }

  get list(): readonly LoadedModel[] {
    return this.current.versions.filter((v) => v.latest);
  }
  get versions(): readonly LoadedModel[] {
    return this.current.versions;
  }
  get defaultName(): string {
    return this.current.defaultName;
  }
  get state(): ModelsState {
    return this._state;
  }
  get failure(): Error | undefined {
    return this._failure;
  }
  get pool(): InferencePool | undefined {
    return this.current.pool;
  }
  get generation(): number {
    return this.current.id;
  }
  get retiring(): number {
    return this.retiringRuns.size;
  }
  get skipped(): readonly SkippedModel[] {
    return this._skipped;
  }
  get threads(): ThreadPlan | undefined {
    return this.current.threads;
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  find(name: string | undefined, version?: string): LoadedModel | undefined {
    try {
      return this.lookup(name, version);
    } catch {
      return undefined;
    }
  }

  versionsOf(name: string): readonly LoadedModel[] {
    return this.current.byName.get(name) ?? [];
  }

  resolve(name: string | undefined, version?: string, hold?: Hold): ReadyModel {
    const model = this.lookup(name, version);
    if (this._state !== 'ready' || !model.batcher) throw Errors.NOT_READY();
    hold?.(lease(this.current));
    return model as ReadyModel;
  }

  reload(): Promise<ReloadReport> {
    if (this.reloading || this._state === 'loading') return Promise.reject(Errors.RELOAD_IN_PROGRESS());
    if (this.closing) return Promise.reject(Errors.SHUTTING_DOWN());
    this.reloading = true;
    const run = this.swapIn().finally(() => (this.reloading = false));
    this.reloadRun = run.catch(() => undefined);
    return run;
  }

  /** Lets start-up, a reload and retiring generations finish, then the batches in flight, then stops the workers. */
  async close(): Promise<void> {
    this.closing = true;
    await this.ready.catch(() => undefined);
    await this.reloadRun;
    await Promise.all([...this.retiringRuns]);
    await stop(this.current);
  }

  private pickDefault(dirs: ModelVersionDir[]): string {
    const names = [...new Set(dirs.map((d) => d.name))];
    const name = this.config.defaultModel ?? names[0];
    if (!names.includes(name)) throw new Error(`DEFAULT_MODEL "${name}" is not among the models in ${this.config.modelsDir} (${names.join(', ')})`);
    return name;
  }

  private lookup(name: string | undefined, version: string | undefined): LoadedModel {
    const n = name ?? this.current.defaultName;
    const list = this.current.byName.get(n);
    if (!list) throw Errors.UNKNOWN_MODEL(n);
    const model = version === undefined ? list[0] : list.find((v) => v.version === version);
    if (!model) throw Errors.UNKNOWN_VERSION(n, version ?? '');
    return model;
  }

  private scan(): Promise<Repository> {
    return scanRepository(this.config.modelsDir, { policy: this.config.modelLoadPolicy, maxVersions: this.config.maxModelVersions });
  }

  /** Loads and warms up a generation; returns it with its batchers, ready to take traffic. */
  private async startGeneration(id: number, dirs: ModelVersionDir[]): Promise<{ gen: Generation; skipped: SkippedModel[] }> {
    const opened = await openPool(dirs, {
      config: this.config,
      log: this.poolLog,
      closing: () => this.closing,
      // The default model (DEFAULT_MODEL, if it loaded at all, is checked after the pool is up).
      splitFor: (ds) => ds.find((d) => d.name === (this.config.defaultModel ?? ds[0].name)) ?? ds[0],
    });
    let dflt: string;
    try {
      if (this.closing) throw new Error('the server is shutting down');
      // A version left out may change which one is newest, or which model is the default (a DEFAULT_MODEL that
      // could not be loaded fails, whatever the policy): rebuild from what actually loaded.
      dflt = this.pickDefault(opened.dirs);
    } catch (err) {
      await opened.pool.close();
      throw err;
    }
    const gen = makeGeneration(id, opened.dirs, dflt);
    attachBatchers(gen, opened.pool, this.config, this.deps.metrics, this.depths);
    gen.threads = opened.threads;
    return { gen, skipped: opened.skipped };
  }

  private async swapIn(): Promise<ReloadReport> {
    const { metrics: m, log } = this.deps;
    const t0 = performance.now();
    let scanned: Repository;
    try {
      scanned = await this.scan();
      this.pickDefault(scanned.versions);
    } catch (err) {
      m.modelReloads.inc({ outcome: 'failed' });
      throw Errors.RELOAD_FAILED(relativeToRepo((err as Error).message, this.config.modelsDir));
    }
    const before = this.current.versions.map((v) => v.key);
    if (this._state === 'ready' && signature(scanned.versions).join('\n') === signature(this.current.dirs).join('\n')) {
      m.modelReloads.inc({ outcome: 'unchanged' });
      return { changed: false, generation: this.current.id, served: before, loaded: [], unloaded: [], skipped: scanned.skipped, reloadMs: performance.now() - t0 };
    }
    let next;
    try {
      next = await this.startGeneration(this.current.id + 1, scanned.versions);
    } catch (err) {
      m.modelReloads.inc({ outcome: 'failed' });
      if (this.closing) throw Errors.SHUTTING_DOWN();
      throw Errors.RELOAD_FAILED(relativeToRepo((err as Error).message, this.config.modelsDir));
    }
    // The swap: from here on new requests resolve the new generation.
    const old = this.current;
    this.current = next.gen;
    this._skipped = [...scanned.skipped, ...next.skipped];
    this._state = 'ready';
    this._failure = undefined;
    for (const v of old.versions) if (v.provider) m.modelInfo.remove(infoLabels(v));
    for (const v of this.current.versions) m.modelInfo.set(infoLabels(v), 1);
    if (this.current.threads) showThreads(m.threads, this.current.threads, this.config.uvThreadpoolSize);
    m.modelReloads.inc({ outcome: 'ok' });
    const after = this.current.versions.map((v) => v.key);
    // Fingerprints decide: a version whose files changed in place is reloaded too.
    const kept = new Set(signature(old.dirs));
    const loaded = this.current.dirs.filter((d) => !kept.has(signature([d])[0])).map(keyOf);
    const unloaded = before.filter((k) => !after.includes(k));
    log.info({ generation: this.current.id, loaded, unloaded }, 'models reloaded; the previous generation drains');
    const done: Promise<void> = retire(old, this.depths).then(
      () => log.info({ generation: old.id }, 'previous model generation drained and stopped'),
      (err: Error) => log.error({ err }, 'retiring the previous model generation failed'),
    );
    this.retiringRuns.add(done);
    void done.finally(() => this.retiringRuns.delete(done));
    return { changed: true, generation: this.current.id, served: after, loaded, unloaded, skipped: this._skipped, reloadMs: performance.now() - t0 };
  }
}

function infoLabels(v: LoadedModel) {
  return { model: v.name, version: v.version, arch: v.card.arch.name, provider: v.provider ?? 'none' };
}
