// The sweep as a Kubernetes Indexed Job runs it: a plan of 4 runs, 4 processes with JOB_COMPLETION_INDEX 0..3,
// then --collect; the fits equal the single-process sweep's of the same runs.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECIPE, runSweep, type SweepRecipe } from '../../src/scaling/sweep.js';
import { collectPlan, readPlan } from '../../src/scaling/plan.js';
import { writeReport } from '../../src/scaling/report.js';

const TINY: SweepRecipe = { ...DEFAULT_RECIPE, size: 12, evalExamples: 200 };
const GRID = ['--archs', 'B_1-Wi_16,B_1-Wi_32', '--examples', '256,512', '--size', '12', '--eval-n', '200'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scaling-plan-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function scaling(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/scaling.ts', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('npm run scaling -- --plan', () => {
  it('4 index processes plus --collect give the single-process sweep\'s runs and fits', async () => {
    const plan = join(dir, 'plan.json');
    const out = join(dir, 'job');
    const wrote = scaling(['--plan', plan, ...GRID]);
    expect(wrote.code, wrote.err).toBe(0);
    expect(wrote.out).toMatch(/4 runs \(indexes 0..3\)/);

    for (const i of [0, 1, 2]) expect(scaling(['--plan', plan, '--out', out], { JOB_COMPLETION_INDEX: String(i) }).code).toBe(0);
    const partial = scaling(['--plan', plan, '--out', out, '--collect']);
    expect(partial.code, partial.err).toBe(0);
    expect(partial.out).toMatch(/1 of 4 runs missing: indexes 3/);
    expect(scaling(['--plan', plan, '--out', out, '--run-index', '3']).code).toBe(0);
    const collected = scaling(['--plan', plan, '--out', out, '--collect']);
    expect(collected.code, collected.err).toBe(0);
    expect(collected.out).not.toMatch(/missing/);

    const single = join(dir, 'single');
    const rows = await runSweep({ archs: ['B_1-Wi_16', 'B_1-Wi_32'], examples: [256, 512], recipe: TINY, out: single });
    const ref = await writeReport(single, rows, TINY, 'single');
    const got = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const { rows: planned } = await collectPlan(await readPlan(plan), out);
    expect(planned.map((r) => [r.id, r.testError, r.testLoss])).toEqual(rows.map((r) => [r.id, r.testError, r.testLoss]));
    expect(got.report).toEqual(JSON.parse(JSON.stringify(ref)));
    expect(got.report.runs).toBe(4);

    const bad = scaling(['--plan', plan, '--out', out, '--run-index', '4']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/run index 4 is out of range 0..3/);
  }, 240_000);
});
