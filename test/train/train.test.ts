// A short real training run on a Fashion-MNIST subset (tfjs engine): it learns, writes a servable model directory
// with its card, log and plot; the service started on that directory answers over HTTP with the predictions of the
// engine's own forward pass; and the CLI's documented command line works.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCard } from '../../src/model/card.js';
import { flopsPerImage } from '../../src/model/mlp.js';
import { decodeToChw, normalizeChw, type RawImage } from '../../src/data/preprocess.js';
import { openDataSource } from '../../src/data/resolve.js';
import { createEngine } from '../../src/train/engines/tfjs.js';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainOptions, type TrainResult } from '../../src/train/train.js';
import { postFiles, startApp } from '../serve/helpers.js';

let out: string;
let result: TrainResult;
const opts = (dir: string): TrainOptions => ({
  ...DEFAULT_TRAIN_OPTIONS,
  data: 'fashion-mnist',
  arch: 'B_1-Wi_64',
  epochs: 3,
  out: dir,
  name: 'fm-test',
  size: 28,
  channels: 1,
  maxExamples: 4096,
  val: 512,
  maxEvalExamples: 1000,
  batchSize: 128,
  lr: 1e-3,
  weightDecay: 0.1,
  labelSmoothing: 0.1,
  mixup: 0,
  augment: { cropScale: null, cropRatio: [3 / 4, 4 / 3], flip: true, translate: 1 },
  engine: 'tfjs',
  command: 'test/train/train.test.ts',
});

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'mlp-train-'));
  result = await train(opts(out));
}, 120_000);
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('train', () => {
  it('learns: validation accuracy far above chance (10%) every epoch, loss falls; the test split is scored once at the end', () => {
    expect(result.stopped).toBe(false);
    expect(result.evals.map((e) => e.epoch)).toEqual([1, 2, 3]);
    expect(result.evals.at(-1)!.valAccuracy).toBeGreaterThan(0.7);
    expect(result.evals.at(-1)!.valLoss).toBeLessThan(result.evals[0].valLoss! + 0.05);
    expect(result.val).toEqual({ accuracy: result.evals.at(-1)!.valAccuracy, loss: result.evals.at(-1)!.valLoss });
    expect(result.test!.accuracy).toBeGreaterThan(0.7);
    expect(result.steps).toBe(3 * 28); // (4096 − 512 held out) / 128
  });

  it('writes <out>/<name>/ with a valid card recording the run, a JSONL log and an SVG plot', async () => {
    const dir = join(out, 'fm-test');
    expect(result.modelDir).toBe(dir);
    const card = await readCard(dir);
    expect(card.arch.name).toBe('B_1-Wi_64');
    expect(card.input).toEqual({ width: 28, height: 28, channels: 1, layout: 'CHW' });
    expect(card.metrics).toEqual({
      valTop1: result.val!.accuracy, valLoss: result.val!.loss, testTop1: result.test!.accuracy, testLoss: result.test!.loss,
    });
    const p = card.provenance as Record<string, any>;
    expect(p.kind).toBe('trained');
    expect(p.command).toBe('test/train/train.test.ts');
    expect(p.dataset).toMatchObject({ name: 'fashion-mnist', trainSplit: 'train', testSplit: 'test', trainExamples: 3584, valExamples: 512, testExamples: 1000 });
    expect(p.examplesSeen).toBe(3 * 3584);
    expect(p.computeFlops).toBe(3 * flopsPerImage(result.cfg) * 3 * 3584);
    // The held-out images, by index into the training split, with each class in proportion.
    expect(p.split).toMatchObject({ refit: false, validation: { from: 'train', examples: 512, stratified: true, seed: 0, ofFirst: 4096 } });
    const held: number[] = p.split.validation.indices;
    expect(new Set(held).size).toBe(512);
    expect(held.every((i) => Number.isInteger(i) && i >= 0 && i < 4096)).toBe(true);
    expect(Object.keys(p.split.metrics)).toEqual(['valTop1', 'testTop1']);
    expect(p.recipe).toMatchObject({ optimizer: 'lion', lr: 1e-3, labelSmoothing: 0.1, mixupAlpha: 0 });
    expect(p).toMatchObject({ seed: 0, epochs: 3, engine: 'tfjs-wasm' });
    expect(p.wallSeconds).toBeGreaterThanOrEqual(0);
    const lines = (await readFile(join(dir, 'train.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0].type).toBe('start');
    expect(lines.filter((l) => l.type === 'eval')).toHaveLength(3);
    expect(lines.filter((l) => l.type === 'test')).toEqual([{ type: 'test', split: 'test', examples: 1000, accuracy: result.test!.accuracy, loss: result.test!.loss }]);
    expect(lines.filter((l) => l.type === 'step').length).toBeGreaterThanOrEqual(9);
    const svg = await readFile(join(dir, 'training.svg'), 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('validation accuracy');
  });

  it('the service on <out> classifies PNG uploads exactly as the engine predicts on the same images', async () => {
    const src = await openDataSource('fashion-mnist', { install: false });
    const card = await readCard(result.modelDir!);
    const geo = { width: 28, height: 28, channels: 1 as const };
    const n = 48;
    const pngs: Uint8Array[] = [];
    const x = new Float32Array(n * 784);
    for (let i = 0; i < n; i++) {
      const img = (await src.test.image(i)) as RawImage;
      pngs.push(await sharp(img.raw, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer());
      normalizeChw(await decodeToChw(img, geo), geo, card.normalization, x, i * 784);
    }
    const engine = await createEngine();
    await engine.init(result.cfg, result.weights!);
    const logits = await engine.predict(x, n);
    await engine.dispose();

    const app = await startApp({ MODELS_DIR: out });
    try {
      const res = await postFiles(app.base, '/classify?top_k=10', pngs.map((bytes) => ({ bytes })));
      expect(res.status).toBe(200);
      expect(res.json.model).toBe('fm-test');
      for (let i = 0; i < n; i++) {
        const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
        const max = Math.max(...row);
        const z = row.reduce((s, v) => s + Math.exp(v - max), 0);
        const served: { label: string; score: number }[] = res.json.results[i].predictions;
        const best = row.indexOf(max);
        expect(served[0].label).toBe(card.labels[best]);
        for (const p of served) expect(p.score).toBeCloseTo(Math.exp(row[card.labels.indexOf(p.label)] - max) / z, 5);
      }
    } finally {
      await app.close();
    }
  }, 60_000);

  it('the CLI trains and exports with the documented flags (plus subset flags to stay fast)', async () => {
    const cliOut = join(out, 'cli');
    const args = ['scripts/train.ts', '--data', 'fashion-mnist', '--arch', 'B_2-Wi_128', '--epochs', '1', '--out', cliOut,
      '--size', '28', '--max-examples', '1024', '--val', '200', '--max-eval-examples', '500', '--engine', 'tfjs'];
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(stderr).not.toMatch(/Error/);
    expect(code).toBe(0);
    expect(stdout).toMatch(/epoch 1\/1 .*val loss \d+\.\d+ +val top-1 \d+\.\d\d%/);
    expect(stdout).not.toMatch(/epoch .*test/);
    expect(stdout.match(/^test \(read once, 500 images\): loss \d+\.\d+ +top-1 \d+\.\d\d%$/gm)).toHaveLength(1);
    const card = await readCard(join(cliOut, 'fashion-mnist-B_2-Wi_128'));
    // The card names no machine's directories: --out is recorded relative to the working directory.
    const recorded = args.slice(1).map((a) => (a === cliOut ? relative(process.cwd(), cliOut) : a));
    expect(card.provenance.command).toBe(`npm run train -- ${recorded.join(' ')}`);
    expect(card.provenance.command).not.toContain(' /');
    expect(card.metrics).toMatchObject({ valTop1: expect.any(Number), testTop1: expect.any(Number) });
    expect(card.input.width).toBe(28);
  }, 180_000);

  it('Ctrl-C (SIGINT to the process group, as npm run train gets it) checkpoints, exits 130, and --resume finishes', async () => {
    const sigOut = join(out, 'sigint');
    const args = ['--import', 'tsx', 'scripts/train.ts', '--data', 'fashion-mnist', '--arch', 'B_1-Wi_32', '--epochs', '2',
      '--out', sigOut, '--size', '16', '--max-examples', '2048', '--val', '0', '--max-eval-examples', '200', '--batch-size', '32', '--engine', 'tfjs'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    // The first progress line means the loop runs: interrupt it there, once (a second Ctrl-C quits at once).
    let interrupted = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/img\/s/.test(stderr) && !interrupted) {
        interrupted = true;
        process.kill(-child.pid!, 'SIGINT');
      }
    });
    expect(await new Promise((res) => child.on('close', res))).toBe(130);
    expect(stdout).toMatch(/stopped at step \d+; checkpoint .*ckpt-e0000-s\d+-c.*\.json/);
    expect(stderr).toMatch(/resume with: npm run train -- .* --resume /);
    const resumed = spawn(process.execPath, [...args, '--resume'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let resumedOut = '';
    resumed.stdout.on('data', (d) => (resumedOut += d));
    expect(await new Promise((res) => resumed.on('close', res))).toBe(0);
    expect(resumedOut).toMatch(/resumed from .* at step [1-9]\d*/);
    expect((await readCard(join(sigOut, 'fashion-mnist-B_1-Wi_32'))).provenance).toMatchObject({ steps: 128 });
  }, 180_000);

  it('BAD CALL - the CLI refuses a missing required flag with usage, exit code 2', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/train.ts', '--data', 'fashion-mnist'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    expect(await new Promise((res) => child.on('close', res))).toBe(2);
    expect(stderr).toMatch(/--arch is required/);
    expect(stderr).toMatch(/Usage: npm run train/);
  }, 90_000);
});
