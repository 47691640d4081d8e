// From runs to findings: each variant's cell (its validation-chosen recipe, the seeds of it, test accuracy as mean ±
// standard deviation) and each claim's verdict. Intervals are mean ± one sample standard deviation over seeds; a
// verdict is `agrees` or `disagrees` only when the intervals it compares do not overlap, else `inconclusive`.

import { chooseCandidate, runFor, type ClaimRun } from './run.js';
import { claimVariants, type ClaimId, type ClaimsScale, type Variant } from './studies.js';

export interface Stat {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  std: number;
  n: number;
}

export function stat(values: readonly number[]): Stat {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** a's interval lies entirely above b's. */
export const above = (a: Stat, b: Stat): boolean => a.mean - a.std > b.mean + b.std;

export interface Cell {
  variant: Variant;
  /** The candidate chosen on validation (undefined until a seed-0 run of it exists). */
  chosen?: { note: string; lr: number };
  params?: number;
  /** Runs of the chosen candidate, by seed. */
  runs: ClaimRun[];
  val: Stat;
  test: Stat;
  /** Validation accuracy of every candidate tried with the first seed (the selection, shown in the report). */
  tried: { note: string; valAccuracy: number }[];
}

export function cellsOf(s: ClaimsScale, rows: readonly ClaimRun[], classes = 10): Cell[] {
  const done = new Map(rows.map((r) => [r.id, r]));
  return claimVariants(s, classes).map((variant) => {
    const tried = variant.candidates.flatMap((c) => {
      const row = done.get(runFor(s, variant.arch, c.recipe, 0).id);
      return row ? [{ note: c.note, valAccuracy: row.valAccuracy }] : [];
    });
    const index = chooseCandidate(s, variant, done);
    if (index === undefined) return { variant, runs: [], val: stat([]), test: stat([]), tried };
    const c = variant.candidates[index];
    const runs = Array.from({ length: s.seeds }, (_, seed) => done.get(runFor(s, variant.arch, c.recipe, seed).id)).filter(
      (r): r is ClaimRun => r !== undefined,
    );
    return {
      variant, chosen: { note: c.note, lr: c.recipe.lr }, params: runs[0]?.params, runs, tried,
      val: stat(runs.map((r) => r.valAccuracy)), test: stat(runs.map((r) => r.testAccuracy)),
    };
  });
}

export type VerdictKind = 'agrees' | 'disagrees' | 'inconclusive' | 'incomplete';

export interface Verdict {
  claim: ClaimId;
  kind: VerdictKind;
  /** One line: the numbers that decided it. */
  line: string;
}

export const pct = (s: Stat): string => (s.n ? `${(100 * s.mean).toFixed(2)} ± ${(100 * s.std).toFixed(2)}%` : 'n/a');
const pts = (d: number): string => `${d >= 0 ? '+' : '−'}${Math.abs(100 * d).toFixed(2)} points`;

function complete(s: ClaimsScale, cells: Cell[]): boolean {
  return cells.length > 0 && cells.every((c) => c.runs.length >= s.seeds);
}

export function verdictOf(s: ClaimsScale, claim: ClaimId, all: readonly Cell[]): Verdict {
  const cells = all.filter((c) => c.variant.claim === claim);
  if (!complete(s, cells)) {
    const missing = cells.filter((c) => c.runs.length < s.seeds).map((c) => c.variant.label);
    return { claim, kind: 'incomplete', line: `not every cell has ${s.seeds} seeds yet (${missing.join(', ')})` };
  }
  const role = (r: Variant['role']) => cells.filter((c) => c.variant.role === r);
  if (claim === 'architecture') {
    const pairs = role('bottleneck').map((b) => ({ b, st: role('standard').find((x) => x.variant.pair === b.variant.pair)! }));
    const each = pairs.map(({ b, st }) => ({
      kind: above(b.test, st.test) ? 'agrees' : above(st.test, b.test) ? 'disagrees' : 'inconclusive',
      text: `${b.variant.label} ${pct(b.test)} vs ${st.variant.label} ${pct(st.test)} (${pts(b.test.mean - st.test.mean)})`,
    }));
    const kinds = new Set(each.map((e) => e.kind));
    const kind: VerdictKind = kinds.size === 1 ? (each[0].kind as VerdictKind) : 'inconclusive';
    return { claim, kind, line: `B_ − S_ at equal parameters: ${each.map((e) => `${e.text}, ${e.kind}`).join('; ')}` };
  }
  if (claim === 'augmentation') {
    const [base, aug, wide, deep] = (['base', 'augmented', 'wider', 'deeper'] as const).map((r) => role(r)[0]);
    const gain = (c: Cell) => pts(c.test.mean - base.test.mean);
    const kind: VerdictKind =
      above(aug.test, wide.test) && above(aug.test, deep.test)
        ? 'agrees'
        : above(wide.test, aug.test) || above(deep.test, aug.test)
          ? 'disagrees'
          : 'inconclusive';
    return {
      claim,
      kind,
      line:
        `gain over ${base.variant.label} (${pct(base.test)}): augmentation ${gain(aug)} (${pct(aug.test)}), ` +
        `2× width ${gain(wide)} (${pct(wide.test)}), 2× depth ${gain(deep)} (${pct(deep.test)})`,
    };
  }
  const byBatch = role('batch').sort((a, b) => a.variant.batchSize - b.variant.batchSize);
  const [small, large] = [byBatch[0], byBatch[byBatch.length - 1]];
  const best = byBatch.reduce((a, b) => (b.test.mean > a.test.mean ? b : a));
  const kind: VerdictKind = above(large.test, small.test) ? 'agrees' : above(small.test, large.test) ? 'disagrees' : 'inconclusive';
  return {
    claim,
    kind,
    line:
      `batch ${large.variant.batchSize} ${pct(large.test)} vs batch ${small.variant.batchSize} ${pct(small.test)} ` +
      `(${pts(large.test.mean - small.test.mean)}); best batch ${best.variant.batchSize}`,
  };
}
