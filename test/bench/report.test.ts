// The serving bench's printed verdicts: targets as ratios (efficiency ≥ 0.8 per case, gain ≥ 3 where batching is
// targeted), and tables that line up.

import { describe, expect, it } from 'vitest';
import type { CaseResult } from '../../src/bench/cases.js';
import { table, targetsOf, targetsTable } from '../../src/bench/report.js';

const result = (name: string, efficiency: number, gain: number) => ({ name, efficiency, gain }) as CaseResult;

describe('bench report', () => {
  it('efficiency is targeted in every case, the batching gain only where named', () => {
    const t = targetsOf([result('default-png', 0.85, 1.2), result('b12-png', 0.79, 3.4)], ['b12-png']);
    expect(t).toEqual([
      { name: 'efficiency default-png', value: 0.85, min: 0.8 },
      { name: 'efficiency b12-png', value: 0.79, min: 0.8 },
      { name: 'batching gain b12-png', value: 3.4, min: 3 },
    ]);
    const text = targetsTable(t);
    expect(text).toMatch(/efficiency default-png\s+0\.85\s+≥ 0\.8\s+yes/);
    expect(text).toMatch(/efficiency b12-png\s+0\.79\s+≥ 0\.8\s+NO/);
    expect(text).toMatch(/batching gain b12-png\s+3\.40\s+≥ 3\s+yes/);
  });

  it('tables align every column under its header', () => {
    const lines = table('t', ['case', 'img/s'], [['a', 1], ['longer', 12345]]).split('\n').slice(2);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});
