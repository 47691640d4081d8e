// The timings `npm run bench:train` is made of, each one measurement: a training engine's steps, onnxruntime's
// MatMul alone on the products of one step (the roofline), and the PyTorch reference (scripts/bench-train-torch.py
// under Debian's python, which also times torch.mm on the same products). Orchestration is in train.ts.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { DataType, encodeModel } from '../export/onnx-proto.js';
import { IR_VERSION, PRODUCER, node, valueInfo } from '../export/export.js';
import { initWeights, type MlpConfig } from '../model/mlp.js';
import type { Engine, TrainBatch } from '../train/engines/engine.js';
import { createEngine, type EngineName } from '../train/engines/index.js';
import { OrtEngine, cpuSessionOptions } from '../train/engines/ort.js';
import { profileFiles, readProfile, summarizeProfile, type ProfileSummary } from './ort-profile.js';
import { median, type Gemm } from './roofline.js';

const run = promisify(execFile);
export const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('../../scripts/bench-train-torch.py', import.meta.url));

/** CPU time of this process (every thread) since `start`, ms. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

export const HYPER = { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 } as const;

/** The bench's batch, identical on both sides (the PyTorch script builds the same): x[i] = sin(i), smoothed one-hot. */
export function benchBatch(cfg: MlpConfig, size: number): TrainBatch {
  const x = Float32Array.from({ length: size * cfg.inputDim }, (_, i) => Math.sin(i));
  const y = new Float32Array(size * cfg.classes);
  for (let r = 0; r < size; r++)
    for (let k = 0; k < cfg.classes; k++) y[r * cfg.classes + k] = (k === r % cfg.classes ? 0.7 : 0) + 0.3 / cfg.classes;
  return { x, y, size };
}

export interface StepTiming {
  /** Median wall time of a step, ms. */
  stepMs: number;
  /** Median CPU time of this process per step (all its threads), ms: what a busy machine's preemption leaves out. */
  cpuMs: number;
  /** Medians of the onnxruntime run and of the host-side LION update within a step (ort engine only). */
  runMs?: number;
  updateMs?: number;
}

export interface TimingPlan {
  batch: number;
  warmup: number;
  steps: number;
}

/** Per measured step (after `plan.warmup` unmeasured ones): wall ms, CPU ms, and the ort engine's run/update split. */
interface StepSamples {
  step: number[];
  cpu: number[];
  runMs: number[];
  updateMs: number[];
}

async function sampleSteps(engine: Engine, cfg: MlpConfig, plan: TimingPlan): Promise<StepSamples> {
  const b = benchBatch(cfg, plan.batch);
  const s: StepSamples = { step: [], cpu: [], runMs: [], updateMs: [] };
  for (let i = 0; i < plan.warmup + plan.steps; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    await engine.step(b, HYPER);
    if (i < plan.warmup) continue;
    s.step.push(performance.now() - t);
    s.cpu.push(cpuMsSince(c));
    if (engine instanceof OrtEngine) {
      s.runMs.push(engine.lastStep.runMs);
      s.updateMs.push(engine.lastStep.updateMs);
    }
  }
  return s;
}

/** Steps of the fused onnxruntime engine at `threads` intra-op threads, on CPU. */
export async function timeOrtEngine(cfg: MlpConfig, threads: number, plan: TimingPlan): Promise<StepTiming> {
  const engine = new OrtEngine({ executionProviders: ['cpu'], intraOpNumThreads: threads });
  try {
    await engine.init(cfg, initWeights(cfg, 0));
    const s = await sampleSteps(engine, cfg, plan);
    return { stepMs: median(s.step), cpuMs: median(s.cpu), runMs: median(s.runMs), updateMs: median(s.updateMs) };
  } finally {
    await engine.dispose();
  }
}

/** The ort engine's steps under onnxruntime's profiler: where a step's time goes (kernels by operator, LION). */
export interface EngineProfile {
  threads: number;
  /** onnxruntime's own account of its runs. */
  ort: ProfileSummary;
  /** Means over the profiled steps, ms: the whole step, the run as the engine sees it, the host-side LION. */
  stepMs: number;
  runMs: number;
  updateMs: number;
  file: string;
}

export async function profileOrtEngine(cfg: MlpConfig, threads: number, plan: TimingPlan, prefix: string): Promise<EngineProfile> {
  const engine = new OrtEngine({ executionProviders: ['cpu'], intraOpNumThreads: threads, profileFilePrefix: prefix });
  const before = new Set(await profileFiles(prefix));
  try {
    await engine.init(cfg, initWeights(cfg, 0));
    const s = await sampleSteps(engine, cfg, plan);
    await engine.endProfiling();
    const file = (await profileFiles(prefix)).filter((f) => !before.has(f)).pop();
    if (!file) throw new Error(`onnxruntime wrote no profile for ${prefix}`);
    const ort = summarizeProfile(await readProfile(file), plan.warmup);
    // Means, not medians: the parts of a step then add up to the whole.
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    return { threads, ort, stepMs: mean(s.step), runMs: mean(s.runMs), updateMs: mean(s.updateMs), file };
  } finally {
    await engine.dispose();
  }
}

