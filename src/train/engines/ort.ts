// The fused onnxruntime training engine: one onnxruntime run per step (see ort-graph.ts for the graph).
//
// Two ways to apply LION, chosen per execution provider:
// - `host` (default on CPU): the graph computes loss and gradients into preallocated buffers; a WebAssembly SIMD
//   kernel (lion-simd.ts) applies LION in place: on CPU the in-graph update is ~20× slower, as onnxruntime's
//   elementwise kernels are slow and every output is copied out (measurements: docs/training.md, "Engines").
// - `graph` (default on CUDA): forward, backward and LION in the one graph, weights and momenta in two
//   preallocated sets of buffers; a step reads set A and writes set B (preallocated fetches), then they swap.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { assertWeightsMatch, namedTensors, type MlpConfig, type MlpWeights } from '../../model/mlp.js';
import { weightsFromArrays } from '../checkpoint.js';
import type { Engine, OptimizerState, StepHyper, TrainBatch } from './engine.js';
import {
  IO,
  SCALAR_INPUTS,
  buildPredictGraph,
  buildTrainGraph,
  paramSpecs,
  storedShape,
  type MatmulStyle,
  type ParamSpec,
} from './ort-graph.js';
import type { LionArena } from './lion-simd.js';
import { fromStored, hostArena, lionInPlace, toStored } from './ort-state.js';

export type OrtProvider = 'cuda' | 'cpu';
/** Where LION runs: inside the graph, or on the host after a gradient-only graph (see the module comment). */
export type LionPlacement = 'graph' | 'host';

export interface OrtEngineOptions {
  /** Providers tried in order; one that cannot start (no CUDA library or device) is skipped. Default cuda, cpu. */
  executionProviders?: readonly OrtProvider[];
  /** Threads of one operator. Default: all cores. */
  intraOpNumThreads?: number;
  /** How transposed matmuls of the backward pass are written (see ort-graph.ts). Default `gemm`. */
  matmul?: MatmulStyle;
  /** Default: `graph` on CUDA, `host` on CPU. */
  lion?: LionPlacement;
  /**
   * Whether idle intra-op threads spin-wait. Default false: after a run, spinning pool threads compete with the
   * host-side LION and the data pipeline for the cores (docs/training.md, "Engines").
   */
  spinning?: boolean;
  /**
   * Threads running independent nodes at once (the weight and input gradients of a Linear are independent).
   * 1 = sequential execution. Default 1.
   */
  interOpNumThreads?: number;
  /**
   * onnxruntime's own profiler on the step sessions: each writes `<prefix>_<date>.json` (a Chrome trace of every run
   * and node) when `endProfiling()` is called. Off by default (it costs a few % per run).
   */
  profileFilePrefix?: string;
}

interface ResolvedOptions {
  executionProviders: readonly OrtProvider[];
  intraOpNumThreads: number;
  matmul: MatmulStyle;
  lion: LionPlacement | undefined;
  spinning: boolean;
  interOpNumThreads: number;
  profileFilePrefix: string | undefined;
}

/** Rows per predict run: bounds the input tensor a single run holds. */
const PREDICT_CHUNK = 1024;
/** Step sessions kept open (batch sizes in use: the batch, a short last batch, and one spare). */
const MAX_STEP_SESSIONS = 3;

/** The registry's entry point (src/train/engines/index.ts). */
export async function createEngine(opts: OrtEngineOptions = {}): Promise<Engine> {
  return new OrtEngine(opts);
}

