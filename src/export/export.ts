// MLP weights → ONNX model (opset 17, IR 8), the one way every model of this project reaches disk; plus the card
// builder every producer (trainer, importer, random exporter) uses, and a reader that gets the weights back.
//
// Graph (x: [batch, C·H·W] float32, weights [in, out] so every Linear is MatMul(x, W) + b):
//   h = x·Ws + bs
//   per block i: h = h + (GELU(LayerNorm_i(h)·W1 + b1))·W2 + b2,   GELU(u) = 0.5·u·(1 + Erf(u/√2))   (exact)
//   embedding = h;  logits = h·Wh + bh
// The standard MLP (S_, src/model/standard-mlp.ts): h = GELU(x·Ws + bs), per layer h = GELU(h·Wi + bi), the same head.
// With test-time augmentation in the card (src/model/tta.ts), the V views of each input are gathered and stacked
// ([V·batch, D]), run through stem and blocks, and the embedding is the mean of their residual streams.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LAYER_NORM_EPS,
  archName,
  assertWeightsMatch,
  flopsPerImage,
  isStandard,
  namedTensors,
  parseArch,
  paramCount,
  type Block,
  type Linear,
  type MlpConfig,
  type MlpWeights,
} from '../model/mlp.js';
import { viewSourceIndex, type TtaView } from '../model/tta.js';
import { CARD_FILE, ONNX_FILE, validateCard, type ModelCard } from '../model/card.js';
import {
  AttributeType,
  DataType,
  decodeModel,
  encodeModel,
  toNumber,
  type AttributeMsg,
  type NodeMsg,
  type TensorMsg,
  type ValueInfoMsg,
} from './onnx-proto.js';

export const OPSET = 17;
export const IR_VERSION = 8;
export const PRODUCER = 'mlp-serve';
/** Key of the card JSON in the model's metadata_props. */
export const CARD_METADATA_KEY = 'model_card';
export const INPUT_NAME = 'input';
export const LOGITS_NAME = 'logits';
export const EMBEDDING_NAME = 'embedding';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float32 values as ONNX raw_data: little-endian bytes whatever the host. */
function rawLE(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i], true);
  return out;
}

