// The study's figures, paper-style, drawn with vega-lite and rendered to SVG in Node: log-log validation error against
// compute with the fitted law; the compute-optimal frontier (parameters and examples as compute grows); and the
// per-axis laws in parameters and in examples.

import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { powerLaw, type PowerLawFit } from './fit.js';
import type { ScalingReport } from './analyze.js';
import type { RunRecord } from './sweep.js';

/** A vega-lite spec rendered to SVG in Node (no browser, no canvas); the claims' plots use it too. */
export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const logspace = (lo: number, hi: number, n: number) =>
  Array.from({ length: n }, (_, i) => Math.exp(Math.log(lo) + ((Math.log(hi) - Math.log(lo)) * i) / (n - 1)));

const fmt = (v: number) =>
  v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3) ? v.toExponential(2) : Number(v.toPrecision(3)).toString();

function lawLabel(f: PowerLawFit | undefined, x: string): string {
  if (!f) return 'no fit';
  const iv = Number.isFinite(f.alpha.se) ? ` [${fmt(f.alpha.lo)}, ${fmt(f.alpha.hi)}]` : '';
  return `fit: ${fmt(f.a.value)}·${x}^(−${fmt(f.alpha.value)}${iv}) + ${fmt(f.c.value)}, R² ${f.r2.toFixed(3)}`;
}

/** Sizes ordered by parameters, for a legend that reads small → large. */
function archOrder(rows: readonly RunRecord[]): string[] {
  return [...new Map(rows.map((r) => [r.arch, r.params])).entries()].sort((a, b) => a[1] - b[1]).map(([a]) => a);
}

const LOG = { type: 'log' } as const;
/** SI-prefixed tick labels (10M, 1G) instead of 1,000,000,000. */
const SI = { format: '~s' } as const;

/** Error vs compute: every run, the frontier runs ringed, the fitted law through them. */
export async function renderComputePlot(rows: readonly RunRecord[], rep: ScalingReport, subtitle: string): Promise<string> {
  const onFrontier = new Set(rep.compute.points.map((p) => p.id));
  const runs = rows.map((r) => ({ compute: r.compute, error: r.valError, arch: r.arch, frontier: onFrontier.has(r.id) }));
  const cs = rows.map((r) => r.compute);
  const f = rep.compute.fit;
  const curve = f ? logspace(Math.min(...cs), Math.max(...cs) * 3, 60).map((c) => ({ compute: c, error: powerLaw(f, c) })) : [];
  const x = { field: 'compute', type: 'quantitative', scale: LOG, axis: SI, title: 'compute (FLOPs = forward FLOPs × 3 × examples seen)' } as const;
  const y = { field: 'error', type: 'quantitative', scale: LOG, title: 'validation error (1 − top-1)' } as const;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Validation error vs. compute', subtitle: [subtitle, lawLabel(f, 'C')] },
    width: 520,
    height: 360,
    layer: [
      {
        data: { values: runs },
        mark: { type: 'point', filled: true, size: 60, opacity: 0.85 },
        encoding: { x, y, color: { field: 'arch', type: 'nominal', sort: archOrder(rows), title: 'model' } },
      },
      {
        data: { values: runs.filter((r) => r.frontier) },
        mark: { type: 'point', filled: false, size: 220, color: 'black', strokeWidth: 1.2 },
        encoding: { x, y },
      },
      ...(curve.length
        ? [{ data: { values: curve }, mark: { type: 'line' as const, color: 'black', strokeDash: [6, 3] }, encoding: { x, y } }]
        : []),
    ],
  };
  return toSvg(spec);
}

