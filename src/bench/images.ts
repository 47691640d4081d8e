// The uploads of the serving bench: a real Fashion-MNIST test image as the 28×28 grey PNG a client of the default
// model sends, and a 500×375 JPEG shaped like a phone photo (the same garment enlarged on a lit, textured
// background, quality 85), which costs a real JPEG decode and a large downscale.

import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { parseIdx } from '../data/idx.js';
import { createRng } from '../util/rng.js';
import type { Upload } from './load.js';

export const FASHION_MNIST_TEST_IMAGES = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz';

/** The `index`-th Fashion-MNIST test image, 28×28 grey, row-major. */
export async function fashionMnistImage(index = 0, file = FASHION_MNIST_TEST_IMAGES): Promise<Uint8Array> {
  const idx = parseIdx(await readFile(file), file);
  const [n, rows, cols] = idx.dims;
  if (index >= n) throw new RangeError(`${file} holds ${n} images, asked for #${index}`);
  return idx.data.slice(index * rows * cols, (index + 1) * rows * cols);
}

export async function png28(raw28: Uint8Array): Promise<Upload> {
  const bytes = await sharp(raw28, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
  return { label: 'png 28×28', bytes: new Uint8Array(bytes), contentType: 'image/png' };
}

/** 500×375 RGB: a warm gradient with sensor-like noise, the garment enlarged to 300×300 in the middle. */
export async function jpeg500(raw28: Uint8Array, seed = 7): Promise<Upload> {
  const W = 500;
  const H = 375;
  const rng = createRng(seed);
  const bg = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      const noise = (rng() - 0.5) * 18;
      const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v + noise)));
      bg[i] = clamp(150 + 60 * (x / W) + 10 * Math.sin(y / 7));
      bg[i + 1] = clamp(120 + 40 * (y / H));
      bg[i + 2] = clamp(90 + 30 * Math.cos(x / 23));
    }
  const garment = await sharp(raw28, { raw: { width: 28, height: 28, channels: 1 } })
    .resize(300, 300, { kernel: 'cubic' })
    .toColourspace('srgb')
    .png()
    .toBuffer();
  const bytes = await sharp(bg, { raw: { width: W, height: H, channels: 3 } })
    .composite([{ input: garment, left: 100, top: 38, blend: 'screen' }])
    .jpeg({ quality: 85 })
    .toBuffer();
  return { label: 'jpeg 500×375', bytes: new Uint8Array(bytes), contentType: 'image/jpeg' };
}
