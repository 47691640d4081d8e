// From sweep rows to the study's numbers: the law in compute (fitted on the Pareto frontier of runs, as the paper
// plots it), the per-axis laws in parameters and in examples (each point the best error the sweep reached with
// that many parameters / examples), the joint law and its compute-optimal allocation, and a markdown summary.

import {
  computeOptimal,
  fitJointLaw,
  fitPowerLaw,
  linearFit,
  paretoFrontier,
  type Estimate,
  type JointLawFit,
  type PowerLawFit,
} from './fit.js';
import type { RunRecord } from './sweep.js';

export interface AxisLaw {
  /** The points fitted. */
  points: { x: number; error: number; id: string }[];
  /** Undefined when there are too few points; `note` says why. */
  fit?: PowerLawFit;
  note?: string;
}

export interface AllocationRow {
  compute: number;
  params: number;
  examples: number;
  error: number;
}

export interface ScalingReport {
  runs: number;
  compute: AxisLaw;
  params: AxisLaw;
  examples: AxisLaw;
  joint?: JointLawFit;
  jointNote?: string;
  allocation?: {
    paramsExponent: Estimate;
    examplesExponent: Estimate;
    /** C = k·N·D. */
    k: number;
    rows: AllocationRow[];
  };
  /** Slopes of log N and log D against log C over the Pareto-frontier runs (the allocation read off the runs). */
  empirical?: { paramsSlope: number; examplesSlope: number; points: number };
}

function axisLaw(points: AxisLaw['points']): AxisLaw {
  const distinct = new Set(points.map((p) => p.x)).size;
  if (distinct < 3) return { points, note: `${distinct} distinct values: at least 3 are needed to fit a·x^(−α) + c` };
  try {
    return { points, fit: fitPowerLaw(points.map((p) => p.x), points.map((p) => p.error)) };
  } catch (err) {
    return { points, note: (err as Error).message };
  }
}