function validateOptions(opts: OrtEngineOptions): ResolvedOptions {
  const providers = opts.executionProviders ?? ['cuda', 'cpu'];
  if (providers.length === 0) throw new RangeError('executionProviders must not be empty');
  for (const p of providers) if (p !== 'cuda' && p !== 'cpu') throw new RangeError(`execution provider "${p}" is not cuda or cpu`);
  const threads = opts.intraOpNumThreads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`intraOpNumThreads ${threads} must be a positive integer`);
  const matmul = opts.matmul ?? 'gemm';
  if (matmul !== 'gemm' && matmul !== 'transpose') throw new RangeError(`matmul "${matmul}" is not gemm or transpose`);
  if (opts.lion !== undefined && opts.lion !== 'graph' && opts.lion !== 'host')
    throw new RangeError(`lion "${opts.lion}" is not graph or host`);
  const inter = opts.interOpNumThreads ?? 1;
  if (!Number.isInteger(inter) || inter < 1) throw new RangeError(`interOpNumThreads ${inter} must be a positive integer`);
  return Object.freeze({
    executionProviders: [...providers],
    intraOpNumThreads: threads,
    matmul,
    lion: opts.lion,
    spinning: opts.spinning ?? false,
    interOpNumThreads: inter,
    profileFilePrefix: opts.profileFilePrefix,
  });
}

function sessionOptions(provider: OrtProvider, o: ResolvedOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    executionMode: o.interOpNumThreads > 1 ? 'parallel' : 'sequential',
    intraOpNumThreads: o.intraOpNumThreads,
    interOpNumThreads: o.interOpNumThreads,
    enableCpuMemArena: true,
    // Static shapes: the memory pattern plans every intermediate buffer once.
    enableMemPattern: true,
    logSeverityLevel: 3,
    ...(o.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: o.profileFilePrefix } : {}),
    // Spinning off yields an idle pool thread's core, as OMP_WAIT_POLICY=PASSIVE does for PyTorch.
    extra: { session: { intra_op: { allow_spinning: o.spinning ? '1' : '0' } } },
  };
}

/** The CPU session options of the engine's step sessions (the bench times MatMul alone with the same). */
export function cpuSessionOptions(opts: OrtEngineOptions = {}): ort.InferenceSession.SessionOptions {
  return sessionOptions('cpu', validateOptions(opts));
}

/**
 * Whether onnxruntime-node's CUDA provider library is installed next to its binding (it is downloaded separately).
 * Without it, trying the provider only makes onnxruntime log a load error on every session, so it is skipped.
 */
