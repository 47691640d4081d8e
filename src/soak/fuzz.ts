// Hostile inputs for the fault tests and `npm run soak`: a seeded stream of requests built from real images and
// broken on purpose: random bytes, bit flips, truncations and splices of PNG/JPEG/WebP/GIF/TIFF, headers claiming
// huge sizes, wrong or missing content types, malformed multipart bodies, mangled Open Inference Protocol requests
// (JSON and binary), and odd query strings. Every one of them must be answered with a status below 500.
// The same seed gives the same cases, so a failure can be replayed.

import sharp from 'sharp';
import { createRng, type Rng } from '../util/rng.js';

export interface FuzzCase {
  /** What was done, for the report of a failure (e.g. "bitflip jpeg ×12"). */
  kind: string;
  method: 'POST' | 'GET';
  /** Path and query. */
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

export interface FuzzTarget {
  /** A served model name. */
  model: string;
  /** C·H·W of that model's input (for v2 requests). */
  inputDim: number;
}

/** The seed images the mutations start from: real encodings of a structured picture in five formats. */
export interface Seeds {
  images: { format: string; type: string; bytes: Buffer }[];
}

export async function makeSeeds(): Promise<Seeds> {
  const w = 40;
  const h = 30;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      raw[i] = (x * 6) & 0xff;
      raw[i + 1] = (y * 8) & 0xff;
      raw[i + 2] = x < w / 2 && y < h / 2 ? 230 : 40;
    }
  const base = () => sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  const images = [
    { format: 'png', type: 'image/png', bytes: await base().png().toBuffer() },
    { format: 'jpeg', type: 'image/jpeg', bytes: await base().jpeg({ quality: 80 }).toBuffer() },
    { format: 'webp', type: 'image/webp', bytes: await base().webp().toBuffer() },
    { format: 'gif', type: 'image/gif', bytes: await base().gif().toBuffer() },
    { format: 'tiff', type: 'image/tiff', bytes: await base().tiff().toBuffer() },
  ];
  return { images };
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng() * 256);
  return b;
}

function bitflip(rng: Rng, src: Buffer, flips: number): Buffer {
  const b = Buffer.from(src);
  for (let i = 0; i < flips; i++) b[Math.floor(rng() * b.length)] ^= 1 << Math.floor(rng() * 8);
  return b;
}

/** Overwrites 16-bit fields near the start with large values: dimensions, chunk lengths, markers. */
function bigFields(rng: Rng, src: Buffer): Buffer {
  const b = Buffer.from(src);
  for (let i = 0; i < 4; i++) {
    const at = int(rng, 4, Math.min(b.length - 3, 64));
    b.writeUInt16BE(pick(rng, [0xffff, 0x7fff, 0x8000, 0, 0xfffe]), at);
  }
  return b;
}

function splice(rng: Rng, a: Buffer, b: Buffer): Buffer {
  return Buffer.concat([a.subarray(0, int(rng, 0, a.length)), b.subarray(int(rng, 0, b.length))]);
}

const CONTENT_TYPES = [
  'text/plain',
  'application/json',
  'application/xml',
  'image/svg+xml',
  'image/../../etc/passwd',
  'image/png; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  'multipart/mixed; boundary=abc',
  '',
  'image/' + 'x'.repeat(300),
];

const QUERY_NOISE = [
  'top_k=-3',
  'top_k=0',
  'top_k=1e9',
  'top_k=NaN',
  'top_k=' + '9'.repeat(40),
  'model=..%2F..%2Fetc%2Fpasswd',
  'model=%00',
  'model=' + 'a'.repeat(200),
  'model=%E2%80%AE',
  'version=..',
  'version=%2F',
  'model=a&model=b',
  'top_k[]=1',
  '%ZZ=1',
];