/** The compute-optimal frontier: N_opt and D_opt from the joint law, and the frontier runs' N and D. */
export async function renderFrontierPlot(rows: readonly RunRecord[], rep: ScalingReport, subtitle: string): Promise<string> {
  const a = rep.allocation;
  const onFrontier = new Set(rep.compute.points.map((p) => p.id));
  const frontierRuns = rows.filter((r) => onFrontier.has(r.id));
  const cs = rows.map((r) => r.compute);
  const lines: { compute: number; count: number; series: string }[] = [];
  if (a && rep.joint) {
    const k = a.k;
    for (const c of logspace(Math.min(...cs) / 3, Math.max(...cs) * 30, 60)) {
      const exp = a.paramsExponent.value;
      const ref = a.rows[0];
      // N_opt(C) = N_opt(C0)·(C/C0)^p, D_opt = C/(k·N_opt): the closed form behind a.rows.
      const n = ref.params * Math.pow(c / ref.compute, exp);
      lines.push({ compute: c, count: n, series: 'parameters N_opt' }, { compute: c, count: c / (k * n), series: 'examples D_opt' });
    }
  }
  const pts = frontierRuns.flatMap((r) => [
    { compute: r.compute, count: r.params, series: 'parameters N_opt', arch: r.arch },
    { compute: r.compute, count: r.examplesSeen, series: 'examples D_opt', arch: r.arch },
  ]);
  const x = { field: 'compute', type: 'quantitative', scale: LOG, axis: SI, title: 'compute (FLOPs)' } as const;
  const y = { field: 'count', type: 'quantitative', scale: LOG, axis: SI, title: 'parameters / examples seen' } as const;
  const color = { field: 'series', type: 'nominal', title: null, scale: { range: ['#1f77b4', '#d62728'] } } as const;
  const label = a
    ? `N_opt ∝ C^${fmt(a.paramsExponent.value)}, D_opt ∝ C^${fmt(a.examplesExponent.value)} (joint law, α ${fmt(rep.joint!.alpha.value)}, β ${fmt(rep.joint!.beta.value)})`
    : `joint law not fitted: ${rep.jointNote ?? ''}`;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Compute-optimal allocation', subtitle: [subtitle, label, 'points: the Pareto-frontier runs'] },
    width: 520,
    height: 360,
    layer: [
      ...(lines.length ? [{ data: { values: lines }, mark: { type: 'line' as const }, encoding: { x, y, color } }] : []),
      {
        data: { values: pts },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: { x, y, color, tooltip: [{ field: 'arch', type: 'nominal' as const }] },
      },
    ],
  };
  return toSvg(spec);
}

/** Error vs parameters and vs examples: every run faint, the best-per-value envelope and its fitted law. */
export async function renderAxesPlot(rows: readonly RunRecord[], rep: ScalingReport, subtitle: string): Promise<string> {
  const panel = (key: 'params' | 'examples', title: string, xTitle: string) => {
    const law = rep[key];
    const xs = law.points.map((p) => p.x);
    const f = law.fit;
    const curve = f && xs.length ? logspace(Math.min(...xs), Math.max(...xs) * 2, 50).map((v) => ({ x: v, error: powerLaw(f, v) })) : [];
    const all = rows.map((r) => ({ x: key === 'params' ? r.params : r.examplesSeen, error: r.valError, arch: r.arch }));
    const x = { field: 'x', type: 'quantitative', scale: LOG, axis: SI, title: xTitle } as const;
    const y = { field: 'error', type: 'quantitative', scale: LOG, title: 'validation error' } as const;
    return {
      title: { text: title, subtitle: lawLabel(f, key === 'params' ? 'N' : 'D') },
      width: 360,
      height: 260,
      layer: [
        { data: { values: all }, mark: { type: 'point' as const, opacity: 0.3 }, encoding: { x, y } },
        { data: { values: law.points }, mark: { type: 'point' as const, filled: true, size: 70, color: 'black' }, encoding: { x, y } },
        ...(curve.length
          ? [{ data: { values: curve }, mark: { type: 'line' as const, color: 'black', strokeDash: [6, 3] }, encoding: { x, y } }]
          : []),
      ],
    };
  };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Per-axis laws (best run per value)', subtitle },
    hconcat: [panel('params', 'in parameters', 'parameters N'), panel('examples', 'in examples seen', 'examples seen D')],
  };
  return toSvg(spec);
}
