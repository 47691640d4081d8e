// The data set readers on real files: IDX (gzipped and plain; the real Fashion-MNIST too), CIFAR binary records
// (planes → interleaved pixels), image folders of PNG/JPEG/WebP written by sharp (class order, hold-out split),
// and `--data` resolution with its errors.

import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCifar } from '../../src/data/cifar.js';
import { parseIdx } from '../../src/data/idx.js';
import { DatasetMissingError, HOLDOUT_FRACTION, openDataSource } from '../../src/data/resolve.js';
import type { RawImage } from '../../src/data/preprocess.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlp-data-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  const v = new DataView(head.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  return new Uint8Array([...head, ...data]);
}

describe('IDX', () => {
  it('parses plain and gzipped files to the same dims and data', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 7);
    const plain = idxBytes([2, 3, 4], data);
    for (const bytes of [plain, new Uint8Array(gzipSync(plain))]) {
      const a = parseIdx(bytes);
      expect(a.dims).toEqual([2, 3, 4]);
      expect(Array.from(a.data)).toEqual(Array.from(data));
    }
  });

  it('BAD CALL - wrong magic, wrong type, truncated data are RangeErrors naming the file', () => {
    expect(() => parseIdx(Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 0]), 'f.idx')).toThrow(/f\.idx: not an IDX file/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 0]), 'f.idx')).toThrow(/type 0xd/);
    expect(() => parseIdx(idxBytes([5], new Uint8Array(3)), 'f.idx')).toThrow(/header says 5 = 5 values, file holds 3/);
  });

  it('fashion-mnist resolves to the Debian package: 60000 train / 10000 test 28×28 images, 10 named classes', async () => {
    const src = await openDataSource('fashion-mnist', { install: false });
    expect(src.train.size).toBe(60000);
    expect(src.test.size).toBe(10000);
    expect(src.train.classes[0]).toBe('T-shirt/top');
    expect(src.normalization).toEqual({ mean: [72.94], std: [90.02] });
    const img = (await src.test.image(0)) as RawImage;
    expect([img.width, img.height, img.channels, img.raw.length]).toEqual([28, 28, 1, 784]);
    expect(src.test.label(0)).toBe(9); // the first test image is an ankle boot
    const counts = new Array(10).fill(0);
    for (let i = 0; i < src.train.size; i++) counts[src.train.label(i)]++;
    expect(counts).toEqual(new Array(10).fill(6000));
  });

  it('an idx: directory with its own files, labels named 0..max', async () => {
    const d = join(dir, 'idx');
    await mkdir(d);
    const imgs = (n: number) => idxBytes([n, 2, 2], Uint8Array.from({ length: n * 4 }, (_, i) => i));
    const lbls = (n: number) => idxBytes([n], Uint8Array.from({ length: n }, (_, i) => i % 3));
    await writeFile(join(d, 'train-images-idx3-ubyte.gz'), gzipSync(imgs(6)));
    await writeFile(join(d, 'train-labels-idx1-ubyte'), lbls(6));
    await writeFile(join(d, 't10k-images-idx3-ubyte'), imgs(3));
    await writeFile(join(d, 't10k-labels-idx1-ubyte.gz'), gzipSync(lbls(3)));
    for (const spec of [`idx:${d}`, d]) {
      const src = await openDataSource(spec);
      expect([src.train.size, src.test.size]).toEqual([6, 3]);
      expect(src.train.classes).toEqual(['0', '1', '2']);
      expect(Array.from(((await src.train.image(1)) as RawImage).raw)).toEqual([4, 5, 6, 7]);
    }
  });
});