function multipartBody(rng: Rng, parts: { name: string; filename?: string; type?: string; data: Buffer }[], boundary: string, closeIt: boolean): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"` + (p.filename !== undefined ? `; filename="${p.filename}"` : '');
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n` + (p.type ? `Content-Type: ${p.type}\r\n` : '') + '\r\n'));
    chunks.push(p.data, Buffer.from('\r\n'));
  }
  if (closeIt) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  else if (rng() < 0.5) chunks.push(Buffer.from(`--${boundary}`));
  return Buffer.concat(chunks);
}

function v2Request(rng: Rng, t: FuzzTarget): { json: unknown; binary?: Buffer } {
  const n = int(rng, 1, 3);
  const data = Array.from({ length: n * t.inputDim }, () => rng() * 4 - 2);
  const good = { id: 'f', inputs: [{ name: 'input', datatype: 'FP32', shape: [n, t.inputDim], data }] };
  const input = good.inputs[0] as Record<string, unknown>;
  switch (int(rng, 0, 11)) {
    case 0:
      input.shape = [n, t.inputDim + int(rng, -3, 3) || 1];
      break;
    case 1:
      input.datatype = pick(rng, ['FP64', 'INT8', 'BYTES', 'fp32', '', 7]);
      break;
    case 2:
      input.data = data.map((v, i) => (i % 7 === 0 ? pick(rng, ['x', null, true, [], {}, 1e309]) : v));
      break;
    case 3:
      input.name = pick(rng, ['input0', '', '__proto__', 'constructor']);
      break;
    case 4:
      return { json: { ...good, outputs: [{ name: pick(rng, ['probs', 'logits', 'embedding', '']), parameters: { binary_data: pick(rng, [true, 'yes', 1]) } }] } };
    case 5:
      input.shape = pick(rng, [[], [-1, t.inputDim], [2 ** 53, t.inputDim], [1, t.inputDim, 1], 'x']);
      break;
    case 6: {
      // Deep nesting (a stack-depth probe for parsers that recurse).
      let deep: unknown = [1];
      for (let i = 0; i < 2000; i++) deep = [deep];
      input.data = deep;
      break;
    }
    case 7:
      return { json: { ...good, inputs: [input, input] } };
    case 8: {
      // Binary extension with a size that does not match, or data that is not finite.
      const bytes = int(rng, 0, n * t.inputDim * 4 + 8);
      const binary = rng() < 0.5 ? randomBytes(rng, bytes) : Buffer.from(new Float32Array(n * t.inputDim).fill(NaN).buffer);
      return { json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [n, t.inputDim], parameters: { binary_data_size: pick(rng, [bytes, n * t.inputDim * 4, -1, 'x']) } }] }, binary };
    }
    case 9:
      return { json: pick(rng, [null, 42, 'x', [], { inputs: {} }, { inputs: [null] }, { __proto__: { inputs: 1 } }]) };
    case 10:
      return { json: { ...good, parameters: { binary_data_output: pick(rng, [true, 'true', {}, [1]]) } } };
    default:
      input.shape = [int(rng, 100, 100000), t.inputDim];
  }
  return { json: good };
}

/**
 * The `i`-th hostile request of the stream for `seed` (cases are independent, so any one can be replayed).
 * `t`: the model to aim at; `seeds`: the real images the mutations start from.
 */
export function fuzzCase(seed: number, i: number, t: FuzzTarget, seeds: Seeds): FuzzCase {
  const rng = createRng((seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0);
  const img = pick(rng, seeds.images);
  const other = pick(rng, seeds.images);
  const route = pick(rng, ['/classify', '/embed']);
  const q = rng() < 0.25 ? '?' + pick(rng, QUERY_NOISE) : rng() < 0.5 ? `?model=${t.model}` : '';
  const raw = (kind: string, body: Buffer, type = img.type): FuzzCase => ({
    kind,
    method: 'POST',
    path: route + q,
    headers: type === '' ? {} : { 'content-type': type },
    body,
  });
  const k = int(rng, 0, 13);
  switch (k) {
    case 0:
      return raw('random bytes', randomBytes(rng, int(rng, 0, 65536)), pick(rng, ['image/png', 'image/jpeg', 'application/octet-stream', 'image/webp']));
    case 1:
    case 2:
    case 3: {
      const flips = int(rng, 1, 64);
      return raw(`bitflip ${img.format} ×${flips}`, bitflip(rng, img.bytes, flips));
    }
    case 4:
      return raw(`truncated ${img.format}`, img.bytes.subarray(0, int(rng, 0, img.bytes.length - 1)));
    case 5:
      return raw(`huge fields ${img.format}`, bigFields(rng, img.bytes));
    case 6:
      return raw(`splice ${img.format}+${other.format}`, splice(rng, img.bytes, other.bytes));
    case 7:
      return raw(`${img.format} as a wrong content type`, img.bytes, pick(rng, CONTENT_TYPES));
    case 8: {
      // Malformed multipart: wrong or missing boundary, unterminated, nameless parts, empty parts, many parts.
      const boundary = 'b' + int(rng, 0, 1e9);
      const parts = Array.from({ length: int(rng, 0, 8) }, (_, j) => ({
        name: rng() < 0.1 ? '' : `f${j}`,
        filename: rng() < 0.7 ? `x${j}.png` : undefined,
        type: rng() < 0.8 ? pick(rng, [img.type, 'text/plain', 'application/json']) : undefined,
        data: rng() < 0.2 ? Buffer.alloc(0) : rng() < 0.5 ? bitflip(rng, img.bytes, 4) : img.bytes,
      }));
      const declared = rng() < 0.3 ? 'other' + boundary : boundary;
      return raw(`multipart ×${parts.length}`, multipartBody(rng, parts, boundary, rng() < 0.6), `multipart/form-data; boundary=${declared}`);
    }
    case 9:
      return raw('multipart garbage', randomBytes(rng, int(rng, 0, 4096)), 'multipart/form-data; boundary=xyz');
    case 10:
    case 11: {
      const { json, binary } = v2Request(rng, t);
      const text = Buffer.from(JSON.stringify(json) ?? 'null');
      const path = `/v2/models/${rng() < 0.9 ? t.model : pick(rng, ['nope', '..', '%2e%2e'])}/infer`;
      if (binary === undefined) return { kind: 'v2 json', method: 'POST', path, headers: { 'content-type': 'application/json' }, body: text };
      const headerLen = pick(rng, [text.length, text.length + 3, 0, text.length + binary.length + 10]);
      return {
        kind: 'v2 binary',
        method: 'POST',
        path,
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLen) },
        body: Buffer.concat([text, binary]),
      };
    }
    case 12:
      return { kind: 'v2 random bytes', method: 'POST', path: `/v2/models/${t.model}/infer`, headers: { 'content-type': pick(rng, ['application/json', 'application/octet-stream']) }, body: randomBytes(rng, int(rng, 0, 2048)) };
    default:
      return {
        kind: 'odd GET',
        method: 'GET',
        path: pick(rng, ['/models', '/v2/models/' + t.model, '/classify', '/v2/models/x/versions/%2F/ready', '/readyz?x=' + 'y'.repeat(2000), '/docs/json', '/%']),
        headers: rng() < 0.5 ? { 'x-junk': 'z'.repeat(int(rng, 0, 4000)) } : {},
        body: undefined,
      };
  }
}
