// The ort engine's trainable state on the host: parameters, momenta and gradients in the WebAssembly arena that the
// SIMD LION kernel updates in place (lion-simd.ts), or in plain arrays with the scalar kernel when the model does not
// fit wasm32 memory; and the conversion between a tensor's public layout and the graphs' (ParamSpec.transposed).

import { storedShape, type ParamSpec } from './ort-graph.js';
import { createLionArena, type LionArena } from './lion-simd.js';

/** The SIMD arena, or plain arrays with the scalar kernel when the model does not fit wasm32 memory. */
export function hostArena(sizes: number[]): LionArena {
  const simd = createLionArena(sizes);
  if (simd) return simd;
  const make = () => sizes.map((n) => new Float32Array(n));
  const params = make();
  const momenta = make();
  const grads = make();
  return {
    params,
    momenta,
    grads,
    update: (i, lr, decay, beta1, beta2) => lionInPlace(params[i], momenta[i], grads[i], lr, decay, beta1, beta2),
  };
}

/**
 * LION on one tensor, in place; bit-identical to src/train/lion.ts's lionUpdate (same float64 arithmetic, same
 * float32 stores) but branch-free: `(c > 0) − (c < 0)` instead of Math.sign, which mispredicts on gradient signs
 * (4× slower over a B_6-Wi_512 model here).
 */
export function lionInPlace(
  p: Float32Array,
  m: Float32Array,
  g: Float32Array,
  lr: number,
  decay: number,
  beta1: number,
  beta2: number,
): void {
  const k1 = 1 - beta1;
  const k2 = 1 - beta2;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = m[i];
    const c = beta1 * mi + k1 * gi;
    p[i] = p[i] * decay - lr * (Number(c > 0) - Number(c < 0));
    m[i] = beta2 * mi + k2 * gi;
  }
}

/** Copies a tensor in its public layout into `dst` in the graph's layout (ParamSpec.transposed); returns `dst`. */
export function toStored(spec: ParamSpec, src: Float32Array, dst: Float32Array): Float32Array {
  if (spec.transposed) transpose(src, spec.shape[0], spec.shape[1], dst);
  else dst.set(src);
  return dst;
}

/** A copy of a tensor in the graph's layout, in its public layout. */
export function fromStored(spec: ParamSpec, src: Float32Array): Float32Array {
  if (!spec.transposed) return src.slice();
  const [rows, cols] = storedShape(spec);
  return transpose(src, rows, cols, new Float32Array(src.length));
}

/** dst[c, r] = src[r, c] for a row-major rows × cols src, in tiles so both sides stay in cache. */
function transpose(src: Float32Array, rows: number, cols: number, dst: Float32Array): Float32Array {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T)
    for (let c0 = 0; c0 < cols; c0 += T)
      for (let r = r0; r < Math.min(r0 + T, rows); r++)
        for (let c = c0; c < Math.min(c0 + T, cols); c++) dst[c * rows + r] = src[r * cols + c];
  return dst;
}
