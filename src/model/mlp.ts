// The whole architecture of "Scaling MLPs" (Bachmann et al., 2023), shared by training, export, import and serving:
// a linear stem on the channel-major flattened image, `depth` pre-norm residual blocks
//   x = x + W2 · GELU(W1 · LayerNorm(x))      (W1: width → expansion·width, W2 back, exact erf GELU)
// and a linear head on the residual stream (no final norm). The embedding is the head's input.
// The standard MLP it is compared against (`S_<depth>-Wi_<width>`, `kind: 'standard'`) is described in
// src/model/standard-mlp.ts; the functions below dispatch on `kind`.
//
// Weight layout, everywhere in this project: a Linear's weight is row-major [in, out], so y = x · W + b.
// (PyTorch stores [out, in]; the importer transposes.)

import { createRng, type Rng } from '../util/rng.js';
import { matchStandardArch, standardMacsPerImage, standardParamCount } from './standard-mlp.js';

/** `bottleneck`: the paper's B_ (pre-norm residual blocks). `standard`: S_, stacked Linear + GELU. */
export type ArchKind = 'bottleneck' | 'standard';

/** Everything needed to rebuild the network; stored in the model card. */
export interface MlpConfig {
  /** Absent = `bottleneck`. */
  kind?: ArchKind;
  /** Number of residual blocks (the `B_<depth>` of the name); for `standard`, of hidden width→width layers. */
  depth: number;
  /** Width of the residual stream (the `Wi_<width>` of the name) = embedding dimension. */
  width: number;
  /** Hidden width of a block divided by `width`; the paper uses 4. Unused by `standard`. */
  expansion: number;
  /** Flattened input size C·H·W. */
  inputDim: number;
  /** Number of classes of the head. */
  classes: number;
}

export interface Linear {
  /** Row-major [in, out]. */
  weight: Float32Array;
  /** [out]. */
  bias: Float32Array;
}

export interface LayerNormParams {
  gamma: Float32Array;
  beta: Float32Array;
}

export interface Block {
  norm: LayerNormParams;
  /** width → expansion·width */
  expand: Linear;
  /** expansion·width → width */
  collapse: Linear;
}

export interface MlpWeights {
  stem: Linear;
  /** Empty for `standard`. */
  blocks: Block[];
  /** The hidden layers of a `standard` MLP (absent otherwise). */
  layers?: Linear[];
  head: Linear;
}

export const isStandard = (cfg: Pick<MlpConfig, 'kind'>): boolean => cfg.kind === 'standard';

/** LayerNorm's epsilon, as PyTorch's default. */
export const LAYER_NORM_EPS = 1e-5;

const ARCH_RE = /^B_(\d+)-Wi_(\d+)$/;

/**
 * Parses `B_<depth>-Wi_<width>` (e.g. `B_12-Wi_1024`) or `S_<depth>-Wi_<width>` (`kind: 'standard'`). Throws
 * RangeError naming the input when malformed.
 */
export function parseArch(name: string): { depth: number; width: number; kind?: ArchKind } {
  const m = ARCH_RE.exec(name);
  const standard = m ? undefined : matchStandardArch(name);
  if (!m && !standard)
    throw new RangeError(`arch "${name}" is not of the form B_<depth>-Wi_<width> or S_<depth>-Wi_<width>, e.g. B_6-Wi_512`);
  const depth = standard ? standard.depth : Number(m![1]);
  const width = standard ? standard.width : Number(m![2]);
  if (depth < 0 || depth > 1024) throw new RangeError(`arch "${name}": depth ${depth} is out of range 0..1024`);
  if (width < 1 || width > 65536) throw new RangeError(`arch "${name}": width ${width} is out of range 1..65536`);
  return standard ? { depth, width, kind: 'standard' } : { depth, width };
}

export function archName(cfg: Pick<MlpConfig, 'depth' | 'width' | 'kind'>): string {
  return `${isStandard(cfg) ? 'S' : 'B'}_${cfg.depth}-Wi_${cfg.width}`;
}

/** The config of a named arch on an input; `standard` configs record expansion 1 (a layer is width → width). */
export function configFor(arch: string, expansion: number, inputDim: number, classes: number): MlpConfig {
  const { depth, width, kind } = parseArch(arch);
  return kind ? { kind, depth, width, expansion: 1, inputDim, classes } : { depth, width, expansion, inputDim, classes };
}

export function hiddenDim(cfg: MlpConfig): number {
  return cfg.expansion * cfg.width;
}