describe('CIFAR binary', () => {
  function record(labelBytes: number[], seed: number): Uint8Array {
    return Uint8Array.from([...labelBytes, ...Array.from({ length: 3072 }, (_, i) => (i * 3 + seed) % 251)]);
  }

  it('cifar10: label byte then R, G, B planes → interleaved RGB', () => {
    const { labels, hwc } = parseCifar([Uint8Array.from([...record([7], 1), ...record([2], 5)])], 'cifar10');
    expect(Array.from(labels)).toEqual([7, 2]);
    const planes = record([2], 5).subarray(1);
    const p = 33; // pixel (row 1, col 1) of the second image
    expect([hwc[3072 + 3 * p], hwc[3072 + 3 * p + 1], hwc[3072 + 3 * p + 2]]).toEqual([planes[p], planes[1024 + p], planes[2048 + p]]);
  });

  it('cifar100: (coarse, fine) label bytes; the fine one is used', () => {
    expect(Array.from(parseCifar([record([3, 42], 0)], 'cifar100').labels)).toEqual([42]);
  });

  it('a cifar10 directory opens with its class names file', async () => {
    const d = join(dir, 'cifar', 'cifar-10-batches-bin');
    await mkdir(d, { recursive: true });
    for (let b = 1; b <= 5; b++) await writeFile(join(d, `data_batch_${b}.bin`), record([b], b));
    await writeFile(join(d, 'test_batch.bin'), Uint8Array.from([...record([0], 9), ...record([9], 8)]));
    await writeFile(join(d, 'batches.meta.txt'), 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n');
    const src = await openDataSource(join(dir, 'cifar'));
    expect(src.name).toBe('cifar10');
    expect([src.train.size, src.test.size]).toEqual([5, 2]);
    expect(src.train.classes[9]).toBe('truck');
    expect(src.test.label(1)).toBe(9);
    const img = (await src.train.image(0)) as RawImage;
    expect([img.width, img.height, img.channels]).toEqual([32, 32, 3]);
    expect(src.normalization?.mean[0]).toBeCloseTo(0.4914 * 255, 2);
  });

  it('BAD CALL - a file that is not whole records is refused', () => {
    expect(() => parseCifar([new Uint8Array(3074)], 'cifar10')).toThrow(/not whole 3073-byte records/);
  });
});

describe('image folder', () => {
  async function writeImage(path: string, value: number, format: 'png' | 'jpeg' | 'webp'): Promise<void> {
    const raw = Buffer.alloc(10 * 12 * 3, value);
    await sharp(raw, { raw: { width: 10, height: 12, channels: 3 } }).toFormat(format).toFile(path);
  }

  it('sorted class folders, nested files, any format; no test split → a fixed 10% hold-out', async () => {
    const root = join(dir, 'folder');
    const classes = ['zebra', 'ant', 'moth'];
    for (const [c, name] of classes.entries()) {
      await mkdir(join(root, name, 'nested'), { recursive: true });
      for (let i = 0; i < 10; i++) {
        const fmt = (['png', 'jpeg', 'webp'] as const)[i % 3];
        await writeImage(join(root, name, i < 5 ? '' : 'nested', `${i}.${fmt === 'jpeg' ? 'jpg' : fmt}`), 40 * (c + 1), fmt);
      }
    }
    await writeFile(join(root, 'ant', 'notes.txt'), 'not an image');
    const src = await openDataSource(root);
    expect(src.train.classes).toEqual(['ant', 'moth', 'zebra']);
    expect(src.train.size + src.test.size).toBe(30);
    expect(src.test.size).toBe(Math.round(30 * HOLDOUT_FRACTION));
    expect(src.test.split).toBe('holdout');
    expect(src.normalization).toBeUndefined();
    // The label of each example is its folder: decode and compare the grey level written for that class.
    for (let i = 0; i < src.train.size; i++) {
      const { data } = await sharp(Buffer.from((await src.train.image(i)) as Uint8Array)).raw().toBuffer({ resolveWithObject: true });
      const cls = src.train.classes[src.train.label(i)];
      expect(Math.abs(data[0] - 40 * (classes.indexOf(cls) + 1))).toBeLessThan(4);
    }
    // The listing order is fixed (not the training seed's): opening again gives the same examples.
    const again = await openDataSource(root);
    expect(Array.from({ length: again.test.size }, (_, i) => again.test.label(i))).toEqual(
      Array.from({ length: src.test.size }, (_, i) => src.test.label(i)),
    );
    expect(again.train.fingerprint).toBe(src.train.fingerprint);
  });

  it('train/ and test/ subfolders are the splits; the test split takes the train class order', async () => {
    const root = join(dir, 'split');
    for (const split of ['train', 'test'])
      for (const name of split === 'train' ? ['b', 'a'] : ['b']) {
        await mkdir(join(root, split, name), { recursive: true });
        await writeImage(join(root, split, name, 'x.png'), 9, 'png');
      }
    const src = await openDataSource(`folder:${root}`);
    expect([src.train.size, src.test.size, src.test.split]).toEqual([2, 1, 'test']);
    expect(src.test.classes).toEqual(['a', 'b']);
    expect(src.test.label(0)).toBe(1);
  });
});

describe('resolution errors', () => {
  it('EXPECTED FAILURE - an unknown name says what is accepted', async () => {
    await expect(openDataSource('no-such-set-here')).rejects.toThrow(DatasetMissingError);
    await expect(openDataSource('no-such-set-here')).rejects.toThrow(/neither a known name \(fashion-mnist, mnist\)/);
  });

  it('EXPECTED FAILURE - a cifar10: directory without CIFAR files says which files it needs', async () => {
    await expect(openDataSource(`cifar10:${dir}`)).rejects.toThrow(/data_batch_1\.\.5\.bin/);
  });
});
