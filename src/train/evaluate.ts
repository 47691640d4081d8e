// Scoring a model on a split during and after training: top-1 and mean cross-entropy of the centre view (the cached
// image, exactly what the server sees), batched through the engine's forward pass.

import type { CachedSplit } from '../data/cache.js';
import { normalizeChw, type InputGeometry, type Normalization } from '../data/preprocess.js';
import type { Engine } from './engines/engine.js';

export interface Score {
  accuracy: number;
  loss: number;
}

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
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < data.size; start += batchSize) {
    const n = Math.min(batchSize, data.size - start);
    for (let k = 0; k < n; k++) normalizeChw(data.pixels(start + k), geo, norm, x, k * d);
    const logits = await engine.predict(n === batchSize ? x : x.subarray(0, n * d), n);
    for (let k = 0; k < n; k++) {
      const row = logits.subarray(k * classes, (k + 1) * classes);
      let best = 0;
      let max = -Infinity;
      for (let c = 0; c < classes; c++) if (row[c] > max) [max, best] = [row[c], c];
      let z = 0;
      for (let c = 0; c < classes; c++) z += Math.exp(row[c] - max);
      const label = data.labels[start + k];
      lossSum += Math.log(z) + max - row[label];
      if (best === label) correct++;
    }
  }
  return { accuracy: correct / data.size, loss: lossSum / data.size };
}
