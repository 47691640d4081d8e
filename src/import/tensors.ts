// A checkpoint tensor's bytes as contiguous float32: float32/64, float16 and bfloat16 storages, with the pickle's
// offset and strides honoured and checked against the storage's size.

import { TorchCheckpointError } from './binary.js';
import type { TorchDtype } from './pickle.js';
import type { TorchStateDict } from './torch-checkpoint.js';

const BYTES_PER: Record<TorchDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Materialises a floating-point tensor as contiguous row-major float32 (honouring offset and strides). */
export function tensorToFloat32(sd: TorchStateDict, name: string): Float32Array {
  const t = sd.tensors.get(name);
  if (!t) throw new TorchCheckpointError(`no tensor "${name}"`);
  const raw = sd.storages.get(t.storage.key) as Uint8Array;
  const { dtype } = t.storage;
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'float16' && dtype !== 'bfloat16')
    throw new TorchCheckpointError(`tensor "${name}" is ${dtype}, not floating point`);
  const size = BYTES_PER[dtype];
  const n = raw.byteLength / size;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read = (i: number): number => {
    if (dtype === 'float32') return view.getFloat32(4 * i, true);
    if (dtype === 'float64') return view.getFloat64(8 * i, true);
    if (dtype === 'float16') return halfToFloat(view.getUint16(2 * i, true));
    const f = new DataView(new ArrayBuffer(4)); // bfloat16: the top half of a float32
    f.setUint32(0, view.getUint16(2 * i, true) << 16);
    return f.getFloat32(0);
  };
  const count = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  // Highest element index the view touches must lie inside the storage.
  const last = t.offset + t.shape.reduce((a, d, i) => a + (d > 0 ? (d - 1) * t.stride[i] : 0), 0);
  if (count > 0 && (t.offset < 0 || last >= n))
    throw new TorchCheckpointError(`tensor "${name}" reaches outside its storage (${n} elements)`);

  let contiguous = true;
  for (let i = t.shape.length - 1, expect = 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) contiguous = false;
    expect *= t.shape[i];
  }
  if (contiguous && dtype === 'float32') {
    // Fast path (every tensor of a saved state_dict): one copy of the bytes.
    new Uint8Array(out.buffer).set(raw.subarray(4 * t.offset, 4 * (t.offset + count)));
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) for (let i = 0; i < count; i++) out[i] = read(t.offset + i);
    return out;
  }
  const idx = new Array<number>(t.shape.length).fill(0);
  for (let k = 0; k < count; k++) {
    let src = t.offset;
    for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
    out[k] = read(src);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}
