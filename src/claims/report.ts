// The claims report: docs/claims/report.md with, per claim, the paper's statement beside ours, one table, one SVG
// plot and a one-line verdict; the scale stated plainly, the command that reproduced it, the machine's load during
// the runs and the total compute time. Everything in it is computed from runs.jsonl.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { toSvg } from '../scaling/plot.js';
import { formatDuration } from '../train/progress.js';
import { runFor, type ClaimRun } from './run.js';
import { CLAIM_IDS, PAPER_STATEMENTS, type ClaimId, type ClaimsScale } from './studies.js';
import { cellsOf, pct, stat, verdictOf, type Cell, type Verdict } from './verdict.js';

export const REPORT_FILE = 'report.md';
export const plotFile = (claim: ClaimId): string => `${claim}.svg`;

export interface ReportContext {
  scale: ClaimsScale;
  /** The command line that reproduces the report (recorded in it). */
  command: string;
  /** `uptime` output when the report was written. */
  uptime: string;
}

/**
 * One plot per claim: accuracy (mean ± std, test per seed as dots) per variant, one panel per data set with its own
 * y scale; batch size on a log₂ axis for claim 3.
 */
export async function renderClaimPlot(claim: ClaimId, cells: readonly Cell[], subtitle: string): Promise<string> {
  const numeric = claim === 'batch-size';
  const rows = cells.filter((c) => c.runs.length > 0);
  const where = (c: Cell) => ({ label: c.variant.label, x: c.variant.x, data: c.variant.candidates[0].recipe.data });
  const values = rows.flatMap((c) => [
    { ...where(c), kind: 'mean', split: 'test', mean: c.test.mean, lo: c.test.mean - c.test.std, hi: c.test.mean + c.test.std },
    { ...where(c), kind: 'mean', split: 'validation', mean: c.val.mean, lo: c.val.mean - c.val.std, hi: c.val.mean + c.val.std },
    ...c.runs.map((r) => ({ ...where(c), kind: 'seed', split: 'test', acc: r.testAccuracy })),
  ]);
  const x = numeric
    ? ({ field: 'x', type: 'quantitative', scale: { type: 'log', base: 2 }, axis: { values: rows.map((c) => c.variant.x!) }, title: 'batch size' } as const)
    : ({ field: 'label', type: 'nominal', sort: rows.map((c) => c.variant.label), axis: { labelAngle: -20 }, title: null } as const);
  const y = { type: 'quantitative', scale: { zero: false }, axis: { format: '.1%' }, title: 'top-1 accuracy' } as const;
  // Side by side on a nominal axis; on the batch axis the two series are lines.
  const offset = numeric ? {} : { xOffset: { field: 'split', type: 'nominal' as const, scale: { domain: ['test', 'validation'] } } };
  const color = { field: 'split', type: 'nominal', title: null, scale: { domain: ['test', 'validation'] } } as const;
  const means = [{ filter: "datum.kind === 'mean'" }];
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: PAPER_STATEMENTS[claim].title, subtitle },
    data: { values },
    facet: { column: { field: 'data', type: 'nominal', title: null, sort: [...new Set(values.map((v) => v.data))] } },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      width: 420,
      height: 260,
      layer: [
        { transform: means, mark: { type: 'errorbar', ticks: true }, encoding: { x, ...offset, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
        { transform: means, mark: { type: 'point', filled: true, size: 70 }, encoding: { x, ...offset, y: { ...y, field: 'mean' }, color } },
        ...(numeric ? [{ transform: means, mark: { type: 'line' as const }, encoding: { x, y: { ...y, field: 'mean' }, color } }] : []),
        {
          transform: [{ filter: "datum.kind === 'seed'" }],
          mark: { type: 'point', filled: true, size: 16, opacity: 0.7, color: 'black' },
          encoding: { x, ...offset, y: { ...y, field: 'acc' } },
        },
      ],
    },
  };
  return toSvg(spec);
}

const int = (n: number) => n.toLocaleString('en-US');

function claimTable(s: ClaimsScale, claim: ClaimId, cells: readonly Cell[]): string[] {
  const out = [
    `| ${claim === 'batch-size' ? 'batch size' : 'model'} | params | steps | chosen on validation (seed 0) | seeds | validation top-1 | test top-1 |`,
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const c of cells) {
    const tried = c.tried.map((t) => `${t.note}: ${(100 * t.valAccuracy).toFixed(2)}%`).join('; ');
    const lrs = c.variant.candidates.map((x) => x.recipe.lr);
    // A best lr at either end of its grid may not be the best lr: say so rather than hide it.
    const edge = c.chosen && c.variant.candidates.length > 1 && (c.chosen.lr === Math.min(...lrs) || c.chosen.lr === Math.max(...lrs)) ? ' ⚠ lr at the grid\'s edge' : '';
    out.push(
      `| ${c.variant.label} | ${c.params ? int(c.params) : 'n/a'} | ${int(steps(s, c.variant.batchSize))} | ${c.chosen ? `**${c.chosen.note}**${edge} (of ${tried})` : 'not run yet'} | ` +
        `${c.runs.length} | ${pct(c.val)} | ${pct(c.test)} |`,
    );
  }
  return out;
}

