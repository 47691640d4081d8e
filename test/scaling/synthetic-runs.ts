// Sweep rows with a known law, for the fits, the plots and the report: no training needed.

import { DEFAULT_RECIPE, type RunRecord, type SweepRecipe } from '../../src/scaling/sweep.js';
import { createRng, normal } from '../../src/util/rng.js';

/** Runs drawn from E = 0.08 + 40·N^(−0.4) + 60·D^(−0.5) with a little noise, on a 5 × 5 grid. */
export function syntheticRuns(recipe: SweepRecipe = { ...DEFAULT_RECIPE, size: 12, evalExamples: 200 }): RunRecord[] {
  const rng = createRng(4);
  const rows: RunRecord[] = [];
  for (const params of [2e4, 6e4, 2e5, 6e5, 2e6])
    for (const examples of [3e3, 1e4, 3e4, 1e5, 3e5]) {
      const flopsPerImage = 2 * params;
      rows.push({
        id: `${params}@${examples}`,
        arch: `P${params}`,
        params,
        flopsPerImage,
        examples,
        examplesSeen: examples,
        trainImages: examples,
        epochs: 1,
        compute: 3 * flopsPerImage * examples,
        valError: 0.08 + 40 * params ** -0.4 + 60 * examples ** -0.5 + 0.001 * normal(rng),
        valLoss: 0,
        valExamples: 5000,
        testError: 0.5, // never fitted on
        testLoss: 0,
        testExamples: 10000,
        wallSeconds: 1,
        imagesPerSecond: 1,
        lr: 1e-3,
        engine: 'synthetic',
        recipeHash: 'x',
        recipe,
        finishedAt: '',
      });
    }
  return rows;
}
