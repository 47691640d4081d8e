// The types of model management, shared by the manager (src/serve/model-manager.ts), the routes that resolve a
// model and the plugin that exposes the manager as `app.models`.

import type { ModelCard } from '../model/card.js';
import type { ExecutionProvider } from '../config.js';
import type { Batcher } from './batcher.js';
import type { InferencePool } from './worker-pool.js';
import type { SkippedModel } from './model-repo.js';
import type { ThreadPlan } from './thread-plan.js';

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

/** A model ready to run: its batcher exists. */
export type ReadyModel = LoadedModel & { batcher: Batcher };

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

/**
 * How a caller keeps the generation of the model it resolved alive: `resolve` calls it with a `release` function,
 * which the caller calls once it is done with the model (the routes: once the reply is finished or its client gone).
 */
export type Hold = (release: () => void) => void;

/** A log in pino's argument order; fastify's `app.log` is one. */
export interface ManagerLog {
  info(objOrMsg: object | string, msg?: string): void;
  warn(objOrMsg: object | string, msg?: string): void;
  error(objOrMsg: object | string, msg?: string): void;
}

/** What the service reads of model management (`app.models`). */
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
  /** The current generation's thread split (undefined until its workers are up). */
  readonly threads: ThreadPlan | undefined;
  /**
   * The named (or default) model at the pinned (or newest) version, ready to run; throws UNKNOWN_MODEL,
   * UNKNOWN_VERSION or NOT_READY as API errors. With `hold`, the version's generation is kept alive (its workers
   * running) until the release handed to `hold` is called.
   */
  resolve(name: string | undefined, version?: string, hold?: Hold): ReadyModel;
  /** Looks a model up without requiring it to be ready. */
  find(name: string | undefined, version?: string): LoadedModel | undefined;
  /** Every served version of one model, newest first (empty for an unknown name). */
  versionsOf(name: string): readonly LoadedModel[];
  /** Resolves when every model is loaded and warmed up; rejects with the reason start-up failed. */
  whenReady(): Promise<void>;
  /** Re-reads MODELS_DIR and swaps in what changed, warmed up, without dropping a request. */
  reload(): Promise<ReloadReport>;
}
