// Training-time augmentation on uint8 CHW images already at the model's resolution (what the cache stores):
// random-resized crop (the paper's), horizontal flip, and a light pad-and-crop translation (on Fashion-MNIST strong
// crops underfit and ±2 px shifts help late in training: docs/training.md). Seeded: the same rng gives the same
// pixels. Evaluation uses the centre view, which is the cached image unchanged: exactly what the server feeds.

import type { InputGeometry } from '../data/preprocess.js';
import type { Rng } from '../util/rng.js';

export interface AugmentOptions {
  /** Random-resized crop: range of the crop's area as a fraction of the image; null = no crop. Paper: [0.08, 1]. */
  cropScale: readonly [number, number] | null;
  /** Range of the crop's aspect ratio w/h (log-uniform). Paper: [3/4, 4/3]. */
  cropRatio: readonly [number, number];
  /** Mirror left-right with probability ½. */
  flip: boolean;
  /** Shift by up to this many pixels in x and y, filling with 0 (= pad by it, then crop at random); 0 = off. */
  translate: number;
}

export const PAPER_AUGMENT: AugmentOptions = Object.freeze({
  cropScale: [0.08, 1] as const,
  cropRatio: [3 / 4, 4 / 3] as const,
  flip: true,
  translate: 0,
});

export function validateAugment(o: AugmentOptions): void {
  if (o.cropScale) {
    const [lo, hi] = o.cropScale;
    if (!(lo > 0 && lo <= hi && hi <= 1)) throw new RangeError(`crop scale [${lo}, ${hi}] must satisfy 0 < min ≤ max ≤ 1`);
  }
  const [rlo, rhi] = o.cropRatio;
  if (!(rlo > 0 && rlo <= rhi)) throw new RangeError(`crop ratio [${rlo}, ${rhi}] must satisfy 0 < min ≤ max`);
  if (!(Number.isInteger(o.translate) && o.translate >= 0))
    throw new RangeError(`translate ${o.translate} must be a whole number of pixels ≥ 0`);
}

/** True when the options change nothing (eval-like training). */
export function isIdentity(o: AugmentOptions): boolean {
  const fullCrop = !o.cropScale || (o.cropScale[0] === 1 && o.cropRatio[0] <= 1 && o.cropRatio[1] >= 1);
  return fullCrop && !o.flip && o.translate === 0;
}

export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

const randInt = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1)); // inclusive

/** torchvision's RandomResizedCrop.get_params: 10 tries at a random area and ratio, else a centre crop. */
export function sampleCrop(
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Rng,
): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng() * (scale[1] - scale[0]));
    const aspect = Math.exp(logLo + rng() * (logHi - logLo));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { top: randInt(rng, 0, height - h), left: randInt(rng, 0, width - w), height: h, width: w };
    }
  }
  // Fallback: the largest centred crop whose ratio is within bounds.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Bilinear resize of a crop of each channel plane back to the full plane (half-pixel centres, edge clamped). */
function resizeCrop(src: Uint8Array, geo: InputGeometry, box: CropBox, out: Uint8Array): void {
  const { width: W, height: H, channels: C } = geo;
  const sy = box.height / H;
  const sx = box.width / W;
  for (let y = 0; y < H; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), box.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, box.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), box.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, box.width - 1);
      const wx = fx - x0;
      for (let c = 0; c < C; c++) {
        const plane = c * H * W;
        const r0 = plane + (box.top + y0) * W + box.left;
        const r1 = plane + (box.top + y1) * W + box.left;
        const top = src[r0 + x0] * (1 - wx) + src[r0 + x1] * wx;
        const bottom = src[r1 + x0] * (1 - wx) + src[r1 + x1] * wx;
        out[plane + y * W + x] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
}

function flipInPlace(img: Uint8Array, geo: InputGeometry): void {
  const { width: W, height: H, channels: C } = geo;
  for (let row = 0; row < C * H; row++) img.subarray(row * W, row * W + W).reverse();
}

/** out(y, x) = src(y − dy, x − dx), 0 outside. */
function shift(src: Uint8Array, geo: InputGeometry, dy: number, dx: number, out: Uint8Array): void {
  const { width: W, height: H, channels: C } = geo;
  out.fill(0);
  const x0 = Math.max(0, dx);
  const x1 = Math.min(W, W + dx);
  for (let c = 0; c < C; c++) {
    const plane = c * H * W;
    for (let y = Math.max(0, dy); y < Math.min(H, H + dy); y++) {
      const from = plane + (y - dy) * W;
      out.set(src.subarray(from + x0 - dx, from + x1 - dx), plane + y * W + x0);
    }
  }
}

/**
 * One augmented view of `src` (uint8 CHW at `geo`), written to `out` (a new array by default).
 * Transforms apply in the order crop → flip → shift; only enabled ones draw from `rng`, so a seed reproduces a
 * view for given options.
 */
export function augment(
  src: Uint8Array,
  geo: InputGeometry,
  o: AugmentOptions,
  rng: Rng,
  out: Uint8Array = new Uint8Array(src.length),
): Uint8Array {
  const n = geo.channels * geo.height * geo.width;
  if (src.length !== n) throw new RangeError(`augment: image has ${src.length} values, geometry needs ${n}`);
  let cur = src;
  if (o.cropScale) {
    const box = sampleCrop(geo.height, geo.width, o.cropScale, o.cropRatio, rng);
    resizeCrop(cur, geo, box, out);
    cur = out;
  }
  if (o.flip && rng() < 0.5) {
    if (cur !== out) out.set(cur);
    flipInPlace(out, geo);
    cur = out;
  }
  if (o.translate > 0) {
    const dy = randInt(rng, -o.translate, o.translate);
    const dx = randInt(rng, -o.translate, o.translate);
    const from = cur === out ? out.slice() : cur;
    shift(from, geo, dy, dx, out);
    cur = out;
  }
  if (cur !== out) out.set(cur);
  return out;
}
