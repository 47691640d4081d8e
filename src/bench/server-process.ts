// The service as the bench drives it: a real `src/serve/server.ts` process (what `npm start` runs), on a free
// loopback port, with its own environment (UV_THREADPOOL_SIZE only takes effect that way), and its /metrics read
// as numbers so the bench can take differences over a measured window.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Prometheus samples by series, e.g. `mlp_batch_size_sum{model="m"}` → 1234. */
export type Samples = Map<string, number>;

export interface ServerProcess {
  base: string;
  pid: number;
  /** The environment it was started with, beyond the bench's own (for the report). */
  env: Record<string, string>;
  scrape(): Promise<Samples>;
  stop(): Promise<void>;
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
    env: { ...process.env, MODELS_DIR: modelsDir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const base = await new Promise<string>((resolve, reject) => {
    let url = '';
    const onLine = (line: string) => {
      if (log.length < 200) log.push(line);
      const m = /listening at (http:\/\/[\d.]+:\d+)/.exec(line);
      if (m) url = m[1];
      if (/"msg":"ready"/.test(line) && url) resolve(url);
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.once('exit', (code) => reject(new Error(`server exited (code ${code}) before it was ready:\n${log.join('\n')}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    base,
    pid: child.pid!,
    env,
    scrape: async () => parseMetrics(await (await fetch(`${base}/metrics`)).text()),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