function loadLine(runs: readonly ClaimRun[]): string {
  const loads = runs.flatMap((r) => [r.loadStart, r.loadEnd]).sort((a, b) => a - b);
  if (!loads.length) return 'no runs yet';
  const q = (p: number) => loads[Math.min(loads.length - 1, Math.floor(p * loads.length))].toFixed(1);
  return `1-minute load average over the runs: min ${q(0)}, median ${q(0.5)}, max ${q(1)} (2 cores)`;
}

/** Every run of this scale's grid once (two variants may share a run), the candidates' seed-0 runs included. */
function gridRuns(cells: readonly Cell[], rows: readonly ClaimRun[], s: ClaimsScale): ClaimRun[] {
  const all = new Map(rows.map((r) => [r.id, r]));
  const ids = new Set<string>();
  for (const c of cells) {
    for (const cand of c.variant.candidates) ids.add(runFor(s, c.variant.arch, cand.recipe, 0).id);
    for (const r of c.runs) ids.add(r.id);
  }
  return [...ids].flatMap((id) => all.get(id) ?? []);
}

const steps = (s: ClaimsScale, batch: number) => Math.floor(s.trainImages / Math.min(batch, s.trainImages)) * s.epochs;

/** What the numbers of a claim show beyond its verdict, and what at this scale limits them (computed, not typed in). */
function reading(s: ClaimsScale, claim: ClaimId, cells: readonly Cell[]): string[] {
  const done = cells.filter((c) => c.runs.length >= s.seeds);
  if (done.length < cells.length) return [];
  if (claim === 'architecture') {
    const gaps = new Map<number, string[]>();
    for (const b of done.filter((c) => c.variant.role === 'bottleneck')) {
      const st = done.find((c) => c.variant.role === 'standard' && c.variant.pair === b.variant.pair)!;
      const depth = Number(/^B_(\d+)/.exec(b.variant.arch)![1]);
      gaps.set(depth, [...(gaps.get(depth) ?? []), `${(100 * (b.test.mean - st.test.mean)).toFixed(2)} (${b.variant.candidates[0].recipe.data})`]);
    }
    return [
      `B_ − S_ test top-1 in points, by depth: ${[...gaps].sort((a, b) => a[0] - b[0]).map(([d, g]) => `depth ${d}: ${g.join(', ')}`).join('; ')}. ` +
        'Residual connections and normalisation are what the B_ block adds; the paper\'s models are 6–12 blocks deep.',
      '',
    ];
  }
  if (claim === 'augmentation') {
    const aug = done.find((c) => c.variant.role === 'augmented');
    return [
      `Each run sees ${s.trainImages.toLocaleString('en-US')} images ${s.epochs} times; augmentation makes the task harder to fit, and ` +
        'the paper pairs it with long schedules (its released ImageNet-21k checkpoints trained 600–800 epochs). ' +
        (aug?.chosen ? `The augmentation chosen on validation was ${aug.chosen.note}.` : ''),
      '',
    ];
  }
  const small = Math.min(...done.map((c) => c.variant.batchSize));
  const large = Math.max(...done.map((c) => c.variant.batchSize));
  return [
    `At a fixed ${s.epochs} epochs of ${s.trainImages.toLocaleString('en-US')} images, batch ${large} makes ${steps(s, large)} LION steps in all ` +
      `against ${steps(s, small).toLocaleString('en-US')} at batch ${small}: the claim is about a regime (a large data set, thousands of steps ` +
      'per epoch even at batch 4,096) this scale does not reach.',
    '',
  ];
}

export interface ClaimsReport {
  markdown: string;
  verdicts: Verdict[];
  cells: Cell[];
  runs: ClaimRun[];
}

