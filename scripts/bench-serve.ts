// `npm run bench:serve`: how close the service comes to the machine's limit, as ratios measured in one run.
// Starts the real server (src/serve/server.ts, as `npm start`) and drives it over HTTP with undici, uploading a
// 28×28 PNG (a Fashion-MNIST test image) and a 500×375 JPEG, one image per request:
//   1. sweep       closed loop at each concurrency: images/s, p50, p99, mean batch, batch time, CPU used
//   2. efficiency  at the best concurrency, served ÷ bound, the bound measured between the served windows:
//                  cores ÷ (decode+resize per image + onnxruntime per image at the mean batch size served)
//   3. policies    BATCH_POLICY fixed vs adaptive at the best concurrency (windows alternate between two servers)
//   4. latency     open loop (Poisson) at half the maximum throughput: p99 vs BATCH_MAX_DELAY_MS + 2 × batch time
//   5. gain        a random B_6-Wi_512 (64×64×3) at 64 concurrent uploads, default batching vs BATCH_MAX_SIZE=1
// Prints a table per phase and the ratios, and writes everything to a JSON file.
//
//   npm run bench:serve [-- --seconds 3] [--warmup 1] [--concurrency 1,4,16,64,128] [--images png,jpeg]
//                       [--model models/fashion-mlp] [--big-arch B_6-Wi_512] [--gain-concurrency 64]
//                       [--phases sweep,efficiency,policies,latency,gain] [--env KEY=VALUE ...] [--out FILE] [--quick]

import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../src/config.js';
import { inputDim, readCard, type ModelCard } from '../src/model/card.js';
import { writeRandomModel } from '../src/export/random.js';
import { decodeRate, onnxRate, openBoundSession, servingBound, type Rate } from '../src/bench/bound.js';
import { fashionMnistImage, jpeg500, png28 } from '../src/bench/images.js';
import { closedLoop, openLoop, percentile, type LoadResult, type Upload } from '../src/bench/load.js';
import { delta, histogramQuantile, startServer, type Samples, type ServerProcess, type ThreadCpu } from '../src/bench/server-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PHASES = ['sweep', 'efficiency', 'policies', 'latency', 'gain'] as const;
type Phase = (typeof PHASES)[number];
type Policy = 'fixed' | 'adaptive';

// ------------------------------------------------------------------------------------------------ options

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string' },
    images: { type: 'string', default: 'png,jpeg' },
    model: { type: 'string', default: join(ROOT, 'models', 'fashion-mlp') },
    'big-arch': { type: 'string', default: 'B_6-Wi_512' },
    'gain-concurrency': { type: 'string', default: '64' },
    phases: { type: 'string', default: PHASES.join(',') },
    env: { type: 'string', multiple: true },
    out: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
  strict: true,
});

function positive(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new RangeError(`--${name} must be a positive number, got "${v}"`);
  return n;
}

