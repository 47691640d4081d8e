// Feature extractors for the linear probe, all returning one row per image:
//  - served: POST /embed of a running service, multipart batches as a user would upload them (PNG), bounded
//    concurrency, 503s retried after Retry-After;
//  - local: the model's ONNX file run directly with onnxruntime, after the very preprocessing the server applies;
//  - pixels: the raw pixels themselves (the baseline a representation has to beat).

import sharp from 'sharp';
import type { ImageList } from '../data/dataset.js';
import { decodeToChw, type ImageInput, type InputGeometry, type RawImage } from '../data/preprocess.js';
import { openEmbedder } from '../embed/embedder.js';
import type { ModelCard } from '../model/card.js';
import { pool } from '../util/pool.js';
import type { FeatureMatrix } from './logreg.js';

/** Called as rows are produced. */
export type OnProgress = (done: number, total: number) => void;

function isRaw(img: ImageInput): img is RawImage {
  return !(img instanceof Uint8Array);
}

/** The bytes a user would upload: encoded images as they are, raw data set pixels as a lossless PNG at native size. */
export async function toUploadBytes(img: ImageInput): Promise<Uint8Array> {
  if (!isRaw(img)) return img;
  const { raw, width, height, channels } = img;
  return sharp(raw, { raw: { width, height, channels } }).png().toBuffer();
}

// ---------------------------------------------------------------------------------------------------------------
// Served embeddings.

export interface ServedOptions {
  /** Base URL of the service, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Model name (?model=); default the service's default model. */
  model?: string;
  /** Images per multipart request (default 32; the service's MAX_FILES is 64 by default). */
  batchSize?: number;
  /** Requests in flight (default 4). */
  concurrency?: number;
  /** Retries of one batch after 503 / 504 / a dropped connection (default 10). */
  maxRetries?: number;
  /** Upper bound of one wait between retries, in ms (default 30 000). */
  maxWaitMs?: number;
  onProgress?: OnProgress;
  /** Sleep used between retries (tests shorten it). */
  sleep?: (ms: number) => Promise<void>;
}

/** A request the service refused for good (4xx, or retries exhausted); carries the API's error code. */
export class EmbedRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'EmbedRequestError';
  }
}

/** Milliseconds a Retry-After header asks for: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface EmbedResponseBody {
  dim?: unknown;
  embeddings?: unknown;
  error?: { code?: unknown; message?: unknown };
}

/** One multipart POST /embed with retries; returns the rows in part order. */
async function postBatch(files: Uint8Array[], endpoint: string, o: ServedOptions, state: { retries: number }): Promise<number[][]> {
  const maxRetries = o.maxRetries ?? 10;
  const maxWait = o.maxWaitMs ?? 30_000;
  const sleep = o.sleep ?? defaultSleep;
  for (let attempt = 0; ; attempt++) {
    const form = new FormData();
    files.forEach((f, i) => form.append(`image${i}`, new Blob([new Uint8Array(f)], { type: 'image/png' }), `image${i}.png`));
    let res: Response;
    try {
      res = await fetch(endpoint, { method: 'POST', body: form });
    } catch (err) {
      // Connection refused or reset (a restarting pod): back off and try again.
      if (attempt >= maxRetries) throw new EmbedRequestError(0, 'NETWORK', `POST ${endpoint} failed: ${(err as Error).message}`);
      state.retries++;
      await sleep(Math.min(maxWait, 250 * 2 ** attempt));
      continue;
    }
    const text = await res.text();
    let body: EmbedResponseBody;
    try {
      body = JSON.parse(text) as EmbedResponseBody;
    } catch {
      body = {};
    }
    if (res.status === 200) {
      const rows = body.embeddings;
      if (!Array.isArray(rows) || rows.length !== files.length)
        throw new EmbedRequestError(200, 'BAD_RESPONSE', `expected ${files.length} embeddings, got ${Array.isArray(rows) ? rows.length : 'none'}`);
      return rows as number[][];
    }
    const code = typeof body.error?.code === 'string' ? body.error.code : `HTTP_${res.status}`;
    const message = typeof body.error?.message === 'string' ? body.error.message : text.slice(0, 200);
    // 503 = shed load (wait what the server says); 502/504 = a gateway or deadline: back off exponentially.
    const retryable = res.status === 503 || res.status === 502 || res.status === 504;
    if (!retryable || attempt >= maxRetries)
      throw new EmbedRequestError(res.status, code, `POST ${endpoint}: ${res.status} ${code}: ${message}` + (retryable ? ` (after ${attempt} retries)` : ''));
    state.retries++;
    const asked = res.status === 503 ? retryAfterMs(res.headers.get('retry-after')) : undefined;
    await sleep(Math.min(maxWait, asked ?? 250 * 2 ** attempt));
  }
}

