// Precision variants of an exported model: rewrites the float32 graph's MatMul weights as float16 (Cast back to
// float32 in the graph: half the file, no faster on CPU) or int8 (dynamic quantisation, per output column), and
// writes the variant as its own servable model directory. LayerNorm, GELU and biases stay float32.
//
// int8, per MatMul(x, W) with W [K, N] float32:
//   scale_w[n] = max_k |W[k, n]| / 127,  Wq = round(W / scale_w)  (int8, symmetric: zero point 0 per column)
//   xq, scale_x, zp_x = DynamicQuantizeLinear(x)            (uint8, per tensor, per call)
//   y = float(MatMulInteger(xq, Wq, zp_x, 0)) · (scale_x · scale_w)
// This is the pattern onnxruntime's own quantize_dynamic writes; its graph optimiser fuses it into one
// DynamicQuantizeMatMul kernel at load.

import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CARD_FILE, ONNX_FILE, readCard, validateCard, type ModelCard } from '../model/card.js';
import { CARD_METADATA_KEY, node } from './export.js';
import { AttributeType, DataType, decodeModel, encodeModel, toNumber, type NodeMsg, type TensorMsg } from './onnx-proto.js';

export const PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

// TensorProto.DataType values the variants write (onnx.proto).
const INT8 = 3;
const FLOAT16 = 10;

export function parsePrecision(value: string): Precision {
  if ((PRECISIONS as readonly string[]).includes(value)) return value as Precision;
  throw new RangeError(`unsupported precision "${value}": expected one of ${PRECISIONS.join(', ')}`);
}

function floatData(t: TensorMsg): Float32Array {
  if (t.raw_data && t.raw_data.length > 0) {
    const out = new Float32Array(t.raw_data.byteLength / 4);
    new Uint8Array(out.buffer).set(t.raw_data); // copy: raw_data may be an unaligned view into the file
    return out;
  }
  return Float32Array.from(t.float_data ?? []);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a float32, rounded to nearest even; beyond ±65504 → ±Inf (weights never get there). */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is still the right rounding
  return h;
}

/** Per output column n of W [K, N]: int8 Wq and scale[n] so that W ≈ Wq · scale (zero point 0). */
export function quantizePerColumn(w: Float32Array, k: number, n: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(n);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) scale[c] = Math.max(scale[c], Math.abs(w[r * n + c]));
  for (let c = 0; c < n; c++) scale[c] = scale[c] > 0 ? scale[c] / 127 : 1;
  const q = new Int8Array(k * n);
  for (let r = 0; r < k; r++)
    for (let c = 0; c < n; c++) q[r * n + c] = Math.max(-127, Math.min(127, Math.round(w[r * n + c] / scale[c])));
  return { q, scale };
}

const floatTensor = (name: string, dims: number[], data: Float32Array): TensorMsg => ({
  name,
  dims,
  data_type: DataType.FLOAT,
  raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
});

/** Rewrites an exported float32 model's MatMul weights at `precision`; the embedded card becomes `card`. */
export function convertOnnx(bytes: Uint8Array, precision: Precision, card: ModelCard): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph;
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const prefix: NodeMsg[] = [];
  const nodes: NodeMsg[] = [];
  const replaced = new Set<string>();
  const added: TensorMsg[] = [];
  for (const n of graph.node) {
    const w = n.op_type === 'MatMul' ? inits.get(n.input[1]) : undefined;
    if (precision === 'fp32' || !w || w.data_type !== DataType.FLOAT || w.dims.length !== 2) {
      nodes.push(n);
      continue;
    }
    const [k, cols] = w.dims.map(toNumber);
    const data = floatData(w);
    replaced.add(w.name);
    if (precision === 'fp16') {
      const half = Uint16Array.from(data, toHalfBits);
      added.push({ name: `${w.name}.fp16`, dims: [k, cols], data_type: FLOAT16, raw_data: new Uint8Array(half.buffer) });
      prefix.push(node('Cast', `${w.name}/Cast`, [`${w.name}.fp16`], [w.name], [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }]));
      nodes.push(n);
      continue;
    }
    const { q, scale } = quantizePerColumn(data, k, cols);
    const p = n.name.replace(/\/MatMul$/, '');
    added.push({ name: `${w.name}.int8`, dims: [k, cols], data_type: INT8, raw_data: new Uint8Array(q.buffer) });
    added.push(floatTensor(`${w.name}.scale`, [cols], scale));
    added.push({ name: `${w.name}.zero`, dims: [cols], data_type: INT8, raw_data: new Uint8Array(cols) });
    const [x] = n.input;
    const [y] = n.output;
    nodes.push(node('DynamicQuantizeLinear', `${p}/Quantize`, [x], [`${p}/xq`, `${p}/xScale`, `${p}/xZero`]));
    nodes.push(node('MatMulInteger', `${p}/MatMulInteger`, [`${p}/xq`, `${w.name}.int8`, `${p}/xZero`, `${w.name}.zero`], [`${p}/acc`]));
    nodes.push(node('Cast', `${p}/CastAcc`, [`${p}/acc`], [`${p}/accFloat`], [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }]));
    nodes.push(node('Mul', `${p}/Scale`, [`${p}/xScale`, `${w.name}.scale`], [`${p}/scale`]));
    nodes.push(node('Mul', `${p}/Rescale`, [`${p}/accFloat`, `${p}/scale`], [y]));
  }
  if (precision !== 'fp32' && replaced.size === 0) throw new RangeError('the model has no float32 MatMul weights to convert');
  graph.node = [...prefix, ...nodes];
  graph.initializer = [...graph.initializer.filter((t) => !replaced.has(t.name)), ...added];
  const meta = (model.metadata_props ?? []).filter((e) => e.key !== CARD_METADATA_KEY);
  model.metadata_props = [...meta, { key: CARD_METADATA_KEY, value: JSON.stringify(card) }];
  return encodeModel(model);
}

export interface PrecisionOptions {
  /** A model directory (model.onnx + model.json) exported at float32. */
  from: string;
  /** The variant's directory; its base name is the served name. Must not exist. */
  out: string;
  precision: Precision;
  /** Command line recorded in the card's provenance. */
  command?: string;
}

/** Writes the variant directory: built in a temporary sibling and renamed into place, so a failure leaves no file. */
export async function writePrecisionVariant(o: PrecisionOptions): Promise<ModelCard> {
  const precision = parsePrecision(o.precision);
  const from = resolve(o.from);
  const out = resolve(o.out);
  const source = await readCard(from);
  if ((source.precision ?? 'fp32') !== 'fp32') throw new RangeError(`${from} is already ${source.precision}; convert from the fp32 model`);
  if (await stat(out).then(() => true, () => false)) throw new RangeError(`${out} already exists; remove it or choose another --out`);
  const card = validateCard(
    {
      ...source,
      name: basename(out),
      precision,
      provenance: { ...source.provenance, precisionOf: source.name, ...(o.command ? { command: o.command } : {}) },
      createdAt: new Date().toISOString(),
    },
    `card of ${basename(out)}`,
  );
  const bytes = convertOnnx(new Uint8Array(await readFile(join(from, ONNX_FILE))), precision, card);
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await writeFile(join(tmp, ONNX_FILE), bytes);
    await writeFile(join(tmp, CARD_FILE), JSON.stringify(card, null, 2) + '\n');
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return card;
}