const quick = values.quick!;
const seconds = positive('seconds', values.seconds, quick ? 1.5 : 3);
const warmup = positive('warmup', values.warmup, quick ? 0.5 : 1);
const concurrencies = (values.concurrency ?? (quick ? '16,64' : '1,4,16,64,128')).split(',').map((c) => positive('concurrency', c, 1));
const gainConcurrency = positive('gain-concurrency', values['gain-concurrency'], 64);
const phases = new Set(values.phases!.split(',') as Phase[]);
for (const p of phases) if (!PHASES.includes(p)) throw new RangeError(`--phases: unknown phase "${p}" (known: ${PHASES.join(', ')})`);
const userEnv: Record<string, string> = Object.fromEntries(
  (values.env ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new RangeError(`--env expects KEY=VALUE, got "${kv}"`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);
// The server's configuration as it will read it (validated here, so a typo fails before anything starts).
const config: Readonly<Config> = loadConfig({ ...process.env, ...userEnv });
const defaultPolicy: Policy = config.batchPolicy;
const cores = availableParallelism();

// ------------------------------------------------------------------------------------------------ measuring

/** One measured window against one server: what the client saw and what the server's metrics say. */
interface Window {
  image: string;
  policy: string;
  concurrency?: number;
  ratePerSecond?: number;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanBatch: number;
  /** Mean session.run time per batch, ms (the server's mlp_inference_duration_seconds). */
  batchMs: number;
  /** CPU the server process used, in cores. */
  serverCores: number;
  /** CPU of the server's main thread (event loop: HTTP, JSON, sharp's JavaScript side), in cores. */
  eventLoopCores: number;
  /** Server-side p99 (arrival to last byte, from its histogram) and the event loop's delay p99, ms. */
  serverP99Ms: number;
  eventLoopLagP99Ms: number;
  /** p99 of the time images waited in the batch queue (from its histogram), ms. */
  queueWaitP99Ms: number;
  clientCores: number;
  failed: Record<string, number>;
  /** Latencies, ascending (kept out of the JSON: merged into percentiles). */
  latencyMs: Float64Array;
}

/** Metrics and per-thread CPU of the server, taken at both ends of a window. */
interface Snapshot {
  samples: Samples;
  threads: ThreadCpu | undefined;
}

async function snapshot(server: ServerProcess): Promise<Snapshot> {
  return { threads: server.threadCpu(), samples: await server.scrape() };
}

function summarize(r: LoadResult, b: Snapshot, a: Snapshot, tags: Pick<Window, 'image' | 'policy' | 'concurrency' | 'ratePerSecond'>): Window {
  const before = b.samples;
  const after = a.samples;
  const batches = delta(before, after, 'mlp_batch_size_count');
  const images = delta(before, after, 'mlp_batch_size_sum');
  const inferSeconds = delta(before, after, 'mlp_inference_duration_seconds_sum');
  return {
    ...tags,
    imagesPerSecond: r.ok / r.seconds,
    p50Ms: percentile(r.latencyMs, 0.5),
    p99Ms: percentile(r.latencyMs, 0.99),
    meanBatch: batches ? images / batches : 0,
    batchMs: batches ? (inferSeconds * 1000) / batches : 0,
    serverCores: delta(before, after, 'process_cpu_seconds_total') / r.seconds,
    eventLoopCores: b.threads && a.threads ? (a.threads.mainMs - b.threads.mainMs) / 1000 / r.seconds : NaN,
    serverP99Ms: histogramQuantile(before, after, 'mlp_http_request_duration_seconds', 0.99) * 1000,
    eventLoopLagP99Ms: (after.get('nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
    queueWaitP99Ms: histogramQuantile(before, after, 'mlp_queue_wait_seconds', 0.99) * 1000,
    clientCores: r.clientCpuMs / 1000 / r.seconds,
    failed: r.failed,
    latencyMs: r.latencyMs,
  };
}

async function closed(server: ServerProcess, upload: Upload, concurrency: number, policy: string): Promise<Window> {
  let before: Snapshot | undefined;
  let after: Snapshot | undefined;
  const r = await closedLoop(server.base, {
    path: '/classify',
    upload,
    concurrency,
    seconds,
    warmupSeconds: warmup,
    beforeWindow: async () => void (before = await snapshot(server)),
    afterWindow: async () => void (after = await snapshot(server)),
  });
  return summarize(r, before!, after!, { image: upload.label, policy, concurrency });
}

async function open(server: ServerProcess, upload: Upload, ratePerSecond: number, policy: string, seed: number): Promise<Window> {
  let before: Snapshot | undefined;
  let after: Snapshot | undefined;
  const r = await openLoop(server.base, {
    path: '/classify',
    upload,
    ratePerSecond,
    seconds,
    warmupSeconds: warmup,
    seed,
    maxInFlight: 200,
    beforeWindow: async () => void (before = await snapshot(server)),
    afterWindow: async () => void (after = await snapshot(server)),
  });
  return summarize(r, before!, after!, { image: upload.label, policy, ratePerSecond });
}

/** Several windows of one setting as one: throughput averaged, latencies pooled, batch figures averaged. */
function pool(ws: Window[]): Window {
  const lat = Float64Array.from(ws.flatMap((w) => Array.from(w.latencyMs))).sort();
  const mean = (f: (w: Window) => number) => ws.reduce((s, w) => s + f(w), 0) / ws.length;
  const failed: Record<string, number> = {};
  for (const w of ws) for (const [k, v] of Object.entries(w.failed)) failed[k] = (failed[k] ?? 0) + v;
  return {
    ...ws[0],
    imagesPerSecond: mean((w) => w.imagesPerSecond),
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    meanBatch: mean((w) => w.meanBatch),
    batchMs: mean((w) => w.batchMs),
    serverCores: mean((w) => w.serverCores),
    eventLoopCores: mean((w) => w.eventLoopCores),
    // Quantiles of the server's histograms cannot be pooled exactly: the worst window's.
    serverP99Ms: Math.max(...ws.map((w) => w.serverP99Ms)),
    eventLoopLagP99Ms: Math.max(...ws.map((w) => w.eventLoopLagP99Ms)),
    queueWaitP99Ms: Math.max(...ws.map((w) => w.queueWaitP99Ms)),
    clientCores: mean((w) => w.clientCores),
    failed,
    latencyMs: lat,
  };
}

// ------------------------------------------------------------------------------------------------ printing

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const width = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  console.log(`\n${title}`);
  cells.forEach((r, k) => {
    console.log('  ' + r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  '));
    if (k === 0) console.log('  ' + width.map((w) => '-'.repeat(w)).join('  '));
  });
}

const windowRow = (w: Window) => [
  w.image,
  w.policy,
  w.concurrency ?? f0(w.ratePerSecond ?? NaN) + '/s',
  f0(w.imagesPerSecond),
  f1(w.p50Ms),
  f1(w.p99Ms),
  f1(w.meanBatch),
  f2(w.batchMs),
  f2(w.serverCores),
  f2(w.eventLoopCores),
  f2(w.clientCores),
  f1(w.serverP99Ms),
  f1(w.queueWaitP99Ms),
  f1(w.eventLoopLagP99Ms),
  Object.entries(w.failed).map(([k, v]) => `${k}:${v}`).join(' ') || '0',
];
const WINDOW_HEADER = [
  'image', 'policy', 'load', 'img/s', 'p50 ms', 'p99 ms', 'batch', 'batch ms', 'server cores', 'event loop', 'client cores',
  'server p99', 'queue p99', 'loop lag p99', 'failed',
];
const jsonWindow = ({ latencyMs: _l, ...w }: Window) => w;

// ------------------------------------------------------------------------------------------------ the run

async function modelsDirWith(modelDir: string): Promise<string> {
  // A MODELS_DIR holding only a copy of this model, so the server loads nothing else from models/ (a copy, not a
  // symlink: the model scan takes real directories only).
  const dir = await mkdtemp(join(tmpdir(), 'mlp-bench-models-'));
  await cp(resolve(modelDir), join(dir, basename(resolve(modelDir))), { recursive: true });
  return dir;
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const load0 = loadavg();
  const modelDir = resolve(values.model!);
  const card: ModelCard = await readCard(modelDir);
  const raw = await fashionMnistImage(0);
  const uploads: Upload[] = [];
  const wanted = values.images!.split(',');
  if (wanted.includes('png')) uploads.push(await png28(raw));
  if (wanted.includes('jpeg')) uploads.push(await jpeg500(raw));
  if (uploads.length === 0) throw new RangeError('--images must name png and/or jpeg');

  console.log(
    `mlp-serve bench: ${cores} cores (${cpus()[0]?.model ?? '?'}), load average ${load0.map(f2).join(' ')}; ` +
      `model ${card.name} ${card.arch.name} ${card.input.width}×${card.input.height}×${card.input.channels}; ` +
      `uploads ${uploads.map((u) => `${u.label} (${u.bytes.length} B)`).join(', ')}; ${warmup}+${seconds} s windows`,
  );
  console.log(
    `config: BATCH_POLICY=${config.batchPolicy} LATENCY_TARGET_MS=${config.latencyTargetMs} BATCH_MAX_SIZE=${config.batchMaxSize} ` +
      `BATCH_MAX_DELAY_MS=${config.batchMaxDelayMs} INFERENCE_WORKERS=${config.inferenceWorkers} ` +
      `ORT_INTRA_OP_THREADS=${config.ortIntraOpThreads} UV_THREADPOOL_SIZE=${config.uvThreadpoolSize}` +
      (Object.keys(userEnv).length ? ` (--env ${Object.entries(userEnv).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''),
  );

  const result: Record<string, unknown> = {
    startedAt,
    machine: { cores, cpu: cpus()[0]?.model, node: process.version, loadavgBefore: load0 },
    model: { name: card.name, arch: card.arch.name, input: card.input, dir: modelDir },
    uploads: uploads.map((u) => ({ label: u.label, bytes: u.bytes.length, contentType: u.contentType })),
    config: {
      batchPolicy: config.batchPolicy,
      latencyTargetMs: config.latencyTargetMs,
      batchMaxSize: config.batchMaxSize,
      batchMaxDelayMs: config.batchMaxDelayMs,
      inferenceWorkers: config.inferenceWorkers,
      ortIntraOpThreads: config.ortIntraOpThreads,
      uvThreadpoolSize: config.uvThreadpoolSize,
      env: userEnv,
    },
    windows: { seconds, warmup },
  };
  const targets: Record<string, { value: number; target: string; met: boolean; note?: string }> = {};
  // The same ratios from CPU time per image: what they would be if the server had the cores to itself (on a
  // shared machine the wall-clock ratios also depend on how much CPU each side got from the scheduler).
  const cpuRatios: Record<string, { value: number; how: string }> = {};
  const temp: string[] = [];
  const servers: ServerProcess[] = [];

  try {
    // Both policies run side by side (the idle one sleeps), so their windows can alternate under the same noise.
    const modelsDir = await modelsDirWith(modelDir);
    temp.push(modelsDir);
    const byPolicy = {} as Record<Policy, ServerProcess>;
    const needOther = phases.has('policies') || phases.has('latency');
    for (const policy of ['fixed', 'adaptive'] as const) {
      if (policy !== defaultPolicy && !needOther) continue;
      if (!(phases.has('sweep') || phases.has('efficiency') || needOther)) continue;
      byPolicy[policy] = await startServer(modelsDir, { ...userEnv, BATCH_POLICY: policy });
      servers.push(byPolicy[policy]);
    }
    const other: Policy = defaultPolicy === 'fixed' ? 'adaptive' : 'fixed';
    const main = byPolicy[defaultPolicy];

    // -------------------------------------------------------------------------------------- 1. sweep
    const sweep: Window[] = [];
    if (phases.has('sweep')) {
      for (const u of uploads) for (const c of concurrencies) sweep.push(await closed(main, u, c, defaultPolicy));
      table(`1. sweep: closed loop, ${defaultPolicy} policy`, WINDOW_HEADER, sweep.map(windowRow));
      result.sweep = sweep.map(jsonWindow);
    }
    // The best window among the concurrencies that keep the server saturated (≥ 16 in flight, or the highest
    // measured): a lucky window at low concurrency would pick a load that cannot saturate the server.
    const saturating = Math.min(16, Math.max(...concurrencies));
    const best = (u: Upload) => {
      const ws = sweep.filter((w) => w.image === u.label && (w.concurrency ?? 0) >= saturating);
      return ws.length ? ws.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a)) : undefined;
    };
    const bestConcurrency = (u: Upload) => best(u)?.concurrency ?? Math.max(...concurrencies);
    // "Maximum throughput" for the half-load phase: the efficiency phase's served mean (two windows, closest in
    // time) when it ran, else the best saturated sweep window.
    const maxThroughput = new Map<string, number>();
    for (const u of uploads) {
      const b = best(u);
      if (b) maxThroughput.set(u.label, b.imagesPerSecond);
    }

    // -------------------------------------------------------------------------------------- 2. efficiency
    if (phases.has('efficiency')) {
      // onnxruntime's best use of the cores: one session with every core as intra-op threads, or one single-threaded
      // session per core (rate × cores; what independent batches on separate cores would do). The bound takes the
      // better, so it never flatters the server.
      const session = await openBoundSession(join(modelDir, 'model.onnx'));
      const single = cores > 1 ? await openBoundSession(join(modelDir, 'model.onnx'), 1) : undefined;
      const bestOnnx = async (batch: number): Promise<Rate & { batch: number; how: string }> => {
        const all = await onnxRate(session, inputDim(card), batch, { seconds: 0.75 });
        if (!single) return { ...all, batch, how: `${cores} threads` };
        const one = await onnxRate(single, inputDim(card), batch, { seconds: 0.75 });
        return one.imagesPerSecond * cores > all.imagesPerSecond
          ? { ...one, imagesPerSecond: one.imagesPerSecond * cores, batch, how: `1 thread × ${cores}` }
          : { ...all, batch, how: `${cores} threads` };
      };
      const rows: (string | number)[][] = [];
      const eff: unknown[] = [];
      try {
        for (const u of uploads) {
          const c = bestConcurrency(u);
          // decode, served, decode+onnx, served, decode+onnx: the bound brackets the served windows in time, and
          // onnxruntime is timed at the batch size each window served.
          const decode = () => decodeRate(u.bytes, card.input, card.normalization, { seconds: 1.5, maxPixels: config.maxPixels });
          const decodes: Rate[] = [await decode()];
          const onnx: (Rate & { batch: number; how: string })[] = [];
          const served: Window[] = [];
          for (let round = 0; round < 2; round++) {
            const w = await closed(main, u, c, defaultPolicy);
            served.push(w);
            decodes.push(await decode());
            const batch = Math.max(1, Math.round(w.meanBatch));
            onnx.push(await bestOnnx(batch));
          }
          const s = pool(served);
          const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
          const batch = Math.max(1, Math.round(s.meanBatch));
          const ortRate = { imagesPerSecond: mean(onnx.map((o) => o.imagesPerSecond)), cpuMsPerImage: mean(onnx.map((o) => o.cpuMsPerImage)) };
          const decodePerSecond = mean(decodes.map((d) => d.imagesPerSecond));
          const decodeCpuMs = mean(decodes.map((d) => d.cpuMsPerImage));
          const bound = servingBound(decodePerSecond, ortRate.imagesPerSecond);
          const efficiency = s.imagesPerSecond / bound;
          // What the same run says in CPU time: the server's and the client's CPU per image against the bound's.
          const serverCpuMs = (s.serverCores * 1000) / s.imagesPerSecond;
          const clientCpuMs = (s.clientCores * 1000) / s.imagesPerSecond;
          const eventLoopCpuMs = (s.eventLoopCores * 1000) / s.imagesPerSecond;
          rows.push([
            u.label, c, f0(s.imagesPerSecond), f0(decodePerSecond), f0(ortRate.imagesPerSecond) + ` @${batch}`, f0(bound), f2(efficiency),
            f2(decodeCpuMs), f2(ortRate.cpuMsPerImage), f2(serverCpuMs), f2(eventLoopCpuMs), f2(s.eventLoopCores), f2(clientCpuMs),
          ]);
          eff.push({
            image: u.label, concurrency: c, served: s.imagesPerSecond, p50Ms: s.p50Ms, p99Ms: s.p99Ms, meanBatch: s.meanBatch,
            decodePerSecond, decodeRuns: decodes.map((d) => d.imagesPerSecond), decodeCpuMsPerImage: decodeCpuMs,
            onnxBatch: batch, onnxPerSecond: ortRate.imagesPerSecond, onnxCpuMsPerImage: ortRate.cpuMsPerImage,
            onnxRuns: onnx.map((o) => ({ batch: o.batch, imagesPerSecond: o.imagesPerSecond, how: o.how })),
            bound, efficiency, serverCpuMsPerImage: serverCpuMs, eventLoopCpuMsPerImage: eventLoopCpuMs, eventLoopCores: s.eventLoopCores,
            clientCpuMsPerImage: clientCpuMs, windows: served.map(jsonWindow),
          });
          targets[`efficiency ${u.label}`] = { value: efficiency, target: '≥ 0.8', met: efficiency >= 0.8 };
          maxThroughput.set(u.label, s.imagesPerSecond);
          cpuRatios[`efficiency ${u.label}`] = {
            value: (decodeCpuMs + ortRate.cpuMsPerImage) / (serverCpuMs + clientCpuMs),
            how: `(decode ${f2(decodeCpuMs)} + onnx ${f2(ortRate.cpuMsPerImage)}) ÷ (server ${f2(serverCpuMs)} + client ${f2(clientCpuMs)}) ms/img`,
          };
        }
      } finally {
        await session.release();
        await single?.release();
      }
      table(
        `2. efficiency = served ÷ bound, bound = 1 / (1/decode + 1/onnxruntime) img/s on ${cores} cores (= cores ÷ per-image core-seconds)`,
        [
          'image', 'conc', 'served img/s', 'decode img/s', 'onnx img/s', 'bound img/s', 'efficiency', 'decode cpu ms', 'onnx cpu ms',
          'server cpu ms/img', 'event loop ms/img', 'event loop cores', 'client cpu ms/img',
        ],
        rows,
      );
      result.efficiency = eff;
    }

    // -------------------------------------------------------------------------------------- 3. policies
    if (phases.has('policies')) {
      const rows: Window[] = [];
      const cmp: unknown[] = [];
      for (const u of uploads) {
        const c = bestConcurrency(u);
        const ws: Record<Policy, Window[]> = { fixed: [], adaptive: [] };
        for (let round = 0; round < 2; round++)
          for (const p of round === 0 ? ([defaultPolicy, other] as const) : ([other, defaultPolicy] as const))
            ws[p].push(await closed(byPolicy[p], u, c, p));
        const fixed = pool(ws.fixed);
        const adaptive = pool(ws.adaptive);
        rows.push(fixed, adaptive);
        cmp.push({ image: u.label, concurrency: c, fixed: jsonWindow(fixed), adaptive: jsonWindow(adaptive), adaptiveOverFixed: adaptive.imagesPerSecond / fixed.imagesPerSecond });
      }
      table('3. policies at the best concurrency (windows alternate fixed/adaptive)', WINDOW_HEADER, rows.map(windowRow));
      result.policies = cmp;
    }

    // -------------------------------------------------------------------------------------- 4. latency at half load
    if (phases.has('latency')) {
      const rows: Window[] = [];
      const lat: unknown[] = [];
      for (const u of uploads) {
        let max = maxThroughput.get(u.label);
        if (max === undefined) {
          // No sweep in this run: find the maximum first.
          max = (await closed(main, u, Math.max(...concurrencies), defaultPolicy)).imagesPerSecond;
          maxThroughput.set(u.label, max);
        }
        const rate = max / 2;
        const ws: Record<Policy, Window[]> = { fixed: [], adaptive: [] };
        for (let round = 0; round < 2; round++)
          for (const p of round === 0 ? ([defaultPolicy, other] as const) : ([other, defaultPolicy] as const))
            ws[p].push(await open(byPolicy[p], u, rate, p, 100 + round));
        for (const p of [defaultPolicy, other] as const) {
          const w = pool(ws[p]);
          rows.push(w);
          const bound = config.batchMaxDelayMs + 2 * w.batchMs;
          const ratio = w.p99Ms / bound;
          lat.push({ image: u.label, policy: p, ratePerSecond: rate, maxThroughput: max, window: jsonWindow(w), targetMs: bound, p99OverTarget: ratio });
          targets[`p99 at half load ${u.label} (${p}${p === defaultPolicy ? ', default' : ''})`] = {
            value: ratio,
            target:
              `≤ 1 (p99 ${f1(w.p99Ms)} ms vs ${config.batchMaxDelayMs} + 2 × ${f2(w.batchMs)} ms; ` +
              `queue wait p99 ${f1(w.queueWaitP99Ms)} ms, event loop lag p99 ${f1(w.eventLoopLagP99Ms)} ms)`,
            met: ratio <= 1,
          };
        }
      }
      table('4. open loop (Poisson) at half the maximum throughput', WINDOW_HEADER, rows.map(windowRow));
      result.latency = lat;
    }

    for (const s of servers.splice(0)) await s.stop();

    // -------------------------------------------------------------------------------------- 5. batching gain
    if (phases.has('gain')) {
      const dir = await mkdtemp(join(tmpdir(), 'mlp-bench-big-'));
      temp.push(dir);
      const arch = values['big-arch']!;
      const big = await writeRandomModel({ arch, out: join(dir, 'big'), name: 'big', size: 64, channels: 3 });
      const u = uploads[0];
      const batched = await startServer(dir, { ...userEnv });
      servers.push(batched);
      const single = await startServer(dir, { ...userEnv, BATCH_MAX_SIZE: '1' });
      servers.push(single);
      const ws = { batched: [] as Window[], single: [] as Window[] };
      const runBatched = async () => ws.batched.push(await closed(batched, u, gainConcurrency, `BATCH_MAX_SIZE=${config.batchMaxSize}`));
      const runSingle = async () => ws.single.push(await closed(single, u, gainConcurrency, 'BATCH_MAX_SIZE=1'));
      await runBatched();
      await runSingle();
      await runSingle();
      await runBatched();
      const b = pool(ws.batched);
      const s = pool(ws.single);
      const gain = b.imagesPerSecond / s.imagesPerSecond;
      table(
        `5. batching gain: ${arch} ${big.input.width}×${big.input.height}×${big.input.channels} (${f1(big.params / 1e6)}M params), ${gainConcurrency} concurrent uploads of ${u.label}`,
        WINDOW_HEADER,
        [b, s].map(windowRow),
      );
      result.gain = { arch, params: big.params, concurrency: gainConcurrency, image: u.label, batched: jsonWindow(b), single: jsonWindow(s), gain };
      targets[`batching gain ${arch} @${gainConcurrency}`] = { value: gain, target: '≥ 3', met: gain >= 3 };
      const cpuPerImage = (w: Window) => (w.serverCores * 1000) / w.imagesPerSecond;
      cpuRatios[`batching gain ${arch} @${gainConcurrency}`] = {
        value: cpuPerImage(s) / cpuPerImage(b),
        how: `server CPU per image: single ${f2(cpuPerImage(s))} ÷ batched ${f2(cpuPerImage(b))} ms`,
      };
    }
  } finally {
    for (const s of servers) await s.stop();
    for (const d of temp) await rm(d, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------- ratios
  table(
    'targets (ratios measured in this run)',
    ['ratio', 'value', 'target', 'met'],
    Object.entries(targets).map(([k, t]) => [k, f2(t.value), t.target, t.met ? 'yes' : 'NO']),
  );
  table('the same ratios in CPU time per image', ['ratio', 'value', 'from'], Object.entries(cpuRatios).map(([k, r]) => [k, f2(r.value), r.how]));
  result.targets = targets;
  result.cpuRatios = cpuRatios;
  (result.machine as Record<string, unknown>).loadavgAfter = loadavg();
  const out = resolve(values.out ?? join(ROOT, 'runs', 'bench-serve', `${startedAt.replace(/[:.]/g, '-')}.json`));
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nresults: ${out}`);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