/** Embeddings of every image from a running service. Also reports how many retries it took. */
export async function servedEmbeddings(images: ImageList, o: ServedOptions): Promise<FeatureMatrix & { retries: number }> {
  const batchSize = o.batchSize ?? 32;
  const concurrency = o.concurrency ?? 4;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`batchSize ${batchSize} must be a whole number ≥ 1`);
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new RangeError(`concurrency ${concurrency} must be a whole number ≥ 1`);
  const endpoint = new URL('/embed', o.url);
  if (o.model) endpoint.searchParams.set('model', o.model);
  const batches = Math.ceil(images.size / batchSize);
  const rows: number[][][] = new Array(batches);
  const state = { retries: 0 };
  let done = 0;
  await pool(batches, concurrency, async (b) => {
    const start = b * batchSize;
    const end = Math.min(images.size, start + batchSize);
    const files: Uint8Array[] = [];
    for (let i = start; i < end; i++) files.push(await toUploadBytes(await images.image(i)));
    rows[b] = await postBatch(files, endpoint.href, o, state);
    done += end - start;
    o.onProgress?.(done, images.size);
  });
  const dim = rows[0]?.[0]?.length ?? 0;
  const data = new Float32Array(images.size * dim);
  let r = 0;
  for (const batch of rows)
    for (const row of batch) {
      if (row.length !== dim) throw new EmbedRequestError(200, 'BAD_RESPONSE', `embedding of length ${row.length}, expected ${dim}`);
      data.set(row, r++ * dim);
    }
  return { data, rows: images.size, cols: dim, retries: state.retries };
}

// ---------------------------------------------------------------------------------------------------------------
// Local embeddings (onnxruntime in this process).

export interface LocalOptions {
  /** Images per session.run (default 256). */
  batchSize?: number;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  onProgress?: OnProgress;
}

/** Embeddings computed in-process from `<modelDir>/model.onnx`, preprocessed exactly as the server does. */
export async function localEmbeddings(modelDir: string, images: ImageList, o: LocalOptions = {}): Promise<FeatureMatrix & { card: ModelCard }> {
  const batchSize = o.batchSize ?? 256;
  const embedder = await openEmbedder(modelDir, { threads: o.threads });
  const data = new Float32Array(images.size * embedder.dim);
  try {
    for (let start = 0; start < images.size; start += batchSize) {
      const n = Math.min(batchSize, images.size - start);
      data.set(await embedder.embed(images, start, n), start * embedder.dim);
      o.onProgress?.(start + n, images.size);
    }
  } finally {
    await embedder.close();
  }
  return { data, rows: images.size, cols: embedder.dim, card: embedder.card };
}

// ---------------------------------------------------------------------------------------------------------------
// Raw pixels.

/**
 * The images' own pixels (0–255, channel-major) as features: raw images at their native size, encoded ones decoded
 * to `geometry` (required then, since files may differ in size).
 */
export async function pixelFeatures(images: ImageList, geometry?: InputGeometry, onProgress?: OnProgress): Promise<FeatureMatrix> {
  let geo = geometry;
  if (!geo) {
    const first = await images.image(0);
    if (!isRaw(first)) throw new RangeError('pixel features of encoded images need a geometry (width, height, channels)');
    geo = { width: first.width, height: first.height, channels: first.channels === 1 || first.channels === 2 ? 1 : 3 };
  }
  const d = geo.channels * geo.width * geo.height;
  const data = new Float32Array(images.size * d);
  const step = 1000;
  for (let start = 0; start < images.size; start += step) {
    const n = Math.min(step, images.size - start);
    await pool(n, 8, async (k) => {
      data.set(await decodeToChw(await images.image(start + k), geo), (start + k) * d);
    });
    onProgress?.(start + n, images.size);
  }
  return { data, rows: images.size, cols: d };
}
