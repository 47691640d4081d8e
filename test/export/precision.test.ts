// Precision variants: an fp16 and an int8 variant of a random model, served by the real app next to the fp32
// original, answer /classify and /embed close to it; bad requests fail at export and leave no file behind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePrecision, quantizePerColumn, toHalfBits, writePrecisionVariant } from '../../src/export/precision.js';
import { readCard } from '../../src/model/card.js';
import { directRun, fashionMnistPngs, makeModels, postImage, softmax64, startApp, type Running, type TempModels } from '../serve/helpers.js';

let models: TempModels;
let srv: Running;

beforeAll(async () => {
  models = await makeModels([{ name: 'small', arch: 'B_2-Wi_96', size: 28, channels: 1, labels: 'fashion-mnist', seed: 3 }]);
  for (const p of ['int8', 'fp16'] as const)
    await writePrecisionVariant({ from: join(models.dir, 'small'), out: join(models.dir, `small-${p}`), precision: p });
  srv = await startApp({ MODELS_DIR: models.dir, BATCH_MAX_DELAY_MS: '2' });
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await models?.cleanup();
});

const relL2 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
};

describe('precision variants', () => {
  it('half conversion rounds to nearest even, and per-column int8 reconstructs each weight within half a step', () => {
    expect([1, -2, 65504, 0.1, 2 ** -24, 2 ** -26, 1e6].map(toHalfBits)).toEqual([0x3c00, 0xc000, 0x7bff, 0x2e66, 0x0001, 0x0000, 0x7c00]);
    const w = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 3)));
    const { q, scale } = quantizePerColumn(w, 4, 3);
    for (let i = 0; i < w.length; i++) expect(Math.abs(q[i] * scale[i % 3] - w[i])).toBeLessThanOrEqual(scale[i % 3] / 2 + 1e-7);
    expect(Math.max(...Array.from(q, Math.abs))).toBe(127);
  });

  it('the card records the precision; int8 is ~¼ and fp16 ~½ of the fp32 file', async () => {
    expect((await readCard(join(models.dir, 'small-int8'))).precision).toBe('int8');
    expect((await readCard(join(models.dir, 'small-fp16'))).precision).toBe('fp16');
    expect((await readCard(join(models.dir, 'small'))).precision).toBeUndefined();
    const size = async (m: string) => (await readFile(join(models.dir, m, 'model.onnx'))).byteLength;
    const fp32 = await size('small');
    expect((await size('small-int8')) / fp32).toBeLessThan(0.3);
    expect((await size('small-fp16')) / fp32).toBeLessThan(0.55);
  });

  it('served: /classify and /embed of the variants stay close to the fp32 model on real Fashion-MNIST images', async () => {
    const card = await readCard(join(models.dir, 'small'));
    // Tolerances: fp16 keeps 11 significant bits (relative error ≤ 2^-11 ≈ 5e-4 per weight), int8 about 7 (weights
    // within scale/2 = max|w|/254, activations within range/510 of their value); independent errors of that size
    // average down over the dot products, so the embedding's relative L2 error is expected below each format's
    // per-element bound. This seed gives int8 ≈ 0.0075 and fp16 ≈ 0.0003 (probabilities within 7e-4 and 3e-5):
    // the bounds are ~3× that, and far below what a wrong scale or a transposed weight gives (tens of %).
    const tol = { 'small-int8': { emb: 0.02, prob: 0.002 }, 'small-fp16': { emb: 0.001, prob: 1e-4 } } as const;
    for (const s of await fashionMnistPngs(6)) {
      const direct = await directRun(join(models.dir, 'small'), card, s.png);
      const probs = softmax64(direct.logits);
      for (const model of ['small-int8', 'small-fp16'] as const) {
        const res = await postImage(srv.base, `/classify?model=${model}&top_k=10`, s.png);
        expect(res.status).toBe(200);
        for (const p of res.json.predictions) expect(Math.abs(p.score - probs[p.index])).toBeLessThan(tol[model].prob);
        const e = await postImage(srv.base, `/embed?model=${model}`, s.png);
        expect(e.status).toBe(200);
        expect(relL2(e.json.embedding, direct.embedding)).toBeLessThan(tol[model].emb);
        expect(relL2(e.json.embedding, direct.embedding)).toBeGreaterThan(0); // really the variant, not the original
      }
    }
  });

  it('an unsupported precision, an existing --out, or a variant as source: a clear error and no file written', async () => {
    expect(() => parsePrecision('int4')).toThrow(/unsupported precision "int4": expected one of fp32, fp16, int8/);
    const before = await readdir(models.dir);
    await expect(
      writePrecisionVariant({ from: join(models.dir, 'small'), out: join(models.dir, 'x'), precision: 'int4' as never }),
    ).rejects.toThrow(/unsupported precision/);
    await expect(
      writePrecisionVariant({ from: join(models.dir, 'small'), out: join(models.dir, 'small-int8'), precision: 'int8' }),
    ).rejects.toThrow(/already exists/);
    await expect(
      writePrecisionVariant({ from: join(models.dir, 'small-int8'), out: join(models.dir, 'y'), precision: 'fp16' }),
    ).rejects.toThrow(/already int8; convert from the fp32 model/);
    expect(await readdir(models.dir)).toEqual(before);
    expect(existsSync(join(models.dir, 'x'))).toBe(false);
  });
});
