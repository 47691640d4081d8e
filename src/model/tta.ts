// Test-time augmentation as part of the model: the input is seen through a few fixed views (shifts, a horizontal
// flip), the residual streams of all views are averaged into the embedding, and the head reads that average.
// Because the head is linear, this is exactly the average of the views' logits, and the embedding stays "the
// head's input". The paper reports TTA adds 1–8 points; an MLP, lacking translation invariance, gains the most.
//
// A view maps output pixel (c, y, x) to source pixel (c, y − dy, x' − dx) with x' = W−1−x when flipped; pixels
// shifted in from outside are black (0 on the 0–255 scale, i.e. −mean/std after normalisation).

import { forwardReference, type MlpConfig, type MlpWeights } from './mlp.js';

export interface TtaView {
  /** Shift right by dx pixels (negative: left). */
  dx: number;
  /** Shift down by dy pixels (negative: up). */
  dy: number;
  /** Mirror horizontally before shifting. */
  flip: boolean;
}

export interface Geometry {
  width: number;
  height: number;
  channels: number;
}


/**
 * Parses a view list: `flip` (identity + mirror), `shift:N` (identity + four shifts of N px), `flip,shift:N` (both,
 * every shift also mirrored: 10 views). Throws RangeError naming the bad part.
 */
export function parseTtaSpec(spec: string): TtaView[] {
  let flip = false;
  let shift = 0;
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^shift:(\d+)$/.exec(part);
    if (part === 'flip') flip = true;
    else if (m && Number(m[1]) > 0) shift = Number(m[1]);
    else throw new RangeError(`TTA spec part "${part}" is not "flip" or "shift:<pixels>" (e.g. "flip,shift:4")`);
  }
  const shifts: [number, number][] = [[0, 0]];
  if (shift > 0) shifts.push([shift, 0], [-shift, 0], [0, shift], [0, -shift]);
  const views: TtaView[] = shifts.map(([dx, dy]) => ({ dx, dy, flip: false }));
  if (flip) for (const [dx, dy] of shifts) views.push({ dx, dy, flip: true });
  return views;
}

/** For every output position of the view, the source position in the flattened CHW input, or −1 (black). */
export function viewSourceIndex(geo: Geometry, view: TtaView): Int32Array {
  const { width: W, height: H, channels: C } = geo;
  const out = new Int32Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const sx = (view.flip ? W - 1 - x : x) - view.dx;
        const sy = y - view.dy;
        out[c * H * W + y * W + x] = sx >= 0 && sx < W && sy >= 0 && sy < H ? c * H * W + sy * W + sx : -1;
      }
  return out;
}

/**
 * Float64 reference of a TTA model: each view through `forwardReference`, embeddings averaged, then the head.
 * `fill[c]` is the normalised value of a black pixel in channel c.
 */
export function forwardReferenceTta(
  cfg: MlpConfig,
  w: MlpWeights,
  input: ArrayLike<number>,
  n: number,
  geo: Geometry,
  views: readonly TtaView[],
  fill: readonly number[],
): { logits: Float64Array; embedding: Float64Array } {
  const D = cfg.inputDim;
  const hw = geo.width * geo.height;
  const embedding = new Float64Array(n * cfg.width);
  for (const view of views) {
    const src = viewSourceIndex(geo, view);
    const x = new Float64Array(n * D);
    for (let r = 0; r < n; r++)
      for (let i = 0; i < D; i++) x[r * D + i] = src[i] < 0 ? fill[Math.floor(i / hw)] : input[r * D + src[i]];
    const e = forwardReference(cfg, w, x, n).embedding;
    for (let i = 0; i < e.length; i++) embedding[i] += e[i] / views.length;
  }
  const logits = new Float64Array(n * cfg.classes);
  for (let r = 0; r < n; r++)
    for (let k = 0; k < cfg.classes; k++) {
      let s = w.head.bias[k];
      for (let j = 0; j < cfg.width; j++) s += embedding[r * cfg.width + j] * w.head.weight[j * cfg.classes + k];
      logits[r * cfg.classes + k] = s;
    }
  return { logits, embedding };
}
