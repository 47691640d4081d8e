// `npm run bench:train`: training images/s at batch 128 for B_4-Wi_256 and B_6-Wi_512 on 64×64×3 inputs (10 classes)
// for every training engine in this checkout (each with the settings `npm run train` uses), and the same step in
// PyTorch (scripts/bench-train-torch.py via Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE, best of 1 and 2
// threads) in the same run, with the ratio engine / PyTorch. Engine steps only: the data pipeline is not timed.
//
//   npm run bench:train [-- --steps 5] [--arch B_4-Wi_256,B_6-Wi_512] [--engines tfjs,ort]

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { initWeights, parseArch, type MlpConfig } from '../src/model/mlp.js';
import { availableEngines, createEngine, type EngineName } from '../src/train/engines/index.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('./bench-train-torch.py', import.meta.url));
const BATCH = 128;
const WARMUP = 2;
const TORCH_THREADS = [1, 2];

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '5' },
    arch: { type: 'string', default: 'B_4-Wi_256,B_6-Wi_512' },
    engines: { type: 'string', default: availableEngines().join(',') },
  },
});
const steps = Number(values.steps);
if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`--steps ${values.steps} must be a whole number ≥ 1`);
const engines = values.engines!.split(',') as EngineName[];

/** A batch as the train loop hands it over: normalised-looking inputs, smoothed one-hot targets. */
function batch(cfg: MlpConfig) {
  const x = Float32Array.from({ length: BATCH * cfg.inputDim }, (_, i) => Math.sin(i));
  const y = new Float32Array(BATCH * cfg.classes);
  for (let r = 0; r < BATCH; r++)
    for (let k = 0; k < cfg.classes; k++) y[r * cfg.classes + k] = (k === r % cfg.classes ? 0.7 : 0) + 0.3 / cfg.classes;
  return { x, y, size: BATCH };
}

async function engineImagesPerSecond(name: EngineName, cfg: MlpConfig): Promise<{ ips: number; label: string }> {
  const { engine } = await createEngine(name);
  try {
    await engine.init(cfg, initWeights(cfg, 0));
    const b = batch(cfg);
    const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0.1 };
    let total = 0;
    for (let i = 0; i < WARMUP + steps; i++) {
      const t = performance.now();
      await engine.step(b, hyper);
      if (i >= WARMUP) total += performance.now() - t;
    }
    return { ips: (BATCH * steps * 1000) / total, label: engine.name };
  } finally {
    await engine.dispose();
  }
}

async function torchImagesPerSecond(cfg: MlpConfig, threads: number): Promise<number | undefined> {
  const args = [TORCH_SCRIPT, '--depth', cfg.depth, '--width', cfg.width, '--expansion', cfg.expansion, '--input-dim',
    cfg.inputDim, '--classes', cfg.classes, '--batch', BATCH, '--steps', Math.max(steps, 5), '--warmup', WARMUP,
    '--threads', threads].map(String);
  try {
    const { stdout } = await run(PYTHON, args, { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
    return (JSON.parse(stdout.trim().split('\n').pop()!) as { images_per_s: number }).images_per_s;
  } catch (err) {
    console.error(`PyTorch reference unavailable (${(err as Error).message.split('\n')[0]}): apt-get install python3-torch`);
    return undefined;
  }
}

const cell = (v: number | undefined, w = 10) => (v === undefined ? '–' : v.toFixed(0)).padStart(w);

console.log(`training images/s, batch ${BATCH}, 64×64×3 → 10 classes, ${steps} timed steps after ${WARMUP} warm-up`);
const rows: string[][] = [];
for (const arch of values.arch!.split(',')) {
  const cfg: MlpConfig = { ...parseArch(arch), expansion: 4, inputDim: 3 * 64 * 64, classes: 10 };
  const torch: (number | undefined)[] = [];
  for (const t of TORCH_THREADS) torch.push(await torchImagesPerSecond(cfg, t));
  const ok = torch.filter((v): v is number => v !== undefined);
  const best = ok.length ? Math.max(...ok) : undefined;
  for (const name of engines) {
    const { ips, label } = await engineImagesPerSecond(name, cfg);
    rows.push([arch, label, cell(ips), ...torch.map((v) => cell(v)), best ? `${(ips / best).toFixed(2)}×`.padStart(8) : '     n/a']);
    console.log(rows.at(-1)!.join('  '));
  }
}
console.log(`\n${'arch'.padEnd(10)}  ${'engine'.padEnd(10)}  ${'engine'.padStart(10)}  ${TORCH_THREADS.map((t) => `torch@${t}`.padStart(10)).join('  ')}  ${'ratio'.padStart(8)}`);
for (const r of rows) console.log([r[0].padEnd(10), r[1].padEnd(10), ...r.slice(2)].join('  '));