function cudaProviderInstalled(): boolean {
  try {
    const root = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    return existsSync(join(root, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/** Opens the graph `build(provider)` on the first provider that starts. */
async function openSession<T>(
  o: ResolvedOptions,
  build: (provider: OrtProvider) => { bytes: Uint8Array; tag: T },
): Promise<{ session: ort.InferenceSession; provider: OrtProvider; tag: T }> {
  const failures: string[] = [];
  for (const provider of o.executionProviders) {
    if (provider === 'cuda' && !cudaProviderInstalled()) {
      failures.push('cuda: provider library not installed');
      continue;
    }
    try {
      const { bytes, tag } = build(provider);
      return { session: await ort.InferenceSession.create(bytes, sessionOptions(provider, o)), provider, tag };
    } catch (err) {
      failures.push(`${provider}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`onnxruntime could not open the graph on any provider (${failures.join('; ')})`);
}

const f32 = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** One full set of trainable state: parameters and LION momenta, one tensor each per ParamSpec. */
interface StateSet {
  params: ort.Tensor[];
  momenta: ort.Tensor[];
}

function allocSet(specs: ParamSpec[]): StateSet {
  const make = () => specs.map((s) => f32(new Float32Array(sizeOf(s.shape)), storedShape(s)));
  return { params: make(), momenta: make() };
}

interface StepSession {
  session: ort.InferenceSession;
  provider: OrtProvider;
  lion: LionPlacement;
}

export class OrtEngine implements Engine {
  readonly name = 'ort';
  private readonly opts: ResolvedOptions;
  private cfg?: MlpConfig;
  private specs: ParamSpec[] = [];
  /**
   * sets[current] holds the live state. sets[0] views the host arena; a host step updates it in place. An in-graph
   * step writes sets[1 − current] (sets[1] is allocated on the first such step), then `current` flips.
   */
  private sets: [StateSet, StateSet | undefined] | undefined;
  private current = 0;
  private arena?: LionArena;
  /** Gradient tensors of the host path over arena.grads, written by the graph (preallocated fetches). */
  private grads: ort.Tensor[] = [];
  private readonly stepSessions = new Map<number, Promise<StepSession>>();
  private predictSession?: Promise<ort.InferenceSession>;
  /** The provider step sessions actually run on (after any fallback). */
  provider?: OrtProvider;
  /** Wall time of the last step's onnxruntime run and of its host-side LION update (0 in-graph), in ms. */
  readonly lastStep = { runMs: 0, updateMs: 0 };
  private readonly scalars = Object.fromEntries(SCALAR_INPUTS.map((n) => [n, f32(new Float32Array(1), [])])) as Record<
    (typeof SCALAR_INPUTS)[number],
    ort.Tensor
  >;
  private readonly lossOut = f32(new Float32Array(1), []);

  constructor(opts: OrtEngineOptions = {}) {
    this.opts = validateOptions(opts);
  }

  async init(cfg: MlpConfig, weights: MlpWeights, momentum?: OptimizerState): Promise<void> {
    assertWeightsMatch(cfg, weights);
    const named = namedTensors(weights);
    if (momentum && momentum.length !== named.length)
      throw new RangeError(`momentum has ${momentum.length} tensors, the model has ${named.length}`);
    await this.releaseSessions();
    this.cfg = { ...cfg };
    this.specs = paramSpecs(cfg);
    named.forEach((t, i) => {
      if (t.name !== this.specs[i].name) throw new Error(`internal: tensor ${i} is ${t.name}, graph expects ${this.specs[i].name}`);
      if (momentum && momentum[i].length !== t.data.length)
        throw new RangeError(`momentum of ${t.name} has ${momentum[i].length} values, the weight has ${t.data.length}`);
    });
    const arena = hostArena(this.specs.map((s) => sizeOf(s.shape)));
    named.forEach((t, i) => {
      toStored(this.specs[i], t.data, arena.params[i]);
      if (momentum) toStored(this.specs[i], momentum[i], arena.momenta[i]);
    });
    const wrap = (arrays: Float32Array[]) => arrays.map((a, i) => f32(a, storedShape(this.specs[i])));
    this.arena = arena;
    this.sets = [{ params: wrap(arena.params), momenta: wrap(arena.momenta) }, undefined];
    this.grads = wrap(arena.grads);
    this.current = 0;
  }

  async step(batch: TrainBatch, hyper: StepHyper): Promise<{ loss: number }> {
    const { cfg, sets } = this.ready();
    const n = batch.size;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`batch.size ${n} must be a positive integer`);
    const x = exactRows(batch.x, n, cfg.inputDim, 'batch.x');
    const y = exactRows(batch.y, n, cfg.classes, 'batch.y');
    const h = { lr: hyper.lr, weight_decay: hyper.weightDecay, beta1: hyper.beta1, beta2: hyper.beta2, body_lr_scale: hyper.bodyLrScale ?? 1 };
    for (const [k, v] of Object.entries(h)) if (!Number.isFinite(v)) throw new RangeError(`hyper-parameter ${k} is ${v}, not a finite number`);

    const { session, lion } = await this.stepSession(n);
    const from = sets[this.current]!;
    const feeds: Record<string, ort.Tensor> = { [IO.x]: f32(x, [n, cfg.inputDim]), [IO.y]: f32(y, [n, cfg.classes]) };
    const fetches: Record<string, ort.Tensor> = { [IO.loss]: this.lossOut };
    this.specs.forEach((s, i) => (feeds[IO.param(s.name)] = from.params[i]));

    if (lion === 'graph') {
      for (const k of SCALAR_INPUTS) {
        (this.scalars[k].data as Float32Array)[0] = h[k];
        feeds[k] = this.scalars[k];
      }
      const to = (sets[1 - this.current] ??= allocSet(this.specs));
      this.specs.forEach((s, i) => {
        feeds[IO.momentum(s.name)] = from.momenta[i];
        fetches[IO.newParam(s.name)] = to.params[i];
        fetches[IO.newMomentum(s.name)] = to.momenta[i];
      });
      const t0 = performance.now();
      await session.run(feeds, fetches);
      this.lastStep.runMs = performance.now() - t0;
      this.lastStep.updateMs = 0;
      this.current = 1 - this.current;
    } else {
      this.specs.forEach((s, i) => (fetches[IO.grad(s.name)] = this.grads[i]));
      const t0 = performance.now();
      await session.run(feeds, fetches);
      const t1 = performance.now();
      this.specs.forEach((s, i) => {
        const lr = s.head ? h.lr : h.lr * h.body_lr_scale;
        const decay = 1 - lr * h.weight_decay;
        // The arena's kernel when the live state is the arena's (always, unless in-graph steps ran before).
        if (this.current === 0) this.arena!.update(i, lr, decay, h.beta1, h.beta2);
        else {
          const grad = this.grads[i].data as Float32Array;
          lionInPlace(from.params[i].data as Float32Array, from.momenta[i].data as Float32Array, grad, lr, decay, h.beta1, h.beta2);
        }
      });
      this.lastStep.runMs = t1 - t0;
      this.lastStep.updateMs = performance.now() - t1;
    }
    return { loss: (this.lossOut.data as Float32Array)[0] };
  }

  async predict(x: Float32Array, n: number): Promise<Float32Array> {
    const { cfg, sets } = this.ready();
    const input = exactRows(x, n, cfg.inputDim, 'x');
    this.predictSession ??= openSession(this.opts, () => ({
      bytes: buildPredictGraph(cfg),
      tag: undefined,
    })).then((s) => s.session);
    const session = await this.predictSession;
    const params = sets[this.current]!.params;
    const out = new Float32Array(n * cfg.classes);
    for (let start = 0; start < n; start += PREDICT_CHUNK) {
      const rows = Math.min(PREDICT_CHUNK, n - start);
      const feeds: Record<string, ort.Tensor> = {
        [IO.x]: f32(input.subarray(start * cfg.inputDim, (start + rows) * cfg.inputDim), [rows, cfg.inputDim]),
      };
      this.specs.forEach((s, i) => (feeds[IO.param(s.name)] = params[i]));
      const logits = f32(out.subarray(start * cfg.classes, (start + rows) * cfg.classes), [rows, cfg.classes]);
      await session.run(feeds, { [IO.logits]: logits });
    }
    return out;
  }

  async readWeights(): Promise<MlpWeights> {
    const { cfg, sets } = this.ready();
    // specs are in namedTensors order, the order weightsFromArrays reads.
    return weightsFromArrays(cfg, sets[this.current]!.params.map((t, i) => fromStored(this.specs[i], t.data as Float32Array)));
  }

  async readMomentum(): Promise<OptimizerState> {
    const { sets } = this.ready();
    return sets[this.current]!.momenta.map((t, i) => fromStored(this.specs[i], t.data as Float32Array));
  }

  async dispose(): Promise<void> {
    await this.releaseSessions();
    this.sets = undefined;
    this.arena = undefined;
    this.grads = [];
    this.cfg = undefined;
  }

  private ready(): { cfg: MlpConfig; sets: [StateSet, StateSet | undefined] } {
    if (!this.cfg || !this.sets) throw new Error('ort engine: call init() before step/predict/read');
    return { cfg: this.cfg, sets: this.sets };
  }

  /**
   * One session per batch size (a short last batch gets its own), built on first use; the least recently used is
   * released beyond MAX_STEP_SESSIONS (each holds activation buffers for its batch size).
   */
  private stepSession(batch: number): Promise<StepSession> {
    let s = this.stepSessions.get(batch);
    if (s) {
      // Map order is recency order: move this one to the end.
      this.stepSessions.delete(batch);
      this.stepSessions.set(batch, s);
    } else {
      if (this.stepSessions.size >= MAX_STEP_SESSIONS) {
        const [oldest, old] = this.stepSessions.entries().next().value!;
        this.stepSessions.delete(oldest);
        void old.then((o) => o.session.release()).catch(() => undefined);
      }
      const cfg = this.cfg!;
      const { matmul } = this.opts;
      s = openSession(this.opts, (provider) => {
        const lion = this.opts.lion ?? (provider === 'cuda' ? 'graph' : 'host');
        const mode = lion === 'graph' ? 'step' : 'grads';
        return { bytes: buildTrainGraph(cfg, { batch, mode, matmul }), tag: lion };
      }).then((o) => {
        this.provider = o.provider;
        return { session: o.session, provider: o.provider, lion: o.tag };
      });
      // A failed open is not cached: the next step retries and reports the error again.
      s.catch(() => this.stepSessions.delete(batch));
      this.stepSessions.set(batch, s);
    }
    return s;
  }

  /** Ends onnxruntime's profiling of every open step session (see `profileFilePrefix`); their files are then complete. */
  async endProfiling(): Promise<void> {
    for (const s of this.stepSessions.values()) (await s).session.endProfiling();
  }

  private async releaseSessions(): Promise<void> {
    const all: Promise<{ release(): Promise<void> }>[] = [...this.stepSessions.values()].map((p) => p.then((s) => s.session));
    if (this.predictSession) all.push(this.predictSession);
    this.stepSessions.clear();
    this.predictSession = undefined;
    await Promise.all(all.map((p) => p.then((s) => s.release()).catch(() => undefined)));
  }
}

/**
 * `data` viewed as exactly `rows × cols` values; a longer buffer is cut, a shorter one is a RangeError. A
 * SharedArrayBuffer-backed array is copied: onnxruntime-node rejects those.
 */
function exactRows(data: Float32Array, rows: number, cols: number, what: string): Float32Array {
  if (!(data instanceof Float32Array)) throw new TypeError(`${what} must be a Float32Array`);
  const need = rows * cols;
  if (data.length < need) throw new RangeError(`${what} has ${data.length} values, ${rows} rows × ${cols} need ${need}`);
  const view = data.length === need ? data : data.subarray(0, need);
  return view.buffer instanceof SharedArrayBuffer ? view.slice() : view;
}

/** Loss and gradients of the mean soft-target cross-entropy, in `namedTensors` order (tests, gradient checks). */
export async function lossAndGradients(
  cfg: MlpConfig,
  weights: MlpWeights,
  batch: TrainBatch,
  opts: OrtEngineOptions = {},
): Promise<{ loss: number; grads: Float32Array[] }> {
  assertWeightsMatch(cfg, weights);
  const o = validateOptions(opts);
  const n = batch.size;
  const { session } = await openSession(o, () => ({
    bytes: buildTrainGraph(cfg, { batch: n, mode: 'grads', matmul: o.matmul }),
    tag: undefined,
  }));
  try {
    const feeds: Record<string, ort.Tensor> = {
      [IO.x]: f32(exactRows(batch.x, n, cfg.inputDim, 'batch.x'), [n, cfg.inputDim]),
      [IO.y]: f32(exactRows(batch.y, n, cfg.classes, 'batch.y'), [n, cfg.classes]),
    };
    const specs = paramSpecs(cfg);
    namedTensors(weights).forEach((t, i) => {
      feeds[IO.param(t.name)] = f32(toStored(specs[i], t.data, new Float32Array(t.data.length)), storedShape(specs[i]));
    });
    const out = await session.run(feeds);
    return {
      loss: (out[IO.loss].data as Float32Array)[0],
      grads: specs.map((s) => fromStored(s, out[IO.grad(s.name)].data as Float32Array)),
    };
  } finally {
    await session.release();
  }
}
