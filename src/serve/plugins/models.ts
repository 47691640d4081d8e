// Models plugin: finds every model directory under MODELS_DIR and validates its card before the app starts (a bad
// card fails start-up naming the file and the field), then, in the background, starts the inference workers, warms
// each model up and gives every model its batcher. `/readyz` turns 200 when that is done.

import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { ModelCardError, ONNX_FILE, inputDim, readCard, type ModelCard } from '../../model/card.js';
import type { Config, ExecutionProvider } from '../../config.js';
import { Batcher } from '../batcher.js';
import { Errors } from '../errors.js';
import { InferencePool } from '../worker-pool.js';

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelRegistry;
  }
}

export interface LoadedModel {
  name: string;
  card: ModelCard;
  /** Absolute path of model.onnx. */
  onnxPath: string;
  isDefault: boolean;
  /** Set once the workers are up. */
  provider: ExecutionProvider | undefined;
  batcher: Batcher | undefined;
}

export type ModelsState = 'loading' | 'ready' | 'failed';

export interface ModelRegistry {
  readonly list: readonly LoadedModel[];
  readonly defaultName: string;
  readonly state: ModelsState;
  /** Why loading failed (state 'failed'); for the log, never for clients. */
  readonly failure: Error | undefined;
  /** The inference workers, once started. */
  readonly pool: InferencePool | undefined;
  /** The named (or default) model, ready to run; throws UNKNOWN_MODEL / NOT_READY as API errors. */
  resolve(name: string | undefined): LoadedModel & { batcher: Batcher };
  /** Looks a model up without requiring it to be ready. */
  find(name: string | undefined): LoadedModel | undefined;
  /** Resolves when every model is loaded and warmed up; rejects with the reason start-up failed. */
  whenReady(): Promise<void>;
}

/** Batch sizes each model is warmed up at: powers of two up to the largest batch, and the largest itself. */
export function warmupSizes(batchMaxSize: number): number[] {
  const sizes = new Set<number>();
  for (let s = 1; s < batchMaxSize; s *= 2) sizes.add(s);
  sizes.add(batchMaxSize);
  return [...sizes];
}

/** Reads and validates every model directory (sorted by name); throws naming the file and field on the first bad one. */
export async function discoverModels(modelsDir: string): Promise<{ dir: string; card: ModelCard; onnxPath: string }[]> {
  const root = resolve(modelsDir);
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`MODELS_DIR ${modelsDir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const dirs = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const found = [];
  for (const name of dirs) {
    const dir = join(root, name);
    const card = await readCard(dir);
    if (card.name !== name)
      throw new ModelCardError(join(dir, 'model.json'), 'name', `is "${card.name}" but must equal its directory name "${name}"`);
    const onnxPath = join(dir, ONNX_FILE);
    const st = await stat(onnxPath).catch(() => undefined);
    if (!st?.isFile()) throw new Error(`${onnxPath}: missing (every model directory needs ${ONNX_FILE} beside model.json)`);
    found.push({ dir, card, onnxPath });
  }
  if (found.length === 0) throw new Error(`MODELS_DIR ${modelsDir} holds no model (expected <name>/model.json + ${ONNX_FILE})`);
  return found;
}

async function modelsPlugin(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const config = opts.config;
  const found = await discoverModels(config.modelsDir);
  const names = found.map((f) => f.card.name);
  const defaultName = config.defaultModel ?? names[0];
  if (!names.includes(defaultName))
    throw new Error(`DEFAULT_MODEL "${defaultName}" is not among the models in ${config.modelsDir} (${names.join(', ')})`);

  const list: LoadedModel[] = found.map((f) => ({
    name: f.card.name,
    card: f.card,
    onnxPath: f.onnxPath,
    isDefault: f.card.name === defaultName,
    provider: undefined,
    batcher: undefined,
  }));
  const byName = new Map(list.map((m) => [m.name, m]));

  let state: ModelsState = 'loading';
  let failure: Error | undefined;
  let pool: InferencePool | undefined;
  let closing = false;

  const start = async (): Promise<void> => {
    const created = await InferencePool.create({
      workers: config.inferenceWorkers,
      log: {
        info: (m) => app.log.info(m),
        warn: (m) => app.log.warn(m),
        error: (m) => app.log.error(m),
      },
      init: {
        models: list.map((m) => ({
          name: m.name,
          path: m.onnxPath,
          inputDim: inputDim(m.card),
          classes: m.card.labels.length,
          embeddingDim: m.card.embeddingDim,
        })),
        providers: [...config.executionProviders],
        requireGpu: config.requireGpu,
        intraOpThreads: config.ortIntraOpThreads,
        interOpThreads: config.ortInterOpThreads,
        warmupSizes: warmupSizes(config.batchMaxSize),
      },
    });
    if (closing) {
      await created.close();
      return;
    }
    pool = created;
    const m = app.metrics;
    for (const model of list) {
      const labels = { model: model.name };
      model.provider = created.providers[model.name];
      model.batcher = new Batcher({
        model: model.name,
        inputDim: inputDim(model.card),
        classes: model.card.labels.length,
        embeddingDim: model.card.embeddingDim,
        maxSize: config.batchMaxSize,
        maxDelayMs: config.batchMaxDelayMs,
        policy: config.batchPolicy,
        latencyTargetMs: config.latencyTargetMs,
        queueMax: config.queueMax,
        runner: created,
        observer: {
          queueDepth: (d) => m.queueDepth.set(labels, d),
          queueWait: (s) => m.queueWait.observe(labels, s),
          batch: (size, seconds) => {
            m.batchSize.observe(labels, size);
            m.inferenceDuration.observe(labels, seconds);
          },
        },
      });
      m.queueDepth.set(labels, 0);
      m.modelInfo.set(
        { model: model.name, version: model.card.version, arch: model.card.arch.name, provider: model.provider ?? 'none' },
        1,
      );
    }
    state = 'ready';
  };

  const ready = start().catch((err: Error) => {
    state = 'failed';
    failure = err;
    throw err;
  });
  // The failure is reported through whenReady() and /readyz; this keeps it from also being an unhandled rejection.
  ready.catch(() => undefined);

  const registry: ModelRegistry = {
    list,
    defaultName,
    get state() {
      return state;
    },
    get failure() {
      return failure;
    },
    get pool() {
      return pool;
    },
    find: (name) => byName.get(name ?? defaultName),
    resolve(name) {
      const model = byName.get(name ?? defaultName);
      if (!model) throw Errors.UNKNOWN_MODEL(name ?? defaultName);
      if (state !== 'ready' || !model.batcher) throw Errors.NOT_READY();
      return model as LoadedModel & { batcher: Batcher };
    },
    whenReady: () => ready,
  };
  app.decorate('models', registry);

  // Runs after fastify has answered every accepted request: let batches finish, then stop the workers.
  app.addHook('onClose', async () => {
    closing = true;
    await ready.catch(() => undefined);
    for (const model of list) {
      await model.batcher?.idle();
      model.batcher?.close();
    }
    await pool?.close();
  });
}

export default fp(modelsPlugin, { name: 'mlp-models', fastify: '5.x', dependencies: ['mlp-metrics'] });
