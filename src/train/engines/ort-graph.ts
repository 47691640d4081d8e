// The fused training step of the B_d-Wi_w MLP as ONE ONNX graph: forward, soft-target cross-entropy, the backward
// pass written out by hand, and the LION update, so a training step is a single onnxruntime run. Also the
// forward-only graph the engine predicts with. Weights and momenta are graph inputs (not initializers), so the
// engine feeds each step's outputs back as the next step's inputs without rebuilding anything.
//
// Notation (shapes): B batch, D inputDim, W width, H = expansion·W, K classes. Linear weights are [in, out].
//   forward   h0 = x·Ws + bs
//             block i: μ, σ² over W; x̂ = (h − μ)·r, r = 1/√(σ² + ε); n = x̂·γ + β
//                      a = n·W1 + b1 [B,H]; g = a·Φ(a) (exact GELU); h ← h + g·W2 + b2
//             z = h·Wh + bh; ℓ = LogSoftmax(z); loss = −Σ y·ℓ / B
//   backward  dz = (softmax(z)·Σ_k y − y) / B   (the exact gradient of −Σ y·ℓ, whatever the row sums)
//             dW = Aᵀ·dZ, db = Σ_rows dZ, dA = dZ·Wᵀ for every Linear
//             GELU'(a) = Φ(a) + a·φ(a)
//             LayerNorm: dγ = Σ_rows dn·x̂, dβ = Σ_rows dn, dx̂ = dn·γ,
//                        dh += r·(dx̂ − mean_W(dx̂) − x̂·mean_W(dx̂·x̂))
//   LION      c = β1·m + (1−β1)·g;  p ← p·(1 − lr·wd) − lr·sign(c);  m ← β2·m + (1−β2)·g
//             (the head with lr, everything else with lr·bodyLrScale)

import { LAYER_NORM_EPS, hiddenDim, type MlpConfig } from '../../model/mlp.js';
import {
  AttributeType,
  DataType,
  encodeModel,
  type AttributeMsg,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from '../../onnx/onnx-proto.js';

export const TRAIN_OPSET = 17;
const IR_VERSION = 8;

/** One trainable tensor, in `namedTensors` order (the order of checkpoints and `OptimizerState`). */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** Trained with the head's lr rather than lr·bodyLrScale. */
  head: boolean;
}

/** The trainable tensors of `cfg`, named and ordered exactly as `namedTensors` in src/model/mlp.ts. */
export function paramSpecs(cfg: MlpConfig): ParamSpec[] {
  const h = hiddenDim(cfg);
  const out: ParamSpec[] = [];
  const lin = (name: string, inDim: number, outDim: number, head = false) => {
    out.push({ name: `${name}.weight`, shape: [inDim, outDim], head });
    out.push({ name: `${name}.bias`, shape: [outDim], head });
  };
  lin('stem', cfg.inputDim, cfg.width);
  for (let i = 0; i < cfg.depth; i++) {
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

function floatInfo(name: string, dims: (number | string)[]): ValueInfoMsg {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) },
      },
    },
  };
}

class GraphBuilder {
  readonly nodes: NodeMsg[] = [];
  readonly initializers: TensorMsg[] = [];
  private count = 0;
  private readonly consts = new Map<string, string>();

