// CIFAR-10 and CIFAR-100 in their "binary version": fixed-size records of label byte(s) then 3072 pixel bytes,
// the 32×32 red plane, then green, then blue. CIFAR-100 records carry (coarse, fine) labels; we use the fine one.

import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Dataset } from './dataset.js';

const PIXELS = 32 * 32;
const IMAGE_BYTES = 3 * PIXELS;

export type CifarKind = 'cifar10' | 'cifar100';

/** Parses concatenated record files into labels and HWC pixels (what decodeToChw's raw input expects). */
export function parseCifar(files: Uint8Array[], kind: CifarKind): { labels: Uint8Array; hwc: Uint8Array } {
  const labelBytes = kind === 'cifar10' ? 1 : 2;
  const record = labelBytes + IMAGE_BYTES;
  let n = 0;
  for (const f of files) {
    if (f.length % record !== 0) throw new RangeError(`${kind}: file of ${f.length} bytes is not whole ${record}-byte records`);
    n += f.length / record;
  }
  const labels = new Uint8Array(n);
  const hwc = new Uint8Array(n * IMAGE_BYTES);
  let i = 0;
  for (const f of files) {
    for (let off = 0; off < f.length; off += record, i++) {
      labels[i] = f[off + labelBytes - 1]; // cifar100: the fine label is the second byte
      const src = off + labelBytes;
      const dst = i * IMAGE_BYTES;
      for (let p = 0; p < PIXELS; p++) {
        hwc[dst + 3 * p] = f[src + p];
        hwc[dst + 3 * p + 1] = f[src + PIXELS + p];
        hwc[dst + 3 * p + 2] = f[src + 2 * PIXELS + p];
      }
    }
  }
  return { labels, hwc };
}

export async function readCifarSplit(opts: {
  name: string;
  kind: CifarKind;
  split: string;
  files: string[];
  classes: readonly string[];
}): Promise<Dataset> {
  const bytes = await Promise.all(opts.files.map((f) => readFile(f)));
  const stats = await Promise.all(opts.files.map((f) => stat(f)));
  const { labels, hwc } = parseCifar(bytes, opts.kind);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= opts.classes.length)
      throw new RangeError(`${opts.kind}: label ${labels[i]} at ${i} ≥ ${opts.classes.length} classes`);
  }
  return {
    name: opts.name,
    split: opts.split,
    size: labels.length,
    classes: opts.classes,
    fingerprint: opts.files.map((f, k) => `${basename(f)}:${stats[k].size}:${stats[k].mtimeMs}`).join('|'),
    label: (i) => labels[i],
    image: async (i) => ({ raw: hwc.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), width: 32, height: 32, channels: 3 }),
  };
}
