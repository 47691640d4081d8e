// The soak scenarios of `npm run soak`, each against the real service and each returning one row of the table:
// what load it held, how many inputs it tried, requests lost (no HTTP answer: must be 0), 5xx other than announced
// load shedding, p99 of the answered requests and the server's peak resident memory, with a verdict.
//   capacity   closed loop, to find what 1× is          overload   open loop at 4× capacity for minutes
//   fuzz       N random and mutated inputs               transport  slow uploads, huge headers, garbage HTTP
//   disconnect clients that leave while queued           reload     hot reloads under traffic
//   crash      inference workers killed under traffic    sigterm    SIGTERM under traffic
// Servers are real `src/serve/server.ts` processes (src/bench/server-process.ts), except for `crash`, which needs
// to reach a worker thread and so runs the app in this process.

import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { loadConfig } from '../config.js';
import { buildApp } from '../serve/app.js';
import { writeRandomModel } from '../export/random.js';
import { delta, startServer, type ServerProcess } from '../bench/server-process.js';
import { fuzzCase, makeSeeds, type FuzzTarget } from './fuzz.js';
import { RssSampler, closedLoop, openLoop, send, tally, type Answer, type Request } from './traffic.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Row {
  scenario: string;
  load: string;
  inputs: number;
  lost: number;
  /** 5xx other than 503 with Retry-After (load shedding) and, in `crash`, the crashed batch's 503s. */
  fiveXX: number;
  /** 503 + Retry-After answers (load shedding, or a crashed batch). */
  shed: number;
  p99Ms: number;
  rssMb: number;
  pass: boolean;
  /** Why it failed, or what else was measured. */
  note: string;
}

export interface SoakContext {
  modelsDir: string;
  model: string;
  arch: string;
  inputDim: number;
  /** A 28×28 grey PNG: what a client of the default model sends. */
  png: Uint8Array;
  log: (msg: string) => void;
  adminKey: string;
}

export async function prepare(dir: string, arch: string, log: (m: string) => void): Promise<SoakContext> {
  const model = 'soak';
  await mkdir(join(dir, model), { recursive: true });
  const card = await writeRandomModel({ arch, name: model, out: join(dir, model, '1'), size: 64, channels: 3, seed: 1 });
  log(`model ${model}: random-weight ${arch}, ${(card.params / 1e6).toFixed(1)}M params, input 3×64×64`);
  const sharp = (await import('sharp')).default;
  const raw = Buffer.alloc(28 * 28);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 251;
  const png = new Uint8Array(await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer());
  return { modelsDir: dir, model, arch, inputDim: 3 * 64 * 64, png, log, adminKey: 'soak-admin-key-0123456789' };
}

const classify = (ctx: SoakContext): Request => ({
  method: 'POST',
  path: `/classify?model=${ctx.model}`,
  headers: { 'content-type': 'image/png' },
  body: ctx.png,
});

function row(scenario: string, load: string, answers: Answer[], rss: number, extra: { pass?: boolean; note?: string } = {}): Row {
  const t = tally(answers);
  const shed = (t.byStatus['503'] ?? 0) - t.unannounced503;
  const fiveXX = t.fiveXX - shed;
  const problems: string[] = [];
  if (t.lost > 0) problems.push(`${t.lost} lost (${Object.keys(t.byStatus).filter((k) => k.startsWith('error')).join(', ')})`);
  if (fiveXX > 0) problems.push(`${fiveXX} 5xx`);
  if (t.unannounced503 > 0) problems.push(`${t.unannounced503} 503 without Retry-After`);
  const pass = (extra.pass ?? true) && problems.length === 0;
  return { scenario, load, inputs: t.sent, lost: t.lost, fiveXX, shed, p99Ms: t.p99, rssMb: rss, pass, note: [...problems, extra.note ?? ''].filter(Boolean).join('; ') };
}

