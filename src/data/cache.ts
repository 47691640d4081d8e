// The preprocessed cache (the idea of FFCV): every image decoded once through the service's own `decodeToChw`
// and stored as uint8 CHW at the model's geometry, in shards under .cache/, so epochs cost no decoding and
// training sees exactly the pixels the server would compute. Keyed by data set, split, geometry and a
// fingerprint of the source files; built in a temporary directory and renamed into place, so an interrupted
// build never leaves a half cache behind. Small caches are read into memory; large ones are read per image with
// positioned reads (the page cache keeps them warm).
//
// Layout of <root>/<key>/: meta.json, labels.u16 (little-endian), shard-00000.u8, shard-00001.u8, …

import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { shortHash, type Dataset } from './dataset.js';
import { decodeToChw, type InputGeometry } from './preprocess.js';

/** Bump when the stored format or the preprocessing contract changes. */
const CACHE_FORMAT = 1;
/** Images per shard file. */
export const SHARD_IMAGES = 4096;
/** Caches up to this size are held in memory by default; larger ones are read image by image. */
const IN_MEMORY_BYTES = 1 << 30;

export const DEFAULT_CACHE_DIR = resolve(process.env.MLP_CACHE_DIR ?? join('.cache', 'datasets'));

export interface CacheMeta {
  format: number;
  name: string;
  split: string;
  geometry: InputGeometry;
  size: number;
  classes: string[];
  fingerprint: string;
  shardImages: number;
  shards: string[];
  /** Per-channel pixel mean and std (0–255) over the cached images: the fallback normalisation. */
  stats: { mean: number[]; std: number[] };
  /** Seconds the build took. */
  buildSeconds: number;
}

/** A split ready for training: labels in memory, pixels by index, no decoding. */
export interface CachedSplit {
  readonly meta: CacheMeta;
  readonly dir: string;
  readonly size: number;
  readonly labels: Uint16Array;
  /** uint8 CHW of example i. Do not modify: it may be a view of the cache's memory. */
  pixels(i: number): Uint8Array;
  close(): void;
}

export interface CacheOptions {
  /** Root of all caches (default ./.cache/datasets). */
  root?: string;
  /** Only the first `limit` examples (scaling runs); a full cache is used when one exists. */
  limit?: number;
  /** Images decoded at once (default: 4 × cores). Bounded so memory stays flat. */
  concurrency?: number;
  /** Called as the build advances (done of total). */
  onProgress?: (done: number, total: number) => void;
  /** Told once before a build (what is cached, where, why it takes a while) and once after (how long it took). */
  log?: (line: string) => void;
  /** Images per shard file of a new cache (default SHARD_IMAGES). */
  shardImages?: number;
  /** Caches up to this many bytes are read into memory, larger ones image by image (default 1 GiB). */
  maxMemoryBytes?: number;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60);

/** Directory name of a cache; everything that changes the stored pixels is in it. */
export function cacheKey(ds: Pick<Dataset, 'name' | 'split' | 'fingerprint'>, geo: InputGeometry, count?: number): string {
  const identity = JSON.stringify([CACHE_FORMAT, ds.name, ds.split, ds.fingerprint, geo, sharp.versions.vips]);
  const part = count === undefined ? '' : `-first${count}`;
  return `${slug(ds.name)}-${ds.split}-${geo.width}x${geo.height}x${geo.channels}${part}-${shortHash(identity)}`;
}

async function readMeta(dir: string): Promise<CacheMeta | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as CacheMeta;
  } catch {
    return undefined;
  }
}

/** Opens the cache of `ds` at `geo`, building it first when missing. */
export async function prepareSplit(ds: Dataset, geo: InputGeometry, o: CacheOptions = {}): Promise<CachedSplit> {
  const root = o.root ?? DEFAULT_CACHE_DIR;
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1))
    throw new RangeError(`cache limit ${o.limit} must be a whole number ≥ 1`);
  const limit = o.limit !== undefined && o.limit < ds.size ? o.limit : undefined;
  const fullDir = join(root, cacheKey(ds, geo));
  if (await readMeta(fullDir)) return openCache(fullDir, limit, o.maxMemoryBytes);
  const dir = limit === undefined ? fullDir : join(root, cacheKey(ds, geo, limit));
  if (!(await readMeta(dir))) await buildCache(ds, geo, dir, limit ?? ds.size, o);
  return openCache(dir, limit, o.maxMemoryBytes);
}

