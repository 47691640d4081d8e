// Load generators for the serving bench, over undici keep-alive connections: a closed loop (N uploads always in
// flight: finds the maximum throughput) and an open loop (Poisson arrivals at a fixed mean rate, whatever the
// server's speed: latency at a given load). The open loop measures each latency from the request's *scheduled*
// time, so a server that stalls cannot hide the queue it builds (no coordinated omission).

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { createRng } from '../util/rng.js';

/** One image as a client uploads it: the whole body, with its content type. */
export interface Upload {
  label: string;
  bytes: Uint8Array;
  contentType: string;
}

export interface LoadResult {
  /** Requests answered 200 within the window. */
  ok: number;
  /** Everything else within the window, by status code or transport error code. */
  failed: Record<string, number>;
  /** Length of the window, s. */
  seconds: number;
  /** Latencies of the `ok` requests, ms, ascending. */
  latencyMs: Float64Array;
  /** CPU time this (client) process used during the window, ms. */
  clientCpuMs: number;
}

/** Awaited around the measured window, while the load keeps running (the bench scrapes /metrics there). */
export interface WindowHooks {
  beforeWindow?(): Promise<void>;
  afterWindow?(): Promise<void>;
}

export interface ClosedLoopOptions extends WindowHooks {
  path: string;
  upload: Upload;
  /** Uploads in flight at all times (one keep-alive connection each). */
  concurrency: number;
  /** Measured window, s. */
  seconds: number;
  /** Load before the window (connections open, batches reach their steady size), s. */
  warmupSeconds: number;
}

export interface OpenLoopOptions extends WindowHooks {
  path: string;
  upload: Upload;
  /** Mean arrival rate, requests/s (exponential gaps). */
  ratePerSecond: number;
  seconds: number;
  warmupSeconds: number;
  /** Connections; an arrival finding all of them busy is counted as failed `client_saturated`. Default 256. */
  maxInFlight?: number;
  seed?: number;
}

/** The value below which a fraction `p` of the sorted sample lies (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Exponential inter-arrival gaps (ms) of a Poisson process with `ratePerSecond`, from a seeded generator. */
export function poissonGaps(ratePerSecond: number, seed: number): () => number {
  if (!(ratePerSecond > 0)) throw new RangeError(`ratePerSecond must be > 0, got ${ratePerSecond}`);
  const rng = createRng(seed);
  const meanMs = 1000 / ratePerSecond;
  return () => -Math.log(1 - rng()) * meanMs;
}

async function send(pool: Pool, path: string, upload: Upload): Promise<number | string> {
  try {
    const res = await pool.request({ path, method: 'POST', headers: { 'content-type': upload.contentType }, body: upload.bytes });
    await res.body.dump();
    return res.statusCode;
  } catch (err) {
    return (err as { code?: string }).code ?? 'error';
  }
}

/** Collects answers whose time stamp falls inside the window. */
class Recorder {
  private readonly latencies: number[] = [];
  private readonly failed: Record<string, number> = {};
  private ok = 0;
  private start = Infinity;
  private end = Infinity;
  private cpu0: NodeJS.CpuUsage | undefined;
  private cpuMs = 0;

  open(): void {
    this.cpu0 = process.cpuUsage();
    this.start = performance.now();
  }

  close(): void {
    this.end = performance.now();
    const c = process.cpuUsage(this.cpu0);
    this.cpuMs = (c.user + c.system) / 1000;
  }

  /** `at`: the moment that decides membership of the window (completion, or scheduled time for the open loop). */
  record(at: number, latencyMs: number, status: number | string): void {
    if (at < this.start || at >= this.end) return;
    if (status === 200) {
      this.ok++;
      this.latencies.push(latencyMs);
    } else this.failed[String(status)] = (this.failed[String(status)] ?? 0) + 1;
  }

  result(): LoadResult {
    return {
      ok: this.ok,
      failed: { ...this.failed },
      seconds: (this.end - this.start) / 1000,
      latencyMs: Float64Array.from(this.latencies).sort(),
      clientCpuMs: this.cpuMs,
    };
  }
}

/** Keeps `concurrency` uploads in flight: each loop sends its next request as soon as the previous one is answered. */
export async function closedLoop(base: string, o: ClosedLoopOptions): Promise<LoadResult> {
  const pool = new Pool(base, { connections: o.concurrency, pipelining: 1 });
  const rec = new Recorder();
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const t0 = performance.now();
      const status = await send(pool, o.path, o.upload);
      const t1 = performance.now();
      rec.record(t1, t1 - t0, status);
    }
  };
  const loops = Array.from({ length: o.concurrency }, loop);
  try {
    await sleep(o.warmupSeconds * 1000);
    await o.beforeWindow?.();
    rec.open();
    await sleep(o.seconds * 1000);
    rec.close();
    await o.afterWindow?.();
  } finally {
    stop = true;
    await Promise.all(loops);
    await pool.close();
  }
  return rec.result();
}

/** Sends requests at Poisson arrival times; a request belongs to the window its scheduled time falls in. */
export async function openLoop(base: string, o: OpenLoopOptions): Promise<LoadResult> {
  const maxInFlight = o.maxInFlight ?? 256;
  const pool = new Pool(base, { connections: maxInFlight, pipelining: 1 });
  const gap = poissonGaps(o.ratePerSecond, o.seed ?? 1);
  const rec = new Recorder();
  const pending = new Set<Promise<void>>();
  const fire = (scheduled: number) => {
    if (pending.size >= maxInFlight) {
      rec.record(scheduled, 0, 'client_saturated');
      return;
    }
    const p = send(pool, o.path, o.upload).then((status) => {
      rec.record(scheduled, performance.now() - scheduled, status);
      pending.delete(p);
    });
    pending.add(p);
  };
  // Sends every arrival due by now, then sleeps until the next one (timers fire late by up to ~1 ms: the latency
  // still counts from the scheduled time).
  const run = async (until: number, next: number): Promise<number> => {
    for (;;) {
      const now = performance.now();
      if (next >= until) return next;
      while (next <= now && next < until) {
        fire(next);
        next += gap();
      }
      if (next < until) await sleep(Math.max(0, next - performance.now()));
    }
  };
  try {
    const t0 = performance.now();
    let next = await run(t0 + o.warmupSeconds * 1000, t0);
    await o.beforeWindow?.();
    rec.open();
    next = await run(performance.now() + o.seconds * 1000, Math.max(next, performance.now()));
    // Arrivals scheduled inside the window are still answered after it; the window's end bounds the schedule.
    rec.close();
    await Promise.all([...pending]);
    await o.afterWindow?.();
  } finally {
    await Promise.all([...pending]);
    await pool.close();
  }
  return rec.result();
}
