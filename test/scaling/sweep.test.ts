// The scaling sweep on real data with the real trainer (tiny models and budgets: seconds), its resumability after
// an interruption, the analysis on runs drawn from a known law, the SVG plots, and the CLI end to end.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyze, reportMarkdown } from '../../src/scaling/analyze.js';
import { renderAxesPlot, renderComputePlot, renderFrontierPlot } from '../../src/scaling/plot.js';
import {
  DEFAULT_RECIPE,
  RUNS_FILE,
  budgetPlan,
  readRuns,
  runSweep,
  type RunRecord,
  type SweepRecipe,
} from '../../src/scaling/sweep.js';
import { syntheticRuns } from './synthetic-runs.js';

const run = promisify(execFile);
const TINY: SweepRecipe = { ...DEFAULT_RECIPE, size: 12, evalExamples: 200, val: 200 };
const ARCHS = ['B_1-Wi_16', 'B_1-Wi_32'];
const EXAMPLES = [256, 512];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaling-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('budgetPlan', () => {
  it('turns examples seen into images × epochs', () => {
    expect(budgetPlan(6000, 60000)).toEqual({ images: 6000, epochs: 1 });
    expect(budgetPlan(60000, 60000)).toEqual({ images: 60000, epochs: 1 });
    expect(budgetPlan(240000, 60000)).toEqual({ images: 60000, epochs: 4 });
    expect(() => budgetPlan(0, 10)).toThrow(/examples 0/);
  });
});

describe('runSweep', () => {
  it('trains every cell once, writes one row per run, and resumes after an interruption', async () => {
    const out = join(dir, 'sweep');
    const stop = new AbortController();
    let finished = 0;
    // Interrupted after the first finished run…
    const first = await runSweep({
      archs: ARCHS,
      examples: EXAMPLES,
      recipe: TINY,
      out,
      signal: stop.signal,
      onRun: (e) => {
        if (e.record && !e.skipped && ++finished === 1) stop.abort();
      },
    });
    expect(first).toHaveLength(1);
    expect(await readRuns(join(out, RUNS_FILE))).toHaveLength(1);

    // …the same call finishes the rest without redoing it.
    const skipped: string[] = [];
    const rows = await runSweep({
      archs: ARCHS,
      examples: EXAMPLES,
      recipe: TINY,
      out,
      onRun: (e) => e.skipped && skipped.push(`${e.arch}@${e.examples}`),
    });
    expect(skipped).toEqual([`${first[0].arch}@${first[0].examples}`]);
    expect(rows).toHaveLength(4);
    const file = await readRuns(join(out, RUNS_FILE));
    expect(file).toHaveLength(4);
    expect(new Set(file.map((r) => r.id)).size).toBe(4);
    expect(file[0]).toEqual(first[0]);
    for (const r of file) {
      // Whole batches of 128: 256 → 256, 512 → 512 examples seen.
      expect(r.examplesSeen).toBe(r.examples);
      expect(r.compute).toBe(r.flopsPerImage * 3 * r.examplesSeen);
      expect(r.testError).toBeGreaterThan(0);
      expect(r.testError).toBeLessThan(0.9); // learned something: chance is 0.9
      expect(r.testExamples).toBe(200);
      expect(r.valExamples).toBe(200);
      expect(r.trainImages).toBe(r.examples); // the budget is taken from what is left after the hold-out
      expect(r.valError).toBeGreaterThan(0);
      expect(r.valError).toBeLessThan(0.9);
      expect(r.wallSeconds).toBeGreaterThan(0);
      expect(r.lr).toBeCloseTo((TINY.lr * 64) / (r.arch.endsWith('16') ? 16 : 32), 12);
    }
    // A third call has nothing left to do.
    const again: boolean[] = [];
    await runSweep({ archs: ARCHS, examples: EXAMPLES, recipe: TINY, out, onRun: (e) => again.push(e.skipped) });
    expect(again).toEqual([true, true, true, true]);
  }, 120_000);
});

describe('analyze and plots', () => {
  it('recovers the known joint law, its allocation, and fits every axis', () => {
    const rep = analyze(syntheticRuns());
    expect(rep.joint!.alpha.value).toBeCloseTo(0.4, 1);
    expect(rep.joint!.beta.value).toBeCloseTo(0.5, 1);
    // N_opt ∝ C^(β/(α+β)) = C^0.556, D_opt ∝ C^0.444.
    expect(rep.allocation!.paramsExponent.value).toBeCloseTo(0.5 / 0.9, 1);
    expect(rep.allocation!.k).toBeCloseTo(6, 12);
    for (const law of [rep.compute, rep.params, rep.examples]) {
      expect(law.fit).toBeDefined();
      expect(law.fit!.alpha.value).toBeGreaterThan(0);
    }
    expect(rep.params.points).toHaveLength(5);
    const md = reportMarkdown(rep);
    expect(md).toMatch(/\| compute C \(Pareto-frontier runs\) \| \d+ \| 0\.\d+ \[/);
    expect(md).toMatch(/N_opt ∝ C\^0\.5\d* \[/);
  });

  it('renders the three figures as SVG with the fits in them', async () => {
    const rows = syntheticRuns();
    const rep = analyze(rows);
    const svgs = await Promise.all([
      renderComputePlot(rows, rep, 'synthetic'),
      renderFrontierPlot(rows, rep, 'synthetic'),
      renderAxesPlot(rows, rep, 'synthetic'),
    ]);
    for (const svg of svgs) expect(svg.startsWith('<svg')).toBe(true);
    expect(svgs[0]).toContain('Validation error vs. compute');
    expect(svgs[0]).toMatch(/fit: [\d.e+-]+·C\^\(−0\.\d+/);
    expect(svgs[1]).toContain('N_opt ∝ C^0.5');
    expect(svgs[2]).toContain('in examples seen');
    // One marker per run in the compute plot (plus the frontier rings and the curve).
    expect((svgs[0].match(/<path [^>]*aria-roledescription="point"/g) ?? []).length).toBeGreaterThanOrEqual(rows.length);
  });
});

describe('npm run scaling', () => {
  it('runs a tiny sweep and writes the report and the plots', async () => {
    const out = join(dir, 'cli');
    const args = ['tsx', 'scripts/scaling.ts', '--archs', 'B_1-Wi_16,B_1-Wi_32,B_2-Wi_16', '--examples', '256,512,768', '--size', '12', '--eval-n', '200', '--out', out];
    const { stdout } = await run('npx', args, { timeout: 120_000 });
    expect(stdout).toMatch(/3 sizes × 3 budgets on fashion-mnist at 12×12×1/);
    expect(stdout).toMatch(/\[9\/9\]/);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    expect(md).toContain('Reproduce: `npm run scaling -- --archs B_1-Wi_16,B_1-Wi_32,B_2-Wi_16');
    expect(md).toContain('| law in | points | α | a | c | R² | note |');
    for (const f of ['error-vs-compute.svg', 'frontier.svg', 'axes.svg'])
      expect((await readFile(join(out, f), 'utf8')).startsWith('<svg')).toBe(true);
    // Nothing left to train: the rows are reused.
    const again = await run('npx', args, { timeout: 120_000 });
    expect(again.stdout).not.toMatch(/\[\d+\/9\]/);
    expect((await readRuns(join(out, RUNS_FILE))).length).toBe(9);
  }, 240_000);
});