async function buildCache(ds: Dataset, geo: InputGeometry, dir: string, count: number, o: CacheOptions): Promise<void> {
  const started = performance.now();
  const what = `${ds.name} ${ds.split} (${count} images at ${geo.width}×${geo.height}×${geo.channels})`;
  o.log?.(`caching ${what} into ${dir}: each image is decoded once now, later runs read the cache`);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const per = geo.channels * geo.height * geo.width;
  const plane = geo.height * geo.width;
  const labels = new Uint16Array(count);
  const sum = new Float64Array(geo.channels);
  const sumSq = new Float64Array(geo.channels);
  const shards: string[] = [];
  const shardImages = o.shardImages ?? SHARD_IMAGES;
  const concurrency = o.concurrency ?? 4 * availableParallelism();
  let done = 0;
  try {
    for (let start = 0; start < count; start += shardImages) {
      const n = Math.min(shardImages, count - start);
      const shard = new Uint8Array(n * per);
      // A bounded pool: `concurrency` decodes in flight, each worker taking the next index.
      let next = 0;
      let failed = false;
      const worker = async () => {
        for (let k = next++; k < n && !failed; k = next++) {
          const i = start + k;
          let chw: Uint8Array;
          try {
            chw = await decodeToChw(await ds.image(i), geo);
          } catch (err) {
            failed = true; // the other workers stop at their next image
            throw new Error(`${ds.name} ${ds.split} example ${i}: ${(err as Error).message}`);
          }
          shard.set(chw, k * per);
          labels[i] = ds.label(i);
          done++;
          if (done % 1024 === 0 || done === count) o.onProgress?.(done, count);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
      for (let c = 0; c < geo.channels; c++) {
        for (let k = 0; k < n; k++) {
          const off = k * per + c * plane;
          for (let p = 0; p < plane; p++) {
            const v = shard[off + p];
            sum[c] += v;
            sumSq[c] += v * v;
          }
        }
      }
      const file = `shard-${String(shards.length).padStart(5, '0')}.u8`;
      await writeFile(join(tmp, file), shard);
      shards.push(file);
    }
    await writeFile(join(tmp, 'labels.u16'), Buffer.from(labels.buffer, labels.byteOffset, labels.byteLength));
    const px = count * plane;
    const mean = Array.from(sum, (s) => s / px);
    const std = Array.from(sumSq, (s, c) => Math.sqrt(Math.max(s / px - mean[c] ** 2, 1e-12)));
    const meta: CacheMeta = {
      format: CACHE_FORMAT,
      name: ds.name,
      split: ds.split,
      geometry: geo,
      size: count,
      classes: [...ds.classes],
      fingerprint: ds.fingerprint,
      shardImages,
      shards,
      stats: { mean, std },
      buildSeconds: (performance.now() - started) / 1000,
    };
    await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    o.log?.(`cached ${what} in ${meta.buildSeconds.toFixed(1)} s`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process finished the same cache first: theirs is identical, keep it.
      if (!(await readMeta(dir))) throw err;
      await rm(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Opens a built cache; `limit` exposes only its first examples. */
export async function openCache(dir: string, limit?: number, maxMemoryBytes = IN_MEMORY_BYTES): Promise<CachedSplit> {
  const meta = await readMeta(dir);
  if (!meta) throw new Error(`${dir}: not a data cache (no readable meta.json)`);
  if (meta.format !== CACHE_FORMAT) throw new Error(`${dir}: cache format ${meta.format}, this code reads ${CACHE_FORMAT}`);
  const size = Math.min(limit ?? meta.size, meta.size);
  const g = meta.geometry;
  const per = g.channels * g.height * g.width;
  const lblBytes = await readFile(join(dir, 'labels.u16'));
  const labels = new Uint16Array(lblBytes.buffer.slice(lblBytes.byteOffset, lblBytes.byteOffset + 2 * size));
  const shardCount = Math.ceil(size / meta.shardImages);
  if (size * per <= maxMemoryBytes) {
    const shards = await Promise.all(meta.shards.slice(0, shardCount).map((f) => readFile(join(dir, f))));
    return {
      meta,
      dir,
      size,
      labels,
      pixels: (i) => {
        const s = shards[Math.floor(i / meta.shardImages)];
        const off = (i % meta.shardImages) * per;
        return new Uint8Array(s.buffer, s.byteOffset + off, per);
      },
      close: () => {},
    };
  }
  const fds = meta.shards.slice(0, shardCount).map((f) => openSync(join(dir, f), 'r'));
  return {
    meta,
    dir,
    size,
    labels,
    pixels: (i) => {
      const out = new Uint8Array(per);
      readSync(fds[Math.floor(i / meta.shardImages)], out, 0, per, (i % meta.shardImages) * per);
      return out;
    },
    close: () => fds.forEach((fd) => closeSync(fd)),
  };
}
