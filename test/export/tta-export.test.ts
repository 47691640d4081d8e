// export:tta chooses its views on validation: a small model trained here with a held-out split is re-exported with
// four candidate view sets; every view and every set is scored on the validation images the card records, the best
// set is built in, and only that graph is scored on the test split: the card's test loss is the shipped graph's own.

import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareSplit } from '../../src/data/cache.js';
import { openDataSource } from '../../src/data/resolve.js';
import { exportWithTta, onnxLogits } from '../../src/export/tta-export.js';
import { ONNX_FILE, readCard, type ModelCard } from '../../src/model/card.js';
import { ScoreTally } from '../../src/model/score.js';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainOptions } from '../../src/train/train.js';

let root: string;
const opts = (out: string, val: number): TrainOptions => ({
  ...DEFAULT_TRAIN_OPTIONS,
  data: 'fashion-mnist', arch: 'B_1-Wi_32', epochs: 1, out, name: 'm', size: 28, channels: 1, maxExamples: 1200, val,
  maxEvalExamples: 10000, batchSize: 64, lr: 1e-3, weightDecay: 0.1, labelSmoothing: 0.1, mixup: 0,
  augment: { cropScale: null, cropRatio: [3 / 4, 4 / 3], flip: true, translate: 1 }, engine: 'ort', logEvery: 1000,
});
interface TtaRecord {
  spec: string;
  chosenOn: string;
  candidates: { spec: string; views: number; valTop1: number; valLoss: number }[];
  views: { dx: number; dy: number; flip: boolean; valTop1: number }[];
}
let source: ModelCard;
let shipped: ModelCard;
const SETS = 'none;flip;shift:1;flip,shift:1';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mlp-tta-'));
  await train(opts(root, 200));
  source = await readCard(join(root, 'm'));
  shipped = await exportWithTta({ from: join(root, 'm'), out: join(root, 'm-tta'), spec: SETS, name: 'm-tta' });
}, 300_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('exportWithTta', () => {
  it('scores each view and each candidate set on validation and builds in the best', () => {
    const tta = (shipped.provenance as unknown as { tta: TtaRecord }).tta;
    expect(tta.chosenOn).toBe('validation');
    expect(tta.candidates.map((c) => [c.spec, c.views])).toEqual([['none', 1], ['flip', 2], ['shift:1', 5], ['flip,shift:1', 10]]);
    expect(tta.views).toHaveLength(10); // distinct views across the sets, each scored once
    for (const v of [...tta.views, ...tta.candidates]) expect(v.valTop1).toBeGreaterThan(0.3);
    const best = Math.max(...tta.candidates.map((c) => c.valTop1));
    const chosen = tta.candidates.find((c) => c.spec === tta.spec)!;
    expect(chosen.valTop1).toBe(best);
    expect(shipped.tta?.views.length ?? 1).toBe(chosen.views);
    // The shipped graph's own validation score: the mean of its views' logits, up to float rounding.
    expect(Math.abs(shipped.metrics.valTop1 - chosen.valTop1)).toBeLessThanOrEqual(1 / 200);
  });

  it("reports the shipped graph's test top-1 and loss, and the one-view graph's figures from its own card", async () => {
    const src = await openDataSource('fashion-mnist');
    const test = await prepareSplit(src.test, shipped.input);
    try {
      const logits = await onnxLogits(new Uint8Array(await readFile(join(root, 'm-tta', ONNX_FILE))), shipped, test);
      const s = new ScoreTally(10).add(logits, test.labels).score();
      expect(shipped.metrics.testTop1).toBe(s.accuracy);
      expect(shipped.metrics.testLoss).toBeCloseTo(s.loss, 6);
    } finally {
      test.close();
    }
    expect(shipped.metrics.testTop1NoTta).toBe(source.metrics.testTop1);
    expect(shipped.metrics.valTop1NoTta).toBe(source.metrics.valTop1);
    expect(shipped.name).toBe('m-tta');
  }, 60_000);

  it('EXPECTED FAILURE - choosing among view sets without a recorded validation split is refused', async () => {
    await train(opts(join(root, 'noval'), 0));
    await expect(exportWithTta({ from: join(root, 'noval', 'm'), out: join(root, 'x'), spec: 'none;flip' })).rejects.toThrow(
      /choosing among 2 view sets needs the validation images: the card of .* records none \(train with --val\)/,
    );
  }, 120_000);
});
