// The preprocessed cache on real Fashion-MNIST images: it stores exactly what the server's decodeToChw computes,
// reopens without decoding anything, reads the same through memory and positioned reads across shards, reuses a
// full cache for a prefix, and an interrupted build leaves nothing that looks like a cache.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheKey, prepareSplit } from '../../src/data/cache.js';
import type { Dataset } from '../../src/data/dataset.js';
import { decodeToChw } from '../../src/data/preprocess.js';
import { openDataSource } from '../../src/data/resolve.js';

const geo = { width: 20, height: 20, channels: 3 as const };
const N = 300;
let root: string;
let test: Dataset;

/** The same data set, counting how many images are read (decoding starts from a read). */
function counted(ds: Dataset): Dataset & { reads: number } {
  const c = {
    ...ds,
    reads: 0,
    label: (i: number) => ds.label(i),
    image: (i: number) => {
      c.reads++;
      return ds.image(i);
    },
  };
  return c;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mlp-cache-'));
  test = (await openDataSource('fashion-mnist', { install: false })).test;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('prepareSplit', () => {
  it('stores decodeToChw of every image, in shards; reopening reads no image', async () => {
    const ds = counted(test);
    const lines: string[] = [];
    const built = await prepareSplit(ds, geo, { root, limit: N, shardImages: 64, concurrency: 6, log: (l) => lines.push(l) });
    expect(ds.reads).toBe(N);
    // A first run says what it is doing before the wait, and how long it took after.
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(`caching ${test.name} ${test.split} (${N} images at 20×20×3) into ${built.dir}: each image is decoded once now, later runs read the cache`);
    expect(lines[1]).toMatch(new RegExp(`^cached ${test.name} ${test.split} \\(${N} images at 20×20×3\\) in \\d+\\.\\d s$`));
    expect(built.size).toBe(N);
    expect(built.meta.shards).toHaveLength(Math.ceil(N / 64));
    for (let i = 0; i < N; i += 7) {
      expect(built.pixels(i)).toEqual(await decodeToChw(await test.image(i), geo));
      expect(built.labels[i]).toBe(test.label(i));
    }
    // Per-channel statistics over the cached pixels (grey source: all three channels equal).
    let sum = 0;
    for (let i = 0; i < N; i++) sum += built.pixels(i).subarray(0, 400).reduce((a, b) => a + b, 0);
    expect(built.meta.stats.mean[0]).toBeCloseTo(sum / (N * 400), 6);
    expect(built.meta.stats.mean[2]).toBeCloseTo(built.meta.stats.mean[0], 6);

    const again = counted(test);
    const reopened = await prepareSplit(again, geo, { root, limit: N, log: (l) => lines.push(l) });
    expect(again.reads).toBe(0);
    expect(lines).toHaveLength(2); // nothing to say when the cache is there
    expect(reopened.dir).toBe(built.dir);
    // Positioned reads (the large-cache path) give the same bytes as the in-memory shards.
    const fromDisk = await prepareSplit(again, geo, { root, limit: N, maxMemoryBytes: 0 });
    for (const i of [0, 63, 64, 65, 200, N - 1]) expect(fromDisk.pixels(i)).toEqual(built.pixels(i));
    fromDisk.close();
  });

  it('a full cache serves any prefix; the key depends on the geometry', async () => {
    const small = counted({ ...test, size: 130, fingerprint: `${test.fingerprint}/first130` });
    const full = await prepareSplit(small, { width: 8, height: 8, channels: 1 }, { root });
    expect(full.size).toBe(130);
    const prefix = await prepareSplit(small, { width: 8, height: 8, channels: 1 }, { root, limit: 50 });
    expect(small.reads).toBe(130);
    expect(prefix.size).toBe(50);
    expect(prefix.dir).toBe(full.dir);
    expect(prefix.pixels(49)).toEqual(full.pixels(49));
    expect(cacheKey(test, geo)).not.toBe(cacheKey(test, { ...geo, width: 21 }));
    expect(cacheKey(test, geo)).not.toBe(cacheKey({ ...test, fingerprint: 'changed' }, geo));
  });

  it('EXPECTED FAILURE - an undecodable image stops the build, names the example and leaves no cache behind', async () => {
    const before = await readdir(root);
    const broken: Dataset = {
      ...test,
      name: 'broken',
      size: 40,
      label: (i) => test.label(i),
      image: async (i) => (i === 17 ? new Uint8Array([1, 2, 3]) : test.image(i)),
    };
    await expect(prepareSplit(broken, geo, { root })).rejects.toThrow(/broken test example 17: /);
    expect(await readdir(root)).toEqual(before);
  });
});
