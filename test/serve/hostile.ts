// Shared by the issue-7 tests (security, v2, versions, faults): hostile inputs built by hand (a GIF declaring
// thousands of frames, raw HTTP with oversized headers or a trickling body), Open Inference Protocol clients (JSON
// and the binary tensor data extension), and model-directory surgery for versions and reloads.

import { connect } from 'node:net';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A valid GIF of `frames` 1×1 frames on a width×height canvas: tiny on disk, thousands of frames in its header. */
export function gifWithFrames(frames: number, width = 16, height = 16): Buffer {
  const head = Buffer.alloc(13);
  head.write('GIF89a', 0, 'ascii');
  head.writeUInt16LE(width, 6);
  head.writeUInt16LE(height, 8);
  head[10] = 0x80; // global colour table of 2 entries
  const palette = Buffer.from([0, 0, 0, 255, 255, 255]);
  const loop = Buffer.from([0x21, 0xff, 0x0b, ...Buffer.from('NETSCAPE2.0', 'ascii'), 0x03, 0x01, 0x00, 0x00, 0x00]);
  const frame = Buffer.from([
    0x21, 0xf9, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, // graphic control: 10 ms
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor: 1×1 at (0,0)
    0x02, 0x02, 0x44, 0x01, 0x00, // LZW, code size 2: clear, pixel 0, end
  ]);
  return Buffer.concat([head, palette, loop, Buffer.concat(Array(frames).fill(frame)), Buffer.from([0x3b])]);
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms from the first byte sent to the end of the answer. */
  ms: number;
}

/** Sends `head` (and optionally a body, in `chunks` spaced `everyMs` apart) on a raw socket; resolves with the answer. */
export function rawRequest(base: string, head: string, chunks: Buffer[] = [], everyMs = 0): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = connect(Number(url.port), url.hostname);
    let data = '';
    let timer: NodeJS.Timeout | undefined;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (data += d));
    sock.on('error', () => undefined); // EPIPE/ECONNRESET after the server answered and closed
    sock.on('close', () => {
      clearTimeout(timer);
      const [top, ...rest] = data.split('\r\n\r\n');
      const lines = top.split('\r\n');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '');
      if (!m) return reject(new Error(`no HTTP answer: ${JSON.stringify(data.slice(0, 200))}`));
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers, body: rest.join('\r\n\r\n'), ms: Date.now() - t0 });
    });
    sock.write(head);
    let i = 0;
    const next = () => {
      if (i >= chunks.length || sock.destroyed) return;
      sock.write(chunks[i++]);
      timer = setTimeout(next, everyMs);
    };
    next();
  });
}

// ------------------------------------------------------------------------------------- Open Inference Protocol

export interface V2Answer {
  status: number;
  headers: Headers;
  /** The JSON (the whole body, or the JSON header of a binary answer); undefined for an empty body. */
  json: any;
  /** Binary tensor data after the JSON header, when Inference-Header-Content-Length was answered. */
  binary: Buffer;
}

async function v2Answer(res: Response): Promise<V2Answer> {
  const bytes = Buffer.from(await res.arrayBuffer());
  const headLen = res.headers.get('inference-header-content-length');
  const jsonBytes = headLen === null ? bytes : bytes.subarray(0, Number(headLen));
  return {
    status: res.status,
    headers: res.headers,
    json: jsonBytes.length ? JSON.parse(jsonBytes.toString('utf8')) : undefined,
    binary: headLen === null ? Buffer.alloc(0) : bytes.subarray(Number(headLen)),
  };
}

export async function v2Get(base: string, path: string, headers: Record<string, string> = {}): Promise<V2Answer> {
  return v2Answer(await fetch(base + path, { headers }));
}

export async function v2Json(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<V2Answer> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return v2Answer(res);
}

/** The binary tensor data extension: JSON header, then the tensors' little-endian bytes. */
export async function v2Binary(base: string, path: string, header: unknown, tensors: Float32Array[], headers: Record<string, string> = {}): Promise<V2Answer> {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const body = Buffer.concat([head, ...tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))]);
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length), ...headers },
    body,
  });
  return v2Answer(res);
}

/** Little-endian float32 values of a binary tensor. */
export function fp32(bytes: Buffer): Float32Array {
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.length / 4);
}

// ------------------------------------------------------------------------------------- model directories

/**
 * Copies a model directory `from` (model.onnx + model.json) to `to`, rewriting its card's name and version: how the
 * tests build versioned layouts (MODELS_DIR/NAME/VERSION/) and new versions for a reload.
 */
export async function copyModel(from: string, to: string, card: { name: string; version: string }): Promise<void> {
  await mkdir(to, { recursive: true });
  await cp(join(from, 'model.onnx'), join(to, 'model.onnx'));
  const json = JSON.parse(await readFile(join(from, 'model.json'), 'utf8'));
  json.name = card.name;
  json.version = card.version;
  await writeFile(join(to, 'model.json'), JSON.stringify(json, null, 2));
}

/**
 * Fresh MODELS_DIRs built from the weight sets in `from()`: `make({ "a/2": "w1", b: "w1" })` puts a copy of `w1` at
 * `a/2/` as model "a" version "2", and a flat `b/` (version "1"); `cleanup()` removes every one made.
 */
export function modelRepos(from: () => string): { make(layout: Record<string, string>): Promise<string>; cleanup(): Promise<void> } {
  const made: string[] = [];
  return {
    async make(layout) {
      const dir = await mkdtemp(join(tmpdir(), 'mlp-serve-repo-'));
      made.push(dir);
      for (const [path, weights] of Object.entries(layout)) {
        const [name, version] = path.split('/');
        await copyModel(join(from(), weights), join(dir, path), { name, version: version ?? '1' });
      }
      return dir;
    },
    cleanup: async () => void (await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })))),
  };
}
