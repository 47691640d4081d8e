// The PyTorch checkpoint importer against real PyTorch (Debian python3-torch): checkpoints in the scaling_mlps key
// layout, saved by torch.save, imported to ONNX, must give PyTorch's logits (onnxruntime, through the project's own
// image preprocessing); and every mismatch between checkpoint and architecture is refused by name.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CIFAR100_LABELS, CIFAR10_LABELS } from '../../src/data/labels.js';
import { decodeToChw, normalizeChw, preprocessImage } from '../../src/data/preprocess.js';
import { ONNX_FILE, readCard, type ModelCard } from '../../src/model/card.js';
import { CheckpointMismatchError, PAPER_DATASETS, importCheckpoint, parseLabelsFile } from '../../src/import/import-torch.js';
import { TorchCheckpointError } from '../../src/import/binary.js';
import { readTorchStateDict } from '../../src/import/torch-checkpoint.js';
import { makeTorchFixtures, parityImages, prepareImportedParityModel, type ParityImage, type TorchFixture } from '../fixtures/torch-parity.js';

const run = promisify(execFile);
const C10 = PAPER_DATASETS.cifar10;
const C100 = PAPER_DATASETS.cifar100;

let work: string;
let images: ParityImage[];
let fx: Record<'a' | 'b' | 'c' | 'missing' | 'extra' | 'shape', TorchFixture>;
/** max |onnxruntime − PyTorch| per case, printed at the end (the figures of the closing note). */
const figures: Record<string, number> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mlp-import-'));
  images = await parityImages(4);
  const [a, b, c, missing, extra, shape] = await makeTorchFixtures(work, images, [
    { file: 'a.pt', depth: 2, width: 64, classes: 10, seed: 1, mean: C10.mean, std: C10.std },
    { file: 'b.pt', depth: 1, width: 32, classes: 100, seed: 2, mean: C100.mean, std: C100.std, protocol: 4, mutate: 'noncontiguous' },
    { file: 'c.pt', depth: 0, width: 16, classes: 10, seed: 3, mean: C10.mean, std: C10.std },
    { file: 'missing.pt', depth: 1, width: 32, classes: 10, seed: 4, mean: C10.mean, std: C10.std, mutate: 'missing' },
    { file: 'extra.pt', depth: 1, width: 32, classes: 10, seed: 4, mean: C10.mean, std: C10.std, mutate: 'extra' },
    { file: 'shape.pt', depth: 1, width: 32, classes: 10, seed: 4, mean: C10.mean, std: C10.std, mutate: 'shape' },
  ]);
  fx = { a, b, c, missing, extra, shape };
}, 60_000);

afterAll(async () => {
  console.log(`import parity, max |onnxruntime − PyTorch| logits: ${JSON.stringify(figures)}`);
  await rm(work, { recursive: true, force: true });
});

/** Runs the imported model on a batch of inputs; returns logits per image. */
async function ortLogits(dir: string, inputs: Float32Array[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(await readFile(join(dir, ONNX_FILE)));
  try {
    const dim = inputs[0].length;
    const batch = new Float32Array(inputs.length * dim);
    inputs.forEach((x, i) => batch.set(x, i * dim));
    const out = await session.run({ input: new ort.Tensor('float32', batch, [inputs.length, dim]) });
    const classes = out.logits.dims[1];
    const data = out.logits.data as Float32Array;
    return inputs.map((_, i) => Array.from(data.subarray(i * classes, (i + 1) * classes)));
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((row, i) => {
    expect(row.length).toBe(b[i].length);
    row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j]))));
  });
  return m;
}

const geometry = (card: ModelCard) => ({ width: card.input.width, height: card.input.height, channels: card.input.channels });