/** Trainable parameters: stem + blocks (LayerNorm γ,β + two Linears) + head. */
export function paramCount(cfg: MlpConfig): number {
  if (isStandard(cfg)) return standardParamCount(cfg);
  const h = hiddenDim(cfg);
  const stem = cfg.inputDim * cfg.width + cfg.width;
  const block = 2 * cfg.width + (cfg.width * h + h) + (h * cfg.width + cfg.width);
  const head = cfg.width * cfg.classes + cfg.classes;
  return stem + cfg.depth * block + head;
}

/** Multiply-accumulates of one forward pass for one image (the paper's compute unit; matmuls only). */
export function macsPerImage(cfg: MlpConfig): number {
  if (isStandard(cfg)) return standardMacsPerImage(cfg);
  const h = hiddenDim(cfg);
  return cfg.inputDim * cfg.width + cfg.depth * 2 * cfg.width * h + cfg.width * cfg.classes;
}

/** FLOPs of one forward pass for one image: 2 per multiply-accumulate. */
export function flopsPerImage(cfg: MlpConfig): number {
  return 2 * macsPerImage(cfg);
}

/** Training compute for `examples` images seen: forward + backward ≈ 3 forward passes (the paper's count). */
export function trainingFlops(cfg: MlpConfig, examples: number): number {
  return 3 * flopsPerImage(cfg) * examples;
}

function linearInit(rng: Rng, fanIn: number, fanOut: number): Linear {
  // PyTorch's nn.Linear default: U(-1/√fan_in, 1/√fan_in) for weight and bias.
  const bound = 1 / Math.sqrt(fanIn);
  const weight = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < weight.length; i++) weight[i] = (2 * rng() - 1) * bound;
  const bias = new Float32Array(fanOut);
  for (let i = 0; i < bias.length; i++) bias[i] = (2 * rng() - 1) * bound;
  return { weight, bias };
}

/** Seeded random initialisation, as PyTorch initialises the reference model. */
export function initWeights(cfg: MlpConfig, seed = 0): MlpWeights {
  const rng = createRng(seed);
  const h = hiddenDim(cfg);
  const stem = linearInit(rng, cfg.inputDim, cfg.width);
  if (isStandard(cfg)) {
    const layers = Array.from({ length: cfg.depth }, () => linearInit(rng, cfg.width, cfg.width));
    return { stem, blocks: [], layers, head: linearInit(rng, cfg.width, cfg.classes) };
  }
  const blocks: Block[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    blocks.push({
      norm: { gamma: new Float32Array(cfg.width).fill(1), beta: new Float32Array(cfg.width) },
      expand: linearInit(rng, cfg.width, h),
      collapse: linearInit(rng, h, cfg.width),
    });
  }
  const head = linearInit(rng, cfg.width, cfg.classes);
  return { stem, blocks, head };
}

/** Every tensor of the weights with a stable name and shape, in a fixed order (export, checkpoints, engines). */
export function namedTensors(w: MlpWeights): { name: string; shape: number[]; data: Float32Array }[] {
  const out: { name: string; shape: number[]; data: Float32Array }[] = [];
  const lin = (name: string, l: Linear) => {
    const outDim = l.bias.length;
    out.push({ name: `${name}.weight`, shape: [l.weight.length / outDim, outDim], data: l.weight });
    out.push({ name: `${name}.bias`, shape: [outDim], data: l.bias });
  };
  lin('stem', w.stem);
  w.blocks.forEach((b, i) => {
    out.push({ name: `blocks.${i}.norm.gamma`, shape: [b.norm.gamma.length], data: b.norm.gamma });
    out.push({ name: `blocks.${i}.norm.beta`, shape: [b.norm.beta.length], data: b.norm.beta });
    lin(`blocks.${i}.expand`, b.expand);
    lin(`blocks.${i}.collapse`, b.collapse);
  });
  w.layers?.forEach((l, i) => lin(`layers.${i}`, l));
  lin('head', w.head);
  return out;
}

