// Batches from the batch worker are bit-identical to the ones batchMaker builds in this thread, across an epoch
// boundary and through the loop's take → prefetch → release rhythm; a worker that cannot open the cache gives way
// to batches built in the main thread, saying why.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareSplit, type CachedSplit } from '../../src/data/cache.js';
import { subsetSplit } from '../../src/data/holdout.js';
import { openDataSource } from '../../src/data/resolve.js';
import { openBatchSource } from '../../src/train/batch-source.js';
import { allocBatchBuffers, batchMaker, type BatchSpec } from '../../src/train/batches.js';

let root: string;
let data: CachedSplit;
let spec: BatchSpec;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mlp-batches-'));
  const geo = { width: 16, height: 16, channels: 1 as const };
  data = await prepareSplit((await openDataSource('fashion-mnist', { install: false })).test, geo, { root, limit: 100 });
  spec = {
    seed: 3, batchSize: 32, examples: data.size, stepsPerEpoch: 3, geo, norm: { mean: [0.3], std: [0.35] }, classes: 10,
    augment: { cropScale: [0.3, 1], cropRatio: [3 / 4, 4 / 3], flip: true, translate: 2 }, labelSmoothing: 0.1, mixup: 0.8,
  };
}, 60_000);
afterAll(async () => {
  data?.close();
  await rm(root, { recursive: true, force: true });
});

describe('batch source', () => {
  it('the worker builds exactly batchMaker(spec)(step), steps 0–6 (three epochs), buffers recycled', async () => {
    const { source, note } = await openBatchSource(spec, data);
    try {
      expect(note).toBeUndefined();
      expect(source.where).toBe('worker');
      const make = batchMaker(spec, data);
      const buf = allocBatchBuffers(spec);
      for (let step = 0; step < 7; step++) {
        const got = await source.take(step);
        if (step < 6) source.prefetch(step + 1);
        const want = make(step, buf);
        expect(got.size).toBe(32);
        expect(got.x).toEqual(want.x);
        expect(got.y).toEqual(want.y);
        source.release(got);
      }
    } finally {
      await source.close();
    }
  });

  it('EXPECTED FAILURE - a cache the worker cannot open: batches come from the main thread, with the reason', async () => {
    const missing = { ...data, dir: join(root, 'no-such-cache'), pixels: (i: number) => data.pixels(i), close: () => undefined };
    const { source, note } = await openBatchSource(spec, missing);
    expect(source.where).toBe('main thread');
    expect(note).toMatch(/batches built in the main thread \(no worker: opening .*no-such-cache/);
    const b = await source.take(4);
    expect(b.x).toEqual(batchMaker(spec, data)(4, allocBatchBuffers(spec)).x);
    await source.close();
  });

  it('with a validation hold-out, the worker builds batches from the selected images only, as in this thread', async () => {
    const select = Uint32Array.from({ length: 64 }, (_, i) => 99 - i); // the last 64 of the 100, reversed
    const sub = { ...spec, examples: select.length, stepsPerEpoch: 2 };
    const { source, note } = await openBatchSource(sub, data, select);
    try {
      expect(note).toBeUndefined();
      const make = batchMaker(sub, subsetSplit(data, select));
      for (let step = 0; step < 3; step++) {
        const got = await source.take(step);
        expect(got.x).toEqual(make(step, allocBatchBuffers(sub)).x);
        source.release(got);
      }
      // And not what the first 64 images would give.
      const first = await source.take(3);
      expect(first.x).not.toEqual(batchMaker(sub, data)(3, allocBatchBuffers(sub)).x);
      source.release(first);
    } finally {
      await source.close();
    }
  });
});
