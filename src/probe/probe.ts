// A linear-probe run end to end: a data set's first N train and test images → features (served /embed, local
// onnxruntime, a random-init twin of the model, or raw pixels) → the L2 logistic-regression probe → test accuracy.

import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataSource } from '../data/resolve.js';
import type { Dataset } from '../data/dataset.js';
import { CARD_FILE, readCard, ONNX_FILE } from '../model/card.js';
import { initWeights } from '../model/mlp.js';
import { buildCard, configFromCard, writeModelDir } from '../export/export.js';
import { compareVersions } from '../serve/model-repo.js';
import type { ImageList } from '../data/dataset.js';
import { readEmbeddings } from '../embed/run.js';
import { localEmbeddings, pixelFeatures, servedEmbeddings, type OnProgress } from './embeddings.js';
import { writeProbeModel } from './export-probe.js';
import { evaluateProbe, fitProbe, type FeatureMatrix, type ProbeOptions } from './logreg.js';

/** Where the features come from. */
export type FeatureSource =
  | { kind: 'served'; url: string; model?: string; batchSize?: number; concurrency?: number }
  | { kind: 'local'; modelDir: string }
  /** The model's architecture and input, freshly initialised: what training bought, by difference. */
  | { kind: 'random-init'; modelDir: string; seed?: number }
  | { kind: 'pixels' }
  /** Directories written by `npm run embed` (or merged from its shards) for the train and test splits. */
  | { kind: 'files'; trainDir: string; testDir: string };

export interface ProbeRunOptions {
  /** `--data` spec (fashion-mnist, mnist, cifar10:DIR, …). */
  data: string;
  /** First N training images (default 6000). */
  trainN?: number;
  /** First N test images (default 10 000). */
  testN?: number;
  source: FeatureSource;
  probe?: ProbeOptions;
  /** Also write the probe as a servable model (needs a `local` source: the body is that model's). */
  exportTo?: { dir: string; name: string; command?: string };
  /** Progress of feature extraction, per split. */
  progress?: (split: string) => { update: OnProgress; done(): void };
}

export interface ProbeReport {
  /** Human description of the features, e.g. `local fashion-mlp (B_4-Wi_512)`. */
  features: string;
  data: string;
  trainN: number;
  testN: number;
  dim: number;
  lambda: number;
  valAccuracy: number;
  trainAccuracy: number;
  testAccuracy: number;
  testLoss: number;
  featureSeconds: number;
  fitSeconds: number;
  /** Retries the served client needed (503s, resets). */
  retries?: number;
  /** The model directory written by `exportTo`. */
  exported?: string;
}

function firstN(ds: Dataset, n: number): ImageList {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`${ds.split} size ${n} must be a whole number ≥ 1`);
  if (n > ds.size) throw new RangeError(`${ds.name} ${ds.split} has ${ds.size} images, ${n} were asked for`);
  return { size: n, image: (i) => ds.image(i) };
}

function labelsOf(ds: Dataset, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => ds.label(i));
}

/** A random-init twin of the model in `modelDir` (same arch, input, normalisation), written to a temp directory. */
async function randomTwin(modelDir: string, seed: number): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const card = await readCard(modelDir);
  const cfg = configFromCard(card);
  const dir = await mkdtemp(join(tmpdir(), 'probe-random-'));
  const twin = buildCard({
    name: `${card.name}-random-init`,
    cfg,
    labels: card.labels,
    input: card.input,
    normalization: card.normalization,
    provenance: { kind: 'random', seed, twinOf: card.name },
  });
  await writeModelDir(dir, cfg, initWeights(cfg, seed), twin);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The first `n` rows of an embedding directory, checked to be `ds`'s own images in `ds`'s order. */
async function filesFeatures(dir: string, ds: Dataset, n: number): Promise<{ x: FeatureMatrix; description: string; retries?: number }> {
  const { index, embeddings, labels } = await readEmbeddings(dir);
  if (index.data.name !== ds.name || index.data.split !== ds.split || index.data.fingerprint !== ds.fingerprint)
    throw new RangeError(`${dir} holds ${index.data.name} ${index.data.split}, not ${ds.name} ${ds.split} (or the files changed)`);
  if (index.rows.start !== 0 || index.rows.end < n) throw new RangeError(`${dir} holds rows ${index.rows.start}..${index.rows.end}, the probe needs 0..${n}`);
  for (let i = 0; i < n; i++) if (labels[i] !== ds.label(i)) throw new RangeError(`${dir}: label of row ${i} differs from the data set's`);
  const x = { data: embeddings.subarray(0, n * index.dim), rows: n, cols: index.dim };
  return { x, description: `${index.model.name} (${index.model.arch}) from ${dir}` };
}

