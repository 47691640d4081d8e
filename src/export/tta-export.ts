// Re-exports a trained model with test-time augmentation built into its graph (src/model/tta.ts). The views are
// chosen on the validation images the trainer held out (recorded in the card): every candidate view set is scored
// there, the best is built in, and only that graph is then scored on the test split, once.

import { copyFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { prepareSplit, type CachedSplit } from '../data/cache.js';
import { subsetSplit } from '../data/holdout.js';
import { normalizeChw } from '../data/preprocess.js';
import { openDataSource } from '../data/resolve.js';
import { ONNX_FILE, readCard, type ModelCard } from '../model/card.js';
import { ScoreTally, type Score } from '../model/score.js';
import { parseTtaSpec, type TtaView } from '../model/tta.js';
import { exportOnnx, readOnnxWeights, writeModelDir } from './export.js';

export interface TtaExportOptions {
  /** Source model directory (model.onnx + model.json). */
  from: string;
  /** Destination model directory; may equal `from`. */
  out: string;
  /**
   * Candidate view sets separated by ';', each as parseTtaSpec reads it, or "none" for the plain one-view graph
   * (e.g. "none;flip;flip,shift:1;flip,shift:2"): the one with the best validation top-1 is built in. A single spec
   * is built in as is.
   */
  spec: string;
  /** Name written into the card (it must equal the directory's name to be served). Default: the source's. */
  name?: string;
  /** Data set (default: the one the card says it was trained on). */
  data?: string;
  /** The command line, recorded in the card. */
  command?: string;
}

/** Logits of an ONNX model on a cached split, batch by batch: row-major [split.size, classes]. */
export async function onnxLogits(bytes: Uint8Array, card: ModelCard, split: CachedSplit, batch = 500): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
  const geo = card.input;
  const dim = geo.channels * geo.width * geo.height;
  const classes = card.labels.length;
  const all = new Float32Array(split.size * classes);
  try {
    for (let start = 0; start < split.size; start += batch) {
      const n = Math.min(batch, split.size - start);
      const x = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) normalizeChw(split.pixels(start + i), geo, card.normalization, x, i * dim);
      const out = await session.run({ input: new ort.Tensor('float32', x, [n, dim]) });
      all.set(out.logits.data as Float32Array, start * classes);
    }
  } finally {
    await session.release();
  }
  return all;
}

const score = (logits: Float32Array, split: CachedSplit, classes: number): Score => new ScoreTally(classes).add(logits, split.labels).score();

/** What the trainer recorded about its validation images (src/train/card.ts). */
interface RecordedValidation {
  from: string;
  indices: number[];
  ofFirst?: number;
}

function recorded(card: ModelCard): { dataset?: string; validation?: RecordedValidation } {
  const p = card.provenance as { dataset?: { name?: unknown }; split?: { validation?: RecordedValidation | null } };
  return { dataset: typeof p.dataset?.name === 'string' ? p.dataset.name : undefined, validation: p.split?.validation ?? undefined };
}

const viewKey = (v: TtaView) => `${v.dx},${v.dy},${v.flip}`;

