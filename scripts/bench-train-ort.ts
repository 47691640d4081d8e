// Training throughput of the fused onnxruntime engine against PyTorch-CPU, measured in one run on this machine:
// images/s at batch 128 for B_4-Wi_256 and B_6-Wi_512 on 64×64×3 inputs (10 classes), each side at 1 and 2 threads
// (PyTorch with OMP_WAIT_POLICY=PASSIVE), best of each, and the ratio. The two sides alternate within each of
// several rounds and each configuration keeps its best round, so that a burst of load from other processes on a
// shared machine does not decide the ratio.
//
//   npx tsx scripts/bench-train-ort.ts [--steps 10] [--rounds 3] [--arch B_6-Wi_512,...] [--threads 1,2]

import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { initWeights, parseArch, type MlpConfig } from '../src/model/mlp.js';
import { OrtEngine } from '../src/train/engines/ort.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('./bench-train-torch.py', import.meta.url));
const BATCH = 128;
const WARMUP = 3;

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    arch: { type: 'string', default: 'B_4-Wi_256,B_6-Wi_512' },
    threads: { type: 'string', default: [...new Set([1, Math.min(2, availableParallelism())])].join(',') },
  },
});
const steps = Number(values.steps);
const rounds = Number(values.rounds);
const threadCounts = values.threads!.split(',').map(Number);

interface OrtResult {
  imagesPerSecond: number;
  /** Medians over the timed steps: the onnxruntime run (graph + output copy) and the host-side LION update. */
  runMs: number;
  updateMs: number;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

async function ortImagesPerSecond(cfg: MlpConfig, threads: number): Promise<OrtResult> {
  const engine = new OrtEngine({ executionProviders: ['cpu'], intraOpNumThreads: threads });
  await engine.init(cfg, initWeights(cfg, 0));
  const x = Float32Array.from({ length: BATCH * cfg.inputDim }, (_, i) => Math.sin(i));
  const y = new Float32Array(BATCH * cfg.classes);
  for (let r = 0; r < BATCH; r++)
    for (let k = 0; k < cfg.classes; k++) y[r * cfg.classes + k] = (k === r % cfg.classes ? 0.7 : 0) + 0.3 / cfg.classes;
  const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 };
  let total = 0;
  const run: number[] = [];
  const update: number[] = [];
  for (let i = 0; i < WARMUP + steps; i++) {
    const t = performance.now();
    await engine.step({ x, y, size: BATCH }, hyper);
    if (i < WARMUP) continue;
    total += performance.now() - t;
    run.push(engine.lastStep.runMs);
    update.push(engine.lastStep.updateMs);
  }
  await engine.dispose();
  return { imagesPerSecond: (BATCH * steps * 1000) / total, runMs: median(run), updateMs: median(update) };
}

async function torchImagesPerSecond(cfg: MlpConfig, threads: number): Promise<number | undefined> {
  try {
    const args = [TORCH_SCRIPT, '--depth', cfg.depth, '--width', cfg.width, '--expansion', cfg.expansion, '--input-dim', cfg.inputDim,
      '--classes', cfg.classes, '--batch', BATCH, '--steps', steps, '--warmup', WARMUP, '--threads', threads].map(String);
    const { stdout } = await run(PYTHON, args, { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
    return (JSON.parse(stdout.trim().split('\n').pop()!) as { images_per_s: number }).images_per_s;
  } catch (err) {
    console.error(`PyTorch bench unavailable (${(err as Error).message.split('\n')[0]}); install python3-torch`);
    return undefined;
  }
}

const fmt = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(0)).padStart(7);

console.log(`training images/s, batch ${BATCH}, 64×64×3 → 10 classes, ${steps} timed steps after ${WARMUP} warm-up, best of ${rounds} rounds`);
console.log(`${'arch'.padEnd(12)} ${threadCounts.map((t) => `ort@${t}`.padStart(7)).join(' ')} ${threadCounts.map((t) => `torch@${t}`.padStart(7)).join(' ')}   ratio (best/best)`);
for (const name of values.arch!.split(',')) {
  const cfg: MlpConfig = { ...parseArch(name), expansion: 4, inputDim: 3 * 64 * 64, classes: 10 };
  const results: OrtResult[] = [];
  const torch: (number | undefined)[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of threadCounts.entries()) {
      const o = await ortImagesPerSecond(cfg, t);
      if (!results[i] || o.imagesPerSecond > results[i].imagesPerSecond) results[i] = o;
      const p = await torchImagesPerSecond(cfg, t);
      if (p !== undefined && (torch[i] === undefined || p > torch[i]!)) torch[i] = p;
    }
  }
  const ort = results.map((r) => r.imagesPerSecond);
  const bestOrt = Math.max(...ort);
  const best = results[ort.indexOf(bestOrt)];
  const torchOk = torch.filter((v): v is number => v !== undefined);
  const bestTorch = torchOk.length ? Math.max(...torchOk) : undefined;
  const ratio = bestTorch ? `${(bestOrt / bestTorch).toFixed(2)}×` : 'n/a';
  const split = `(ort step: run ${best.runMs.toFixed(1)} ms + LION ${best.updateMs.toFixed(1)} ms)`;
  console.log(`${name.padEnd(12)} ${ort.map(fmt).join(' ')} ${torch.map(fmt).join(' ')}   ${ratio.padEnd(6)} ${split}`);
}