function fromRawLE(raw: Uint8Array): Float32Array {
  const out = new Float32Array(raw.byteLength / 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(raw); // copy: raw may be an unaligned view into the file
    return out;
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function tensor(name: string, shape: number[], data: Float32Array): TensorMsg {
  return { name, dims: shape, data_type: DataType.FLOAT, raw_data: rawLE(data) };
}

function int64Tensor(name: string, shape: number[], values: ArrayLike<number>): TensorMsg {
  return { name, dims: shape, data_type: DataType.INT64, int64_data: Array.from(values) };
}

/**
 * The TTA prefix: [batch, D] → [V·batch, D], view v in rows v·batch..(v+1)·batch. Pixels shifted in from outside
 * read an appended column holding each channel's normalised black, so one Gather per view does the whole mapping.
 */
function ttaPrefix(cfg: MlpConfig, card: ModelCard, views: readonly TtaView[], nodes: NodeMsg[], inits: TensorMsg[]): string {
  const geo = card.input;
  const C = geo.channels;
  const hw = geo.width * geo.height;
  const fill = Float32Array.from(card.normalization.mean, (m, c) => -m / card.normalization.std[c]);
  inits.push(tensor('tta.fill', [1, C], fill));
  inits.push(int64Tensor('tta.zero', [1], [0]), int64Tensor('tta.one', [1], [1]), int64Tensor('tta.channels', [1], [C]));
  nodes.push(node('Shape', 'tta/Shape', [INPUT_NAME], ['tta/shape']));
  nodes.push(node('Slice', 'tta/Batch', ['tta/shape', 'tta.zero', 'tta.one'], ['tta/batch']));
  nodes.push(node('Concat', 'tta/FillShape', ['tta/batch', 'tta.channels'], ['tta/fillShape'], [{ name: 'axis', type: AttributeType.INT, i: 0 }]));
  nodes.push(node('Expand', 'tta/Fill', ['tta.fill', 'tta/fillShape'], ['tta/fillCols']));
  nodes.push(node('Concat', 'tta/Pad', [INPUT_NAME, 'tta/fillCols'], ['tta/padded'], [{ name: 'axis', type: AttributeType.INT, i: 1 }]));
  const viewOutputs = views.map((view, v) => {
    const src = viewSourceIndex(geo, view);
    const idx = Array.from(src, (s, i) => (s < 0 ? cfg.inputDim + Math.floor(i / hw) : s));
    inits.push(int64Tensor(`tta.view${v}`, [cfg.inputDim], idx));
    nodes.push(node('Gather', `tta/View${v}`, ['tta/padded', `tta.view${v}`], [`tta/view${v}`], [{ name: 'axis', type: AttributeType.INT, i: 1 }]));
    return `tta/view${v}`;
  });
  nodes.push(node('Concat', 'tta/Stack', viewOutputs, ['tta/stacked'], [{ name: 'axis', type: AttributeType.INT, i: 0 }]));
  return 'tta/stacked';
}

/** The TTA suffix: residual streams [V·batch, W] → their mean over views [batch, W] = the embedding. */
function ttaMean(cfg: MlpConfig, views: number, stream: string, nodes: NodeMsg[], inits: TensorMsg[]): void {
  inits.push(int64Tensor('tta.perViewShape', [3], [views, -1, cfg.width]));
  nodes.push(node('Reshape', 'tta/PerView', [stream, 'tta.perViewShape'], ['tta/perView']));
  nodes.push(
    node('ReduceMean', 'tta/Mean', ['tta/perView'], [EMBEDDING_NAME], [
      { name: 'axes', type: AttributeType.INTS, ints: [0] },
      { name: 'keepdims', type: AttributeType.INT, i: 0 },
    ]),
  );
}

/** A float32 graph input/output; a string dimension is symbolic (e.g. 'batch'). Also used by the training graph. */
export function valueInfo(name: string, dims: (number | string)[]): ValueInfoMsg {
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

export function node(opType: string, name: string, input: string[], output: string[], attribute?: AttributeMsg[]): NodeMsg {
  return { op_type: opType, name, input, output, ...(attribute ? { attribute } : {}) };
}

/** Builds the ONNX bytes of the model; the card is embedded in metadata_props under `model_card`. */
export function exportOnnx(cfg: MlpConfig, weights: MlpWeights, card: ModelCard): Uint8Array {
  assertWeightsMatch(cfg, weights);
  if (card.labels.length !== cfg.classes)
    throw new RangeError(`card has ${card.labels.length} labels, the model has ${cfg.classes} classes`);

  const nodes: NodeMsg[] = [];
  // Linear as MatMul + Add; weight/bias names are namedTensors()'s, so readOnnxWeights maps them back.
  const linear = (prefix: string, x: string, out: string): string => {
    nodes.push(node('MatMul', `${prefix}/MatMul`, [x, `${prefix}.weight`], [`${prefix}/matmul`]));
    nodes.push(node('Add', `${prefix}/Add`, [`${prefix}/matmul`, `${prefix}.bias`], [out]));
    return out;
  };

  // Exact GELU from Erf (opset 17 has no Gelu op; 20 does, but onnxruntime builds vary): 0.5·u·(1 + erf(u/√2)).
  const gelu = (p: string, u: string, out: string): string => {
    nodes.push(node('Div', `${p}/gelu/Div`, [u, 'const.sqrt2'], [`${p}/gelu/scaled`]));
    nodes.push(node('Erf', `${p}/gelu/Erf`, [`${p}/gelu/scaled`], [`${p}/gelu/erf`]));
    nodes.push(node('Add', `${p}/gelu/Add`, [`${p}/gelu/erf`, 'const.one'], [`${p}/gelu/onePlus`]));
    nodes.push(node('Mul', `${p}/gelu/Mul`, [u, `${p}/gelu/onePlus`], [`${p}/gelu/prod`]));
    nodes.push(node('Mul', `${p}/gelu/Half`, [`${p}/gelu/prod`, 'const.half'], [out]));
    return out;
  };

  const initializer = namedTensors(weights).map((t) => tensor(t.name, t.shape, t.data));
  const views = card.tta?.views;
  // Without TTA the final residual stream is the embedding itself; with it, the views' streams are averaged.
  const stream = views ? 'tta/stream' : EMBEDDING_NAME;
  const x = views ? ttaPrefix(cfg, card, views, nodes, initializer) : INPUT_NAME;
  const standard = isStandard(cfg);
  let h = linear('stem', x, cfg.depth === 0 && !standard ? stream : 'stem/out');
  if (standard) {
    h = gelu('stem', h, cfg.depth === 0 ? stream : 'stem/act');
    for (let i = 0; i < cfg.depth; i++) {
      const p = `layers.${i}`;
      h = gelu(p, linear(p, h, `${p}/out`), i === cfg.depth - 1 ? stream : `${p}/act`);
    }
  }
  for (let i = 0; i < (standard ? 0 : cfg.depth); i++) {
    const p = `blocks.${i}`;
    nodes.push(
      node('LayerNormalization', `${p}/LayerNorm`, [h, `${p}.norm.gamma`, `${p}.norm.beta`], [`${p}/normed`], [
        { name: 'axis', type: AttributeType.INT, i: -1 },
        { name: 'epsilon', type: AttributeType.FLOAT, f: LAYER_NORM_EPS },
      ]),
    );
    const u = linear(`${p}.expand`, `${p}/normed`, `${p}/expanded`);
    const branch = linear(`${p}.collapse`, gelu(p, u, `${p}/gelu/out`), `${p}/branch`);
    const out = i === cfg.depth - 1 ? stream : `${p}/out`;
    nodes.push(node('Add', `${p}/Residual`, [h, branch], [out]));
    h = out;
  }
  if (views) ttaMean(cfg, views.length, h, nodes, initializer);
  linear('head', EMBEDDING_NAME, LOGITS_NAME);

  if (cfg.depth > 0 || standard) {
    initializer.push(tensor('const.sqrt2', [], Float32Array.of(Math.SQRT2)));
    initializer.push(tensor('const.one', [], Float32Array.of(1)));
    initializer.push(tensor('const.half', [], Float32Array.of(0.5)));
  }

  return encodeModel({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET }],
    producer_name: PRODUCER,
    producer_version: card.version,
    doc_string: `Scaling-MLPs ${archName(cfg)} (${card.name})`,
    graph: {
      name: card.name,
      node: nodes,
      initializer,
      input: [valueInfo(INPUT_NAME, ['batch', cfg.inputDim])],
      output: [valueInfo(LOGITS_NAME, ['batch', cfg.classes]), valueInfo(EMBEDDING_NAME, ['batch', cfg.width])],
    },
    metadata_props: [{ key: CARD_METADATA_KEY, value: JSON.stringify(card) }],
  });
}

/** Writes `<dir>/model.onnx` and `<dir>/model.json`, creating `dir`. */
export async function writeModelDir(dir: string, cfg: MlpConfig, weights: MlpWeights, card: ModelCard): Promise<void> {
  const bytes = exportOnnx(cfg, weights, card);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, ONNX_FILE), bytes);
  await writeFile(join(dir, CARD_FILE), JSON.stringify(card, null, 2) + '\n');
}

