// The ONNX exporter against the float64 reference forward pass (real onnxruntime), the official onnx checker
// (Debian python3-onnx), the card's round trip through metadata_props, and the export:random CLI.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardReference, initWeights, namedTensors, type MlpConfig, type MlpWeights } from '../../src/model/mlp.js';
import { readCard, ONNX_FILE, type ModelCard } from '../../src/model/card.js';
import { genericLabels, NORMALIZATIONS } from '../../src/data/labels.js';
import { buildCard, exportOnnx, readOnnxWeights, writeModelDir } from '../../src/export/export.js';
import { decodeModel } from '../../src/export/onnx-proto.js';
import { createRng, normal } from '../../src/util/rng.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlp-export-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Random weights with non-trivial LayerNorm γ/β, so a swapped γ/β or a missing norm would show. */
function randomWeights(cfg: MlpConfig, seed: number): MlpWeights {
  const w = initWeights(cfg, seed);
  const rng = createRng(seed + 1000);
  for (const b of w.blocks) {
    for (let i = 0; i < cfg.width; i++) {
      b.norm.gamma[i] = 1 + 0.5 * normal(rng);
      b.norm.beta[i] = 0.3 * normal(rng);
    }
  }
  return w;
}

function cardFor(cfg: MlpConfig, side: number, channels: 1 | 3, name: string): ModelCard {
  return buildCard({
    name,
    cfg,
    labels: genericLabels(cfg.classes),
    input: { width: side, height: side, channels },
    normalization: channels === 1 ? NORMALIZATIONS['fashion-mnist'] : NORMALIZATIONS.imagenet,
    provenance: { kind: 'random', seed: 1 },
  });
}

const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function pythonCheck(path: string): Promise<void> {
  const script = 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")';
  try {
    const { stdout } = await run(PYTHON, ['-c', script, path]);
    expect(stdout.trim()).toBe('ok');
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? err);
    if (/No module named .?onnx/.test(msg) || /ENOENT/.test(msg))
      throw new Error(`${PYTHON} cannot import onnx: install Debian's python3-onnx (apt-get install python3-onnx)\n${msg}`);
    throw new Error(`onnx.checker rejected ${path}:\n${msg}`);
  }
}

const CASES: { arch: string; cfg: MlpConfig; side: number; channels: 1 | 3 }[] = [
  { arch: 'B_0-Wi_32', cfg: { depth: 0, width: 32, expansion: 4, inputDim: 3 * 8 * 8, classes: 7 }, side: 8, channels: 3 },
  { arch: 'B_1-Wi_64', cfg: { depth: 1, width: 64, expansion: 4, inputDim: 16 * 16, classes: 10 }, side: 16, channels: 1 },
  { arch: 'B_3-Wi_48', cfg: { depth: 3, width: 48, expansion: 2, inputDim: 3 * 12 * 12, classes: 5 }, side: 12, channels: 3 },
  { arch: 'B_2-Wi_128', cfg: { depth: 2, width: 128, expansion: 4, inputDim: 3 * 64 * 64, classes: 100 }, side: 64, channels: 3 },
];

