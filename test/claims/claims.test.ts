// The claims study: the statistics and verdict rules on made-up cells, then `npm run claims -- --quick` for real
// (Fashion-MNIST, the ort engine, real training): the report's structure (three claims, a table and a plot each,
// mean ± std over 3 seeds, a verdict), choices that are the validation maxima of the rows written, and a rerun of the
// same command that trains nothing. The verdicts themselves are not checked: at this size they are noise.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { configFor, paramCount } from '../../src/model/mlp.js';
import { runFor, type ClaimRun } from '../../src/claims/run.js';
import { QUICK_SCALE, claimVariants, lrCandidates, matchedStandard, type Variant } from '../../src/claims/studies.js';
import { above, stat, verdictOf, type Cell } from '../../src/claims/verdict.js';
import { readRuns } from '../../src/scaling/sweep.js';

const run = promisify(execFile);

describe('claims: statistics and verdict rules', () => {
  it('stat is the mean and the sample (n − 1) standard deviation; intervals compare without overlap', () => {
    const s = stat([0.8, 0.82, 0.84]);
    expect(s.mean).toBeCloseTo(0.82, 12);
    expect(s.std).toBeCloseTo(0.02, 12);
    expect(above(stat([0.9, 0.91, 0.92]), s)).toBe(true);
    expect(above(stat([0.83, 0.85, 0.87]), s)).toBe(false); // 0.83 < 0.84: the intervals overlap
  });

  it('the standard MLP of the architecture claim matches the B_ parameter count within one width step', () => {
    const b = paramCount(configFor('B_2-Wi_128', 4, 784, 10));
    const std = matchedStandard(2, b, 784, 10);
    const w = Number(std.split('Wi_')[1]);
    const count = (width: number) => paramCount(configFor(`S_2-Wi_${width}`, 1, 784, 10));
    expect(Math.abs(count(w) - b)).toBeLessThanOrEqual(Math.abs(count(w + 1) - b));
    expect(Math.abs(count(w) - b)).toBeLessThanOrEqual(Math.abs(count(w - 1) - b));
    expect(Math.abs(count(w) - b) / b).toBeLessThan(0.01);
  });

  it('lr candidates scale as 1/width and √batch around the base lr', () => {
    const s = { ...QUICK_SCALE, lr: 1e-3, lrFactors: [1], base: { depth: 1, width: 64 }, batchSize: 128 };
    expect(lrCandidates(s, 64, 128)).toEqual([1e-3]);
    expect(lrCandidates(s, 128, 128)).toEqual([5e-4]);
    expect(lrCandidates(s, 64, 512)).toEqual([2e-3]);
  });

  it('verdicts: agrees and disagrees only without overlap, inconclusive otherwise, incomplete without all seeds', () => {
    const s = QUICK_SCALE;
    const variants = claimVariants(s);
    const cell = (v: Variant, accs: number[]): Cell => ({
      variant: v, runs: accs.map(() => ({}) as ClaimRun), val: stat(accs), test: stat(accs), tried: [],
    });
    const arch = variants.filter((v) => v.claim === 'architecture');
    const [b, st] = [arch.find((v) => v.role === 'bottleneck')!, arch.find((v) => v.role === 'standard')!];
    expect(verdictOf(s, 'architecture', [cell(b, [0.9, 0.91, 0.92]), cell(st, [0.8, 0.81, 0.82])]).kind).toBe('agrees');
    expect(verdictOf(s, 'architecture', [cell(b, [0.8, 0.81, 0.82]), cell(st, [0.9, 0.91, 0.92])]).kind).toBe('disagrees');
    expect(verdictOf(s, 'architecture', [cell(b, [0.8, 0.85, 0.9]), cell(st, [0.82, 0.84, 0.86])]).kind).toBe('inconclusive');
    expect(verdictOf(s, 'architecture', [cell(b, [0.9, 0.91]), cell(st, [0.8, 0.81, 0.82])]).kind).toBe('incomplete');
    const aug = variants.filter((v) => v.claim === 'augmentation');
    const role = (r: Variant['role']) => aug.find((v) => v.role === r)!;
    const cells = (a: number) => [
      cell(role('base'), [0.8, 0.8, 0.8]), cell(role('augmented'), [a, a + 0.001, a + 0.002]),
      cell(role('wider'), [0.82, 0.821, 0.822]), cell(role('deeper'), [0.81, 0.811, 0.812]),
    ];
    expect(verdictOf(s, 'augmentation', cells(0.85)).kind).toBe('agrees');
    expect(verdictOf(s, 'augmentation', cells(0.815)).kind).toBe('disagrees'); // below the wider model
    const batches = variants.filter((v) => v.claim === 'batch-size');
    const rising = batches.map((v, i) => cell(v, [0.8 + 0.02 * i, 0.801 + 0.02 * i, 0.802 + 0.02 * i]));
    expect(verdictOf(s, 'batch-size', rising).kind).toBe('agrees');
    expect(verdictOf(s, 'batch-size', [...rising].reverse().map((c, i) => ({ ...c, variant: batches[i] }))).kind).toBe('disagrees');
  });
});

