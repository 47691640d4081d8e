// The sweep's report as files: report.md (the fits, how to reproduce, the plots), report.json (command, recipe and
// every fitted number) and the three SVG plots, all from the rows of one recipe.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { analyze, reportMarkdown, runsTable, type ScalingReport } from './analyze.js';
import { renderAxesPlot, renderComputePlot, renderFrontierPlot } from './plot.js';
import type { RunRecord, SweepRecipe } from './sweep.js';

export const REPORT_FILES = ['report.md', 'report.json', 'error-vs-compute.svg', 'frontier.svg', 'axes.svg'] as const;
export type ReportFile = (typeof REPORT_FILES)[number];

/** "fashion-mnist at 28×28×1": the data a recipe trains on, for titles and progress lines. */
export function describeRecipe(recipe: Pick<SweepRecipe, 'data' | 'size' | 'channels'>): string {
  return `${recipe.data} at ${recipe.size}×${recipe.size}×${recipe.channels}`;
}

/** Fits the rows and renders every report file; `command` is the line that reproduces them. */
export async function buildReport(
  rows: readonly RunRecord[],
  recipe: SweepRecipe,
  command: string,
): Promise<{ report: ScalingReport; files: Record<ReportFile, string> }> {
  const report = analyze(rows);
  const where = describeRecipe(recipe);
  const subtitle = `${rows.length} runs, ${where}, ${new Set(rows.map((r) => r.arch)).size} sizes`;
  const md = [
    `# Scaling sweep on ${where}`,
    '',
    `Reproduce: \`${command}\``,
    '',
    reportMarkdown(report),
    runsTable(rows),
    '![error vs compute](error-vs-compute.svg)',
    '![compute-optimal frontier](frontier.svg)',
    '![per-axis laws](axes.svg)',
    '',
  ].join('\n');
  const [compute, frontier, axes] = await Promise.all([
    renderComputePlot(rows, report, subtitle),
    renderFrontierPlot(rows, report, subtitle),
    renderAxesPlot(rows, report, subtitle),
  ]);
  const files: Record<ReportFile, string> = {
    'report.md': md,
    'report.json': JSON.stringify({ command, recipe, report }, null, 2) + '\n',
    'error-vs-compute.svg': compute,
    'frontier.svg': frontier,
    'axes.svg': axes,
  };
  return { report, files };
}

/** Writes the report files into `dir`; returns the fitted report. */
export async function writeReport(dir: string, rows: readonly RunRecord[], recipe: SweepRecipe, command: string): Promise<ScalingReport> {
  const { report, files } = await buildReport(rows, recipe, command);
  for (const name of REPORT_FILES) await writeFile(join(dir, name), files[name]);
  return report;
}