async function features(
  source: Exclude<FeatureSource, { kind: 'files' }>,
  images: ImageList,
  progress: { update: OnProgress; done(): void } | undefined,
): Promise<{ x: FeatureMatrix; description: string; retries?: number }> {
  try {
    switch (source.kind) {
      case 'served': {
        const r = await servedEmbeddings(images, { ...source, onProgress: progress?.update });
        return { x: r, description: `served ${source.model ?? '(default model)'} via ${source.url}`, retries: r.retries };
      }
      case 'local': {
        const r = await localEmbeddings(source.modelDir, images, { onProgress: progress?.update });
        return { x: r, description: `${r.card.name} (${r.card.arch.name}, ${r.card.provenance.kind})` };
      }
      case 'random-init': {
        const twin = await randomTwin(source.modelDir, source.seed ?? 0);
        try {
          const r = await localEmbeddings(twin.dir, images, { onProgress: progress?.update });
          return { x: r, description: `random-init ${r.card.arch.name} (seed ${source.seed ?? 0})` };
        } finally {
          await twin.cleanup();
        }
      }
      case 'pixels': {
        const x = await pixelFeatures(images, undefined, progress?.update);
        return { x, description: `raw pixels (${x.cols} values)` };
      }
      default:
        throw new RangeError(`unknown feature source ${JSON.stringify(source satisfies never)}`);
    }
  } finally {
    progress?.done();
  }
}

/** Runs one probe (see the module comment). */
export async function runProbe(o: ProbeRunOptions): Promise<ProbeReport> {
  const trainN = o.trainN ?? 6000;
  if (o.exportTo && o.source.kind !== 'local') throw new RangeError('exporting a probe needs local features (the body comes from the model directory)');
  const testN = o.testN ?? 10_000;
  const source = await openDataSource(o.data);
  const trainImages = firstN(source.train, trainN);
  const testImages = firstN(source.test, testN);
  const t0 = performance.now();
  const src = o.source;
  const train = src.kind === 'files' ? await filesFeatures(src.trainDir, source.train, trainN) : await features(src, trainImages, o.progress?.('train'));
  const test = src.kind === 'files' ? await filesFeatures(src.testDir, source.test, testN) : await features(src, testImages, o.progress?.('test'));
  const featureSeconds = (performance.now() - t0) / 1000;
  const classes = source.train.classes.length;
  const yTrain = labelsOf(source.train, trainN);
  const yTest = labelsOf(source.test, testN);
  const fit = fitProbe(train.x, yTrain, classes, o.probe);
  const scored = evaluateProbe(fit, test.x, yTest);
  const chosen = fit.path.find((p) => p.lambda === fit.lambda)!;
  if (o.exportTo && o.source.kind === 'local') {
    const labels = source.train.classes;
    await writeProbeModel({
      baseDir: o.source.modelDir,
      outDir: o.exportTo.dir,
      name: o.exportTo.name,
      labels,
      fit,
      provenance: {
        data: `${source.name} ${source.train.split} first ${trainN}`,
        imagesPerLabel: labels.map((_, c) => yTrain.reduce((n, y) => n + (y === c ? 1 : 0), 0)),
        seed: o.probe?.seed ?? 0,
        ...(o.exportTo.command ? { command: o.exportTo.command } : {}),
      },
    });
  }
  return {
    features: train.description,
    data: `${source.name} (${source.train.split} ${trainN} / ${source.test.split} ${testN})`,
    trainN,
    testN,
    dim: train.x.cols,
    lambda: fit.lambda,
    valAccuracy: chosen.valAccuracy,
    trainAccuracy: fit.trainAccuracy,
    testAccuracy: scored.accuracy,
    testLoss: scored.loss,
    featureSeconds,
    fitSeconds: fit.seconds,
    ...(train.retries !== undefined ? { retries: train.retries + (test.retries ?? 0) } : {}),
    ...(o.exportTo ? { exported: o.exportTo.dir } : {}),
  };
}

/** Markdown table of probe reports (docs/results.md, the CLI's --compare). */
export function probeTable(reports: ProbeReport[]): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const lines = [
    '| features | dim | λ | val top-1 | train top-1 | test top-1 |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...reports.map(
      (r) =>
        `| ${r.features} | ${r.dim} | ${r.lambda.toExponential(1)} | ${pct(r.valAccuracy)} | ${pct(r.trainAccuracy)} | ${pct(r.testAccuracy)} |`,
    ),
  ];
  return lines.join('\n');
}

/** Whether `dir` holds a model (for the CLI's NAME-or-path argument). */
export function isModelDir(dir: string): boolean {
  return existsSync(join(dir, ONNX_FILE)) && existsSync(join(dir, CARD_FILE));
}

/**
 * The model directory `dir` stands for in either repository layout: `dir` itself (flat: NAME/model.onnx), or its
 * newest version (NAME/VERSION/model.onnx), as the server picks it. Undefined when neither holds a model.
 */
export function resolveModelDir(dir: string): string | undefined {
  if (isModelDir(dir)) return dir;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  const versions = entries.filter((v) => !v.startsWith('.') && isModelDir(join(dir, v))).sort(compareVersions);
  return versions.length ? join(dir, versions[versions.length - 1]) : undefined;
}
