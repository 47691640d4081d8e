// How the serving bench prints: aligned text tables, the per-case rows (served, bound, efficiency, generator CPU,
// batching gain) and the targets as ratios measured in the same run.

import type { CaseResult } from './cases.js';

export const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : '–');
export const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
export const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '–');

/** A text table: first column left-aligned, the others right-aligned, a rule under the header. */
export function table(title: string, header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const width = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [`\n${title}`, line(cells[0]), '  ' + width.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export interface Target {
  name: string;
  value: number;
  /** The value must be at least this. */
  min: number;
}

/** The targets of the three standard cases: efficiency ≥ 0.8 in each, batching gain ≥ 3 where batching matters. */
export function targetsOf(results: readonly CaseResult[], gainTargetCases: readonly string[]): Target[] {
  const t: Target[] = results.map((r) => ({ name: `efficiency ${r.name}`, value: r.efficiency, min: 0.8 }));
  for (const r of results) if (gainTargetCases.includes(r.name)) t.push({ name: `batching gain ${r.name}`, value: r.gain, min: 3 });
  return t;
}

const failures = (f: Record<string, number>) => Object.entries(f).map(([k, v]) => `${k}:${v}`).join(' ') || '0';

export function casesTable(results: readonly CaseResult[], cores: number): string {
  return table(
    `served (hey) vs strict bound = (${cores} cores − hey's cores) ÷ (t_decode + t_infer), one thread each, t_infer at the best batch`,
    ['case', 'served img/s', 'hey cores', 't_decode ms', 't_infer ms @batch', 'bound img/s', 'efficiency', 'cpu efficiency', 'batch=1 img/s', 'gain', 'p50 ms', 'p99 ms', 'failed'],
    results.map((r) => [
      r.name,
      f0(r.batched.imagesPerSecond),
      f2(r.batched.generatorCores),
      f2(r.decode.cpuMs),
      `${f2(r.infer.cost.cpuMs)} @${r.infer.batch}`,
      f0(r.bound),
      f2(r.efficiency),
      f2(r.cpuEfficiency),
      f0(r.single.imagesPerSecond),
      f2(r.gain),
      f1(r.batched.hey.p50Ms),
      f1(r.batched.hey.p99Ms),
      failures(r.batched.hey.failed),
    ]),
  );
}

/** Where the server's time went, per image, in each served window (from its own metrics). */
export function serverTable(results: readonly CaseResult[]): string {
  const rows: (string | number)[][] = [];
  for (const r of results)
    for (const [label, w] of [['default', r.batched], ['batch=1', r.single]] as const)
      rows.push([
        `${r.name} ${label}`,
        f0(w.imagesPerSecond),
        f1(w.meanBatch),
        f2((w.serverCores * 1000) / w.imagesPerSecond),
        f2(w.serverCores),
        f2(w.stageMs.preprocess),
        f2(w.stageMs.inferencePerImage),
        f1(w.stageMs.queueWait),
        f1(w.stageMs.request),
        JSON.stringify(w.threads ?? null),
      ]);
  return table(
    'inside the server (its metrics over the measured window)',
    ['window', 'img/s', 'mean batch', 'server cpu ms/img', 'server cores', 'preprocess ms', 'inference ms/img', 'queue wait ms', 'request ms', 'threads'],
    rows,
  );
}

export function targetsTable(targets: readonly Target[]): string {
  return table(
    'targets (ratios measured in this run)',
    ['ratio', 'value', 'target', 'met'],
    targets.map((t) => [t.name, f2(t.value), `≥ ${t.min}`, t.value >= t.min ? 'yes' : 'NO']),
  );
}