describe('import of torch.save checkpoints (parity with PyTorch)', () => {
  it('B_2-Wi_64 CIFAR-10, with the pre-training config.txt: PNG → preprocessImage → onnxruntime matches PyTorch within 1e-4', async () => {
    const out = join(work, 'model-a');
    // As upstream ships them: a fine-tuned checkpoint beside its pre-training config.txt (ImageNet-21k head).
    const config = { ...JSON.parse(await readFile(fx.a.config, 'utf8')), num_classes: 11230, dataset: 'imagenet21' };
    const card = await importCheckpoint({ checkpoint: fx.a.checkpoint, out, name: 'model-a', dataset: 'cifar10', arch: 'B_2-Wi_64', config });
    expect(card.labels).toEqual([...CIFAR10_LABELS]);
    expect(card.input).toEqual({ width: 64, height: 64, channels: 3, layout: 'CHW' });
    expect(card.normalization.mean).toEqual(C10.mean);
    expect(card.provenance).toMatchObject({ kind: 'imported', checkpoint: 'a.pt', dataset: 'cifar10' });
    expect(await readCard(out)).toEqual(card);

    // A 64×64 PNG reaches the model pixel-exact: the project's preprocessing is the identity on geometry here.
    const chw = await decodeToChw(images[0].png, geometry(card));
    const hw = 64 * 64;
    for (let p = 0; p < hw; p += 97) for (let c = 0; c < 3; c++) expect(chw[c * hw + p]).toBe(images[0].raw[3 * p + c]);

    const inputs = await Promise.all(images.map((im) => preprocessImage(im.png, geometry(card), card.normalization)));
    const logits = await ortLogits(out, inputs);
    const diff = maxAbsDiff(logits, fx.a.logits);
    figures['B_2-Wi_64 cifar10'] = diff;
    expect(diff).toBeLessThan(1e-4);
    // Different images give different logits: the comparison is not against a constant.
    expect(maxAbsDiff([fx.a.logits[0]], [fx.a.logits[1]])).toBeGreaterThan(1e-2);
  });

  it('B_1-Wi_32 CIFAR-100 via `npm run import` (arch from config.txt, pickle protocol 4, non-contiguous tensor)', async () => {
    const out = join(work, 'model-b');
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const { stdout } = await run(tsx, [
      'scripts/import.ts', '--checkpoint', fx.b.checkpoint, '--config', fx.b.config, '--dataset', 'cifar100', '--out', out,
    ]);
    expect(stdout).toMatch(/B_1-Wi_32/);
    const card = await readCard(out);
    expect(card.labels).toEqual([...CIFAR100_LABELS]);
    const inputs = images.map((im) => {
      const chw = new Uint8Array(3 * 64 * 64);
      for (let p = 0; p < 64 * 64; p++) for (let c = 0; c < 3; c++) chw[c * 64 * 64 + p] = im.raw[3 * p + c];
      return normalizeChw(chw, geometry(card), card.normalization);
    });
    const diff = maxAbsDiff(await ortLogits(out, inputs), fx.b.logits);
    figures['B_1-Wi_32 cifar100'] = diff;
    expect(diff).toBeLessThan(1e-4);
  }, 30_000);

  it('B_0-Wi_16 (no blocks) matches PyTorch', async () => {
    const out = join(work, 'model-c');
    const card = await importCheckpoint({ checkpoint: fx.c.checkpoint, out, name: 'model-c', dataset: 'cifar10', arch: 'B_0-Wi_16' });
    const inputs = await Promise.all(images.map((im) => preprocessImage(im.png, geometry(card), card.normalization)));
    const diff = maxAbsDiff(await ortLogits(out, inputs), fx.c.logits);
    figures['B_0-Wi_16 cifar10'] = diff;
    expect(diff).toBeLessThan(1e-4);
  });

  it('prepareImportedParityModel (the helper for the /classify parity test) yields a loadable model and probabilities', async () => {
    const models = join(work, 'models');
    const m = await prepareImportedParityModel(join(work), models, 'torch-parity');
    expect(await readCard(join(models, 'torch-parity'))).toEqual(m.card);
    m.probabilities.forEach((p) => expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6));
    const inputs = await Promise.all(m.images.map((im) => preprocessImage(im.png, geometry(m.card), m.card.normalization)));
    const diff = maxAbsDiff(await ortLogits(join(models, 'torch-parity'), inputs), m.logits);
    figures['B_2-Wi_64 cifar10 (helper)'] = diff;
    expect(diff).toBeLessThan(1e-4);
  }, 60_000);
});

