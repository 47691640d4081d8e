// Resume equals an uninterrupted run: stopping mid-epoch (an abort, as Ctrl-C does) and resuming from the
// checkpoint ends with bit-identical weights, evaluations and card metrics, with the full recipe on (random crops,
// flips, shifts, label smoothing, MixUp) so every random stream is exercised. A resume under other options is refused.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnxWeights } from '../../src/export/export.js';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainOptions } from '../../src/train/train.js';

let root: string;
const opts = (out: string): TrainOptions => ({
  ...DEFAULT_TRAIN_OPTIONS,
  data: 'fashion-mnist',
  arch: 'B_1-Wi_32',
  epochs: 2,
  out,
  name: 'r',
  size: 16,
  channels: 1,
  maxExamples: 576,
  val: 64, // 512 left to train on: 8 steps an epoch
  maxEvalExamples: 200,
  batchSize: 64,
  lr: 1e-3,
  augment: { cropScale: [0.5, 1], cropRatio: [3 / 4, 4 / 3], flip: true, translate: 1 },
  warmupEpochs: 0.5,
  engine: 'tfjs',
  logEvery: 3,
});
const withoutTimes = <T extends { elapsedSeconds: number }>(xs: T[]) => xs.map(({ elapsedSeconds: _, ...rest }) => rest);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mlp-resume-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resume', () => {
  it('stop at step 5 of 16 (8 an epoch), resume: same weights, evaluations and metrics as the uninterrupted run', async () => {
    const whole = await train(opts(join(root, 'whole')));

    const controller = new AbortController();
    const first = await train(opts(join(root, 'split')), {
      signal: controller.signal,
      onStep: ({ step }) => step === 4 && controller.abort(),
    });
    expect(first.stopped).toBe(true);
    expect(first.steps).toBe(5);
    expect(first.checkpoint).toMatch(/ckpt-e0000-s0000005-c.*\.json$/);
    const second = await train({ ...opts(join(root, 'split')), resume: true });
    expect(second.stopped).toBe(false);
    expect(second.steps).toBe(16);

    const a = readOnnxWeights(await readFile(join(whole.modelDir!, 'model.onnx')));
    const b = readOnnxWeights(await readFile(join(second.modelDir!, 'model.onnx')));
    expect(b.weights).toEqual(a.weights);
    expect(withoutTimes(second.evals)).toEqual(withoutTimes(whole.evals));
    expect(second.card!.metrics).toEqual(whole.card!.metrics);
    expect(second.card!.provenance).toMatchObject({ examplesSeen: 2 * 512, steps: 16, dataset: { trainExamples: 512, valExamples: 64 } });
    // The resumed log continues the first one: one start line per session, evaluations once each.
    const log = (await readFile(join(second.modelDir!, 'train.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(log.filter((l) => l.type === 'start')).toHaveLength(2);
    expect(log.filter((l) => l.type === 'eval').map((l) => l.epoch)).toEqual([1, 2]);
  }, 120_000);

  it('BAD CALL - resuming with a different recipe is refused, naming what differs', async () => {
    await expect(train({ ...opts(join(root, 'split')), lr: 5e-4, resume: true })).rejects.toThrow(
      /options differ from the checkpoint's: lr: checkpoint 0\.001, now 0\.0005/,
    );
  }, 30_000);

  it('BAD CALL - a model name that cannot be a directory is refused before any work', async () => {
    await expect(train({ ...opts(join(root, 'bad')), name: '../evil' })).rejects.toThrow(/name "\.\.\/evil" must be/);
    await expect(train({ ...opts(join(root, 'bad')), batchSize: 0 })).rejects.toThrow(/batchSize 0 must be a whole number/);
  });

  it('EXPECTED FAILURE - --resume with no checkpoint says where it looked', async () => {
    await expect(train({ ...opts(join(root, 'empty')), resume: true })).rejects.toThrow(/--resume: no checkpoint in .*empty/);
  });
});
