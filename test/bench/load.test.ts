// The bench's own instruments, against a real HTTP server on a socket: the closed loop keeps exactly N requests in
// flight, the open loop sends at the asked rate whatever the server does and counts latency from the schedule,
// failures are counted by status; and the small maths (percentiles, Poisson gaps, histogram quantiles).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closedLoop, openLoop, percentile, poissonGaps, type Upload } from '../../src/bench/load.js';
import { histogramQuantile, parseMetrics, readThreadCpu } from '../../src/bench/server-process.js';

const upload: Upload = { label: 'bytes', bytes: new Uint8Array(100).fill(7), contentType: 'image/png' };

let server: Server;
let base = '';
let inFlight = 0;
let maxInFlight = 0;
let received = 0;
let delayMs = 0;
let status = 200;

beforeAll(async () => {
  server = createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () =>
      setTimeout(() => {
        received++;
        inFlight--;
        res.writeHead(bytes === 100 ? status : 400, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, delayMs),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('closedLoop', () => {
  it('keeps exactly `concurrency` uploads in flight and counts the answers inside the window', async () => {
    maxInFlight = 0;
    delayMs = 20;
    status = 200;
    let atStart = 0;
    let atEnd = 0;
    const r = await closedLoop(base, {
      path: '/x',
      upload,
      concurrency: 8,
      seconds: 0.6,
      warmupSeconds: 0.2,
      beforeWindow: async () => void (atStart = received),
      afterWindow: async () => void (atEnd = received),
    });
    expect(maxInFlight).toBe(8);
    expect(r.failed).toEqual({});
    // The server counted what the client counted, give or take the requests crossing the window's edges.
    expect(Math.abs(r.ok - (atEnd - atStart))).toBeLessThanOrEqual(8);
    // 8 in flight, each held 20 ms: at most 400/s.
    expect(r.ok / r.seconds).toBeLessThanOrEqual(420);
    expect(r.latencyMs[0]).toBeGreaterThanOrEqual(19);
    for (let i = 1; i < r.latencyMs.length; i++) expect(r.latencyMs[i]).toBeGreaterThanOrEqual(r.latencyMs[i - 1]);
  });

  it('EXPECTED FAILURE - non-200 answers are counted by status, not as successes', async () => {
    delayMs = 0;
    status = 503;
    const r = await closedLoop(base, { path: '/x', upload, concurrency: 2, seconds: 0.2, warmupSeconds: 0.05 });
    status = 200;
    expect(r.ok).toBe(0);
    expect(r.latencyMs).toHaveLength(0);
    expect(r.failed['503']).toBeGreaterThan(0);
  });
});

describe('openLoop', () => {
  it('sends at the asked mean rate whatever the server does, latency counted from the schedule', async () => {
    delayMs = 30;
    status = 200;
    const rate = 400;
    const r = await openLoop(base, { path: '/x', upload, ratePerSecond: rate, seconds: 1.5, warmupSeconds: 0.2, seed: 5 });
    const expected = rate * r.seconds;
    // Poisson: within 4 standard deviations of the mean count.
    expect(Math.abs(r.ok - expected)).toBeLessThan(4 * Math.sqrt(expected));
    // Every request is held 30 ms: the open loop kept ~12 in flight instead of slowing down.
    expect(maxInFlight).toBeGreaterThan(8);
    expect(percentile(r.latencyMs, 0.5)).toBeGreaterThanOrEqual(29);
  });
});

describe('small maths', () => {
  it('percentile is the nearest rank', () => {
    const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 0.5)).toBe(50);
    expect(percentile(xs, 0.99)).toBe(99);
    expect(percentile(xs, 1)).toBe(100);
    expect(percentile([], 0.5)).toBeNaN();
  });

  it('Poisson gaps have the asked mean and the exponential spread', () => {
    const gap = poissonGaps(1000, 9); // mean 1 ms
    const xs = Array.from({ length: 20000 }, gap);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
    expect(mean).toBeCloseTo(1, 1);
    expect(sd).toBeCloseTo(1, 1);
    expect(() => poissonGaps(0, 1)).toThrow(RangeError);
  });

  it('histogramQuantile interpolates inside the bucket over a window, like PromQL', () => {
    const before = parseMetrics('h_bucket{le="1"} 10\nh_bucket{le="2"} 10\nh_bucket{le="+Inf"} 10\n');
    const after = parseMetrics(
      '# HELP h x\nh_bucket{le="1",a="x"} 50\nh_bucket{le="2",a="x"} 100\nh_bucket{le="+Inf",a="x"} 100\n' +
        'h_bucket{le="1"} 10\nh_bucket{le="2"} 10\nh_bucket{le="+Inf"} 10\n',
    );
    // Window: 50 in (0,1], 50 in (1,2]; the median is at 1, p90 at 1.8.
    expect(histogramQuantile(before, after, 'h', 0.5)).toBeCloseTo(1, 10);
    expect(histogramQuantile(before, after, 'h', 0.9)).toBeCloseTo(1.8, 10);
    expect(histogramQuantile(after, after, 'h', 0.9)).toBeNaN();
  });

  it('reads per-thread CPU of this very process (main thread apart)', () => {
    const t = readThreadCpu(process.pid);
    if (process.platform !== 'linux') return expect(t).toBeUndefined();
    // Burn 60 ms of CPU on the main thread (CPU, not wall time: on a busy machine the thread may wait for a core).
    const c0 = process.cpuUsage();
    for (let spins = 0; ; spins++) {
      const c = process.cpuUsage(c0);
      if (c.user + c.system >= 60_000 || spins > 1e9) break;
    }
    const u = readThreadCpu(process.pid)!;
    // The kernel counts in clock ticks (10 ms): most of the 60 ms shows on the main thread.
    expect(u.mainMs - t!.mainMs).toBeGreaterThanOrEqual(30);
    expect(u.otherMs).toBeGreaterThanOrEqual(0);
  });
});
