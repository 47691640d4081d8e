// Trains the claims' grids: per variant, every candidate recipe with the first seed, the best on validation accuracy
// chosen, then the remaining seeds of that one. One JSONL row per finished run (the scaling sweep's file format and
// reader); a row's id is its arch, examples and recipe hash, so variants that are the same run share it, and a rerun
// skips every run already in the file.

import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSplit } from '../data/cache.js';
import { openDataSource } from '../data/resolve.js';
import { configFor, flopsPerImage, paramCount } from '../model/mlp.js';
import { RUNS_FILE, readRuns, recipeHash, recipeTrainOptions, runId, type SweepRecipe } from '../scaling/sweep.js';
import type { EngineChoice } from '../train/engines/index.js';
import { silentReporter, type Reporter } from '../train/progress.js';
import { train } from '../train/train.js';
import { claimVariants, type ClaimsScale, type Variant } from './studies.js';

export interface ClaimRun {
  /** arch@examples#recipeHash (the sweep's runId). */
  id: string;
  arch: string;
  recipeHash: string;
  recipe: SweepRecipe;
  params: number;
  flopsPerImage: number;
  epochs: number;
  trainImages: number;
  valImages: number;
  valAccuracy: number;
  testAccuracy: number;
  testExamples: number;
  wallSeconds: number;
  imagesPerSecond: number;
  engine: string;
  /** 1-minute load averages when the run started and ended (the machine is shared). */
  loadStart: number;
  loadEnd: number;
  finishedAt: string;
}

export interface ClaimsRunOptions {
  scale: ClaimsScale;
  /** Output directory: runs.jsonl (resumable) goes here. */
  out: string;
  engine?: EngineChoice;
  cacheDir?: string;
  reporter?: Reporter;
  /** A line per run started, skipped or finished (the CLI's progress). */
  onRun?: (e: { variant: Variant; id: string; note: string; seed: number; skipped: boolean; record?: ClaimRun }) => void;
  signal?: AbortSignal;
}

/** The recipe of one seed of a candidate, and the id of its run. */
export function runFor(s: ClaimsScale, arch: string, recipe: SweepRecipe, seed: number): { id: string; recipe: SweepRecipe } {
  const r = { ...recipe, seed };
  return { id: runId(arch, s.trainImages * s.epochs, recipeHash(r)), recipe: r };
}

/** The candidate with the best validation accuracy among finished seed-0 runs (first listed wins ties). */
export function chooseCandidate(s: ClaimsScale, v: Variant, done: ReadonlyMap<string, ClaimRun>): number | undefined {
  let best: { index: number; acc: number } | undefined;
  v.candidates.forEach((c, index) => {
    const row = done.get(runFor(s, v.arch, c.recipe, 0).id);
    if (row && (!best || row.valAccuracy > best.acc)) best = { index, acc: row.valAccuracy };
  });
  return best?.index;
}

/** Runs every missing run of the grid; returns all rows of the file (other scales' rows included). */
export async function runClaims(o: ClaimsRunOptions): Promise<ClaimRun[]> {
  const s = o.scale;
  const say = o.reporter ?? silentReporter;
  await mkdir(o.out, { recursive: true });
  const file = join(o.out, RUNS_FILE);
  const done = new Map((await readRuns<ClaimRun>(file, (m) => say.line(m))).map((r) => [r.id, r]));

  // Decode once: every run reads a prefix of the one training cache and the same test cache.
  const source = await openDataSource(s.data, { log: (m) => say.line(m) });
  const geo = { width: s.size, height: s.size, channels: 1 as const };
  const loadImages = s.trainImages + s.val;
  if (loadImages > source.train.size) throw new RangeError(`${loadImages} training + validation images, ${s.data} has ${source.train.size}`);
  (await prepareSplit(source.train, geo, { root: o.cacheDir, limit: loadImages })).close();
  (await prepareSplit(source.test, geo, { root: o.cacheDir, limit: s.evalExamples })).close();
  const classes = source.train.classes.length;

  const work = await mkdtemp(join(tmpdir(), 'claims-'));
  const runOne = async (v: Variant, recipe: SweepRecipe, seed: number, note: string): Promise<boolean> => {
    const { id, recipe: r } = runFor(s, v.arch, recipe, seed);
    if (done.has(id)) {
      o.onRun?.({ variant: v, id, note, seed, skipped: true, record: done.get(id) });
      return true;
    }
    if (o.signal?.aborted) return false;
    o.onRun?.({ variant: v, id, note, seed, skipped: false });
    const loadStart = loadavg()[0];
    const opts = recipeTrainOptions(r, {
      arch: v.arch, id, epochs: s.epochs, lr: r.lr, batchSize: r.batchSize, loadImages, work,
      engine: o.engine, cacheDir: o.cacheDir, command: `claims ${id}`,
    });
    const res = await train(opts, { reporter: say, signal: o.signal });
    if (res.stopped) return false;
    if (!res.val || !res.test) throw new Error(`run ${id} finished without a validation and a test score`);
    const cfg = configFor(v.arch, r.expansion, s.size * s.size, classes);
    const record: ClaimRun = {
      id, arch: v.arch, recipeHash: recipeHash(r), recipe: r, params: paramCount(cfg), flopsPerImage: flopsPerImage(cfg),
      epochs: s.epochs, trainImages: s.trainImages, valImages: s.val, valAccuracy: res.val.accuracy,
      testAccuracy: res.test.accuracy, testExamples: s.evalExamples ?? source.test.size, wallSeconds: res.wallSeconds,
      imagesPerSecond: res.imagesPerSecond, engine: res.engine, loadStart, loadEnd: loadavg()[0], finishedAt: new Date().toISOString(),
    };
    // One line per run, appended whole: a crash loses at most the run in progress.
    await appendFile(file, JSON.stringify(record) + '\n');
    done.set(id, record);
    await rm(join(work, 'models'), { recursive: true, force: true });
    await rm(opts.checkpointDir!, { recursive: true, force: true });
    o.onRun?.({ variant: v, id, note, seed, skipped: false, record });
    return true;
  };

  try {
    // One variant at a time, its candidates then its seeds, the first architecture pair before the others: an
    // interrupted grid leaves whole cells and at most the extra architecture pairs missing.
    const variants = claimVariants(s, classes);
    const firstPair = variants.find((v) => v.claim === 'architecture')?.pair;
    const extra = (v: Variant) => (v.claim === 'architecture' && v.pair !== firstPair ? 1 : 0);
    for (const v of [...variants].sort((a, b) => extra(a) - extra(b))) {
      for (const c of v.candidates) if (!(await runOne(v, c.recipe, 0, c.note))) return [...done.values()];
      const chosen = v.candidates[chooseCandidate(s, v, done)!];
      for (let seed = 1; seed < s.seeds; seed++) if (!(await runOne(v, chosen.recipe, seed, chosen.note))) return [...done.values()];
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return [...done.values()];
}
