// The fused training step of the B_d-Wi_w MLP as ONE ONNX graph: forward, soft-target cross-entropy and the backward
// pass written out by hand, so a training step is a single onnxruntime run. Mode `step` also applies LION inside
// the graph (outputs: loss, new weights, new momenta); mode `grads` outputs loss and gradients for a host-side update
// (the faster one on CPU, see ort.ts). Also the forward-only graph the engine predicts with. Weights and momenta are
// graph inputs (not initializers), so one graph serves every step without rebuilding anything.
//
// Notation (shapes): B batch, D inputDim, W width, H = expansion·W, K classes. Linear weights are [in, out].
//   forward   h0 = x·Ws + bs
//             block i: μ, σ² over W; x̂ = (h − μ)·r, r = 1/√(σ² + ε); n = x̂·γ + β  (LayerNormalization op)
//                      a = n·W1 + b1 [B,H]; g = a·Φ(a) (exact GELU); h ← h + g·W2 + b2
//             z = h·Wh + bh; ℓ = LogSoftmax(z); loss = −Σ y·ℓ / B
//   backward  dz = (softmax(z)·Σ_k y − y) / B   (the exact gradient of −Σ y·ℓ, whatever the row sums)
//             dW = Aᵀ·dZ, db = Σ_rows dZ, dA = dZ·Wᵀ for every Linear
//             GELU'(a) = Φ(a) + a·φ(a)
//             LayerNorm: dγ = Σ_rows dn·x̂, dβ = Σ_rows dn, dx̂ = dn·γ,
//                        dh += r·(dx̂ − mean_W(dx̂) − x̂·mean_W(dx̂·x̂))
//   standard  (S_, src/model/standard-mlp.ts) h = GELU(x·Ws + bs), h ← GELU(h·Wi + bi) per layer, z = h·Wh + bh,
//             with the same GELU folding and the same backward rules minus norm and residual
//   LION      c = β1·m + (1−β1)·g;  p ← p·(1 − lr·wd) − lr·sign(c);  m ← β2·m + (1−β2)·g
//             (the head with lr, everything else with lr·bodyLrScale)

import { LAYER_NORM_EPS, hiddenDim, isStandard, type MlpConfig } from '../../model/mlp.js';
import { standardLayerShapes } from '../../model/standard-mlp.js';
import { IR_VERSION, PRODUCER, node, valueInfo as floatInfo } from '../../export/export.js';
import {
  AttributeType,
  DataType,
  encodeModel,
  type AttributeMsg,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from '../../export/onnx-proto.js';

export const TRAIN_OPSET = 17;

/** One trainable tensor, in `namedTensors` order (the order of checkpoints and `OptimizerState`). */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** Trained with the head's lr rather than lr·bodyLrScale. */
  head: boolean;
  /**
   * Fed to the graphs as Wᵀ, [out, in] (the engine transposes on the way in and out). The stem's: its forward
   * (x·Wᵀ) and weight gradient (dZᵀ·x, [out, in]) ran 15–20% faster that way on this CPU's MLAS for 12288 → 512.
   */
  transposed?: boolean;
}

/** The shape a tensor has inside the graphs: `shape`, or its transpose for a `transposed` weight. */
export const storedShape = (s: ParamSpec): number[] => (s.transposed ? [...s.shape].reverse() : s.shape);

/** The trainable tensors of `cfg`, named and ordered exactly as `namedTensors` in src/model/mlp.ts. */
export function paramSpecs(cfg: MlpConfig): ParamSpec[] {
  const h = hiddenDim(cfg);
  const out: ParamSpec[] = [];
  const lin = (name: string, inDim: number, outDim: number, head = false) => {
    out.push({ name: `${name}.weight`, shape: [inDim, outDim], head });
    out.push({ name: `${name}.bias`, shape: [outDim], head });
  };
  lin('stem', cfg.inputDim, cfg.width);
  out[0].transposed = true;
  if (isStandard(cfg)) for (const t of standardLayerShapes(cfg)) out.push({ ...t, head: false });
  for (let i = 0; i < (isStandard(cfg) ? 0 : cfg.depth); i++) {
    out.push({ name: `blocks.${i}.norm.gamma`, shape: [cfg.width], head: false });
    out.push({ name: `blocks.${i}.norm.beta`, shape: [cfg.width], head: false });
    lin(`blocks.${i}.expand`, cfg.width, h);
    lin(`blocks.${i}.collapse`, h, cfg.width);
  }
  lin('head', cfg.width, cfg.classes, true);
  return out;
}

