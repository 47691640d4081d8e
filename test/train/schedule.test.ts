// Learning-rate schedules at the points that define them.
import { describe, expect, it } from 'vitest';
import { learningRate } from '../../src/train/schedule.js';

describe('learningRate', () => {
  it('cosine: lr at the start, lr/2 half-way, 0 at the end', () => {
    const s = { kind: 'cosine' as const, lr: 0.1, totalSteps: 100, warmupSteps: 0 };
    expect(learningRate(s, 0)).toBeCloseTo(0.1, 12);
    expect(learningRate(s, 50)).toBeCloseTo(0.05, 12);
    expect(learningRate(s, 100)).toBeCloseTo(0, 12);
    expect(learningRate(s, 25)).toBeCloseTo(0.05 * (1 + Math.SQRT1_2), 12);
  });

  it('linear warm-up to lr, then the cosine over the remaining steps', () => {
    const s = { kind: 'cosine' as const, lr: 1, totalSteps: 110, warmupSteps: 10 };
    expect(learningRate(s, 0)).toBeCloseTo(0.1, 12);
    expect(learningRate(s, 9)).toBeCloseTo(1, 12);
    expect(learningRate(s, 10)).toBeCloseTo(1, 12);
    expect(learningRate(s, 60)).toBeCloseTo(0.5, 12);
  });

  it('constant stays at lr after its warm-up', () => {
    const s = { kind: 'constant' as const, lr: 3e-4, totalSteps: 10, warmupSteps: 2 };
    expect([0, 1, 2, 9].map((i) => learningRate(s, i))).toEqual([1.5e-4, 3e-4, 3e-4, 3e-4]);
  });
});