describe('strictness', () => {
  const attempt = (checkpoint: string, arch: string) =>
    importCheckpoint({ checkpoint, out: join(work, 'never'), name: 'never', dataset: 'cifar10', arch });

  it('EXPECTED FAILURE - a missing key is named', async () => {
    await expect(attempt(fx.missing.checkpoint, 'B_1-Wi_32')).rejects.toThrow(/missing keys: blocks\.0\.block\.2\.bias$/);
  });

  it('EXPECTED FAILURE - an unexpected key is named', async () => {
    await expect(attempt(fx.extra.checkpoint, 'B_1-Wi_32')).rejects.toThrow(/unexpected keys: blocks\.0\.block\.1\.weight$/);
  });

  it('EXPECTED FAILURE - a wrong shape is named with both shapes', async () => {
    const err = await attempt(fx.shape.checkpoint, 'B_1-Wi_32').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect((err as Error).message).toMatch(/linear_out\.weight has shape \[11, 32\], expected \[10, 32\]$/);
  });

  it('EXPECTED FAILURE - the wrong --arch lists every missing block key and the mismatched widths', async () => {
    const err = (await attempt(fx.a.checkpoint, 'B_3-Wi_64').catch((e: unknown) => e)) as CheckpointMismatchError;
    expect(err.missing).toEqual([
      'blocks.2.block.0.weight', 'blocks.2.block.0.bias', 'blocks.2.block.2.weight', 'blocks.2.block.2.bias',
      'layernorms.2.weight', 'layernorms.2.bias',
    ]);
    const err2 = (await attempt(fx.a.checkpoint, 'B_2-Wi_32').catch((e: unknown) => e)) as CheckpointMismatchError;
    expect(err2.wrongShape.map((w) => w.key)).toContain('linear_in.weight');
    expect(err2.message).toMatch(/linear_in\.weight has shape \[64, 12288\], expected \[32, 12288\]/);
  });

  it('EXPECTED FAILURE - the CLI exits 1 with the named error, and the wrong dataset head is caught', async () => {
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const err = (await run(tsx, [
      'scripts/import.ts', '--checkpoint', fx.b.checkpoint, '--arch', 'B_1-Wi_32', '--dataset', 'cifar10', '--out', join(work, 'never'),
    ]).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/linear_out\.weight has shape \[100, 32\], expected \[10, 32\]/);
  }, 30_000);

  it('BAD CALL - imagenet without labels, labels of the wrong count, contradicting config', async () => {
    const base = { checkpoint: fx.a.checkpoint, out: join(work, 'never'), name: 'never', arch: 'B_2-Wi_64' };
    await expect(importCheckpoint({ ...base, dataset: 'imagenet' })).rejects.toThrow(/needs a labels file \(1000 class names/);
    await expect(importCheckpoint({ ...base, dataset: 'cifar10', labels: ['a', 'b'] })).rejects.toThrow(/2 labels given, dataset cifar10 has 10/);
    await expect(
      importCheckpoint({ ...base, dataset: 'cifar10', config: { architecture: 'B_12-Wi_1024' } }),
    ).rejects.toThrow(/--arch B_2-Wi_64 contradicts the config's architecture B_12-Wi_1024/);
  });

  it('EXPECTED FAILURE - not a checkpoint, a legacy file (hostile pickles: test/import/pickle.test.ts)', async () => {
    expect(() => readTorchStateDict(new Uint8Array(1000).fill(7))).toThrow(TorchCheckpointError);
    expect(() => readTorchStateDict(new Uint8Array(1000).fill(7))).toThrow(/not a zip file/);
    expect(() => readTorchStateDict(Uint8Array.of(0x80, 0x02, 0x8a, 0x0a))).toThrow(/legacy/);
  });

  it('labels files: one per line or a JSON array; empty lines refused', async () => {
    expect(parseLabelsFile('cat\ndog\n\n', 'l.txt')).toEqual(['cat', 'dog']);
    expect(parseLabelsFile('["a b", "c"]', 'l.json')).toEqual(['a b', 'c']);
    expect(() => parseLabelsFile('cat\n\ndog\n', 'l.txt')).toThrow(/l\.txt: line 2 is empty/);
    // via the CLI flag with imagenet: 1000 names needed
    const file = join(work, 'labels.txt');
    await writeFile(file, Array.from({ length: 1000 }, (_, i) => `n${i}`).join('\n'));
    await expect(
      importCheckpoint({ checkpoint: fx.a.checkpoint, out: join(work, 'never'), name: 'never', dataset: 'imagenet', arch: 'B_2-Wi_64',
        labels: parseLabelsFile(await readFile(file, 'utf8'), file) }),
    ).rejects.toThrow(/linear_out\.weight has shape \[10, 64\], expected \[1000, 64\]/);
  });
});