/** Writes the TTA model to `out` and returns its card. */
export async function exportWithTta(o: TtaExportOptions): Promise<ModelCard> {
  const source = await readCard(o.from);
  const { cfg, weights } = readOnnxWeights(await readFile(join(o.from, ONNX_FILE)));
  const candidates = o.spec.split(';').map((s) => s.trim()).filter(Boolean)
    .map((spec) => ({ spec, views: spec === 'none' ? [{ dx: 0, dy: 0, flip: false }] : parseTtaSpec(spec) }));
  if (candidates.length === 0) throw new RangeError('no TTA view set given');
  // A model re-exported with other views starts from no TTA; the plain graph ("none") has no tta field at all.
  const { tta: _previous, ...rest } = source;
  const base: ModelCard = { ...rest, name: o.name ?? source.name };
  const withViews = (views: TtaView[], spec = ''): ModelCard => (spec === 'none' ? base : { ...base, tta: { views } });
  const { dataset, validation } = recorded(source);
  const data = o.data ?? dataset;
  if (candidates.length > 1 && !(data && validation))
    throw new RangeError(`choosing among ${candidates.length} view sets needs the validation images: the card of ${o.from} records none (train with --val)`);
  const src = data ? await openDataSource(data) : undefined;

  // 1. Validation: each distinct view alone, then each candidate as the mean of its views' logits (exact: the head
  //    is linear, src/model/tta.ts); the best top-1 wins, then the lower loss, then fewer views.
  let chosen = candidates[0];
  let val: Score | undefined;
  const viewScores: (TtaView & { valTop1: number })[] = [];
  const candidateScores: { spec: string; views: number; valTop1: number; valLoss: number }[] = [];
  if (src && validation) {
    const loaded = await prepareSplit(src.train, source.input, { limit: validation.ofFirst });
    try {
      const valSplit = subsetSplit(loaded, Uint32Array.from(validation.indices));
      const classes = source.labels.length;
      const logitsOf = new Map<string, Float32Array>();
      for (const view of candidates.flatMap((c) => c.views)) {
        if (logitsOf.has(viewKey(view))) continue;
        const logits = await onnxLogits(exportOnnx(cfg, weights, withViews([view])), source, valSplit);
        logitsOf.set(viewKey(view), logits);
        viewScores.push({ ...view, valTop1: score(logits, valSplit, classes).accuracy });
      }
      let best: Score | undefined;
      for (const c of candidates) {
        const mean = new Float32Array(valSplit.size * classes);
        for (const v of c.views) logitsOf.get(viewKey(v))!.forEach((x, i) => (mean[i] += x / c.views.length));
        const s = score(mean, valSplit, classes);
        candidateScores.push({ spec: c.spec, views: c.views.length, valTop1: s.accuracy, valLoss: s.loss });
        const better = !best || s.accuracy > best.accuracy || (s.accuracy === best.accuracy && (s.loss < best.loss || (s.loss === best.loss && c.views.length < chosen.views.length)));
        if (better) [best, chosen] = [s, c];
      }
      // The figure recorded is the shipped graph's own, not the average computed above.
      val = score(await onnxLogits(exportOnnx(cfg, weights, withViews(chosen.views, chosen.spec)), source, valSplit), valSplit, classes);
    } finally {
      loaded.close();
    }
  }

  // 2. Test, once, for the graph that ships.
  const shipped: ModelCard = {
    ...withViews(chosen.views, chosen.spec),
    // The schema allows extra provenance facts; its static type lists only the required ones.
    provenance: {
      ...source.provenance,
      tta: {
        spec: chosen.spec,
        ...(candidateScores.length ? { chosenOn: 'validation', candidates: candidateScores, views: viewScores } : {}),
        ...(o.command ? { command: o.command } : {}),
      },
    } as ModelCard['provenance'],
  };
  let test: Score | undefined;
  if (src) {
    const testSplit = await prepareSplit(src.test, source.input);
    try {
      test = score(await onnxLogits(exportOnnx(cfg, weights, shipped), shipped, testSplit), testSplit, source.labels.length);
    } finally {
      testSplit.close();
    }
  }
  const m = source.metrics;
  shipped.metrics = {
    ...(val ? { valTop1: val.accuracy, valLoss: val.loss } : {}),
    ...(test ? { testTop1: test.accuracy, testLoss: test.loss } : {}),
    // The one-view graph's figures, as its own card gives them.
    ...(m.valTop1 !== undefined ? { valTop1NoTta: m.valTop1 } : {}),
    ...(m.testTop1 !== undefined ? { testTop1NoTta: m.testTop1 } : {}),
  };
  await writeModelDir(o.out, cfg, weights, shipped);
  // Keep the training record (log and plot) beside the model.
  if (o.out !== o.from)
    for (const f of ['train.jsonl', 'training.svg'])
      if (existsSync(join(o.from, f))) await copyFile(join(o.from, f), join(o.out, f));
  return shipped;
}
