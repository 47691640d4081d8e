// Reads onnxruntime's own profile (SessionOptions.enableProfiling: a Chrome-trace JSON of every run and node) into
// where a run's time goes: matrix products against everything else, by operator type, per run.

import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** One event of onnxruntime's profile (the fields used here). */
export interface ProfileEvent {
  cat?: string;
  name?: string;
  /** Start and duration, µs. */
  ts?: number;
  dur?: number;
  args?: { op_name?: string };
}

export interface ProfileSummary {
  /** Runs summarized (the first `skip` runs of the file are left out). */
  runs: number;
  /** Mean duration of a run as onnxruntime times it (`model_run`), ms. */
  runMs: number;
  /** Mean time of the matrix-product kernels (Gemm, MatMul, FusedMatMul) per run, ms. */
  gemmMs: number;
  /** Mean time per run of every operator type's kernels, slowest first, ms. */
  byOp: { op: string; ms: number }[];
}

const GEMM_OPS = new Set(['Gemm', 'MatMul', 'FusedMatMul']);

/** Per-run means over the runs after the first `skip` (warm-up: first-run allocation and packing). */
export function summarizeProfile(events: readonly ProfileEvent[], skip = 1): ProfileSummary {
  const runs = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run' && e.ts !== undefined && e.dur !== undefined)
    .sort((a, b) => a.ts! - b.ts!)
    .slice(skip);
  if (runs.length === 0) throw new RangeError(`the profile has no model_run after the first ${skip}`);
  const inRun = (e: ProfileEvent) => runs.some((r) => e.ts! >= r.ts! && e.ts! <= r.ts! + r.dur!);
  const byOp = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name || e.ts === undefined || !inRun(e)) continue;
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + (e.dur ?? 0));
  }
  const perRunMs = (us: number) => us / runs.length / 1000;
  const ops = [...byOp].map(([op, us]) => ({ op, ms: perRunMs(us) })).sort((a, b) => b.ms - a.ms);
  return {
    runs: runs.length,
    runMs: perRunMs(runs.reduce((a, r) => a + r.dur!, 0)),
    gemmMs: ops.filter((o) => GEMM_OPS.has(o.op)).reduce((a, o) => a + o.ms, 0),
    byOp: ops,
  };
}

/** The profile files onnxruntime wrote for `prefix` (it appends a date and `.json`), oldest first. */
export async function profileFiles(prefix: string): Promise<string[]> {
  const dir = dirname(prefix);
  const base = `${basename(prefix)}_`;
  return (await readdir(dir)).filter((f) => f.startsWith(base) && f.endsWith('.json')).sort().map((f) => join(dir, f));
}

export async function readProfile(file: string): Promise<ProfileEvent[]> {
  return JSON.parse(await readFile(file, 'utf8')) as ProfileEvent[];
}