describe('npm run claims -- --quick', () => {
  let out: string;
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('writes a report with three claims, each a table of mean ± std over 3 seeds, a plot and a verdict; a rerun trains nothing', async () => {
    out = await mkdtemp(join(tmpdir(), 'claims-quick-'));
    const args = ['--import', 'tsx', 'scripts/claims.ts', '--quick', '--engine', 'ort', '--out', out];
    const first = await run(process.execPath, args, { env: process.env, maxBuffer: 1 << 24 });
    expect(first.stdout).toMatch(/^architecture: (agrees|disagrees|inconclusive): /m);

    const md = await readFile(join(out, 'report.md'), 'utf8');
    const sections = md.split(/^## \d\. /m).slice(1);
    expect(sections).toHaveLength(3);
    for (const [i, name] of ['architecture', 'augmentation', 'batch-size'].entries()) {
      const sec = sections[i];
      expect(sec).toContain('**The paper**: ');
      expect(sec).toMatch(/\*\*Verdict: (agrees|disagrees|inconclusive)\.\*\*/);
      expect(sec).toContain(`](${name}.svg)`);
      const rows = sec.split('\n').filter((l) => /^\| (B_|S_|batch \d)/.test(l));
      expect(rows.length).toBeGreaterThanOrEqual(2);
      // Every row: 3 seeds, validation and test as mean ± std.
      for (const r of rows) expect(r).toMatch(/\| 3 \| \d+\.\d\d ± \d+\.\d\d% \| \d+\.\d\d ± \d+\.\d\d% \|$/);
      const svg = await readFile(join(out, `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('top-1 accuracy');
    }
    expect(md).toContain('npm run claims -- --quick --engine ort --out');
    expect(md).toMatch(/load average over the runs: min \d+\.\d, median \d+\.\d, max \d+\.\d/);
    expect(md).toMatch(/training runs, .+ of training wall time in all/);

    // The choices are the validation maxima among each variant's seed-0 candidates, read back from the rows.
    const rowsWritten = await readRuns<ClaimRun>(join(out, 'runs.jsonl'));
    const byId = new Map(rowsWritten.map((r) => [r.id, r]));
    for (const v of claimVariants(QUICK_SCALE)) {
      const vals = v.candidates.map((c) => byId.get(runFor(QUICK_SCALE, v.arch, c.recipe, 0).id)!.valAccuracy);
      const best = v.candidates[vals.indexOf(Math.max(...vals))];
      for (const seed of [0, 1, 2]) expect(byId.has(runFor(QUICK_SCALE, v.arch, best.recipe, seed).id), `${v.label} seed ${seed}`).toBe(true);
    }
    for (const r of rowsWritten) {
      expect(r.valImages).toBe(QUICK_SCALE.val);
      expect(r.valAccuracy).toBeGreaterThan(0);
      expect(r.testAccuracy).toBeLessThanOrEqual(1);
    }

    const second = await run(process.execPath, args, { env: process.env, maxBuffer: 1 << 24 });
    expect(second.stdout).not.toMatch(/seed \d: val/); // no run trained
    expect((await readRuns<ClaimRun>(join(out, 'runs.jsonl'))).length).toBe(rowsWritten.length);
  }, 480_000);
});