/** Names of the graphs' inputs and outputs. */
export const IO = {
  x: 'x',
  y: 'y',
  loss: 'loss',
  logits: 'logits',
  lr: 'lr',
  weightDecay: 'weight_decay',
  beta1: 'beta1',
  beta2: 'beta2',
  bodyLrScale: 'body_lr_scale',
  param: (name: string) => name,
  momentum: (name: string) => `momentum/${name}`,
  newParam: (name: string) => `new/${name}`,
  newMomentum: (name: string) => `new_momentum/${name}`,
  grad: (name: string) => `grad/${name}`,
} as const;

/** The scalar hyper-parameter inputs of the step graph, in feed order. */
export const SCALAR_INPUTS = [IO.lr, IO.weightDecay, IO.beta1, IO.beta2, IO.bodyLrScale] as const;

/**
 * How the backward matmuls with a transposed operand are written: `gemm` uses Gemm's transA/transB (MLAS packs
 * the transposed operand itself); `transpose` writes MatMul(Transpose(·)) (onnxruntime fuses it into FusedMatMul).
 */
export type MatmulStyle = 'gemm' | 'transpose';

export interface TrainGraphOptions {
  /** Static batch size of the graph (the loss is a mean over exactly this many rows). */
  batch: number;
  /** `step`: loss, updated weights and momenta. `grads`: loss and the gradients only (tests, debugging). */
  mode: 'step' | 'grads';
  /** Default `gemm`. */
  matmul?: MatmulStyle;
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal graph builder: nodes, constant initializers and unique value names.

const attrInt = (name: string, i: number): AttributeMsg => ({ name, type: AttributeType.INT, i });
const attrInts = (name: string, ints: number[]): AttributeMsg => ({ name, type: AttributeType.INTS, ints });

class GraphBuilder {
  readonly nodes: NodeMsg[] = [];
  readonly initializers: TensorMsg[] = [];
  private count = 0;
  private readonly consts = new Map<string, string>();

  /** Adds a node; returns its (first) output name, `out` when given, else a fresh one. */
  op(type: string, inputs: string[], attrs: AttributeMsg[] = [], out?: string): string {
    const name = `${type}_${this.count++}`;
    const output = out ?? `${name}:0`;
    this.nodes.push(node(type, name, inputs, [output], attrs.length ? attrs : undefined));
    return output;
  }

  /** A 0-d float constant, shared by every use of the same value. */
  scalar(v: number): string {
    const key = `f${Object.is(v, -0) ? '-0' : String(v)}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const/${key}`;
      this.consts.set(key, name);
      this.initializers.push({ name, dims: [], data_type: DataType.FLOAT, float_data: [v] });
    }
    return name;
  }

  /** A 1-d int64 constant (ReduceSum's axes). */
  ints(vals: number[]): string {
    const key = `i${vals.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const/${key}`;
      this.consts.set(key, name);
      this.initializers.push({ name, dims: [vals.length], data_type: DataType.INT64, int64_data: vals });
    }
    return name;
  }

  add = (a: string, b: string, out?: string) => this.op('Add', [a, b], [], out);
  sub = (a: string, b: string, out?: string) => this.op('Sub', [a, b], [], out);
  mul = (a: string, b: string, out?: string) => this.op('Mul', [a, b], [], out);
  /** Sum over `axis`, dropping it unless `keep`. */
  sum = (a: string, axis: number, keep: boolean, out?: string) =>
    this.op('ReduceSum', [a, this.ints([axis])], [attrInt('keepdims', keep ? 1 : 0)], out);
  mean = (a: string, axis: number) => this.op('ReduceMean', [a], [attrInts('axes', [axis]), attrInt('keepdims', 1)]);
}

// ---------------------------------------------------------------------------------------------------------------

interface Saved {
  input: string; // block input h
  mean: string; // μ [B,1]
  rstd: string; // r = 1/√(σ² + ε) [B,1]
  normed: string; // n
  u: string; // a/√2
  erf1: string; // 1 + erf(u)
  q: string; // u·(1 + erf(u)) = √2·GELU(a)
}

// GELU with its constants folded into the surrounding Gemms (onnxruntime's elementwise Mul is slow; Gemm's alpha
// and beta are free):  u = (n·W1 + b1)/√2 (Gemm alpha = beta = 1/√2),  q = u·(1 + erf(u)) = √2·GELU(a),
// branch = (q·W2)/√2 + b2 (Gemm alpha = 1/√2). Backward: dq = (dr·W2ᵀ)/√2, dW2 = (qᵀ·dr)/√2,
// du = dq·((1 + erf(u)) + u·(2/√π)·e^(−u²)) (= dq·√2·GELU'(a)), da = du/√2, so dW1 = (nᵀ·du)/√2, dn = (du·W1ᵀ)/√2.
const attrFloat = (name: string, f: number): AttributeMsg => ({ name, type: AttributeType.FLOAT, f });
const INV_SQRT2 = Math.SQRT1_2;

