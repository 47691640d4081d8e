// The serving bench's outside load generator: `hey` (Debian's package of rakyll/hey, in Go) keeps N uploads in
// flight against the server, and the kernel's accounting of its CPU time (bash's `times` after it exits) says how
// much of the machine the generator itself took, so the bound can leave those cores out.

import { execFileSync, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import type { Upload } from './load.js';

export interface HeyOptions {
  url: string;
  /** A file holding the request body. */
  bodyFile: string;
  contentType: string;
  /** Uploads in flight at all times (hey's workers, one connection each). */
  concurrency: number;
  seconds: number;
  /** Extra request headers (e.g. Inference-Header-Content-Length). */
  headers?: Record<string, string>;
}

export interface HeyResult {
  /** 200 answers. */
  ok: number;
  /** Other answers by status code, and transport errors by message. */
  failed: Record<string, number>;
  /** hey's own wall time for the run, s. */
  seconds: number;
  /** 200 answers per second. */
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time hey used (user + system), s. */
  cpuSeconds: number;
  /** hey's CPU time over its wall time: the cores the generator took. */
  cores: number;
}

/** hey's command line for a closed loop of `concurrency` POSTs of one body for `seconds`. */
export function heyArgs(o: HeyOptions): string[] {
  const headers = Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  return ['-z', `${o.seconds}s`, '-c', String(o.concurrency), '-m', 'POST', '-T', o.contentType, ...headers, '-D', o.bodyFile, '-disable-compression', o.url];
}

/** The parts of hey's summary the bench needs: total time, latency percentiles, answers by status, errors. */
export function parseHeyOutput(text: string): Omit<HeyResult, 'cpuSeconds' | 'cores' | 'okPerSecond'> {
  const total = /^\s*Total:\s+([\d.]+) secs/m.exec(text);
  if (!total) throw new Error(`hey printed no summary:\n${text.slice(0, 500)}`);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}% in ([\\d.]+) secs`, 'm').exec(text);
    return m ? Number(m[1]) * 1000 : NaN;
  };
  let ok = 0;
  const failed: Record<string, number> = {};
  const statusBlock = /Status code distribution:\n([\s\S]*?)(?:\n\s*\n|$)/.exec(text)?.[1] ?? '';
  for (const m of statusBlock.matchAll(/\[(\d+)\]\s+(\d+) responses/g)) {
    if (m[1] === '200') ok += Number(m[2]);
    else failed[m[1]] = (failed[m[1]] ?? 0) + Number(m[2]);
  }
  const errorBlock = /Error distribution:\n([\s\S]*?)(?:\n\s*\n|$)/.exec(text)?.[1] ?? '';
  for (const m of errorBlock.matchAll(/\[(\d+)\]\s+(.+)/g)) {
    // e.g. `[3]	Post "http://…": dial tcp …: connection refused`: keep the last clause as the key.
    const key = m[2].split(': ').at(-1)!.trim();
    failed[key] = (failed[key] ?? 0) + Number(m[1]);
  }
  return { ok, failed, seconds: Number(total[1]), p50Ms: pct(50), p99Ms: pct(99) };
}

const clock = (s: string) => {
  const m = /^(\d+)m([\d.]+)s$/.exec(s);
  if (!m) throw new Error(`not a bash times value: "${s}"`);
  return Number(m[1]) * 60 + Number(m[2]);
};

/**
 * bash's `times` prints two lines, the shell's user and system time and then its children's ("0m1.234s 0m0.567s"):
 * the children's sum, s.
 */
export function parseBashTimes(text: string): number {
  const lines = text.trim().split('\n').filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l.trim()));
  const last = lines.at(-1);
  if (lines.length < 2 || !last) throw new Error(`no bash times output in:\n${text.slice(-300)}`);
  const [user, sys] = last.trim().split(' ');
  return clock(user) + clock(sys);
}

/** hey's path, installing Debian's package first when it is missing (needs root and apt). */
export function ensureHey(log: (msg: string) => void = console.log): string {
  const find = () => {
    try {
      return execFileSync('sh', ['-c', 'command -v hey'], { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  let path = find();
  if (path) return path;
  log('hey is not installed: apt-get install -y --no-install-recommends hey');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'hey'], { stdio: 'inherit', env });
  path = find();
  if (!path) throw new Error('hey is still missing after apt-get install hey');
  return path;
}

/** Writes an upload's bytes where hey can read them (-D). */
export async function writeBody(upload: Upload, file: string): Promise<string> {
  await writeFile(file, upload.bytes);
  return file;
}

/** Runs hey once and returns what it saw and what it cost. */
export async function runHey(hey: string, o: HeyOptions): Promise<HeyResult> {
  // `times` after hey exits reports the CPU of the shell's waited-for children: hey alone.
  const child = spawn('bash', ['-c', '"$0" "$@"; s=$?; times >&2; exit $s', hey, ...heyArgs(o)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`hey exited with code ${code}:\n${err.slice(-1000)}`);
  const r = parseHeyOutput(out);
  const cpuSeconds = parseBashTimes(err);
  return { ...r, okPerSecond: r.ok / r.seconds, cpuSeconds, cores: cpuSeconds / r.seconds };
}
