// Fine-tuning on real MNIST digits from a Fashion-MNIST-labelled model (small subset, seconds): the head is
// replaced for the new labels, the body moves at most lr × 0.1 per LION step while the head moves at lr, the
// exported model is served by the real service, the from-scratch baseline is a plain trained model, and the CLI.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import type { RawImage } from '../../src/data/preprocess.js';
import { DEFAULT_FINETUNE, finetune, loadModel, replaceHead, type FinetuneOptions } from '../../src/finetune/finetune.js';
import type { Linear } from '../../src/model/mlp.js';
import { writeRandomModel } from '../../src/export/random.js';
import { startApp } from '../serve/helpers.js';

const run = promisify(execFile);
let dir: string;
let source: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'finetune-'));
  source = join(dir, 'fashion-tiny');
  await writeRandomModel({ arch: 'B_1-Wi_32', name: 'fashion-tiny', out: source, size: 16, channels: 1, labels: 'fashion-mnist', seed: 1 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function maxDelta(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const bodyTensors = (w: { stem: Linear; blocks: { expand: Linear; collapse: Linear; norm: { gamma: Float32Array; beta: Float32Array } }[] }) => [
  w.stem.weight, w.stem.bias,
  ...w.blocks.flatMap((b) => [b.norm.gamma, b.norm.beta, b.expand.weight, b.expand.bias, b.collapse.weight, b.collapse.bias]),
];

const base = (out: string): FinetuneOptions => ({
  ...DEFAULT_FINETUNE,
  from: source,
  data: 'mnist',
  out,
  epochs: 1,
  lr: 1e-3,
  weightDecay: 0,
  batchSize: 128,
  maxExamples: 512,
  maxEvalExamples: 200,
});

describe('replaceHead', () => {
  it('keeps the body and gives a fresh head of the new size', async () => {
    const m = await loadModel(source);
    const r = replaceHead(m.cfg, m.weights, 3, 7);
    expect(r.cfg.classes).toBe(3);
    expect(r.weights.stem).toBe(m.weights.stem);
    expect(r.weights.head.weight.length).toBe(32 * 3);
    expect(replaceHead(m.cfg, m.weights, 3, 7).weights.head.weight).toEqual(r.weights.head.weight);
    expect(() => replaceHead(m.cfg, m.weights, 0, 7)).toThrow(/classes 0/);
  });
});

describe('finetune', () => {
  it('trains the new head at lr and the body at lr × 0.1, and exports a servable digit model', async () => {
    const out = join(dir, 'tuned');
    const before = await loadModel(source);
    const res = await finetune({ ...base(out), bodyLrScale: 0.1 });
    const card = res.card!;
    expect(card.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(card.provenance.kind).toBe('finetuned');
    const prov = card.provenance as { from?: string; bodyLrScale?: number };
    expect(prov.from).toMatch(/^fashion-tiny \(/);
    expect(prov.bodyLrScale).toBe(0.1);
    expect(card.normalization).toEqual(before.card.normalization);
    expect(card.input).toEqual(before.card.input);
    expect(card.name).toBe('fashion-tiny-mnist');

    // LION moves each weight by exactly the step's lr (wd 0): ≤ steps·lr·0.1 in the body, up to steps·lr in the head.
    const steps = res.steps;
    expect(steps).toBe(4);
    const after = res.weights!;
    const body = Math.max(...bodyTensors(before.weights).map((t, i) => maxDelta(t, bodyTensors(after)[i])));
    expect(body).toBeGreaterThan(0);
    expect(body).toBeLessThanOrEqual(steps * 1e-4 * 1.001);
    const freshHead = replaceHead(before.cfg, before.weights, 10, DEFAULT_FINETUNE.seed).weights.head;
    const head = Math.max(maxDelta(freshHead.weight, after.head.weight), maxDelta(freshHead.bias, after.head.bias));
    expect(head).toBeGreaterThan(steps * 1e-4 * 2);
    expect(head).toBeLessThanOrEqual(steps * 1e-3 * 1.001);

    // The exported model is served: a real MNIST digit over HTTP gets digit labels.
    const mnist = await openDataSource('mnist');
    const img = (await mnist.test.image(0)) as RawImage;
    const png = await sharp(img.raw, { raw: { width: img.width, height: img.height, channels: 1 } }).png().toBuffer();
    const server = await startApp({ MODELS_DIR: out });
    try {
      const r = await fetch(`${server.base}/classify?model=fashion-tiny-mnist&top_k=10`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: new Uint8Array(png),
      });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { predictions: { label: string }[] };
      expect(body.predictions.map((p) => p.label).sort()).toEqual(card.labels);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('trains the same recipe from random init as the from-scratch baseline', async () => {
    const out = join(dir, 'scratch');
    const before = await loadModel(source);
    const res = await finetune({ ...base(out), scratch: true });
    expect(res.card!.provenance.kind).toBe('trained');
    expect(res.card!.name).toBe('fashion-tiny-mnist-scratch');
    expect(res.card!.normalization).toEqual(before.card.normalization);
    // Not the pretrained body: far more than 4 small steps away from it.
    expect(maxDelta(before.weights.stem.weight, res.weights!.stem.weight)).toBeGreaterThan(0.05);
  }, 60_000);

  it('BAD CALL - a directory without a model is refused with its path', async () => {
    await expect(finetune({ ...base(join(dir, 'x')), from: join(dir, 'nothing') })).rejects.toThrow(/nothing.*model\.json/);
  });
});

describe('npm run finetune', () => {
  it('fine-tunes, trains the scratch baseline, and prints the comparison', async () => {
    const out = join(dir, 'cli');
    const { stdout } = await run(
      'npx',
      ['tsx', 'scripts/finetune.ts', '--from', source, '--data', 'mnist', '--out', out, '--epochs', '1', '--max-examples', '256',
        '--max-eval-examples', '100', '--compare-scratch', '--json', join(dir, 'cli.json')],
      { timeout: 120_000 },
    );
    expect(stdout).toMatch(/\| fine-tuned from .*fashion-tiny \| \d+\.\d+% \| 256 \|/);
    expect(stdout).toMatch(/\| from scratch \| \d+\.\d+% \| 256 \|/);
    const json = JSON.parse(await readFile(join(dir, 'cli.json'), 'utf8')) as { results: { finetuned: { provenance: string } } };
    expect(json.results.finetuned.provenance).toBe('finetuned');
  }, 120_000);
});