  /** Adds a node; returns its (first) output name, `out` when given, else a fresh one. */
  op(type: string, inputs: string[], attrs: AttributeMsg[] = [], out?: string): string {
    const name = `${type}_${this.count++}`;
    const output = out ?? `${name}:0`;
    this.nodes.push({ op_type: type, name, input: inputs, output: [output], ...(attrs.length ? { attribute: attrs } : {}) });
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
      this.initializers.push({ name, dims: [vals.length], data_type: DataType.INT64, int64_data: vals } as TensorMsg);
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
  xhat: string;
  rstd: string;
  normed: string;
  pre: string; // a = n·W1 + b1
  cdf: string; // Φ(a)
  act: string; // g = a·Φ(a)
}

function forward(g: GraphBuilder, cfg: MlpConfig, x: string): { saved: Saved[]; last: string; logits: string } {
  const P = IO.param;
  let h = g.op('Gemm', [x, P('stem.weight'), P('stem.bias')]);
  const saved: Saved[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}`;
    const mu = g.mean(h, 1);
    const xc = g.sub(h, mu);
    const variance = g.mean(g.mul(xc, xc), 1);
    const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.add(variance, g.scalar(LAYER_NORM_EPS))])]);
    const xhat = g.mul(xc, rstd);
    const normed = g.add(g.mul(xhat, P(`${b}.norm.gamma`)), P(`${b}.norm.beta`));
    const pre = g.op('Gemm', [normed, P(`${b}.expand.weight`), P(`${b}.expand.bias`)]);
    // Φ(a) = ½(1 + erf(a/√2)), kept for the backward pass.
    const cdf = g.mul(g.add(g.op('Erf', [g.mul(pre, g.scalar(Math.SQRT1_2))]), g.scalar(1)), g.scalar(0.5));
    const act = g.mul(pre, cdf);
    const branch = g.op('Gemm', [act, P(`${b}.collapse.weight`), P(`${b}.collapse.bias`)]);
    saved.push({ input: h, xhat, rstd, normed, pre, cdf, act });
    h = g.add(h, branch);
  }
  const logits = g.op('Gemm', [h, P('head.weight'), P('head.bias')]);
  return { saved, last: h, logits };
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
  // dW = Aᵀ·dZ and dA = dZ·Wᵀ, in the chosen style.
  const weightGrad = (a: string, dZ: string) =>
    style === 'gemm' ? g.op('Gemm', [a, dZ], [attrInt('transA', 1)]) : g.op('MatMul', [g.op('Transpose', [a]), dZ]);
  const inputGrad = (dZ: string, w: string) =>
    style === 'gemm' ? g.op('Gemm', [dZ, w], [attrInt('transB', 1)]) : g.op('MatMul', [dZ, g.op('Transpose', [w])]);
  const linearBack = (name: string, a: string, dZ: string, needInput: boolean): string | undefined => {
    grads.set(`${name}.weight`, weightGrad(a, dZ));
    grads.set(`${name}.bias`, g.sum(dZ, 0, false));
    return needInput ? inputGrad(dZ, P(`${name}.weight`)) : undefined;
  };

  let dh = linearBack('head', fwd.last, dz, true)!;
  for (let i = cfg.depth - 1; i >= 0; i--) {
    const b = `blocks.${i}`;
    const s = fwd.saved[i];
    // The residual passes dh through unchanged; the branch adds its own contribution below.
    const dAct = linearBack(`${b}.collapse`, s.act, dh, true)!;
    // GELU'(a) = Φ(a) + a·φ(a), φ(a) = e^(−a²/2)/√(2π)
    const pdf = g.mul(g.op('Exp', [g.mul(g.mul(s.pre, s.pre), g.scalar(-0.5))]), g.scalar(1 / Math.sqrt(2 * Math.PI)));
    const dPre = g.mul(dAct, g.add(s.cdf, g.mul(s.pre, pdf)));
    const dNormed = linearBack(`${b}.expand`, s.normed, dPre, true)!;
    grads.set(`${b}.norm.gamma`, g.sum(g.mul(dNormed, s.xhat), 0, false));
    grads.set(`${b}.norm.beta`, g.sum(dNormed, 0, false));
    const dXhat = g.mul(dNormed, P(`${b}.norm.gamma`));
    const centred = g.sub(g.sub(dXhat, g.mean(dXhat, 1)), g.mul(s.xhat, g.mean(g.mul(dXhat, s.xhat), 1)));
    dh = g.add(dh, g.mul(centred, s.rstd));
  }
  linearBack('stem', x, dh, false);
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
    outputs.push(floatInfo(IO.newParam(s.name), s.shape), floatInfo(IO.newMomentum(s.name), s.shape));
  }
  return outputs;
}

/** The training-step graph of `cfg` at a fixed batch size, as ONNX bytes. */
export function buildTrainGraph(cfg: MlpConfig, opts: TrainGraphOptions): Uint8Array {
  if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new RangeError(`batch ${opts.batch} must be a positive integer`);
  const style = opts.matmul ?? 'gemm';
  const specs = paramSpecs(cfg);
  const g = new GraphBuilder();
  const fwd = forward(g, cfg, IO.x);
  const { dz } = crossEntropy(g, fwd.logits, IO.y, opts.batch);
  const grads = backward(g, cfg, IO.x, fwd, dz, style);

  const inputs: ValueInfoMsg[] = [floatInfo(IO.x, [opts.batch, cfg.inputDim]), floatInfo(IO.y, [opts.batch, cfg.classes])];
  for (const s of specs) inputs.push(floatInfo(IO.param(s.name), s.shape));
  const outputs: ValueInfoMsg[] = [floatInfo(IO.loss, [])];
  if (opts.mode === 'step') {
    for (const s of specs) inputs.push(floatInfo(IO.momentum(s.name), s.shape));
    for (const name of SCALAR_INPUTS) inputs.push(floatInfo(name, []));
    outputs.push(...lion(g, specs, grads));
  } else {
    // Identity gives each gradient its public name (a graph output must be a node output).
    for (const s of specs) {
      g.op('Identity', [grads.get(s.name)!], [], IO.grad(s.name));
      outputs.push(floatInfo(IO.grad(s.name), s.shape));
    }
  }
  return encodeGraph(`train-step-${opts.mode}`, g, inputs, outputs);
}

/** Forward-only graph with a symbolic batch dimension: x → logits. */
export function buildPredictGraph(cfg: MlpConfig): Uint8Array {
  const g = new GraphBuilder();
  const fwd = forward(g, cfg, IO.x);
  g.op('Identity', [fwd.logits], [], IO.logits);
  const inputs = [floatInfo(IO.x, ['batch', cfg.inputDim]), ...paramSpecs(cfg).map((s) => floatInfo(IO.param(s.name), s.shape))];
  return encodeGraph('predict', g, inputs, [floatInfo(IO.logits, ['batch', cfg.classes])]);
}

function encodeGraph(name: string, g: GraphBuilder, input: ValueInfoMsg[], output: ValueInfoMsg[]): Uint8Array {
  return encodeModel({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: TRAIN_OPSET }],
    producer_name: 'mlp-serve',
    graph: { name, node: g.nodes, initializer: g.initializers, input, output },
  });
}
