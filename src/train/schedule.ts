// Learning-rate schedules: cosine decay to zero or constant, each after an optional linear warm-up.
// A pure function of the step, so a resumed run gets exactly the lr an uninterrupted one would have.

export type ScheduleKind = 'cosine' | 'constant';

export interface Schedule {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Linear warm-up from lr/warmupSteps to lr over the first steps; 0 = none (the paper's default). */
  warmupSteps: number;
}

/** Learning rate for step `step` (0-based). */
export function learningRate(s: Schedule, step: number): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const t = Math.min(1, (step - s.warmupSteps) / span);
  return 0.5 * s.lr * (1 + Math.cos(Math.PI * t));
}