export interface CardArgs {
  /** Served name (also the directory name). */
  name: string;
  cfg: MlpConfig;
  labels: readonly string[];
  input: { width: number; height: number; channels: 1 | 3 };
  normalization: { mean: readonly number[]; std: readonly number[] };
  /** kind, command, and any further facts (seed, checkpoint, recipe); the schema allows extra fields. */
  provenance: ModelCard['provenance'] & Record<string, unknown>;
  /** Defaults to "1". */
  version?: string;
  metrics?: Record<string, number>;
  /** Defaults to now. */
  createdAt?: string;
  /** Test-time augmentation views built into the graph (src/model/tta.ts); none by default. */
  tta?: ModelCard['tta'];
}

/** The one place model cards are made: derived fields (arch, params, FLOPs, embeddingDim) come from the config. */
export function buildCard(args: CardArgs): ModelCard {
  const { cfg, input } = args;
  const dim = input.channels * input.height * input.width;
  if (dim !== cfg.inputDim)
    throw new RangeError(`input ${input.channels}×${input.height}×${input.width} = ${dim} values, config has inputDim ${cfg.inputDim}`);
  if (args.labels.length !== cfg.classes)
    throw new RangeError(`${args.labels.length} labels given, config has ${cfg.classes} classes`);
  const card: ModelCard = {
    name: args.name,
    version: args.version ?? '1',
    arch: { name: archName(cfg), depth: cfg.depth, width: cfg.width, expansion: cfg.expansion },
    labels: [...args.labels],
    input: { width: input.width, height: input.height, channels: input.channels, layout: 'CHW' },
    normalization: { mean: [...args.normalization.mean], std: [...args.normalization.std] },
    embeddingDim: cfg.width,
    params: paramCount(cfg),
    flopsPerImage: flopsPerImage(cfg),
    provenance: args.provenance,
    ...(args.tta ? { tta: args.tta } : {}),
    metrics: args.metrics ?? {},
    createdAt: args.createdAt ?? new Date().toISOString(),
  };
  return validateCard(card, `card of ${args.name}`);
}