/** x·Wsᵀ + bs: the stem's weight is stored transposed (ParamSpec.transposed). */
const stemForward = (g: GraphBuilder, x: string, attrs: AttributeMsg[]) =>
  g.op('Gemm', [x, IO.param('stem.weight'), IO.param('stem.bias')], [...attrs, attrInt('transB', 1)]);

function forward(g: GraphBuilder, cfg: MlpConfig, x: string): { saved: Saved[]; last: string; logits: string } {
  const P = IO.param;
  let h = stemForward(g, x, []);
  const saved: Saved[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}`;
    // The fused LayerNormalization also returns μ and 1/σ, which the backward pass needs.
    const normed = `${b}/normed`;
    const mean = `${b}/mean`;
    const rstd = `${b}/rstd`;
    g.nodes.push(
      node('LayerNormalization', `${b}/LayerNorm`, [h, P(`${b}.norm.gamma`), P(`${b}.norm.beta`)], [normed, mean, rstd], [
        attrInt('axis', -1),
        attrFloat('epsilon', LAYER_NORM_EPS),
      ]),
    );
    const u = g.op('Gemm', [normed, P(`${b}.expand.weight`), P(`${b}.expand.bias`)], [attrFloat('alpha', INV_SQRT2), attrFloat('beta', INV_SQRT2)]);
    const erf1 = g.add(g.op('Erf', [u]), g.scalar(1));
    const q = g.mul(u, erf1);
    const branch = g.op('Gemm', [q, P(`${b}.collapse.weight`), P(`${b}.collapse.bias`)], [attrFloat('alpha', INV_SQRT2)]);
    saved.push({ input: h, mean, rstd, normed, u, erf1, q });
    h = g.add(h, branch);
  }
  const logits = g.op('Gemm', [h, P('head.weight'), P('head.bias')]);
  return { saved, last: h, logits };
}

/**
 * The backward pass of one Linear (dW = α·Aᵀ·dZ and dA = α·dZ·Wᵀ, in the chosen style; for a weight stored
 * transposed, dWᵀ = α·dZᵀ·A and dA = α·dZ·Wᵀ with Wᵀ as stored), shared by both families.
 */
function linearBackward(g: GraphBuilder, grads: Map<string, string>, style: MatmulStyle) {
  const scaled = (alpha: number, name: string) => (alpha === 1 ? name : g.mul(name, g.scalar(alpha)));
  const alphaAttr = (alpha: number) => (alpha === 1 ? [] : [attrFloat('alpha', alpha)]);
  /** α·Pᵀ·Q */
  const transposedFirst = (p: string, q: string, alpha: number) =>
    style === 'gemm'
      ? g.op('Gemm', [p, q], [attrInt('transA', 1), ...alphaAttr(alpha)])
      : scaled(alpha, g.op('MatMul', [g.op('Transpose', [p]), q]));
  /** α·P·Qᵀ */
  const transposedSecond = (p: string, q: string, alpha: number) =>
    style === 'gemm'
      ? g.op('Gemm', [p, q], [attrInt('transB', 1), ...alphaAttr(alpha)])
      : scaled(alpha, g.op('MatMul', [p, g.op('Transpose', [q])]));
  const plain = (p: string, q: string, alpha: number) =>
    style === 'gemm' ? g.op('Gemm', [p, q], alphaAttr(alpha)) : scaled(alpha, g.op('MatMul', [p, q]));
  /** Gradients of y = α·A·W + β·b given dY, recorded in `grads`; returns dA when asked. */
  return (name: string, a: string, dZ: string, alpha: number, biasScale: number, needInput: boolean, transposed = false): string => {
    const w = IO.param(`${name}.weight`);
    grads.set(`${name}.weight`, transposed ? transposedFirst(dZ, a, alpha) : transposedFirst(a, dZ, alpha));
    grads.set(`${name}.bias`, scaled(biasScale, g.sum(dZ, 0, false)));
    if (!needInput) return '';
    return transposed ? plain(dZ, w, alpha) : transposedSecond(dZ, w, alpha);
  };
}

/** Returns the gradient names by parameter name. */
function backward(
  g: GraphBuilder,
  cfg: MlpConfig,
  x: string,
  fwd: { saved: Saved[]; last: string },
  dz: string,
  style: MatmulStyle,
): Map<string, string> {
  const P = IO.param;
  const grads = new Map<string, string>();
  const linearBack = linearBackward(g, grads, style);
  let dh = linearBack('head', fwd.last, dz, 1, 1, true);
  for (let i = cfg.depth - 1; i >= 0; i--) {
    const b = `blocks.${i}`;
    const s = fwd.saved[i];
    // The residual passes dh through unchanged; the branch adds its own contribution below.
    const dq = linearBack(`${b}.collapse`, s.q, dh, INV_SQRT2, 1, true);
    // (2/√π)·e^(−u²) as e^(ln(2/√π) − u²): one Exp, no extra Mul.
    const bump = g.op('Exp', [g.sub(g.scalar(Math.log(2 / Math.sqrt(Math.PI))), g.mul(s.u, s.u))]);
    const du = g.mul(dq, g.add(s.erf1, g.mul(s.u, bump)));
    // u = (n·W1 + b1)/√2: the Gemm alphas below carry the 1/√2 (db1 = Σ du/√2).
    const dNormed = linearBack(`${b}.expand`, s.normed, du, INV_SQRT2, INV_SQRT2, true);
    const xhat = g.mul(g.sub(s.input, s.mean), s.rstd);
    grads.set(`${b}.norm.gamma`, g.sum(g.mul(dNormed, xhat), 0, false));
    grads.set(`${b}.norm.beta`, g.sum(dNormed, 0, false));
    const dXhat = g.mul(dNormed, P(`${b}.norm.gamma`));
    const centred = g.sub(g.sub(dXhat, g.mean(dXhat, 1)), g.mul(xhat, g.mean(g.mul(dXhat, xhat), 1)));
    dh = g.add(dh, g.mul(centred, s.rstd));
  }
  linearBack('stem', x, dh, 1, 1, false, true);
  return grads;
}

// The standard MLP with the same folding: q = √2·h is what flows between layers, so a layer's Gemm takes
// alpha = 1/2 (1/√2 to undo q's √2, 1/√2 for the next u) and beta = 1/√2; the stem's input is x itself.
interface Act {
  u: string;
  erf1: string;
  q: string;
}

function forwardStandard(g: GraphBuilder, cfg: MlpConfig, x: string): { acts: Act[]; logits: string } {
  const P = IO.param;
  const act = (u: string): Act => {
    const erf1 = g.add(g.op('Erf', [u]), g.scalar(1));
    return { u, erf1, q: g.mul(u, erf1) };
  };
  const acts = [act(stemForward(g, x, [attrFloat('alpha', INV_SQRT2), attrFloat('beta', INV_SQRT2)]))];
  for (let i = 0; i < cfg.depth; i++) {
    const u = g.op('Gemm', [acts[i].q, P(`layers.${i}.weight`), P(`layers.${i}.bias`)], [attrFloat('alpha', 0.5), attrFloat('beta', INV_SQRT2)]);
    acts.push(act(u));
  }
  const logits = g.op('Gemm', [acts[cfg.depth].q, P('head.weight'), P('head.bias')], [attrFloat('alpha', INV_SQRT2)]);
  return { acts, logits };
}

function backwardStandard(g: GraphBuilder, cfg: MlpConfig, x: string, acts: Act[], dz: string, style: MatmulStyle): Map<string, string> {
  const grads = new Map<string, string>();
  const linearBack = linearBackward(g, grads, style);
  let dq = linearBack('head', acts[cfg.depth].q, dz, INV_SQRT2, 1, true);
  for (let i = cfg.depth; i >= 0; i--) {
    const { u, erf1 } = acts[i];
    const bump = g.op('Exp', [g.sub(g.scalar(Math.log(2 / Math.sqrt(Math.PI))), g.mul(u, u))]);
    const du = g.mul(dq, g.add(erf1, g.mul(u, bump)));
    if (i === 0) linearBack('stem', x, du, INV_SQRT2, INV_SQRT2, false, true);
    else dq = linearBack(`layers.${i - 1}`, acts[i - 1].q, du, 0.5, INV_SQRT2, true);
  }
  return grads;
}

/** Soft-target cross-entropy, mean over the batch: loss (0-d) and its gradient w.r.t. the logits. */
function crossEntropy(g: GraphBuilder, logits: string, y: string, batch: number): { loss: string; dz: string } {
  const logProb = g.op('LogSoftmax', [logits], [attrInt('axis', 1)]);
  const loss = g.mul(g.op('ReduceSum', [g.mul(y, logProb)], [attrInt('keepdims', 0)]), g.scalar(-1 / batch), IO.loss);
  const rowMass = g.sum(y, 1, true);
  const dz = g.mul(g.sub(g.mul(g.op('Exp', [logProb]), rowMass), y), g.scalar(1 / batch));
  return { loss, dz };
}

/** The LION update of every parameter; scalar inputs are combined once, not per tensor. */
function lion(g: GraphBuilder, specs: ParamSpec[], grads: Map<string, string>): ValueInfoMsg[] {
  const one = g.scalar(1);
  const lrBody = g.mul(IO.lr, IO.bodyLrScale);
  const rate = {
    head: { negLr: g.op('Neg', [IO.lr]), decay: g.sub(one, g.mul(IO.lr, IO.weightDecay)) },
    body: { negLr: g.op('Neg', [lrBody]), decay: g.sub(one, g.mul(lrBody, IO.weightDecay)) },
  };
  const keep1 = g.sub(one, IO.beta1);
  const keep2 = g.sub(one, IO.beta2);
  const outputs: ValueInfoMsg[] = [];
  for (const s of specs) {
    const grad = grads.get(s.name)!;
    const m = IO.momentum(s.name);
    const r = s.head ? rate.head : rate.body;
    const direction = g.op('Sign', [g.add(g.mul(m, IO.beta1), g.mul(grad, keep1))]);
    g.add(g.mul(IO.param(s.name), r.decay), g.mul(direction, r.negLr), IO.newParam(s.name));
    g.add(g.mul(m, IO.beta2), g.mul(grad, keep2), IO.newMomentum(s.name));
    outputs.push(floatInfo(IO.newParam(s.name), storedShape(s)), floatInfo(IO.newMomentum(s.name), storedShape(s)));
  }
  return outputs;
}

/** The training-step graph of `cfg` at a fixed batch size, as ONNX bytes. */
export function buildTrainGraph(cfg: MlpConfig, opts: TrainGraphOptions): Uint8Array {
  if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new RangeError(`batch ${opts.batch} must be a positive integer`);
  const style = opts.matmul ?? 'gemm';
  const specs = paramSpecs(cfg);
  const g = new GraphBuilder();
  let grads: Map<string, string>;
  if (isStandard(cfg)) {
    const fwd = forwardStandard(g, cfg, IO.x);
    grads = backwardStandard(g, cfg, IO.x, fwd.acts, crossEntropy(g, fwd.logits, IO.y, opts.batch).dz, style);
  } else {
    const fwd = forward(g, cfg, IO.x);
    grads = backward(g, cfg, IO.x, fwd, crossEntropy(g, fwd.logits, IO.y, opts.batch).dz, style);
  }

  const inputs: ValueInfoMsg[] = [floatInfo(IO.x, [opts.batch, cfg.inputDim]), floatInfo(IO.y, [opts.batch, cfg.classes])];
  for (const s of specs) inputs.push(floatInfo(IO.param(s.name), storedShape(s)));
  const outputs: ValueInfoMsg[] = [floatInfo(IO.loss, [])];
  if (opts.mode === 'step') {
    for (const s of specs) inputs.push(floatInfo(IO.momentum(s.name), storedShape(s)));
    for (const name of SCALAR_INPUTS) inputs.push(floatInfo(name, []));
    outputs.push(...lion(g, specs, grads));
  } else {
    // Identity gives each gradient its public name (a graph output must be a node output).
    for (const s of specs) {
      g.op('Identity', [grads.get(s.name)!], [], IO.grad(s.name));
      outputs.push(floatInfo(IO.grad(s.name), storedShape(s)));
    }
  }
  return encodeGraph(`train-step-${opts.mode}`, g, inputs, outputs);
}

/** Forward-only graph with a symbolic batch dimension: x → logits. */
export function buildPredictGraph(cfg: MlpConfig): Uint8Array {
  const g = new GraphBuilder();
  const fwd = isStandard(cfg) ? forwardStandard(g, cfg, IO.x) : forward(g, cfg, IO.x);
  g.op('Identity', [fwd.logits], [], IO.logits);
  const inputs = [floatInfo(IO.x, ['batch', cfg.inputDim]), ...paramSpecs(cfg).map((s) => floatInfo(IO.param(s.name), storedShape(s)))];
  return encodeGraph('predict', g, inputs, [floatInfo(IO.logits, ['batch', cfg.classes])]);
}

function encodeGraph(name: string, g: GraphBuilder, input: ValueInfoMsg[], output: ValueInfoMsg[]): Uint8Array {
  return encodeModel({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: TRAIN_OPSET }],
    producer_name: PRODUCER,
    graph: { name, node: g.nodes, initializer: g.initializers, input, output },
  });
}
