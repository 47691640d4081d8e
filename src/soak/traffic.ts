// Traffic for the soak and the fault tests, over undici keep-alive connections, that keeps every answer's verdict:
// the status, whether a 503 carried Retry-After, and transport errors (a request that got no HTTP answer is *lost*).
// Open loop (Poisson arrivals at a fixed rate: overload), closed loop (N clients), and a resident-memory sampler for
// the server's process. Arrival gaps and percentiles come from the serving bench (src/bench/load.ts).

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { percentile, poissonGaps } from '../bench/load.js';

export interface Request {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

export interface Answer {
  /** HTTP status, or 0 when no answer came (the request is lost). */
  status: number;
  /** undici's error code when status is 0. */
  error?: string;
  retryAfter: boolean;
  /** ms from the scheduled (open loop) or actual (closed loop) start to the end of the answer. */
  ms: number;
  /** performance.now() at the start. */
  start: number;
  /** Response headers worth keeping (x-model-version). */
  version?: string;
}

/** Counts over a set of answers, for the soak table. */
export interface Tally {
  sent: number;
  byStatus: Record<string, number>;
  /** Requests without an HTTP answer. */
  lost: number;
  /** 5xx answers, and of them the 503s without Retry-After. */
  fiveXX: number;
  unannounced503: number;
  /** p50 / p99 of the 200 answers, ms. */
  p50: number;
  p99: number;
}

export async function send(pool: Pool, r: Request, start = performance.now()): Promise<Answer> {
  try {
    const res = await pool.request({ method: r.method, path: r.path, headers: r.headers, body: r.body });
    await res.body.dump();
    const v = res.headers['x-model-version'];
    return {
      status: res.statusCode,
      retryAfter: res.headers['retry-after'] !== undefined,
      ms: performance.now() - start,
      start,
      ...(typeof v === 'string' ? { version: v } : {}),
    };
  } catch (err) {
    return { status: 0, error: (err as { code?: string }).code ?? String(err), retryAfter: false, ms: performance.now() - start, start };
  }
}

export function tally(answers: readonly Answer[]): Tally {
  const byStatus: Record<string, number> = {};
  const ok: number[] = [];
  let lost = 0;
  let fiveXX = 0;
  let unannounced503 = 0;
  for (const a of answers) {
    const key = a.status === 0 ? `error:${a.error}` : String(a.status);
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    if (a.status === 0) lost++;
    if (a.status >= 500) fiveXX++;
    if (a.status === 503 && !a.retryAfter) unannounced503++;
    if (a.status === 200) ok.push(a.ms);
  }
  const sorted = Float64Array.from(ok).sort();
  return { sent: answers.length, byStatus, lost, fiveXX, unannounced503, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

export interface OpenLoopOptions {
  request: () => Request;
  ratePerSecond: number;
  seconds: number;
  /** Connections (and requests in flight at most). Default 512. */
  connections?: number;
  seed?: number;
  /** Called about every second while the load runs (the soak samples memory there). */
  tick?: (elapsedS: number) => void;
  /** Stops the arrivals early when it resolves. */
  until?: Promise<unknown>;
}

/** Poisson arrivals at `ratePerSecond` for `seconds`; latency counts from each arrival's scheduled time. */
export async function openLoop(base: string, o: OpenLoopOptions): Promise<Answer[]> {
  const pool = new Pool(base, { connections: o.connections ?? 512, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const gap = poissonGaps(o.ratePerSecond, o.seed ?? 1);
  const answers: Answer[] = [];
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const end = t0 + o.seconds * 1000;
  let next = t0;
  let lastTick = t0;
  let stopped = false;
  void o.until?.then(() => (stopped = true));
  try {
    while (next < end && !stopped) {
      const now = performance.now();
      while (next <= now && next < end) {
        const p = send(pool, o.request(), next).then((a) => {
          answers.push(a);
          pending.delete(p);
        });
        pending.add(p);
        next += gap();
      }
      if (now - lastTick >= 1000) {
        lastTick = now;
        o.tick?.((now - t0) / 1000);
      }
      await sleep(Math.max(0, Math.min(next, end, performance.now() + 100) - performance.now()));
    }
    await Promise.all([...pending]);
  } finally {
    await pool.close();
  }
  return answers;
}

export interface ClosedLoopOptions {
  request: () => Request;
  clients: number;
  /** Stops when this resolves (or after `seconds`). */
  seconds?: number;
  until?: Promise<unknown>;
}

/** `clients` loops, each sending its next request when the previous one is answered. */
export async function closedLoop(base: string, o: ClosedLoopOptions): Promise<Answer[]> {
  const pool = new Pool(base, { connections: o.clients, pipelining: 1 });
  const answers: Answer[] = [];
  let stop = false;
  const stopAt = o.seconds !== undefined ? sleep(o.seconds * 1000) : new Promise(() => undefined);
  void Promise.race([stopAt, o.until ?? new Promise(() => undefined)]).then(() => (stop = true));
  const loop = async () => {
    while (!stop) answers.push(await send(pool, o.request()));
  };
  try {
    await Promise.all(Array.from({ length: o.clients }, loop));
  } finally {
    await pool.close();
  }
  return answers;
}

/** Resident memory of a process (Linux /proc), sampled on demand; max and last in MB. */
export class RssSampler {
  max = 0;
  first = 0;
  last = 0;
  constructor(private readonly pid: number) {}

  sample(): number {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      const mb = m ? Number(m[1]) / 1024 : 0;
      if (this.first === 0) this.first = mb;
      this.last = mb;
      this.max = Math.max(this.max, mb);
      return mb;
    } catch {
      return this.last; // the process is gone
    }
  }
}
