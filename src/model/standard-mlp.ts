// The standard MLP `S_<depth>-Wi_<width>` the paper's architecture is compared against: stacked Linear + GELU, no
// residual connections, no normalisation. Stem and head have the B_ shapes, so the two families differ only in
// what sits between them:
//   h = GELU(x · Ws + bs)                    (the stem, here followed by its activation: a Linear + GELU layer)
//   layer i, repeated `depth` times: h = GELU(h · Wi + bi)      (Wi: width → width)
//   logits = h · Wh + bh;  the embedding is h, the head's input.
// Layer tensors are named `layers.<i>.{weight,bias}`. src/model/mlp.ts dispatches here on `kind: 'standard'`.

import type { MlpConfig } from './mlp.js';

const STANDARD_RE = /^S_(\d+)-Wi_(\d+)$/;

/** Depth and width of `S_<depth>-Wi_<width>`, or undefined when `name` is not of that form. */
export function matchStandardArch(name: string): { depth: number; width: number } | undefined {
  const m = STANDARD_RE.exec(name);
  return m ? { depth: Number(m[1]), width: Number(m[2]) } : undefined;
}

/** Trainable parameters: stem + `depth` square layers + head. */
export function standardParamCount(cfg: MlpConfig): number {
  const W = cfg.width;
  return cfg.inputDim * W + W + cfg.depth * (W * W + W) + W * cfg.classes + cfg.classes;
}

/** Multiply-accumulates of one forward pass for one image (matmuls only). */
export function standardMacsPerImage(cfg: MlpConfig): number {
  const W = cfg.width;
  return cfg.inputDim * W + cfg.depth * W * W + W * cfg.classes;
}

/** Names and shapes of the hidden layers' tensors, in order (they sit between stem and head). */
export function standardLayerShapes(cfg: MlpConfig): { name: string; shape: number[] }[] {
  return Array.from({ length: cfg.depth }, (_, i) => [
    { name: `layers.${i}.weight`, shape: [cfg.width, cfg.width] },
    { name: `layers.${i}.bias`, shape: [cfg.width] },
  ]).flat();
}