/** Steps of a registry engine with the settings `npm run train` gives it. */
export async function timeEngine(name: EngineName, cfg: MlpConfig, plan: TimingPlan): Promise<StepTiming & { label: string }> {
  const { engine } = await createEngine(name);
  try {
    await engine.init(cfg, initWeights(cfg, 0));
    const s = await sampleSteps(engine, cfg, plan);
    return { stepMs: median(s.step), cpuMs: median(s.cpu), label: engine.name };
  } finally {
    await engine.dispose();
  }
}

/**
 * onnxruntime MatMul alone on `gemms`: one graph holding one MatMul per product (operands are graph inputs, outputs
 * preallocated), run with the engine's own session options; the median time of one run of all of them, ms.
 */
export async function timeOrtGemms(gemms: readonly Gemm[], threads: number, reps: number): Promise<{ ms: number; cpuMs: number }> {
  // Every operand its own graph input: products sharing inputs would be merged into one by onnxruntime's common
  // subexpression elimination. Inputs of one shape share their data (onnxruntime cannot see that).
  const inputs = new Map<string, { dims: number[]; tensor: ort.Tensor }>();
  const dataByShape = new Map<string, Float32Array>();
  const operand = (rows: number, cols: number) => {
    const key = `${rows}x${cols}`;
    let data = dataByShape.get(key);
    if (!data) dataByShape.set(key, (data = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i) * 0.1)));
    const name = `in_${inputs.size}_${key}`;
    inputs.set(name, { dims: [rows, cols], tensor: new ort.Tensor('float32', data, [rows, cols]) });
    return name;
  };
  // Each product's output leaves the graph as its first row only: onnxruntime-node copies every output into the
  // caller's buffer after the run, a cost of the binding, not of the product.
  const nodes = gemms.flatMap((g, i) => [
    node('MatMul', `mm_${i}`, [operand(g.m, g.k), operand(g.k, g.n)], [`prod_${i}`]),
    node('Slice', `row_${i}`, [`prod_${i}`, 'zero', 'one', 'zero'], [`out_${i}`]),
  ]);
  const int64 = (name: string, v: number) => ({ name, dims: [1], data_type: DataType.INT64, int64_data: [v] });
  const bytes = encodeModel({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: 17 }],
    producer_name: PRODUCER,
    graph: {
      name: 'step-gemms',
      node: nodes,
      initializer: [int64('zero', 0), int64('one', 1)],
      input: [...inputs].map(([name, v]) => valueInfo(name, v.dims)),
      output: gemms.map((g, i) => valueInfo(`out_${i}`, [1, g.n])),
    },
  });
  const session = await ort.InferenceSession.create(bytes, cpuSessionOptions({ intraOpNumThreads: threads }));
  try {
    const feeds = Object.fromEntries([...inputs].map(([name, v]) => [name, v.tensor]));
    const fetches = Object.fromEntries(
      gemms.map((g, i) => [`out_${i}`, new ort.Tensor('float32', new Float32Array(g.n), [1, g.n])]),
    );
    const times: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < reps + 2; i++) {
      const c = process.cpuUsage();
      const t = performance.now();
      await session.run(feeds, fetches);
      if (i < 2) continue;
      times.push(performance.now() - t);
      cpu.push(cpuMsSince(c));
    }
    return { ms: median(times), cpuMs: median(cpu) };
  } finally {
    await session.release();
  }
}

/** One configuration of the PyTorch step: thread count, LION variant, median step time. */
export interface TorchRun {
  threads: number;
  lion: string;
  stepMs: number;
  /** Median CPU time of the python process per step (all threads), ms. */
  cpuMs: number;
}

export interface TorchResult {
  version: string;
  runs: TorchRun[];
  /** torch.mm alone on the step's products, per thread count: ms for all of them. */
  gemm: { threads: number; ms: number; cpuMs: number }[];
}

/** The PyTorch reference for `cfg` (every knob of the script), or the reason it could not run. */
export async function runTorch(
  cfg: MlpConfig,
  plan: TimingPlan,
  gemms: readonly Gemm[],
  threads: readonly number[],
): Promise<TorchResult | { error: string }> {
  const args = [TORCH_SCRIPT, '--depth', cfg.depth, '--width', cfg.width, '--expansion', cfg.expansion, '--input-dim',
    cfg.inputDim, '--classes', cfg.classes, '--batch', plan.batch, '--steps', plan.steps, '--warmup', plan.warmup,
    '--threads', threads.join(','), '--gemms', gemms.map((g) => `${g.m},${g.k},${g.n}`).join(';')].map(String);
  try {
    // PASSIVE: idle OpenMP threads sleep instead of spinning, as the ort engine's pool does (allow_spinning 0).
    const { stdout } = await run(PYTHON, args, { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' }, maxBuffer: 1 << 24 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as {
      torch: string;
      runs: { threads: number; lion: string; step_ms: number[]; cpu_ms: number[] }[];
      gemm: { threads: number; ms: number; cpu_ms: number }[];
    };
    return {
      version: out.torch,
      runs: out.runs.map((r) => ({ threads: r.threads, lion: r.lion, stepMs: median(r.step_ms), cpuMs: median(r.cpu_ms) })),
      gemm: out.gemm.map((g) => ({ threads: g.threads, ms: g.ms, cpuMs: g.cpu_ms })),
    };
  } catch (err) {
    return { error: `${(err as Error).message.split('\n')[0]} (needs ${PYTHON} with python3-torch)` };
  }
}