// As the image runs it (Dockerfile ENV): with glibc's fixed mmap threshold, freed model weights return to the system.
const env = (ctx: SoakContext, more: Record<string, string> = {}) => ({ EXECUTION_PROVIDERS: 'cpu', ADMIN_API_KEYS: ctx.adminKey, MALLOC_MMAP_THRESHOLD_: '131072', ...more });

/** capacity + overload + fuzz + transport share one server: the later scenarios run on a server that was hammered. */
export async function mainServer(ctx: SoakContext): Promise<ServerProcess> {
  return startServer(ctx.modelsDir, env(ctx));
}

export async function capacity(ctx: SoakContext, srv: ServerProcess, seconds: number): Promise<{ row: Row; perSecond: number }> {
  const rss = new RssSampler(srv.pid);
  const answers = await closedLoop(srv.base, { request: () => classify(ctx), clients: 64, seconds });
  rss.sample();
  const ok = answers.filter((a) => a.status === 200).length;
  const perSecond = ok / seconds;
  return { row: row('capacity', `closed loop, 64 clients, ${seconds} s`, answers, rss.max, { note: `${perSecond.toFixed(0)} req/s = 1×` }), perSecond };
}

export async function overload(ctx: SoakContext, srv: ServerProcess, capacityPerSecond: number, seconds: number): Promise<Row> {
  const rate = 4 * capacityPerSecond;
  const rss = new RssSampler(srv.pid);
  // The first half starts at the resident size before the load, so a first tick that lands late still has a baseline.
  const halves = [rss.sample(), 0];
  const answers = await openLoop(srv.base, {
    request: () => classify(ctx),
    ratePerSecond: rate,
    seconds,
    tick: (s) => {
      const mb = rss.sample();
      const h = s < seconds / 2 ? 0 : 1;
      halves[h] = Math.max(halves[h], mb);
    },
  });
  const t = tally(answers);
  const timeoutMs = loadConfig({}).requestTimeoutMs;
  const served = (t.byStatus['200'] ?? 0) / seconds;
  // Bounded: the second half peaks no higher than the first (+ a margin for allocator noise); p99 within the deadline.
  const rssBounded = halves[1] <= halves[0] * 1.15 + 32;
  const p99Bounded = t.p99 < timeoutMs;
  const others = Object.keys(t.byStatus).filter((k) => k !== '200' && k !== '503');
  return row(`overload 4×`, `${rate.toFixed(0)} req/s offered for ${seconds} s`, answers, rss.max, {
    pass: rssBounded && p99Bounded && others.length === 0,
    note:
      `served ${served.toFixed(0)} req/s; RSS peak ${halves[0].toFixed(0)} → ${halves[1].toFixed(0)} MB (1st → 2nd half)` +
      (rssBounded ? '' : ' NOT BOUNDED') +
      (p99Bounded ? '' : `; p99 over the ${timeoutMs} ms deadline`) +
      (others.length ? `; unexpected answers ${others.map((k) => `${k}×${t.byStatus[k]}`).join(', ')}` : ''),
  });
}

