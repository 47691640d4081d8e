// Top-1 accuracy of a running service: every test image uploaded on its own to POST /classify, as a user would
// (raw-pixel data sets as a PNG at native size, e.g. 28×28 for Fashion-MNIST), with bounded concurrency and 503s
// retried after Retry-After. This measures what users get, preprocessing and all, not what the trainer saw.

import type { Dataset } from '../data/dataset.js';
import { pool } from '../util/pool.js';
import { retryAfterMs, toUploadBytes, type OnProgress } from './embeddings.js';

export interface ServedAccuracyOptions {
  url: string;
  model?: string;
  /** Requests in flight (default 16). */
  concurrency?: number;
  /** Only the first n images of the split (default all). */
  limit?: number;
  /** Only these images of the split (a sample), instead of the first `limit`. */
  indices?: ArrayLike<number>;
  maxRetries?: number;
  onProgress?: OnProgress;
}

export interface ServedAccuracy {
  images: number;
  correct: number;
  top1: number;
  /** Confusion counts [true label][predicted], for the report. */
  confusion: number[][];
  retries: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function classifyOne(endpoint: string, bytes: Uint8Array, maxRetries: number, state: { retries: number }): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Blob([new Uint8Array(bytes)]) });
    const body = (await res.json()) as { predictions?: { index: number }[]; error?: { code: string; message: string } };
    if (res.status === 200 && body.predictions?.length) return body.predictions[0].index;
    if (res.status !== 503 || attempt >= maxRetries)
      throw new Error(`POST ${endpoint}: ${res.status} ${body.error?.code ?? ''} ${body.error?.message ?? ''}`.trim());
    state.retries++;
    await sleep(retryAfterMs(res.headers.get('retry-after')) ?? 1000);
  }
}

export async function servedAccuracy(ds: Dataset, o: ServedAccuracyOptions): Promise<ServedAccuracy> {
  const at = (j: number) => (o.indices ? o.indices[j] : j);
  const n = o.indices ? o.indices.length : Math.min(o.limit ?? ds.size, ds.size);
  const endpoint = new URL('/classify', o.url);
  endpoint.searchParams.set('top_k', '1');
  if (o.model) endpoint.searchParams.set('model', o.model);
  const k = ds.classes.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const state = { retries: 0 };
  let done = 0;
  let correct = 0;
  await pool(n, o.concurrency ?? 16, async (j) => {
    const i = at(j);
    const predicted = await classifyOne(endpoint.href, await toUploadBytes(await ds.image(i)), o.maxRetries ?? 10, state);
    const truth = ds.label(i);
    confusion[truth][predicted]++;
    if (predicted === truth) correct++;
    o.onProgress?.(++done, n);
  });
  return { images: n, correct, top1: correct / n, confusion, retries: state.retries };
}