/** Checks every tensor of `w` has the size `cfg` implies; throws RangeError naming the first mismatch. */
export function assertWeightsMatch(cfg: MlpConfig, w: MlpWeights): void {
  const h = hiddenDim(cfg);
  const expect: [string, number, number][] = [
    ['stem.weight', w.stem.weight.length, cfg.inputDim * cfg.width],
    ['stem.bias', w.stem.bias.length, cfg.width],
    ['head.weight', w.head.weight.length, cfg.width * cfg.classes],
    ['head.bias', w.head.bias.length, cfg.classes],
  ];
  if (isStandard(cfg)) {
    const layers = w.layers ?? [];
    if (w.blocks.length !== 0 || layers.length !== cfg.depth)
      throw new RangeError(`weights have ${layers.length} layers and ${w.blocks.length} blocks, ${archName(cfg)} needs ${cfg.depth} layers`);
    layers.forEach((l, i) => {
      expect.push([`layers.${i}.weight`, l.weight.length, cfg.width * cfg.width]);
      expect.push([`layers.${i}.bias`, l.bias.length, cfg.width]);
    });
  } else if (w.layers?.length) throw new RangeError(`weights have ${w.layers.length} standard layers, ${archName(cfg)} has none`);
  if (w.blocks.length !== cfg.depth && !isStandard(cfg)) throw new RangeError(`weights have ${w.blocks.length} blocks, config says ${cfg.depth}`);
  w.blocks.forEach((b, i) => {
    expect.push([`blocks.${i}.norm.gamma`, b.norm.gamma.length, cfg.width]);
    expect.push([`blocks.${i}.norm.beta`, b.norm.beta.length, cfg.width]);
    expect.push([`blocks.${i}.expand.weight`, b.expand.weight.length, cfg.width * h]);
    expect.push([`blocks.${i}.expand.bias`, b.expand.bias.length, h]);
    expect.push([`blocks.${i}.collapse.weight`, b.collapse.weight.length, h * cfg.width]);
    expect.push([`blocks.${i}.collapse.bias`, b.collapse.bias.length, cfg.width]);
  });
  for (const [name, got, want] of expect) {
    if (got !== want) throw new RangeError(`weight ${name} has ${got} values, config needs ${want}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reference forward pass in float64: slow and obvious, the ground truth the ONNX export and engines are tested on.

function linear64(x: Float64Array, n: number, l: Linear): Float64Array {
  const out = l.bias.length;
  const inDim = l.weight.length / out;
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < out; o++) y[r * out + o] = l.bias[o];
    for (let i = 0; i < inDim; i++) {
      const xv = x[r * inDim + i];
      if (xv === 0) continue;
      const wRow = i * out;
      for (let o = 0; o < out; o++) y[r * out + o] += xv * l.weight[wRow + o];
    }
  }
  return y;
}

/** erf to ~1e-15 (Abramowitz–Stegun 7.1.26 is too coarse for a float64 reference): series / continued fraction. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let sum = 0;
    let term = ax;
    for (let n = 0; n < 100; n++) {
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      term *= (-ax * ax) / (n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc (Lentz), accurate for larger |x|.
  let f = ax;
  let c = ax;
  let d = 0;
  for (let k = 1; k < 200; k++) {
    const a = k / 2;
    d = ax + a * d;
    d = 1 / d;
    c = ax + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** Float64 forward pass of `n` flattened inputs. Returns logits [n, classes] and embedding [n, width]. */
export function forwardReference(
  cfg: MlpConfig,
  w: MlpWeights,
  input: ArrayLike<number>,
  n: number,
): { logits: Float64Array; embedding: Float64Array } {
  const W = cfg.width;
  let x = linear64(Float64Array.from(input), n, w.stem);
  if (isStandard(cfg)) {
    x = x.map(gelu);
    for (const l of w.layers ?? []) x = linear64(x, n, l).map(gelu);
    return { logits: linear64(x, n, w.head), embedding: x };
  }
  for (const b of w.blocks) {
    const normed = new Float64Array(n * W);
    for (let r = 0; r < n; r++) {
      let mean = 0;
      for (let i = 0; i < W; i++) mean += x[r * W + i];
      mean /= W;
      let v = 0;
      for (let i = 0; i < W; i++) v += (x[r * W + i] - mean) ** 2;
      const inv = 1 / Math.sqrt(v / W + LAYER_NORM_EPS);
      for (let i = 0; i < W; i++) normed[r * W + i] = (x[r * W + i] - mean) * inv * b.norm.gamma[i] + b.norm.beta[i];
    }
    const hidden = linear64(normed, n, b.expand).map(gelu);
    const branch = linear64(hidden, n, b.collapse);
    const next = new Float64Array(n * W);
    for (let i = 0; i < next.length; i++) next[i] = x[i] + branch[i];
    x = next;
  }
  return { logits: linear64(x, n, w.head), embedding: x };
}
