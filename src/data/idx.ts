// IDX files (MNIST, Fashion-MNIST), gzipped or not: images [n, rows, cols] of uint8 and labels [n].
// Format: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then each dimension as a
// big-endian uint32, then the data row-major.

import { readFile, stat } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { Dataset } from './dataset.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses IDX bytes (gunzipping when they start with the gzip magic). Only unsigned-byte data is supported. */
export function parseIdx(bytes: Uint8Array, file = 'IDX data'): IdxArray {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) throw new RangeError(`${file}: not an IDX file (bad magic)`);
  if (raw[2] !== 0x08) throw new RangeError(`${file}: IDX type 0x${raw[2].toString(16)} is not unsigned byte (0x08)`);
  const ndims = raw[3];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const offset = 4 + 4 * ndims;
  const count = dims.reduce((a, b) => a * b, 1);
  if (raw.length - offset !== count)
    throw new RangeError(`${file}: header says ${dims.join('×')} = ${count} values, file holds ${raw.length - offset}`);
  return { dims, data: raw.subarray(offset) };
}

/** One split from an images file and a labels file. */
export async function readIdxSplit(opts: {
  name: string;
  split: string;
  imagesFile: string;
  labelsFile: string;
  /** Class names; default `0`, `1`, … up to the largest label. */
  classes?: readonly string[];
}): Promise<Dataset> {
  const [imgBytes, lblBytes, si, sl] = await Promise.all([
    readFile(opts.imagesFile),
    readFile(opts.labelsFile),
    stat(opts.imagesFile),
    stat(opts.labelsFile),
  ]);
  const images = parseIdx(imgBytes, opts.imagesFile);
  const labels = parseIdx(lblBytes, opts.labelsFile);
  if (images.dims.length !== 3) throw new RangeError(`${opts.imagesFile}: expected [n, rows, cols], got ${images.dims.join('×')}`);
  if (labels.dims.length !== 1) throw new RangeError(`${opts.labelsFile}: expected [n], got ${labels.dims.join('×')}`);
  const [n, rows, cols] = images.dims;
  if (labels.dims[0] !== n) throw new RangeError(`${opts.imagesFile} has ${n} images but ${opts.labelsFile} ${labels.dims[0]} labels`);
  let maxLabel = 0;
  for (let i = 0; i < n; i++) maxLabel = Math.max(maxLabel, labels.data[i]);
  const classes = opts.classes ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  if (maxLabel >= classes.length)
    throw new RangeError(`${opts.labelsFile}: label ${maxLabel} ≥ ${classes.length} classes`);
  const px = rows * cols;
  return {
    name: opts.name,
    split: opts.split,
    size: n,
    classes,
    fingerprint: `idx:${si.size}:${si.mtimeMs}:${sl.size}:${sl.mtimeMs}`,
    label: (i) => labels.data[i],
    image: async (i) => ({ raw: images.data.subarray(i * px, (i + 1) * px), width: cols, height: rows, channels: 1 }),
  };
}
