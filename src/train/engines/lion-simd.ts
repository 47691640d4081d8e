// The host-side LION update as a WebAssembly SIMD kernel, and the arena of parameters, momenta and gradients it runs
// on. The update is memory-bound (5 float streams per parameter), so the kernel's job is to touch each byte once, four
// lanes at a time and without branches; V8's scalar code for the same loop ran ~2× slower here. The few bytes of wasm
// are assembled below by hand (no toolchain needed); WebAssembly.validate and the tests against lionUpdate check them.
//
// Every tensor is a Float32Array view into one non-shared WebAssembly.Memory: onnxruntime-node reads graph inputs
// and writes preallocated outputs straight into these views (it rejects SharedArrayBuffer-backed arrays, so the
// update cannot be spread over worker threads). The memory is sized once and never grown: growing would detach
// every view.

/** wasm32 linear memory is at most 4 GiB; larger models use the scalar fallback in ort.ts. */
const MAX_BYTES = 65536 * 65536;
const PAGE = 65536;

// ---------------------------------------------------------------------------------------------------------------
// The module: imports env.mem, exports lion(p, m, g, n4, lr, decay, β1, 1−β1, β2, 1−β2) over byte offsets p, m, g
// and n4 elements (a multiple of 4); 1−β is passed in, computed in float64, because 1 − f32(0.99) is off by 1e-6:
//   c = β1·m + (1−β1)·g;  p ← p·decay − lr·sign(c);  m ← β2·m + (1−β2)·g

const SIMD = 0xfd;
const op = {
  v128load: [SIMD, 0x00, 0x04, 0x00], // align 2^4, offset 0
  v128store: [SIMD, 0x0b, 0x04, 0x00],
  v128zero: [SIMD, 0x0c, ...new Array(16).fill(0)],
  f32x4splat: [SIMD, 0x13],
  f32x4lt: [SIMD, 0x43],
  f32x4gt: [SIMD, 0x44],
  i32x4sub: [SIMD, 0xb1, 0x01],
  f32x4add: [SIMD, 0xe4, 0x01],
  f32x4sub: [SIMD, 0xe5, 0x01],
  f32x4mul: [SIMD, 0xe6, 0x01],
  f32x4fromI32: [SIMD, 0xfa, 0x01], // f32x4.convert_i32x4_s
};
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const I32_ADD = 0x6a;

// params 0 p, 1 m, 2 g, 3 n4, 4 lr, 5 decay, 6 β1, 7 1−β1, 8 β2, 9 1−β2; locals 10 i, 11 end, 12..17 splats, 18 c,
// 19 m, 20 g
const [P, M, G, N4, LR, DECAY, B1, K1, B2, K2, I, END, VLR, VDECAY, VB1, VK1, VB2, VK2, C, VM, VG] = Array.from(
  { length: 21 },
  (_, k) => k,
);
const at = (base: number) => [...get(base), ...get(I), I32_ADD];

const body = [
  // locals: 2 × i32, 9 × v128
  0x02, 0x02, 0x7f, 0x09, 0x7b,
  ...get(LR), ...op.f32x4splat, ...set(VLR),
  ...get(DECAY), ...op.f32x4splat, ...set(VDECAY),
  ...get(B1), ...op.f32x4splat, ...set(VB1),
  ...get(K1), ...op.f32x4splat, ...set(VK1),
  ...get(B2), ...op.f32x4splat, ...set(VB2),
  ...get(K2), ...op.f32x4splat, ...set(VK2),
  ...get(N4), 0x41, 0x02, 0x74, ...set(END), // end = n4 << 2 (bytes)
  0x02, 0x40, // block
  0x03, 0x40, // loop
  ...get(I), ...get(END), 0x4f, 0x0d, 0x01, // br_if 1 (i >= end)
  ...at(M), ...op.v128load, ...set(VM),
  ...at(G), ...op.v128load, ...set(VG),
  ...get(VB1), ...get(VM), ...op.f32x4mul, ...get(VK1), ...get(VG), ...op.f32x4mul, ...op.f32x4add, ...set(C),
  // p ← p·decay − lr·sign(c); comparisons give all-ones (−1) lanes where true, so sign(c) = (c<0) − (c>0)
  ...at(P),
  ...at(P), ...op.v128load, ...get(VDECAY), ...op.f32x4mul,
  ...get(VLR),
  ...get(C), ...op.v128zero, ...op.f32x4lt, ...get(C), ...op.v128zero, ...op.f32x4gt, ...op.i32x4sub, ...op.f32x4fromI32,
  ...op.f32x4mul, ...op.f32x4sub,
  ...op.v128store,
  // m ← β2·m + (1−β2)·g
  ...at(M),
  ...get(VB2), ...get(VM), ...op.f32x4mul, ...get(VK2), ...get(VG), ...op.f32x4mul, ...op.f32x4add,
  ...op.v128store,
  ...get(I), 0x41, 0x10, I32_ADD, ...set(I), // i += 16
  0x0c, 0x00, // br 0
  0x0b, // end loop
  0x0b, // end block
  0x0b, // end function
];

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const str = (s: string) => [s.length, ...[...s].map((ch) => ch.charCodeAt(0))];

function moduleBytes(pages: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x0a, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x00]),
    // import env.mem: memory with min = max = pages
    ...section(2, [0x01, ...str('env'), ...str('mem'), 0x02, 0x01, ...leb(pages), ...leb(pages)]),
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...str('lion'), 0x00, 0x00]),
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

type LionFn = (p: number, m: number, g: number, n4: number, lr: number, decay: number, ...betas: number[]) => void;

/** Parameters, momenta and gradients of one model, each a 16-byte-aligned view into one wasm memory. */
export interface LionArena {
  params: Float32Array[];
  momenta: Float32Array[];
  grads: Float32Array[];
  /** LION on tensor `i`, in place on params[i] and momenta[i] from grads[i]. */
  update(i: number, lr: number, decay: number, beta1: number, beta2: number): void;
}

/** True when this runtime validates the SIMD kernel (Node ≥ 16.4 does). */
export function simdAvailable(): boolean {
  return WebAssembly.validate(moduleBytes(1));
}

/**
 * An arena for tensors of `sizes` elements (zero-filled), or undefined when it would not fit wasm32 memory or SIMD
 * is unavailable.
 */
export function createLionArena(sizes: readonly number[]): LionArena | undefined {
  // Each tensor padded to a multiple of 4 elements (16 bytes): the kernel runs whole lanes; padding stays 0.
  const padded = sizes.map((n) => Math.ceil(n / 4) * 4);
  const totalBytes = 3 * 4 * padded.reduce((a, b) => a + b, 0);
  if (totalBytes === 0 || totalBytes > MAX_BYTES || !simdAvailable()) return undefined;
  const pages = Math.max(1, Math.ceil(totalBytes / PAGE));
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes(pages)), { env: { mem } });
  const lion = instance.exports.lion as LionFn;
  let offset = 0;
  const views = () =>
    sizes.map((n, i) => {
      const v = new Float32Array(mem.buffer, offset, n);
      offset += 4 * padded[i];
      return v;
    });
  const params = views();
  const momenta = views();
  const grads = views();
  return {
    params,
    momenta,
    grads,
    update(i, lr, decay, beta1, beta2) {
      const [p, m, g] = [params[i].byteOffset, momenta[i].byteOffset, grads[i].byteOffset];
      lion(p, m, g, padded[i], lr, decay, beta1, 1 - beta1, beta2, 1 - beta2);
    },
  };
}
