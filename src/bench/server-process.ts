// The service as the bench drives it: a real `src/serve/server.ts` process (what `npm start` runs), on a free
// loopback port, with its own environment (UV_THREADPOOL_SIZE only takes effect that way), and its /metrics read
// as numbers so the bench can take differences over a measured window.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Prometheus samples by series, e.g. `mlp_batch_size_sum{model="m"}` → 1234. */
export type Samples = Map<string, number>;

export interface ServerProcess {
  base: string;
  /** `HOST:PORT` of its gRPC service, when it logged one. */
  grpc: string | undefined;
  pid: number;
  /** The environment it was started with, beyond the bench's own (for the report). */
  env: Record<string, string>;
  scrape(): Promise<Samples>;
  /** CPU time so far of the main thread (the event loop) and of all other threads, ms; undefined off Linux. */
  threadCpu(): ThreadCpu | undefined;
  stop(): Promise<void>;
}

export interface ThreadCpu {
  mainMs: number;
  otherMs: number;
}

let ticksPerSecond: number | undefined;

/** Per-thread CPU of a process from /proc/<pid>/task/<tid>/stat (utime + stime); the main thread's tid is the pid. */
export function readThreadCpu(pid: number): ThreadCpu | undefined {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    let mainMs = 0;
    let otherMs = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      } catch {
        continue; // the thread ended meanwhile
      }
      // Fields after the parenthesised name: state is field 3, utime 14, stime 15 (1-based).
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
      if (Number(tid) === pid) mainMs += ms;
      else otherMs += ms;
    }
    return { mainMs, otherMs };
  } catch {
    return undefined;
  }
}

/**
 * The q-quantile of a Prometheus histogram over a window (bucket counts after − before, summed over label sets),
 * interpolated linearly inside the bucket as PromQL's histogram_quantile does. Seconds; NaN without observations.
 */
export function histogramQuantile(before: Samples, after: Samples, name: string, q: number): number {
  const buckets = new Map<number, number>();
  for (const [series, v] of after) {
    if (!series.startsWith(name + '_bucket{')) continue;
    const le = /le="([^"]+)"/.exec(series)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + v - (before.get(series) ?? 0));
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return prevBound;
      return prevBound + ((bound - prevBound) * (rank - prevCount)) / Math.max(1e-12, count - prevCount);
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

/** Parses the Prometheus text format into samples (comments skipped). */
export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of a metric over all its label sets: `name` alone or `name{...}`. */
export function total(samples: Samples, name: string): number {
  let sum = 0;
  for (const [series, v] of samples) if (series === name || series.startsWith(name + '{')) sum += v;
  return sum;
}

/** after − before of a metric summed over its label sets. */
export function delta(before: Samples, after: Samples, name: string): number {
  return total(after, name) - total(before, name);
}

/**
 * Starts the server and resolves once it logged `ready` (every model loaded and warmed up). Logs go to a buffer
 * that is printed only if start-up fails.
 */
export async function startServer(modelsDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/serve/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, MODELS_DIR: modelsDir, HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  let grpc: string | undefined;
  const base = await new Promise<string>((resolve, reject) => {
    let url = '';
    const onLine = (line: string) => {
      if (log.length < 200) log.push(line);
      const m = /listening at (http:\/\/[\d.]+:\d+)/.exec(line);
      if (m) url = m[1];
      grpc = /gRPC \(inference\.GRPCInferenceService\) listening on ([\d.]+:\d+)/.exec(line)?.[1] ?? grpc;
      if (/"msg":"ready"/.test(line) && url) resolve(url);
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.once('exit', (code) => reject(new Error(`server exited (code ${code}) before it was ready:\n${log.join('\n')}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    base,
    grpc,
    pid: child.pid!,
    env,
    scrape: async () => parseMetrics(await (await fetch(`${base}/metrics`)).text()),
    threadCpu: () => readThreadCpu(child.pid!),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
