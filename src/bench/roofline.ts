// The arithmetic of the training bench: which matrix products one training step is made of (from the engine's own
// parameter list, so a new architecture brings its shapes along), their FLOPs, and the figures the bench reports
// from measured times (images/s, GFLOP/s, roofline fraction, ratio to PyTorch). Pure functions, no timing here.

import type { ParamSpec } from '../train/engines/ort-graph.js';

/** Which of a Linear's three products. */
export type GemmRole = 'forward' | 'input-grad' | 'weight-grad';

/** One product C[m,n] = A[m,k]·B[k,n] of a training step. */
export interface Gemm {
  /** The Linear's weight name, e.g. `blocks.0.expand.weight`. */
  layer: string;
  role: GemmRole;
  m: number;
  k: number;
  n: number;
}

/**
 * The products of one training step at `batch` rows, for every Linear (every 2-d parameter, weights [in, out]):
 * forward  [B,in]·[in,out];  weight gradient  [in,B]·[B,out];  input gradient  [B,out]·[out,in], except for the
 * first Linear, whose input is the data (nothing upstream needs its gradient).
 */
export function stepGemms(specs: readonly ParamSpec[], batch: number): Gemm[] {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch ${batch} must be a positive integer`);
  const out: Gemm[] = [];
  const linears = specs.filter((s) => s.shape.length === 2);
  if (linears.length === 0) throw new RangeError('the model has no Linear (2-d) parameter');
  linears.forEach((s, i) => {
    const [inDim, outDim] = s.shape;
    out.push({ layer: s.name, role: 'forward', m: batch, k: inDim, n: outDim });
    out.push({ layer: s.name, role: 'weight-grad', m: inDim, k: batch, n: outDim });
    if (i > 0) out.push({ layer: s.name, role: 'input-grad', m: batch, k: outDim, n: inDim });
  });
  return out;
}

/** Floating-point operations of one product (a multiply and an add per term). */
export const gemmFlops = (g: Gemm): number => 2 * g.m * g.k * g.n;

/** FLOPs of all the products of a step. */
export const totalFlops = (gemms: readonly Gemm[]): number => gemms.reduce((a, g) => a + gemmFlops(g), 0);

/** GFLOP/s of `flops` done in `ms` milliseconds. */
export function gflopsPerSecond(flops: number, ms: number): number {
  if (!(ms > 0)) throw new RangeError(`time ${ms} ms must be positive`);
  return flops / ms / 1e6;
}

/** Images per second of steps of `batch` images taking `stepMs` each. */
export function imagesPerSecond(batch: number, stepMs: number): number {
  if (!(stepMs > 0)) throw new RangeError(`step time ${stepMs} ms must be positive`);
  return (1000 * batch) / stepMs;
}

/**
 * (time of the step's products alone) ÷ (time of the whole step): how much of the step is matrix multiplication at
 * the speed onnxruntime does it alone. Capped at 1: a step can beat the products timed apart (caches warm, noise),
 * but the share of the step they stand for cannot exceed all of it.
 */
export function rooflineFraction(gemmMs: number, stepMs: number): number {
  if (!(gemmMs > 0) || !(stepMs > 0)) throw new RangeError(`times must be positive (gemms ${gemmMs} ms, step ${stepMs} ms)`);
  return Math.min(1, gemmMs / stepMs);
}

/** The middle value (the upper middle for an even count): robust to a step hit by another process's burst. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1];
}

// ---------------------------------------------------------------------------------------------------------------
// From rounds of measurements to the figures of one architecture. Every configuration keeps its best round (the
// lowest median step): a burst of load from another process slows a round, it never speeds one up.

/** One round of measurements of one architecture (times in ms; a step time is the median over its steps). */
export interface ArchRound {
  /** 1-minute load averages sampled before and after the round. */
  load: number[];
  /** cpuMs: CPU time of the process per step, all threads (median), beside the wall time. */
  ort: { threads: number; stepMs: number; cpuMs: number; runMs?: number; updateMs?: number }[];
  /** onnxruntime MatMul alone on the step's products, per thread count. */
  ortGemm: { threads: number; ms: number; cpuMs: number }[];
  torch?: {
    runs: { threads: number; lion: string; stepMs: number; cpuMs: number }[];
    gemm: { threads: number; ms: number; cpuMs: number }[];
  };
  /** Other engines of the registry (tfjs), at their `npm run train` settings. */
  others: { engine: string; stepMs: number; cpuMs: number }[];
}

export interface Throughput {
  imagesPerSecond: number;
  stepMs: number;
}

export interface ArchSummary {
  batch: number;
  /** FLOPs of the step's matrix products, in GFLOP. */
  gemmGflop: number;
  load: { min: number; max: number };
  ort: (Throughput & { threads: number; runMs?: number; updateMs?: number })[];
  ortBest: Throughput & { threads: number; runMs?: number; updateMs?: number };
  torch: (Throughput & { threads: number; lion: string })[];
  torchBest?: Throughput & { threads: number; lion: string };
  /** ortBest ÷ torchBest in images/s. */
  ratio?: number;
  /** At the thread count of ortBest: products alone vs the whole step. */
  roofline: { threads: number; gemmMs: number; stepMs: number; fraction: number; gemmGflops: number; stepGflops: number };
  /** torch.mm alone on the same products, its best thread count. */
  torchGemm?: { threads: number; ms: number; gflops: number };
  others: (Throughput & { engine: string; ratio?: number })[];
  /**
   * The same comparisons in CPU time at the fewest threads measured (one core's work; the lowest CPU time of any
   * round): what the wall-clock figures would be on an idle machine, where they are not distorted by waiting for a
   * core. ratio = PyTorch's CPU per step ÷ ort's; fraction = MatMul alone ÷ ort step; GFLOP/s per core.
   */
  cpu: {
    threads: number;
    ortMs: number;
    torchMs?: number;
    torchLion?: string;
    ratio?: number;
    gemmMs: number;
    fraction: number;
    torchGemmMs?: number;
    ortGemmGflops: number;
    torchGemmGflops?: number;
  };
}

/** Per key, the entry with the lowest time over all rounds. */
function bestBy<T>(entries: T[], key: (e: T) => string, time: (e: T) => number): T[] {
  const best = new Map<string, T>();
  for (const e of entries) {
    const k = key(e);
    const b = best.get(k);
    if (!b || time(e) < time(b)) best.set(k, e);
  }
  return [...best.values()];
}

const fastest = <T extends { stepMs: number }>(xs: T[]): T => xs.reduce((a, b) => (b.stepMs < a.stepMs ? b : a));

export function summarizeArch(rounds: readonly ArchRound[], gemms: readonly Gemm[], batch: number): ArchSummary {
  if (rounds.length === 0) throw new RangeError('no rounds to summarize');
  const flops = totalFlops(gemms);
  const withIps = <T extends { stepMs: number }>(e: T) => ({ ...e, imagesPerSecond: imagesPerSecond(batch, e.stepMs) });
  const ort = bestBy(rounds.flatMap((r) => r.ort), (e) => String(e.threads), (e) => e.stepMs).map(withIps);
  if (ort.length === 0) throw new RangeError('no onnxruntime engine timing');
  const ortBest = fastest(ort);
  const gemmAt = rounds.flatMap((r) => r.ortGemm).filter((g) => g.threads === ortBest.threads);
  if (gemmAt.length === 0) throw new RangeError(`no MatMul timing at ${ortBest.threads} threads`);
  const gemmMs = Math.min(...gemmAt.map((g) => g.ms));
  const torch = bestBy(rounds.flatMap((r) => r.torch?.runs ?? []), (e) => `${e.threads}/${e.lion}`, (e) => e.stepMs).map(withIps);
  const torchBest = torch.length ? fastest(torch) : undefined;
  const torchGemms = rounds.flatMap((r) => r.torch?.gemm ?? []);
  const torchGemm = torchGemms.length ? torchGemms.reduce((a, b) => (b.ms < a.ms ? b : a)) : undefined;
  const others = bestBy(rounds.flatMap((r) => r.others), (e) => e.engine, (e) => e.stepMs).map(withIps);
  const loads = rounds.flatMap((r) => r.load);
  const fewest = Math.min(...ort.map((e) => e.threads));
  const lowest = <T extends { threads: number; cpuMs: number }>(xs: T[]) => {
    const at = xs.filter((e) => e.threads === fewest);
    return at.length ? at.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a)) : undefined;
  };
  const ortCpu = lowest(rounds.flatMap((r) => r.ort))!;
  const gemmCpu = lowest(rounds.flatMap((r) => r.ortGemm));
  if (!gemmCpu) throw new RangeError(`no MatMul timing at ${fewest} threads`);
  const torchCpu = lowest(rounds.flatMap((r) => r.torch?.runs ?? []));
  const torchGemmCpu = lowest(torchGemms);
  return {
    batch,
    gemmGflop: flops / 1e9,
    load: { min: Math.min(...loads), max: Math.max(...loads) },
    ort,
    ortBest,
    torch,
    torchBest,
    ratio: torchBest && ortBest.imagesPerSecond / torchBest.imagesPerSecond,
    roofline: {
      threads: ortBest.threads,
      gemmMs,
      stepMs: ortBest.stepMs,
      fraction: rooflineFraction(gemmMs, ortBest.stepMs),
      gemmGflops: gflopsPerSecond(flops, gemmMs),
      stepGflops: gflopsPerSecond(flops, ortBest.stepMs),
    },
    torchGemm: torchGemm && { ...torchGemm, gflops: gflopsPerSecond(flops, torchGemm.ms) },
    others: others.map((o) => ({ ...o, ratio: torchBest && o.imagesPerSecond / torchBest.imagesPerSecond })),
    cpu: {
      threads: fewest,
      ortMs: ortCpu.cpuMs,
      torchMs: torchCpu?.cpuMs,
      torchLion: torchCpu?.lion,
      ratio: torchCpu && torchCpu.cpuMs / ortCpu.cpuMs,
      gemmMs: gemmCpu.cpuMs,
      fraction: rooflineFraction(gemmCpu.cpuMs, ortCpu.cpuMs),
      torchGemmMs: torchGemmCpu?.cpuMs,
      ortGemmGflops: gflopsPerSecond(flops, gemmCpu.cpuMs),
      torchGemmGflops: torchGemmCpu && gflopsPerSecond(flops, torchGemmCpu.cpuMs),
    },
  };
}