/** Best (lowest-error) run per distinct value of `key`. */
function envelope(rows: readonly RunRecord[], key: (r: RunRecord) => number): AxisLaw['points'] {
  const best = new Map<number, RunRecord>();
  for (const r of rows) {
    const k = key(r);
    const b = best.get(k);
    if (!b || r.valError < b.valError) best.set(k, r);
  }
  return [...best.entries()].sort((a, b) => a[0] - b[0]).map(([x, r]) => ({ x, error: r.valError, id: r.id }));
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function analyze(rows: readonly RunRecord[]): ScalingReport {
  if (rows.length === 0) throw new RangeError('no runs to analyse');
  const frontier = paretoFrontier(rows.map((r) => r.compute), rows.map((r) => r.valError)).map((i) => rows[i]);
  const report: ScalingReport = {
    runs: rows.length,
    compute: axisLaw(frontier.map((r) => ({ x: r.compute, error: r.valError, id: r.id }))),
    params: axisLaw(envelope(rows, (r) => r.params)),
    examples: axisLaw(envelope(rows, (r) => r.examplesSeen)),
  };
  const N = rows.map((r) => r.params);
  const D = rows.map((r) => r.examplesSeen);
  const E = rows.map((r) => r.valError);
  if (new Set(N).size >= 2 && new Set(D).size >= 2 && rows.length >= 6) {
    try {
      report.joint = fitJointLaw(N, D, E);
      // Compute per parameter per example: 3 × forward FLOPs per parameter (≈ 6 for an MLP).
      const k = 3 * median(rows.map((r) => r.flopsPerImage / r.params));
      const opt = computeOptimal(report.joint, k);
      const cs = rows.map((r) => r.compute);
      const lo = Math.floor(Math.log10(Math.min(...cs)));
      const hi = Math.ceil(Math.log10(Math.max(...cs)));
      const allocRows: AllocationRow[] = [];
      for (let e = lo; e <= hi + 2; e++) allocRows.push({ compute: 10 ** e, ...opt.at(10 ** e) });
      report.allocation = { paramsExponent: opt.paramsExponent, examplesExponent: opt.examplesExponent, k, rows: allocRows };
    } catch (err) {
      report.jointNote = (err as Error).message;
    }
  } else report.jointNote = 'the joint law needs ≥ 2 sizes, ≥ 2 budgets and ≥ 6 runs';
  if (frontier.length >= 3) {
    const lc = frontier.map((r) => Math.log(r.compute));
    report.empirical = {
      paramsSlope: linearFit(lc, frontier.map((r) => Math.log(r.params))).slope,
      examplesSlope: linearFit(lc, frontier.map((r) => Math.log(r.examplesSeen))).slope,
      points: frontier.length,
    };
  }
  return report;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown.

const sig = (v: number, d = 3) =>
  !Number.isFinite(v) ? 'n/a' : v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3) ? v.toExponential(d - 1) : Number(v.toPrecision(d)).toString();
const ci = (e: Estimate, d = 3) => (Number.isFinite(e.se) ? `${sig(e.value, d)} [${sig(e.lo, d)}, ${sig(e.hi, d)}]` : `${sig(e.value, d)} (no interval)`);
const sci = (v: number) => v.toExponential(2).replace('e+', 'e');

function lawRow(name: string, law: AxisLaw): string {
  if (!law.fit) return `| ${name} | ${law.points.length} | — | — | — | — | ${law.note ?? ''} |`;
  const f = law.fit;
  const note = f.floorAtZero ? 'c at its bound 0 (the free fit went below zero)' : '';
  return `| ${name} | ${f.n} | ${ci(f.alpha)} | ${ci(f.a)} | ${ci(f.c)} | ${f.r2.toFixed(3)} | ${note} |`;
}

/** The study's numbers as markdown (docs/scaling/report.md, docs/results.md, the CLI's summary). */
export function reportMarkdown(rep: ScalingReport): string {
  const out: string[] = [];
  out.push(`Fits of validation error = a·x^(−α) + c, 95% intervals in brackets (${rep.runs} runs).`, '');
  out.push('| law in | points | α | a | c | R² | note |', '| --- | ---: | --- | --- | --- | ---: | --- |');
  out.push(lawRow('compute C (Pareto-frontier runs)', rep.compute));
  out.push(lawRow('parameters N (best run per size)', rep.params));
  out.push(lawRow('examples seen D (best run per budget)', rep.examples));
  out.push('');
  if (rep.joint) {
    const j = rep.joint;
    out.push(
      `Joint law E(N, D) = c + A·N^(−α) + B·D^(−β): α = ${ci(j.alpha)}, β = ${ci(j.beta)}, c = ${ci(j.c)}, ` +
        `R² = ${j.r2.toFixed(3)} (${j.n} runs)${j.floorAtZero ? '; c fixed at its bound 0' : ''}.`,
      '',
    );
  } else out.push(`Joint law: not fitted (${rep.jointNote}).`, '');
  if (rep.allocation) {
    const a = rep.allocation;
    out.push(
      `Compute-optimal allocation (C = ${sig(a.k)}·N·D): N_opt ∝ C^${ci(a.paramsExponent)}, ` +
        `D_opt ∝ C^${ci(a.examplesExponent)}. ` +
        (a.examplesExponent.value > a.paramsExponent.value
          ? 'More of each extra unit of compute goes to examples than to parameters, as the paper finds for MLPs.'
          : 'More of each extra unit of compute goes to parameters than to examples, unlike the paper\'s finding for MLPs.'),
      '',
      '| compute (FLOPs) | N_opt (params) | D_opt (examples) | predicted error |',
      '| ---: | ---: | ---: | ---: |',
      ...a.rows.map((r) => `| ${sci(r.compute)} | ${sci(r.params)} | ${sci(r.examples)} | ${(100 * r.error).toFixed(2)}% |`),
      '',
    );
  }
  if (rep.empirical)
    out.push(
      `Read off the ${rep.empirical.points} Pareto-frontier runs directly: N ∝ C^${sig(rep.empirical.paramsSlope)}, ` +
        `D ∝ C^${sig(rep.empirical.examplesSlope)} (least-squares slopes in log-log).`,
      '',
    );
  return out.join('\n');
}

/** Every run with the validation error the laws are fitted on and, beside it, the test error (read once per run). */
export function runsTable(rows: readonly RunRecord[]): string {
  const pct = (e: number) => `${(100 * e).toFixed(2)}%`;
  return [
    '| run | params | examples seen | compute (FLOPs) | validation error | test error |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...[...rows]
      .sort((a, b) => a.compute - b.compute)
      .map((r) => `| ${r.arch} × ${r.examples} | ${sci(r.params)} | ${sci(r.examplesSeen)} | ${sci(r.compute)} | ${pct(r.valError)} | ${pct(r.testError)} |`),
    '',
  ].join('\n');
}