/** Model config implied by a card (the card stores everything but inputDim and classes explicitly). */
export function configFromCard(card: ModelCard): MlpConfig {
  const { kind } = parseArch(card.arch.name);
  return {
    ...(kind ? { kind } : {}),
    depth: card.arch.depth,
    width: card.arch.width,
    expansion: card.arch.expansion,
    inputDim: card.input.channels * card.input.height * card.input.width,
    classes: card.labels.length,
  };
}

/** Reads an exported model back: config, weights (copies) and, when present, the embedded card. */
export function readOnnxWeights(bytes: Uint8Array): { cfg: MlpConfig; weights: MlpWeights; card?: ModelCard } {
  const model = decodeModel(bytes);
  const byName = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.data_type !== DataType.FLOAT) continue;
    const data = t.raw_data && t.raw_data.length > 0 ? fromRawLE(t.raw_data) : Float32Array.from(t.float_data ?? []);
    byName.set(t.name, { shape: (t.dims ?? []).map(toNumber), data });
  }
  const get = (name: string): Float32Array => {
    const t = byName.get(name);
    if (!t) throw new RangeError(`ONNX model has no initializer "${name}"; not exported by mlp-serve?`);
    return t.data;
  };
  const lin = (p: string): Linear => ({ weight: get(`${p}.weight`), bias: get(`${p}.bias`) });

  const cardJson = model.metadata_props?.find((e) => e.key === CARD_METADATA_KEY)?.value;
  const card = cardJson ? validateCard(JSON.parse(cardJson), `metadata_props.${CARD_METADATA_KEY}`) : undefined;

  let depth = 0;
  while (byName.has(`blocks.${depth}.norm.gamma`)) depth++;
  let layerCount = 0;
  while (byName.has(`layers.${layerCount}.weight`)) layerCount++;
  // A standard MLP is known by its layers, or (with none) by its card's name.
  const standard = layerCount > 0 || (card !== undefined && parseArch(card.arch.name).kind === 'standard');
  const blocks: Block[] = [];
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    blocks.push({
      norm: { gamma: get(`${p}.norm.gamma`), beta: get(`${p}.norm.beta`) },
      expand: lin(`${p}.expand`),
      collapse: lin(`${p}.collapse`),
    });
  }
  const layers = Array.from({ length: layerCount }, (_, i) => lin(`layers.${i}`));
  const weights: MlpWeights = { stem: lin('stem'), blocks, ...(standard ? { layers } : {}), head: lin('head') };
  const width = weights.stem.bias.length;
  if (standard) {
    const cfg: MlpConfig = { kind: 'standard', depth: layerCount, width, expansion: 1, inputDim: weights.stem.weight.length / width, classes: weights.head.bias.length };
    assertWeightsMatch(cfg, weights);
    return { cfg, weights, ...(card ? { card } : {}) };
  }
  const cfg: MlpConfig = {
    depth,
    width,
    // With no blocks the expansion is invisible in the weights: take the card's, else the paper's 4.
    expansion: depth > 0 ? blocks[0].expand.bias.length / width : (card?.arch.expansion ?? 4),
    inputDim: weights.stem.weight.length / width,
    classes: weights.head.bias.length,
  };
  if (!Number.isInteger(cfg.expansion)) throw new RangeError(`expand width is not a multiple of width ${width}`);
  assertWeightsMatch(cfg, weights);
  return { cfg, weights, ...(card ? { card } : {}) };
}
