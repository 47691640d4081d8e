// Test-time augmentation built into the exported graph: view semantics, ONNX (real onnxruntime) against the float64
// reference that averages the views' embeddings, and the official onnx checker on a TTA graph.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardReference, initWeights, type MlpConfig } from '../../src/model/mlp.js';
import { forwardReferenceTta, parseTtaSpec, viewSourceIndex } from '../../src/model/tta.js';
import { genericLabels } from '../../src/data/labels.js';
import { buildCard, exportOnnx } from '../../src/export/export.js';
import { createRng, normal } from '../../src/util/rng.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlp-tta-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('views', () => {
  it('parses the specs into the documented view lists', () => {
    expect(parseTtaSpec('flip')).toEqual([
      { dx: 0, dy: 0, flip: false },
      { dx: 0, dy: 0, flip: true },
    ]);
    expect(parseTtaSpec('shift:3')).toHaveLength(5);
    const all = parseTtaSpec('flip,shift:2');
    expect(all).toHaveLength(10);
    expect(all).toContainEqual({ dx: -2, dy: 0, flip: true });
  });

  it('BAD CALL - an unknown spec part is named in the error', () => {
    expect(() => parseTtaSpec('flip,rotate')).toThrow(/"rotate"/);
    expect(() => parseTtaSpec('shift:0')).toThrow(/"shift:0"/);
  });

  it('maps pixels: a shift right reads the pixel to the left, a flip mirrors, the border is black (−1)', () => {
    const geo = { width: 3, height: 2, channels: 2 };
    // Row-major per channel: channel 1 starts at 6.
    expect(Array.from(viewSourceIndex(geo, { dx: 1, dy: 0, flip: false }))).toEqual([-1, 0, 1, -1, 3, 4, -1, 6, 7, -1, 9, 10]);
    expect(Array.from(viewSourceIndex(geo, { dx: 0, dy: 0, flip: true }))).toEqual([2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]);
    expect(Array.from(viewSourceIndex(geo, { dx: 0, dy: -1, flip: false }))).toEqual([3, 4, 5, -1, -1, -1, 9, 10, 11, -1, -1, -1]);
  });
});

describe('exported TTA graph', () => {
  const cases: { cfg: MlpConfig; side: number; channels: 1 | 3; spec: string }[] = [
    { cfg: { depth: 2, width: 32, expansion: 4, inputDim: 3 * 8 * 8, classes: 5 }, side: 8, channels: 3, spec: 'flip,shift:2' },
    { cfg: { depth: 0, width: 16, expansion: 4, inputDim: 10 * 10, classes: 3 }, side: 10, channels: 1, spec: 'shift:1' },
  ];
  for (const { cfg, side, channels, spec } of cases) {
    it(`matches the float64 view-averaging reference: B_${cfg.depth}-Wi_${cfg.width}, ${channels}×${side}×${side}, ${spec}`, async () => {
      const w = initWeights(cfg, 3);
      const views = parseTtaSpec(spec);
      const normalization = channels === 1 ? { mean: [72.94], std: [90.02] } : { mean: [120, 110, 100], std: [60, 55, 50] };
      const card = buildCard({
        name: 'tta',
        cfg,
        labels: genericLabels(cfg.classes),
        input: { width: side, height: side, channels },
        normalization,
        provenance: { kind: 'random' },
        tta: { views },
      });
      const session = await ort.InferenceSession.create(exportOnnx(cfg, w, card));
      const n = 4;
      const rng = createRng(9);
      const x = Float32Array.from({ length: n * cfg.inputDim }, () => normal(rng));
      const out = await session.run({ input: new ort.Tensor('float32', x, [n, cfg.inputDim]) });
      const fill = normalization.mean.map((m, c) => -m / normalization.std[c]);
      const ref = forwardReferenceTta(cfg, w, x, n, { width: side, height: side, channels }, views, fill);
      expect(out.embedding.dims).toEqual([n, cfg.width]);
      expect(maxAbsDiff(out.logits.data as Float32Array, ref.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out.embedding.data as Float32Array, ref.embedding)).toBeLessThan(1e-4);
      // And it really averages: the single-view forward pass gives different logits.
      expect(maxAbsDiff(ref.logits, forwardReference(cfg, w, x, n).logits)).toBeGreaterThan(1e-3);
      await session.release();
    });
  }

  it('passes onnx.checker.check_model(full_check=True)', async () => {
    const cfg: MlpConfig = { depth: 1, width: 16, expansion: 4, inputDim: 6 * 6, classes: 4 };
    const card = buildCard({
      name: 'tta-check',
      cfg,
      labels: genericLabels(4),
      input: { width: 6, height: 6, channels: 1 },
      normalization: { mean: [72.94], std: [90.02] },
      provenance: { kind: 'random' },
      tta: { views: parseTtaSpec('flip,shift:1') },
    });
    const path = join(dir, 'tta.onnx');
    await writeFile(path, exportOnnx(cfg, initWeights(cfg, 1), card));
    const { stdout } = await promisify(execFile)('/usr/bin/python3', [
      '-c',
      'import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")',
      path,
    ]);
    expect(stdout.trim()).toBe('ok');
  });
});