export async function fuzz(ctx: SoakContext, srv: ServerProcess, cases: number, seed: number): Promise<Row> {
  const seeds = await makeSeeds();
  const target: FuzzTarget = { model: ctx.model, inputDim: ctx.inputDim };
  const rss = new RssSampler(srv.pid);
  const before = await srv.scrape();
  const pool = new Pool(srv.base, { connections: 8, pipelining: 1 });
  const answers: Answer[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases) {
      const i = next++;
      const c = fuzzCase(seed, i, target, seeds);
      const a = await send(pool, c);
      answers.push(a);
      if ((a.status === 0 || a.status >= 500) && failures.length < 5) failures.push(`#${i} ${c.kind} → ${a.status || a.error}`);
      if (i % 500 === 0) rss.sample();
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await pool.close();
  rss.sample();
  const after = await srv.scrape();
  const alive = (await fetch(`${srv.base}/readyz`)).status === 200;
  const good = (await send(new Pool(srv.base), classify(ctx))).status === 200;
  const restarts = delta(before, after, 'mlp_worker_restarts_total');
  const statuses = Object.entries(tally(answers).byStatus)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}×${v}`)
    .join(' ');
  return row('fuzz', `${cases} random/mutated inputs, 8 clients`, answers, rss.max, {
    pass: alive && good && restarts === 0,
    note: `answers ${statuses}; worker restarts ${restarts}; ready after: ${alive && good}` + (failures.length ? `; e.g. ${failures.join(', ')}` : ''),
  });
}

/** One raw connection: writes `head`, then `body` byte by byte every `everyMs`; resolves with the status (0: none). */
function rawStatus(base: string, head: string, body: Buffer = Buffer.alloc(0), everyMs = 0): Promise<number> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const sock = connect(Number(url.port), url.hostname);
    let data = '';
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (data += d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0));
    });
    sock.write(head);
    const drip = () => {
      if (i >= body.length || sock.destroyed) return;
      sock.write(body.subarray(i, ++i));
      timer = setTimeout(drip, everyMs);
    };
    drip();
  });
}

export async function transport(ctx: SoakContext, srv: ServerProcess): Promise<Row> {
  const rss = new RssSampler(srv.pid);
  let done!: () => void;
  const stop = new Promise<void>((r) => (done = r));
  const normal = closedLoop(srv.base, { request: () => classify(ctx), clients: 8, until: stop });
  const head = (len: number) => `POST /classify HTTP/1.1\r\nHost: soak\r\nContent-Type: image/png\r\nContent-Length: ${len}\r\n\r\n`;
  const body = Buffer.from(ctx.png);
  const slow = Array.from({ length: 50 }, () => rawStatus(srv.base, head(body.length), body, 400));
  const big = Array.from({ length: 200 }, (_, i) => rawStatus(srv.base, `GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Big: ${'h'.repeat(20_000 + i)}\r\n\r\n`));
  const junk = Array.from({ length: 200 }, (_, i) => rawStatus(srv.base, `${'\x00\x01BAD'.repeat(1 + (i % 5))} / HTTP/9\r\n\r\n`));
  const [s, b, j] = await Promise.all([Promise.all(slow), Promise.all(big), Promise.all(junk)]);
  rss.sample();
  done();
  const answers = await normal;
  rss.sample();
  const count = (xs: number[], status: number) => xs.filter((x) => x === status).length;
  const hostileOk = count(s, 408) === s.length && count(b, 431) === b.length && count(j, 400) === j.length;
  const normalOk = answers.every((a) => a.status === 200);
  const r = row('transport', `50 slow uploads, 200 huge headers, 200 garbage requests + 8 clients`, answers, rss.max, {
    pass: hostileOk && normalOk,
    note: `slow → 408×${count(s, 408)}/${s.length}, huge headers → 431×${count(b, 431)}/${b.length}, garbage → 400×${count(j, 400)}/${j.length}; normal traffic all 200: ${normalOk}`,
  });
  return { ...r, inputs: r.inputs + s.length + b.length + j.length, lost: r.lost + [...s, ...b, ...j].filter((x) => x === 0).length };
}

export async function disconnect(ctx: SoakContext, clients: number): Promise<Row> {
  // A long batch window, so requests wait in the queue long enough for their clients to leave.
  const srv = await startServer(ctx.modelsDir, env(ctx, { BATCH_POLICY: 'fixed', BATCH_MAX_DELAY_MS: '400', BATCH_MAX_SIZE: '256' }));
  try {
    const rss = new RssSampler(srv.pid);
    const before = await srv.scrape();
    const aborted = await Promise.all(
      Array.from({ length: clients }, async () => {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 150);
        return fetch(`${srv.base}/classify`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(ctx.png), signal: ac.signal }).then(
          () => 'answered',
          () => 'left',
        );
      }),
    );
    await sleep(600); // past the batch window: anything still queued would have been computed by now
    const mid = await srv.scrape();
    const answers = await closedLoop(srv.base, { request: () => classify(ctx), clients: 8, seconds: 2 });
    rss.sample();
    const after = await srv.scrape();
    const left = aborted.filter((x) => x === 'left').length;
    const cancelled = delta(before, mid, 'mlp_images_cancelled_total');
    const computed = delta(before, mid, 'mlp_batch_size_sum');
    const gone = delta(before, mid, 'mlp_rejections_total');
    const inflight = after.get('mlp_inflight_requests') ?? NaN;
    return row('disconnect', `${clients} clients leaving while queued, then 8 clients`, answers, rss.max, {
      pass: left === clients && cancelled === clients && computed === 0 && gone === clients && inflight === 1,
      note: `left ${left}; images dropped uncomputed ${cancelled}, computed ${computed}; client_gone counted ${gone}; in-flight gauge after ${inflight}`,
    });
  } finally {
    await srv.stop();
  }
}

export async function reload(ctx: SoakContext, srv: ServerProcess, capacityPerSecond: number, reloads: number, everyS: number): Promise<Row> {
  const rss = new RssSampler(srv.pid);
  const versionsSeen = new Set<string>();
  const reloadStatus: number[] = [];
  const rate = Math.max(5, capacityPerSecond / 2);
  let finished!: () => void;
  const reloadsDone = new Promise<void>((r) => (finished = r));
  const traffic = openLoop(srv.base, { request: () => classify(ctx), ratePerSecond: rate, seconds: 3600, until: reloadsDone, tick: () => rss.sample(), seed: 5 });
  // Memory once each reload's previous generation has drained and stopped: it must not grow reload after reload.
  const settled: number[] = [];
  for (let i = 0; i < reloads; i++) {
    await sleep(Math.max(0, everyS * 1000 - 1500));
    const version = String(i + 2);
    const out = join(ctx.modelsDir, ctx.model, version);
    const card = await writeRandomModel({ arch: ctx.arch, name: ctx.model, out, size: 64, channels: 3, seed: 100 + i });
    // A version directory's card carries its version (the server checks they agree).
    await writeFile(join(out, 'model.json'), JSON.stringify({ ...card, version }, null, 2));
    const res = await fetch(`${srv.base}/admin/models/reload`, { method: 'POST', headers: { authorization: `Bearer ${ctx.adminKey}` } });
    reloadStatus.push(res.status);
    await res.arrayBuffer();
    await sleep(1500); // the previous generation's requests answered (well under a second here), its workers stopped
    settled.push(rss.sample());
  }
  await sleep(3000); // traffic on the last version
  finished();
  const answers = await traffic;
  for (const a of answers) if (a.version) versionsSeen.add(a.version);
  rss.sample();
  const expected = String(reloads + 1);
  // Bounded: after the second reload (two generations' worth of allocations seen), memory stops growing.
  const bounded = settled.length < 3 || settled[settled.length - 1] <= settled[1] * 1.15 + 64;
  return row('reload', `${rate.toFixed(0)} req/s, ${reloads} hot reloads`, answers, rss.max, {
    pass: reloadStatus.every((s) => s === 200) && versionsSeen.has(expected) && answers.every((a) => a.status === 200) && bounded,
    note:
      `reloads answered ${reloadStatus.join(',')}; versions served ${[...versionsSeen].sort((a, b) => Number(a) - Number(b)).join('→')}; ` +
      `RSS after each reload drained ${settled.map((x) => x.toFixed(0)).join(' → ')} MB` + (bounded ? '' : ' NOT BOUNDED'),
  });
}

export async function crash(ctx: SoakContext, crashes: number): Promise<Row> {
  const config = loadConfig({ MODELS_DIR: ctx.modelsDir, HOST: '127.0.0.1', PORT: '0', EXECUTION_PROVIDERS: 'cpu', LOG_LEVEL: 'silent' });
  const app = await buildApp(config, { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await app.models.whenReady();
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    const rss = new RssSampler(process.pid);
    let done!: () => void;
    const stop = new Promise<void>((r) => (done = r));
    const traffic = closedLoop(base, { request: () => classify(ctx), clients: 16, until: stop });
    const restarts0 = app.models.pool!.restarts;
    for (let i = 0; i < crashes; i++) {
      await sleep(1500);
      const pool = app.models.pool!;
      // The worker is sent a message that breaks the protocol just before its next batch: it dies with the batch.
      await new Promise<void>((r) => pool.once('dispatch', (index: number) => (pool.workers[index].postMessage(null), r())));
      await new Promise((r) => pool.once('replaced', r));
      rss.sample();
    }
    await sleep(1000);
    done();
    const answers = await traffic;
    const restarts = app.models.pool!.restarts - restarts0;
    const t = tally(answers);
    const failed = answers.filter((a) => a.status !== 200);
    return row('crash', `16 clients, ${crashes} worker crashes`, answers, rss.max, {
      pass: restarts === crashes && failed.every((a) => a.status === 503 && a.retryAfter) && failed.length <= crashes * config.batchMaxSize,
      note: `workers replaced ${restarts}; failed ${failed.length} = the crashed batches (503 WORKER_RESTARTING + Retry-After, the one legitimate 5xx); p50 ${t.p50.toFixed(0)} ms; RSS of this process (app and load together)`,
    });
  } finally {
    await app.close();
  }
}

/** `npm start`'s process, with its exit code (the bench's server handle does not keep it). */
async function startWithExit(ctx: SoakContext, more: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/serve/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env(ctx, more), MODELS_DIR: ctx.modelsDir, HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const base = await new Promise<string>((resolve, reject) => {
    let url = '';
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /listening at (http:\/\/[\d.]+:\d+)/.exec(line);
      if (m) url = m[1];
      if (/"msg":"ready"/.test(line) && url) resolve(url);
    });
    child.stderr!.resume();
    void exit.then((code) => reject(new Error(`server exited (${code}) before it was ready`)));
  });
  return { base, pid: child.pid!, exit, kill: (sig: NodeJS.Signals) => child.kill(sig) };
}

export async function sigterm(ctx: SoakContext, loadSeconds: number): Promise<Row> {
  const graceMs = 10_000;
  const srv = await startWithExit(ctx, { SHUTDOWN_GRACE_MS: String(graceMs) });
  const rss = new RssSampler(srv.pid);
  const pool = new Pool(srv.base, { connections: 32, pipelining: 1 });
  const answers: Answer[] = [];
  let signalledAt = Infinity;
  let stop = false;
  const loop = async () => {
    while (!stop) answers.push(await send(pool, classify(ctx)));
  };
  const loops = Array.from({ length: 32 }, loop);
  await sleep(loadSeconds * 1000);
  rss.sample();
  signalledAt = performance.now();
  srv.kill('SIGTERM');
  const exit = await Promise.race([srv.exit.then((code) => ({ code, ms: performance.now() - signalledAt })), sleep(graceMs + 5000).then(() => ({ code: null, ms: Infinity }))]);
  if (!Number.isFinite(exit.ms)) srv.kill('SIGKILL');
  stop = true;
  await Promise.all(loops);
  await pool.close();
  // Requests sent before the signal were accepted and must all be answered; after it, refusals are expected.
  const before = answers.filter((a) => a.start < signalledAt);
  const afterSignal = answers.filter((a) => a.start >= signalledAt);
  const refused = afterSignal.filter((a) => a.status === 0 || a.status === 503).length;
  return row('sigterm', `32 clients, SIGTERM after ${loadSeconds} s`, before, rss.max, {
    pass: exit.code === 0 && exit.ms < graceMs,
    note:
      `exit code ${exit.code} ${Number.isFinite(exit.ms) ? `after ${exit.ms.toFixed(0)} ms` : 'NOT within the grace period'}; ` +
      `sent after the signal: ${afterSignal.length}, refused ${refused} (503 SHUTTING_DOWN or connection refused)`,
  });
}
