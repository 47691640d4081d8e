// Scoring logits: top-1 and mean cross-entropy, the same whether the rows come in one batch or several.
import { describe, expect, it } from 'vitest';
import { ScoreTally } from '../../src/model/score.js';

describe('ScoreTally', () => {
  it('counts top-1 hits and averages −log softmax of the label, across batches', () => {
    const logits = [2, 0, 0, /**/ 0, 1, 0, /**/ 0, 0, 3]; // predictions 0, 1, 2
    const labels = [0, 2, 2];
    const ce = (row: number[], y: number) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[y];
    const expected = (ce([2, 0, 0], 0) + ce([0, 1, 0], 2) + ce([0, 0, 3], 2)) / 3;
    const whole = new ScoreTally(3).add(logits, labels).score();
    expect(whole.accuracy).toBeCloseTo(2 / 3, 12);
    expect(whole.loss).toBeCloseTo(expected, 12);
    const parts = new ScoreTally(3).add(logits.slice(0, 3), labels.slice(0, 1)).add(logits.slice(3), labels.slice(1)).score();
    expect(parts).toEqual(whole);
  });

  it('stays finite for large logits (log-sum-exp from the row maximum)', () => {
    const s = new ScoreTally(2).add([1000, 0], [1]).score();
    expect(s).toEqual({ accuracy: 0, loss: 1000 });
  });
});