describe('exportOnnx', () => {
  for (const c of CASES) {
    it(`${c.arch} (expansion ${c.cfg.expansion}): onnxruntime matches the float64 reference for batch 1 and 5`, async () => {
      const weights = randomWeights(c.cfg, 7);
      const card = cardFor(c.cfg, c.side, c.channels, `t-${c.arch}`);
      const bytes = exportOnnx(c.cfg, weights, card);
      const session = await ort.InferenceSession.create(bytes);
      try {
        expect(session.inputNames).toEqual(['input']);
        expect([...session.outputNames].sort()).toEqual(['embedding', 'logits']);
        const rng = createRng(42);
        for (const n of [1, 5]) {
          // Inputs on the normalised scale (≈ N(0, 1)), as the server feeds them.
          const x = new Float32Array(n * c.cfg.inputDim).map(() => normal(rng));
          const out = await session.run({ input: new ort.Tensor('float32', x, [n, c.cfg.inputDim]) });
          const ref = forwardReference(c.cfg, weights, x, n);
          expect(out.logits.dims).toEqual([n, c.cfg.classes]);
          expect(out.embedding.dims).toEqual([n, c.cfg.width]);
          expect(maxAbsDiff(out.logits.data as Float32Array, ref.logits)).toBeLessThan(1e-4);
          expect(maxAbsDiff(out.embedding.data as Float32Array, ref.embedding)).toBeLessThan(1e-4);
          // The reference is not trivially small: a diff under 1e-4 is meaningful.
          expect(Math.max(...Array.from(ref.logits, Math.abs))).toBeGreaterThan(0.05);
        }
      } finally {
        await session.release();
      }
    });
  }

  it('declares opset 17, IR 8, producer mlp-serve, a symbolic batch dim, and embeds the card', () => {
    const { cfg, side, channels } = CASES[1];
    const card = cardFor(cfg, side, channels, 'meta');
    const model = decodeModel(exportOnnx(cfg, initWeights(cfg, 3), card));
    expect(Number(model.ir_version)).toBe(8);
    expect(model.opset_import.map((o) => [o.domain ?? '', Number(o.version)])).toEqual([['', 17]]);
    expect(model.producer_name).toBe('mlp-serve');
    const inDims = model.graph.input[0].type.tensor_type.shape.dim;
    expect(inDims[0].dim_param).toBe('batch');
    expect(Number(inDims[1].dim_value)).toBe(cfg.inputDim);
    const entry = model.metadata_props?.find((e) => e.key === 'model_card');
    expect(entry).toBeDefined();
    expect(JSON.parse(entry!.value)).toEqual(card);
    expect(model.graph.node.filter((n) => n.op_type === 'Erf')).toHaveLength(cfg.depth);
    expect(model.graph.node.filter((n) => n.op_type === 'LayerNormalization')).toHaveLength(cfg.depth);
  });

  it('readOnnxWeights gives back the exact config, weights and card', () => {
    for (const c of CASES) {
      const weights = randomWeights(c.cfg, 11);
      const card = cardFor(c.cfg, c.side, c.channels, 'rt');
      const back = readOnnxWeights(exportOnnx(c.cfg, weights, card));
      expect(back.cfg).toEqual(c.cfg);
      expect(back.card).toEqual(card);
      // Byte comparison: vitest's deep equality is slow on million-element typed arrays.
      const a = namedTensors(back.weights);
      const b = namedTensors(weights);
      expect(a.map((t) => [t.name, t.shape])).toEqual(b.map((t) => [t.name, t.shape]));
      a.forEach((t, i) => expect(Buffer.compare(bytesOf(t.data), bytesOf(b[i].data))).toBe(0));
    }
  });

  it('passes onnx.checker.check_model(full_check=True) of python3-onnx, for depth 0 and depth > 0', async () => {
    for (const c of [CASES[0], CASES[2]]) {
      const out = join(dir, `check-${c.arch}`);
      const card = cardFor(c.cfg, c.side, c.channels, `check-${c.arch}`);
      await writeModelDir(out, c.cfg, randomWeights(c.cfg, 5), card);
      await pythonCheck(join(out, ONNX_FILE));
      expect(await readCard(out)).toEqual(card);
    }
  }, 60_000);

  it('BAD CALL - labels that do not match the classes are refused, naming both counts', () => {
    const { cfg, side, channels } = CASES[1];
    expect(() =>
      buildCard({
        name: 'bad',
        cfg,
        labels: genericLabels(cfg.classes + 1),
        input: { width: side, height: side, channels },
        normalization: NORMALIZATIONS['fashion-mnist'],
        provenance: { kind: 'random' },
      }),
    ).toThrow(/11 labels given, config has 10 classes/);
    expect(() =>
      buildCard({
        name: 'bad',
        cfg,
        labels: genericLabels(cfg.classes),
        input: { width: side + 1, height: side, channels },
        normalization: NORMALIZATIONS['fashion-mnist'],
        provenance: { kind: 'random' },
      }),
    ).toThrow(/inputDim 256/);
  });
});

describe('npm run export:random', () => {
  const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');

  it('writes a directory readCard() accepts and onnxruntime loads', async () => {
    const out = join(dir, 'rand-fm');
    const { stdout } = await run(tsx, [
      'scripts/export-random.ts', '--arch', 'B_1-Wi_32', '--out', out, '--size', '28', '--channels', '1',
      '--labels', 'fashion-mnist', '--seed', '3',
    ]);
    expect(stdout).toMatch(/B_1-Wi_32/);
    const card = await readCard(out);
    expect(card.name).toBe('rand-fm');
    expect(card.labels[0]).toBe('T-shirt/top');
    expect(card.input).toEqual({ width: 28, height: 28, channels: 1, layout: 'CHW' });
    expect(card.provenance.kind).toBe('random');
    const bytes = await readFile(join(out, ONNX_FILE));
    const session = await ort.InferenceSession.create(bytes);
    const x = new Float32Array(2 * 28 * 28);
    const res = await session.run({ input: new ort.Tensor('float32', x, [2, 28 * 28]) });
    expect(res.logits.dims).toEqual([2, 10]);
    await session.release();
    // Same seed, same weights: the file is reproducible apart from the card's timestamp.
    const back = readOnnxWeights(bytes);
    const again = namedTensors(initWeights(back.cfg, 3));
    namedTensors(back.weights).forEach((t, i) => expect(Buffer.compare(bytesOf(t.data), bytesOf(again[i].data))).toBe(0));
  }, 30_000);

  it('EXPECTED FAILURE - a malformed arch is a usage error (exit 2) with a message naming it', async () => {
    const err = await run(tsx, ['scripts/export-random.ts', '--arch', 'B6-W512', '--out', join(dir, 'x')]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/--arch: arch "B6-W512" is not of the form/);
  }, 30_000);
});
