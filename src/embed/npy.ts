// NumPy's .npy format (version 1.0), the file `numpy.load` reads: a magic string, a Python-literal header padded so
// the data starts on a 64-byte boundary, then the array's bytes in C order. Only what the embeddings need:
// little-endian float32 matrices and int32 vectors.

import { open, readFile } from 'node:fs/promises';

export type NpyDtype = '<f4' | '<i4';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);

/** The header block (magic, version, length, dict) of an array of `shape`. */
export function npyHeader(dtype: NpyDtype, shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${dims}, }`;
  const unpadded = MAGIC.length + 2 + dict.length + 1;
  const pad = (64 - (unpadded % 64)) % 64;
  const text = dict + ' '.repeat(pad) + '\n';
  const len = Buffer.alloc(2);
  len.writeUInt16LE(text.length);
  return Buffer.concat([MAGIC, len, Buffer.from(text, 'latin1')]);
}

/** Writes `data` as an .npy file of `shape` (the product of shape must equal data.length). */
export async function writeNpy(file: string, data: Float32Array | Int32Array, shape: readonly number[]): Promise<void> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`${file}: shape [${shape}] holds ${count} values, got ${data.length}`);
  const dtype: NpyDtype = data instanceof Float32Array ? '<f4' : '<i4';
  const fh = await open(file, 'w');
  try {
    await fh.write(npyHeader(dtype, shape));
    await fh.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } finally {
    await fh.close();
  }
}

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Reads an .npy file this module wrote (little-endian float32 or int32, C order). */
export async function readNpy(file: string): Promise<NpyArray> {
  const buf = await readFile(file);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC.subarray(0, 6))) throw new Error(`${file}: not an .npy file`);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if ((descr !== '<f4' && descr !== '<i4') || shapeText === undefined || /'fortran_order':\s*True/.test(header))
    throw new Error(`${file}: unsupported .npy header ${header.trim()}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const bytes = buf.subarray(10 + headerLen);
  const copy = new Uint8Array(bytes).buffer;
  const data = descr === '<f4' ? new Float32Array(copy) : new Int32Array(copy);
  if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`${file}: ${data.length} values for shape [${shape}]`);
  return { dtype: descr, shape, data };
}
