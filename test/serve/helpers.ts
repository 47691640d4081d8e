// Shared by the service tests: random-weight model directories written by the real exporter, an app listening on
// an ephemeral port, images of many kinds made with sharp, Fashion-MNIST samples, and a direct onnxruntime run to
// compare the service against.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request as httpRequest } from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import ort from 'onnxruntime-node';
import sharp, { type Sharp } from 'sharp';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../../src/config.js';
import { buildApp } from '../../src/serve/app.js';
import { startGrpc } from '../../src/serve/grpc/server.js';
import { writeRandomModel, type RandomModelOptions } from '../../src/export/random.js';
import { decodeToChw, normalizeChw } from '../../src/data/preprocess.js';
import { parseIdx } from '../../src/data/idx.js';
import type { ModelCard } from '../../src/model/card.js';

export interface TempModels {
  dir: string;
  cards: Record<string, ModelCard>;
  cleanup(): Promise<void>;
}

/** Writes each model (exporter's random init) into one fresh MODELS_DIR. */
export async function makeModels(models: Omit<RandomModelOptions, 'out'>[]): Promise<TempModels> {
  const dir = await mkdtemp(join(tmpdir(), 'mlp-serve-models-'));
  const cards: Record<string, ModelCard> = {};
  for (const m of models) cards[m.name] = await writeRandomModel({ ...m, out: join(dir, m.name) });
  return { dir, cards, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface Running {
  app: FastifyInstance;
  base: string;
  /** `127.0.0.1:PORT` of the gRPC service, when started with `grpc: true`. */
  grpc?: string;
  config: Readonly<Config>;
  /** Lets the models start loading (started with `holdLoading`; a no-op otherwise). */
  releaseLoading(): void;
  close(): Promise<void>;
}

/** Builds the app from env-style settings, listens on 127.0.0.1:0 (gRPC too, on another free port, with `grpc`)
 *  and waits until /readyz would be 200. With `holdLoading` the models do not start loading until
 *  `releaseLoading()` (or `close()`), so the not-ready window lasts as long as the test needs, however fast loading is. */
export async function startApp(
  env: Record<string, string>,
  opts: { waitReady?: boolean; grpc?: boolean; holdLoading?: boolean } = {},
): Promise<Running> {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', EXECUTION_PROVIDERS: 'cpu', ORT_INTRA_OP_THREADS: '1', ...env });
  let releaseLoading = (): void => undefined;
  const loadAfter = opts.holdLoading ? new Promise<void>((r) => (releaseLoading = r)) : undefined;
  const app = await buildApp(config, { logger: false, loadAfter });
  await app.listen({ port: config.port, host: config.host });
  const grpc = opts.grpc ? await startGrpc(app) : undefined;
  if (opts.waitReady !== false && !opts.holdLoading) await app.models.whenReady();
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no TCP address');
  return { app, base: `http://127.0.0.1:${addr.port}`, grpc: grpc && `127.0.0.1:${grpc.port}`, config,
    releaseLoading,
    close: () => {
      releaseLoading();
      return app.close();
    },
  };
}

export async function postImage(base: string, path: string, body: Uint8Array | string, type = 'image/png') {
  const payload = typeof body === 'string' ? body : new Uint8Array(body); // a copy owning a plain ArrayBuffer
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': type }, body: payload });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

export async function postFiles(base: string, path: string, files: { bytes: Uint8Array; type?: string }[], fields: Record<string, string> = {}) {
  const form = new FormData();
  files.forEach((f, i) => form.append(`file${i}`, new Blob([new Uint8Array(f.bytes)], { type: f.type ?? 'image/png' }), `img${i}`));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(base + path, { method: 'POST', body: form });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

/**
 * Streams `size` bytes as one raw body without waiting for the server to read them: resolves with the status as
 * soon as the response arrives (the server may answer 413 before the body is sent and close the connection).
 */
export function postLarge(base: string, path: string, size: number, type = 'application/octet-stream'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method: 'POST', headers: { 'content-type': type, 'content-length': size } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', () => undefined); // EPIPE/ECONNRESET once the server has answered and closed: expected
    const chunk = Buffer.alloc(1 << 20, 7);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

export async function metricsText(base: string): Promise<string> {
  return (await fetch(`${base}/metrics`)).text();
}

/**
 * Sum of the samples of the Prometheus text whose name is the series' and whose labels include every label it names,
 * e.g. sample(text, 'mlp_batch_size_count{model="a"}'); 0 when none matches. A label added later (a `protocol`, say)
 * leaves the assertions that do not name it unchanged.
 */
export function sample(text: string, series: string): number {
  const parse = (s: string) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$/.exec(s);
    if (!m) throw new Error(`not a series: ${s}`);
    return { name: m[1], labels: new Set((m[2] ?? '').match(/\w+="(?:[^"\\]|\\.)*"/g) ?? []) };
  };
  const want = parse(series);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(want.name)) continue;
    const at = line.lastIndexOf(' ');
    const got = parse(line.slice(0, at));
    if (got.name === want.name && [...want.labels].every((l) => got.labels.has(l))) sum += Number(line.slice(at + 1));
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------- images

/** A picture with structure (gradient + a bright off-centre block), so orientation and colour matter. */
export async function pattern(width: number, height: number): Promise<{ raw: Buffer; width: number; height: number }> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const block = x < width / 3 && y < height / 2;
      raw[i] = block ? 250 : Math.round((255 * x) / width);
      raw[i + 1] = block ? 240 : Math.round((255 * y) / height);
      raw[i + 2] = block ? 20 : 90;
    }
  return { raw, width, height };
}

export async function encodePattern(width: number, height: number, f: (s: Sharp) => Sharp): Promise<Buffer> {
  const p = await pattern(width, height);
  return f(sharp(p.raw, { raw: { width, height, channels: 3 } })).toBuffer();
}

/** A PNG whose header claims width×height but holds almost no data: refused from its header, cheap to make. */
export function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const idat = deflateSync(Buffer.alloc(width + 1)); // one row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const FMNIST_IMAGES = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz';
const FMNIST_LABELS = '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz';

/** The first `n` Fashion-MNIST test images as 28×28 grey PNGs, with their labels. */
export async function fashionMnistPngs(n: number): Promise<{ png: Buffer; label: number; raw: Uint8Array }[]> {
  const images = parseIdx(await readFile(FMNIST_IMAGES), FMNIST_IMAGES);
  const labels = parseIdx(await readFile(FMNIST_LABELS), FMNIST_LABELS);
  const [, rows, cols] = images.dims;
  const out = [];
  for (let i = 0; i < n; i++) {
    const raw = images.data.slice(i * rows * cols, (i + 1) * rows * cols);
    const png = await sharp(raw, { raw: { width: cols, height: rows, channels: 1 } }).png().toBuffer();
    out.push({ png, label: labels.data[i], raw });
  }
  return out;
}

// ------------------------------------------------------------------------------------- reference run

/** The same image through the shared preprocessing and a session opened here: what /classify must agree with. */
export async function directRun(modelDir: string, card: ModelCard, image: Buffer): Promise<{ logits: Float32Array; embedding: Float32Array }> {
  const chw = await decodeToChw(image, card.input);
  const x = normalizeChw(chw, card.input, card.normalization);
  const session = await ort.InferenceSession.create(join(modelDir, 'model.onnx'), { executionProviders: ['cpu'] });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', x, [1, x.length]) });
    return { logits: out.logits.data as Float32Array, embedding: out.embedding.data as Float32Array };
  } finally {
    await session.release();
  }
}

export function softmax64(logits: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(logits));
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** A response body must never carry a stack trace, a file path or a version string. */
export function assertNoLeak(body: unknown): void {
  const text = JSON.stringify(body);
  const leaks = [/\bat .+:\d+:\d+/, /\/(work|usr|home|tmp|etc|root)\//, /node_modules/, /\.(ts|js|cjs|mjs)\b/, /\bv?\d+\.\d+\.\d+\b/];
  for (const re of leaks) if (re.test(text)) throw new Error(`response leaks ${re}: ${text}`);
}

/** Element-wise |a − b| < tol, with equal lengths (outputs of two paths through the same model). */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * Asserts that loadConfig(env) refuses the settings with a ConfigError naming `variable` first in its message and
 * matching `message`; returns the error for further checks.
 */
export function expectConfigError(env: Record<string, string>, variable: string, message: RegExp): ConfigError {
  let err: unknown;
  try {
    loadConfig(env);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).variable).toBe(variable);
  expect((err as Error).message.startsWith(`${variable} `)).toBe(true);
  expect((err as Error).message).toMatch(message);
  return err as ConfigError;
}

// ------------------------------------------------------------------------------------- a server process

export interface SpawnedServer {
  child: ChildProcess;
  base: string;
  logs: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** Starts the server as `npm start` does and resolves once it logged that every model is ready. */
export async function spawnServer(env: Record<string, string>): Promise<SpawnedServer> {
  // As npm start runs it: node with tsx's loader, no tsx CLI in between (its signal relay hard-kills a child that
  // does not acknowledge SIGTERM within 30 ms, which a loaded machine does not always manage).
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/serve/server.ts'], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', EXECUTION_PROVIDERS: 'cpu', ORT_INTRA_OP_THREADS: '1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const base = await withTimeout(
    new Promise<string>((resolve, reject) => {
      let url = '';
      createInterface({ input: child.stdout! }).on('line', (line) => {
        logs.push(line);
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m) url = m[1];
        if (/"msg":"ready"/.test(line) && url) resolve(url);
      });
      void exit.then((e) => reject(new Error(`server exited early (${e.code}): ${logs.join('\n')}`)));
    }),
    30_000,
    'server start-up',
  );
  return { child, base, logs, exit };
}
