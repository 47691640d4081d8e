// The sweep's report files from rows with a known law: every file written, the markdown names the command that
// reproduces it and the fitted laws, the JSON carries the same fit, and the plots are SVG.

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_FILES, buildReport, describeRecipe, writeReport } from '../../src/scaling/report.js';
import { DEFAULT_RECIPE, type SweepRecipe } from '../../src/scaling/sweep.js';
import { syntheticRuns } from './synthetic-runs.js';

const recipe: SweepRecipe = { ...DEFAULT_RECIPE, size: 12 };
const command = 'npm run scaling -- --out x --size 12';
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaling-report-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the scaling report', () => {
  it('names the data and resolution of its recipe', () => {
    expect(describeRecipe(recipe)).toBe(`${recipe.data} at 12×12×${recipe.channels}`);
  });

  it('writes the markdown, the JSON and three SVG plots from the rows, consistent with each other', async () => {
    const rows = syntheticRuns(recipe);
    const report = await writeReport(dir, rows, recipe, command);
    expect((await readdir(dir)).sort()).toEqual([...REPORT_FILES].sort());
    const md = await readFile(join(dir, 'report.md'), 'utf8');
    expect(md.split('\n')[0]).toBe(`# Scaling sweep on ${describeRecipe(recipe)}`);
    expect(md).toContain(`Reproduce: \`${command}\``);
    expect(md).toContain('| law in | points | α | a | c | R² | note |');
    for (const svg of ['error-vs-compute.svg', 'frontier.svg', 'axes.svg']) {
      expect(md).toContain(`(${svg})`);
      expect((await readFile(join(dir, svg), 'utf8')).startsWith('<svg')).toBe(true);
    }
    const json = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'));
    expect(json.command).toBe(command);
    expect(json.recipe.size).toBe(12);
    expect(json.report.runs).toBe(rows.length);
    // The rows follow E = 0.08 + 40·N^(−0.4) + 60·D^(−0.5): the joint fit recovers the exponents.
    expect(report.joint?.alpha.value).toBeCloseTo(0.4, 1);
    expect(json.report.joint.beta.value).toBeCloseTo(report.joint?.beta.value ?? NaN, 12);
  });

  it('is the same for the same rows (no clock or randomness in it)', async () => {
    const rows = syntheticRuns(recipe);
    const [a, b] = await Promise.all([buildReport(rows, recipe, command), buildReport(rows, recipe, command)]);
    expect(a.files).toEqual(b.files);
  });
});
