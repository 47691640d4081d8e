// CLI: what the precision variants cost and give. For the default model, top-1 on the full Fashion-MNIST test
// split at fp32/fp16/int8; for a random B_12-Wi_1024 at 64×64×3, top-1 agreement with fp32 on Fashion-MNIST test
// images upscaled to 64×64×3; file sizes; and onnxruntime images/s on one core (intraOpNumThreads 1) at batch 32,
// the variants timed interleaved in one run so the machine's load falls on all alike.
//   npm run bench:precision -- [--model models/fashion-mlp] [--arch B_12-Wi_1024] [--images 1000] [--rounds 10]

import { execSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { prepareSplit } from '../src/data/cache.js';
import { NORMALIZATIONS, genericLabels } from '../src/data/labels.js';
import { normalizeChw } from '../src/data/preprocess.js';
import { openDataSource } from '../src/data/resolve.js';
import { buildCard, exportOnnx } from '../src/export/export.js';
import { convertOnnx, PRECISIONS, type Precision } from '../src/export/precision.js';
import { onnxLogits } from '../src/export/tta-export.js';
import { ONNX_FILE, readCard, type ModelCard } from '../src/model/card.js';
import { configFor, initWeights } from '../src/model/mlp.js';
import { num, parseFlags, runCli } from '../src/util/cli.js';

const USAGE = 'usage: npm run bench:precision -- [--model DIR] [--arch B_12-Wi_1024] [--images 1000] [--rounds 10]';
const uptime = () => execSync('uptime').toString().trim();

function argmax(logits: Float32Array, i: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
  return best;
}

const variants = (bytes: Uint8Array, card: ModelCard): Record<Precision, Uint8Array> => {
  const out = {} as Record<Precision, Uint8Array>;
  for (const p of PRECISIONS) out[p] = p === 'fp32' ? bytes : convertOnnx(bytes, p, { ...card, precision: p });
  return out;
};
const mb = (b: Uint8Array) => (b.byteLength / 1e6).toFixed(1);

runCli('bench:precision', USAGE, async () => {
  const s = { type: 'string' } as const;
  const v = parseFlags(process.argv.slice(2), { model: s, arch: s, images: s, rounds: s });
  const modelDir = v.model ?? 'models/fashion-mlp';
  const arch = v.arch ?? 'B_12-Wi_1024';
  const images = num('images', v.images, 1000, { integer: true, min: 1 });
  const rounds = num('rounds', v.rounds, 10, { integer: true, min: 1 });
  const src = await openDataSource('fashion-mnist');
  console.log(`start: ${uptime()}`);

  // 1. The default model on the whole test split.
  const card = await readCard(modelDir);
  const small = variants(new Uint8Array(await readFile(join(modelDir, ONNX_FILE))), card);
  const test = await prepareSplit(src.test, card.input);
  try {
    const ref = await onnxLogits(small.fp32, card, test);
    console.log(`\n${card.name} (${card.arch.name}), ${test.size} test images`);
    console.log('precision | file MB | top-1 % | agrees with fp32 % | max |Δlogit|');
    for (const p of PRECISIONS) {
      const l = p === 'fp32' ? ref : await onnxLogits(small[p], card, test);
      let right = 0;
      let agree = 0;
      let maxDiff = 0;
      for (let i = 0; i < test.size; i++) {
        const k = argmax(l, i, 10);
        if (k === test.labels[i]) right++;
        if (k === argmax(ref, i, 10)) agree++;
      }
      for (let j = 0; j < l.length; j++) maxDiff = Math.max(maxDiff, Math.abs(l[j] - ref[j]));
      console.log(`${p} | ${mb(small[p])} | ${((100 * right) / test.size).toFixed(2)} | ${((100 * agree) / test.size).toFixed(2)} | ${maxDiff.toFixed(4)}`);
    }
  } finally {
    test.close();
  }

  // 2. A random large model at 64×64×3.
  const geo = { width: 64, height: 64, channels: 3 as const };
  const cfg = configFor(arch, 4, 64 * 64 * 3, 10);
  const bigCard = buildCard({
    name: 'bench-precision',
    cfg,
    labels: genericLabels(10),
    input: geo,
    normalization: NORMALIZATIONS.imagenet,
    provenance: { kind: 'random', seed: 0 },
  });
  const big = variants(exportOnnx(cfg, initWeights(cfg, 0), bigCard), bigCard);
  const up = await prepareSplit(src.test, geo, { limit: images });
  const dim = 64 * 64 * 3;
  const batch = 32;
  const x = new Float32Array(batch * dim);
  try {
    const ref = await onnxLogits(big.fp32, bigCard, up, 100);
    console.log(`\nrandom ${arch} at 64×64×3, ${up.size} Fashion-MNIST test images upscaled`);
    console.log('precision | file MB | top-1 agrees with fp32 %');
    for (const p of PRECISIONS) {
      const l = p === 'fp32' ? ref : await onnxLogits(big[p], bigCard, up, 100);
      let agree = 0;
      for (let i = 0; i < up.size; i++) if (argmax(l, i, 10) === argmax(ref, i, 10)) agree++;
      console.log(`${p} | ${mb(big[p])} | ${((100 * agree) / up.size).toFixed(2)}`);
    }
    for (let i = 0; i < batch; i++) normalizeChw(up.pixels(i % up.size), geo, bigCard.normalization, x, i * dim);
  } finally {
    up.close();
  }

  // 3. One core, batch 32, interleaved rounds; the median round is reported.
  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' };
  const sessions = {} as Record<Precision, ort.InferenceSession>;
  for (const p of PRECISIONS) sessions[p] = await ort.InferenceSession.create(big[p], opts);
  const feeds = { input: new ort.Tensor('float32', x, [batch, dim]) };
  for (const p of PRECISIONS) await sessions[p].run(feeds); // warm-up
  const times: Record<Precision, number[]> = { fp32: [], fp16: [], int8: [] };
  // CPU time too: on a shared machine the wall clock includes waiting for a core, the process's CPU time does not.
  const cpu: Record<Precision, number[]> = { fp32: [], fp16: [], int8: [] };
  console.log(`\ntiming: ${uptime()}`);
  for (let r = 0; r < rounds; r++)
    for (const p of PRECISIONS) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      await sessions[p].run(feeds);
      const c = process.cpuUsage(c0);
      times[p].push(performance.now() - t0);
      cpu[p].push((c.user + c.system) / 1000);
    }
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  console.log(`random ${arch}, batch ${batch}, intraOpNumThreads 1, ${rounds} interleaved rounds (median)`);
  console.log('precision | wall ms/batch | images/s (wall) | speed-up (wall) | CPU ms/batch | images per CPU-second | speed-up (CPU)');
  for (const p of PRECISIONS) {
    const [ms, cms] = [median(times[p]), median(cpu[p])];
    console.log(
      `${p} | ${ms.toFixed(1)} | ${((1000 * batch) / ms).toFixed(1)} | ${(median(times.fp32) / ms).toFixed(2)}× | ` +
        `${cms.toFixed(1)} | ${((1000 * batch) / cms).toFixed(1)} | ${(median(cpu.fp32) / cms).toFixed(2)}×`,
    );
  }
  for (const p of PRECISIONS) await sessions[p].release();
  console.log(`\nend: ${uptime()}`);
});
