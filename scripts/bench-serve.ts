// CLI: throughput of the service under concurrent uploads. Writes a random-weight model, starts the real server
// (`tsx src/serve/server.ts`, as npm start) on a free port, and keeps N uploads in flight for a fixed time.
//   npm run bench:serve -- [--arch B_6-Wi_512] [--concurrency 32] [--seconds 10] [--warmup 2] [--image 28]
//                          [--size 64] [--channels 3] [--env KEY=VALUE ...]

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { writeRandomModel } from '../src/onnx/random.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function num(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number, got "${v}"`);
  return n;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN;
}

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string', default: 'B_6-Wi_512' },
      concurrency: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      image: { type: 'string' },
      size: { type: 'string' },
      channels: { type: 'string' },
      env: { type: 'string', multiple: true },
    },
    strict: true,
  });
  const concurrency = num('concurrency', values.concurrency, 32);
  const seconds = num('seconds', values.seconds, 10);
  const warmup = num('warmup', values.warmup, 2);
  const side = num('image', values.image, 28);
  const size = num('size', values.size, 64);
  const channels = num('channels', values.channels, 3) as 1 | 3;
  const extraEnv = Object.fromEntries((values.env ?? []).map((kv) => kv.split(/=(.*)/s).slice(0, 2)));

  const dir = await mkdtemp(join(tmpdir(), 'mlp-bench-'));
  const t0 = Date.now();
  const card = await writeRandomModel({ arch: values.arch!, out: join(dir, 'bench'), name: 'bench', size, channels });
  console.log(
    `model ${card.arch.name}: ${(card.params / 1e6).toFixed(1)}M params, ${(card.flopsPerImage / 1e6).toFixed(1)} MFLOP/image, ` +
      `input ${size}×${size}×${channels} (written in ${Date.now() - t0} ms)`,
  );

  const server = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), ['src/serve/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, MODELS_DIR: dir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let url = '';
      createInterface({ input: server.stdout! }).on('line', (line) => {
        const m = /Server listening at (http:\/\/[\d.]+:\d+)/.exec(line);
        if (m) url = m[1];
        if (/"msg":"ready"/.test(line)) resolve(url);
        if (/start-up failed/.test(line)) reject(new Error(line));
      });
      server.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    const png = new Uint8Array(
      await sharp({ create: { width: side, height: side, channels: 3, background: { r: 120, g: 60, b: 200 } } }).png().toBuffer(),
    );
    console.log(`server ${base}; ${concurrency} concurrent uploads of a ${side}×${side} PNG (${png.length} B) for ${warmup}+${seconds} s`);

    let measuring = false;
    let stop = false;
    let ok = 0;
    let failed = 0;
    const latencies: number[] = [];
    const loop = async () => {
      while (!stop) {
        const t = performance.now();
        const res = await fetch(`${base}/classify`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
        await res.arrayBuffer();
        if (!measuring) continue;
        if (res.status === 200) {
          ok++;
          latencies.push(performance.now() - t);
        } else failed++;
      }
    };
    const loops = Array.from({ length: concurrency }, loop);
    await new Promise((r) => setTimeout(r, warmup * 1000));
    const before = await (await fetch(`${base}/metrics`)).text();
    measuring = true;
    const tStart = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    measuring = false;
    const elapsed = (performance.now() - tStart) / 1000;
    const after = await (await fetch(`${base}/metrics`)).text();
    stop = true;
    await Promise.all(loops);

    latencies.sort((a, b) => a - b);
    const batches = metric(after, 'mlp_batch_size_count{model="bench"}') - metric(before, 'mlp_batch_size_count{model="bench"}');
    const images = metric(after, 'mlp_batch_size_sum{model="bench"}') - metric(before, 'mlp_batch_size_sum{model="bench"}');
    const infer = metric(after, 'mlp_inference_duration_seconds_sum{model="bench"}') - metric(before, 'mlp_inference_duration_seconds_sum{model="bench"}');
    console.log(
      JSON.stringify(
        {
          arch: values.arch,
          concurrency,
          seconds: Number(elapsed.toFixed(2)),
          imagesPerSecond: Number((ok / elapsed).toFixed(1)),
          failed,
          latencyMs: { p50: +percentile(latencies, 0.5).toFixed(1), p90: +percentile(latencies, 0.9).toFixed(1), p99: +percentile(latencies, 0.99).toFixed(1) },
          meanBatchSize: batches ? Number((images / batches).toFixed(1)) : 0,
          inferenceBusyFraction: Number((infer / elapsed).toFixed(2)),
        },
        null,
        2,
      ),
    );
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
