// Re-exports a trained model with test-time augmentation built into its graph (src/model/tta.ts), and measures
// top-1 on the data set's test split with and without it, through the same preprocessing cache the trainer used.

import { copyFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { prepareSplit, type CachedSplit } from '../data/cache.js';
import { normalizeChw } from '../data/preprocess.js';
import { openDataSource } from '../data/resolve.js';
import { ONNX_FILE, readCard, type ModelCard } from '../model/card.js';
import { parseTtaSpec } from '../model/tta.js';
import { exportOnnx, readOnnxWeights, writeModelDir } from './export.js';

export interface TtaExportOptions {
  /** Source model directory (model.onnx + model.json). */
  from: string;
  /** Destination model directory; may equal `from`. */
  out: string;
  /** e.g. "flip,shift:2" (see parseTtaSpec), or "none": the plain one-view graph of the same weights. */
  spec: string;
  /** Name written into the card (it must equal the directory's name to be served). Default: the source's. */
  name?: string;
  /** Data set whose test split measures the result (default: the one the card says it was trained on). */
  data?: string;
  /** The command line, recorded in the card. */
  command?: string;
}

/** Top-1 of an ONNX model on a cached split, batch by batch. */
export async function evaluateOnnx(bytes: Uint8Array, card: ModelCard, split: CachedSplit, batch = 500): Promise<number> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
  const geo = card.input;
  const dim = geo.channels * geo.width * geo.height;
  const classes = card.labels.length;
  let correct = 0;
  try {
    for (let start = 0; start < split.size; start += batch) {
      const n = Math.min(batch, split.size - start);
      const x = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) normalizeChw(split.pixels(start + i), geo, card.normalization, x, i * dim);
      const out = await session.run({ input: new ort.Tensor('float32', x, [n, dim]) });
      const logits = out.logits.data as Float32Array;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let k = 1; k < classes; k++) if (logits[i * classes + k] > logits[i * classes + best]) best = k;
        if (best === split.labels[start + i]) correct++;
      }
    }
  } finally {
    await session.release();
  }
  return correct / split.size;
}

function trainedOn(card: ModelCard): string | undefined {
  const ds = (card.provenance as { dataset?: { name?: unknown } }).dataset;
  return typeof ds?.name === 'string' ? ds.name : undefined;
}

/**
 * Writes the TTA model (or, with spec "none", the plain graph) to `out` and returns its card (metrics: testTop1 of
 * what was written, testTop1NoTta of the plain graph).
 */
export async function exportWithTta(o: TtaExportOptions): Promise<ModelCard> {
  const source = await readCard(o.from);
  const { cfg, weights } = readOnnxWeights(await readFile(join(o.from, ONNX_FILE)));
  const plainOnly = o.spec.trim() === 'none';
  const views = plainOnly ? undefined : parseTtaSpec(o.spec);
  // A model re-exported with another spec starts from no TTA.
  const { tta: _previous, ...rest } = source;
  const base: ModelCard = { ...rest, name: o.name ?? source.name };
  const withTta: ModelCard = {
    ...base,
    ...(views ? { tta: { views } } : {}),
    // The schema allows extra provenance facts; its static type lists only the required ones.
    provenance: { ...source.provenance, tta: { spec: o.spec, ...(o.command ? { command: o.command } : {}) } } as ModelCard['provenance'],
  };

  const data = o.data ?? trainedOn(source);
  if (data) {
    const src = await openDataSource(data);
    const test = await prepareSplit(src.test, source.input);
    const plain = await evaluateOnnx(exportOnnx(cfg, weights, base), base, test);
    const tta = plainOnly ? plain : await evaluateOnnx(exportOnnx(cfg, weights, withTta), withTta, test);
    test.close();
    withTta.metrics = { ...source.metrics, testTop1: tta, testTop1NoTta: plain };
  }
  await writeModelDir(o.out, cfg, weights, withTta);
  // Keep the training record (log and plot) beside the model.
  if (o.out !== o.from)
    for (const f of ['train.jsonl', 'training.svg'])
      if (existsSync(join(o.from, f))) await copyFile(join(o.from, f), join(o.out, f));
  return withTta;
}
