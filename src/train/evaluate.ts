// Scoring a model on a split during and after training: top-1 and mean cross-entropy of the centre view (the cached
// image, exactly what the server sees), batched through the engine's forward pass.

import type { CachedSplit } from '../data/cache.js';
import { normalizeChw, type InputGeometry, type Normalization } from '../data/preprocess.js';
import { ScoreTally, type Score } from '../model/score.js';
import type { Engine } from './engines/engine.js';

export type { Score } from '../model/score.js';

export async function evaluate(
  engine: Engine,
  data: CachedSplit,
  geo: InputGeometry,
  norm: Normalization,
  classes: number,
  batchSize = 500,
): Promise<Score> {
  const d = geo.channels * geo.height * geo.width;
  const x = new Float32Array(batchSize * d);
  const tally = new ScoreTally(classes);
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    for (let k = 0; k < n; k++) normalizeChw(data.pixels(start + k), geo, norm, x, k * d);
    const logits = await engine.predict(n === batchSize ? x : x.subarray(0, n * d), n);
    tally.add(logits, data.labels.subarray(start, start + n));
  }
  return tally.score();
}