/** The report's text, verdicts and cells; pure (plots are written by writeClaimsReport). */
export function buildClaimsReport(rows: readonly ClaimRun[], ctx: ReportContext): ClaimsReport {
  const s = ctx.scale;
  const cells = cellsOf(s, rows);
  const runs = gridRuns(cells, rows, s);
  const verdicts = CLAIM_IDS.map((c) => verdictOf(s, c, cells));
  const trainSeconds = runs.reduce((a, r) => a + r.wallSeconds, 0);
  const flops = runs.reduce((a, r) => a + 3 * r.flopsPerImage * r.trainImages * r.epochs, 0);
  const params = stat(cells.flatMap((c) => (c.params ? [c.params] : [])));
  const paramRange = cells.flatMap((c) => (c.params ? [c.params] : []));
  const first = runs.map((r) => r.finishedAt).sort()[0];
  const last = runs.map((r) => r.finishedAt).sort().at(-1);
  const md: string[] = [
    '# The paper\'s other claims, reproduced at small scale',
    '',
    `Generated by \`${ctx.command}\` from \`runs.jsonl\` (${runs.length} runs, the last finished ${last ?? 'n/a'}).`,
    '',
    '## Scale and method',
    '',
    `- **Data**: ${s.data}, ${s.size}×${s.size} grey. Each run trains on ${int(s.trainImages)} images for ${s.epochs} epochs; ` +
      `${int(s.val)} further training-split images are held out for validation (stratified by class, the trainer's \`val\`), ` +
      `and the test split (${s.evalExamples ? int(s.evalExamples) + ' images' : 'all 10,000 images'}) is read once, after the last epoch.` +
      (s.architectureData?.length ? ` The architecture claim is also run on ${s.architectureData.join(', ')} with the same sizes and splits.` : ''),
    `- **Models**: ${paramRange.length ? `${int(Math.min(...paramRange))}–${int(Math.max(...paramRange))}` : 'n/a'} parameters ` +
      `(mean ${Number.isFinite(params.mean) ? int(Math.round(params.mean)) : 'n/a'}): the paper's smallest model has 24.7M and trains on ImageNet-21k ` +
      'for hundreds of epochs, so these are the claims at roughly a thousandth of its scale, on a data set where small models ' +
      'are already near their ceiling. Read the verdicts as what holds at this scale, not as a test of the paper at its own.',
    `- **Recipe**: LION (β 0.9, 0.99), cosine schedule without warm-up, weight decay 0.1, label smoothing 0.1, batch ${s.batchSize} ` +
      '(claim 3 varies it); no augmentation unless the cell says so.',
    `- **Choices on validation only**: every cell's learning rate (and, for the augmented cell, the augmentation strength) is ` +
      `the candidate with the best validation top-1 of the first seed; that candidate then runs ${s.seeds} seeds in all. ` +
      'The candidates are listed in each table with their validation scores (⚠ marks a chosen lr at the end of its grid). ' +
      'The epoch count is fixed by the budget, not tuned.',
    `- **Figures**: test top-1 as mean ± sample standard deviation over ${s.seeds} seeds (seed = initialisation, data order, ` +
      'augmentation draws; the validation images are the same for every run). A verdict is *agrees* or *disagrees* only when the ' +
      'mean ± std intervals it compares do not overlap; otherwise *inconclusive*.',
    `- **Compute**: ${runs.length} training runs, ${formatDuration(trainSeconds)} of training wall time in all ` +
      `(${flops.toExponential(2)} FLOPs of training compute, forward FLOPs × 3 × examples seen)` +
      (first && last ? `, finished between ${first.slice(0, 16).replace('T', ' ')} and ${last.slice(0, 16).replace('T', ' ')} UTC` : '') + '.',
    `- **Machine**: 2 shared CPU cores, no GPU; the grid ran at nice 10 beside other jobs. ${loadLine(runs)}. ` +
      `\`uptime\` when this report was written: \`${ctx.uptime.trim()}\`.`,
    '',
    '## Verdicts',
    '',
    '| claim | the paper | here | verdict |',
    '| --- | --- | --- | --- |',
    ...verdicts.map((v) => `| ${PAPER_STATEMENTS[v.claim].title} | ${PAPER_STATEMENTS[v.claim].statement} | ${v.line} | **${v.kind}** |`),
    '',
  ];
  CLAIM_IDS.forEach((claim, i) => {
    const mine = cells.filter((c) => c.variant.claim === claim);
    const v = verdicts[i];
    md.push(
      `## ${i + 1}. ${PAPER_STATEMENTS[claim].title}`,
      '',
      `**The paper**: ${PAPER_STATEMENTS[claim].statement}`,
      '',
      `**Here**: ${v.line}. **Verdict: ${v.kind}.**`,
      '',
      ...claimTable(s, claim, mine),
      '',
      `![${PAPER_STATEMENTS[claim].title}](${plotFile(claim)})`,
      '',
      ...reading(s, claim, mine),
      `${loadLine(gridRuns(mine, rows, s))}; training time ${formatDuration(gridRuns(mine, rows, s).reduce((a, r) => a + r.wallSeconds, 0))}.`,
      '',
    );
  });
  md.push(
    '## Reproduce',
    '',
    '```sh',
    'export MLP_CACHE_DIR=/path/to/cache   # optional: the preprocessed data-set cache',
    ctx.command,
    '```',
    '',
    'The run is resumable: each finished run is one line of `runs.jsonl`, and running the command again skips them, ' +
      'trains what is missing and rewrites this report and its plots.',
    '',
  );
  return { markdown: md.join('\n'), verdicts, cells, runs };
}

/** Writes report.md and one SVG per claim into `out`; returns the report. */
export async function writeClaimsReport(out: string, rows: readonly ClaimRun[], ctx: ReportContext): Promise<ClaimsReport> {
  const rep = buildClaimsReport(rows, ctx);
  const s = ctx.scale;
  const subtitle = `${s.data} ${s.size}×${s.size}, ${s.trainImages} images × ${s.epochs} epochs, ${s.seeds} seeds: mean ± std (bars), test per seed (dots)`;
  for (const claim of CLAIM_IDS)
    await writeFile(join(out, plotFile(claim)), await renderClaimPlot(claim, rep.cells.filter((c) => c.variant.claim === claim), subtitle));
  await writeFile(join(out, REPORT_FILE), rep.markdown);
  return rep;
}
