// The Open Inference Protocol's transport-free core, shared by the REST routes (v2/http.ts) and the gRPC service
// (grpc/service.ts) so the two cannot drift: model metadata, validation of the input tensor's declaration and
// values, requested outputs, the run through the model's batcher, and the output tensors. Our models have one input
// and two outputs:
//   input      FP32 [n, C·H·W]   the preprocessed image (channel-major, normalised with the card's mean/std)
//   logits     FP32 [n, classes]
//   embedding  FP32 [n, width]   the head's input
// Errors are the API's own (INVALID_REQUEST, BATCH_TOO_LARGE, ...); each transport maps them to its status.

import { endianness } from 'node:os';
import { inputDim } from '../../model/card.js';
import { Errors } from '../errors.js';
import { runTensors, type RunOptions } from '../inference.js';
import type { Batcher } from '../batcher.js';
import type { LoadedModel } from '../model-types.js';

export const INPUT_NAME = 'input';
export const OUTPUT_NAMES = ['logits', 'embedding'] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

/** The tensor data types of the specification; only FP32 is accepted, the others are named in the error. */
export const DATATYPES = new Set(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES']);

export interface ModelShape {
  name: string;
  version: string;
  inputDim: number;
  classes: number;
  embeddingDim: number;
}

export function shapeOf(m: LoadedModel): ModelShape {
  return { name: m.name, version: m.version, inputDim: inputDim(m.card), classes: m.card.labels.length, embeddingDim: m.card.embeddingDim };
}

/** A scalar parameter value, as both the REST and the gRPC protocol carry them. */
export type ParamValue = string | number | boolean;

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, ParamValue>;
}

/**
 * $metadata_model_response. Variable dimensions are -1. The input's `parameters` say how to build it from an image
 * (the specification's optional parameters; arrays are comma-separated strings, as parameter values are scalars).
 */
export function modelMetadata(model: LoadedModel, versions: string[]) {
  const s = shapeOf(model);
  const { input, normalization } = model.card;
  const inputParams: Record<string, ParamValue> = {
    layout: input.layout,
    channels: input.channels,
    height: input.height,
    width: input.width,
    pixel_scale: '0-255',
    mean: normalization.mean.join(','),
    std: normalization.std.join(','),
    resize: 'cover: shortest side to the size, then centre crop',
    formula: 'x[c,h,w] = (pixel[c,h,w] - mean[c]) / std[c], channel-major',
  };
  return {
    name: s.name,
    versions,
    platform: 'onnx_onnxv1',
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, s.inputDim], parameters: inputParams }] as TensorMetadata[],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, s.classes] },
      { name: 'embedding', datatype: 'FP32', shape: [-1, s.embeddingDim] },
    ] as TensorMetadata[],
  };
}

export const bad = (message: string) => Errors.INVALID_REQUEST(message);

/** The input tensor as declared by a request (before its values are read). */
export interface InputDecl {
  name: unknown;
  datatype: unknown;
  shape: unknown;
}

/** Checks the declaration of the one input against the model; returns the batch size n. */
export function checkInputDecl(input: InputDecl, model: ModelShape, maxRows: number, where = 'inputs[0]'): number {
  if (input.name !== INPUT_NAME)
    throw bad(`unknown input ${JSON.stringify(String(input.name)).slice(0, 80)}; model ${model.name} has one input, "${INPUT_NAME}"`);
  if (typeof input.datatype !== 'string' || !DATATYPES.has(input.datatype)) throw bad(`${where}.datatype must be one of ` + [...DATATYPES].join(', '));
  if (input.datatype !== 'FP32') throw bad(`${where}.datatype is ${input.datatype}; input "${INPUT_NAME}" is FP32`);
  const shape = input.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw bad(`${where}.shape must be an array of non-negative integers`);
  if (shape.length !== 2 || shape[1] !== model.inputDim)
    throw bad(`${where}.shape is [${shape.join(', ')}]; input "${INPUT_NAME}" is [n, ${model.inputDim}] (n images, C·H·W preprocessed values each)`);
  const n = shape[0] as number;
  if (n === 0) throw bad(`${where}.shape has a batch of 0`);
  if (n > maxRows) throw Errors.BATCH_TOO_LARGE(maxRows);
  return n;
}

function checkFinite(flat: Float32Array, where: string): Float32Array {
  for (let i = 0; i < flat.length; i++) if (!Number.isFinite(flat[i])) throw bad(`${where} holds a NaN or infinite value`);
  return flat;
}

/** Reads `count` little-endian float32 values (any alignment) from exactly `count`·4 bytes. */
export function fp32FromBytes(bytes: Uint8Array, count: number, what: string, where = 'inputs[0]'): Float32Array {
  if (bytes.length !== count * 4) throw bad(`${what} carries ${bytes.length} bytes; ${where} of ${count} FP32 values takes ${count * 4}`);
  const out = new Float32Array(count);
  if (endianness() === 'LE') new Uint8Array(out.buffer).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return checkFinite(out, where);
}

/** Copies typed values (gRPC's fp32_contents) after checking their count. */
export function fp32FromValues(values: ArrayLike<number>, count: number, where = 'inputs[0]'): Float32Array {
  if (values.length !== count) throw bad(`${where} holds ${values.length} values, its shape declares ${count}`);
  return checkFinite(Float32Array.from(values), where);
}

/** Splits a flat [n, dim] tensor into n rows (copies, so each can be queued on its own). */
export function toRows(flat: Float32Array, n: number, dim: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => flat.slice(i * dim, (i + 1) * dim));
}

export interface OutputRequest {
  name: OutputName;
  /** REST only: answer it as binary tensor data. */
  binary: boolean;
}

/** The outputs to return, in the requested order; every output (in model order) when none is requested. */
export function selectOutputs(requested: { name: unknown; binary: boolean }[] | undefined, defaultBinary: boolean, model: ModelShape): OutputRequest[] {
  if (requested === undefined || requested.length === 0) return OUTPUT_NAMES.map((name) => ({ name, binary: defaultBinary }));
  const out = requested.map((o) => {
    if (!OUTPUT_NAMES.includes(o.name as OutputName))
      throw bad(`unknown output ${JSON.stringify(String(o.name)).slice(0, 80)}; model ${model.name} has outputs "logits" and "embedding"`);
    return { name: o.name as OutputName, binary: o.binary };
  });
  if (new Set(out.map((o) => o.name)).size !== out.length) throw bad('outputs names an output twice');
  return out;
}

/** A validated inference request, whichever transport it came by. */
export interface InferRequest {
  /** Echoed in the response when given. */
  id: string | undefined;
  /** n rows of `inputDim` values each. */
  rows: Float32Array[];
  outputs: OutputRequest[];
}

export interface OutputTensor {
  name: OutputName;
  datatype: 'FP32';
  shape: [number, number];
  /** Row-major [n, width]. */
  data: Float32Array;
  binary: boolean;
}

/** Runs the request's rows through the model's batcher and builds the requested output tensors. */
export async function runInfer(
  model: LoadedModel & { batcher: Batcher },
  req: InferRequest,
  opts: Pick<RunOptions, 'remainingMs' | 'timeoutMs' | 'metrics' | 'signal'>,
): Promise<OutputTensor[]> {
  const results = await runTensors(model, req.rows, opts);
  const s = shapeOf(model);
  const n = results.length;
  return req.outputs.map(({ name, binary }) => {
    const width = name === 'logits' ? s.classes : s.embeddingDim;
    const data = new Float32Array(n * width);
    results.forEach((r, i) => data.set(r[name], i * width));
    return { name, datatype: 'FP32', shape: [n, width], data, binary };
  });
}

/** A tensor's values as little-endian bytes (a view when the machine is little-endian). */
export function leBytes(f: Float32Array): Buffer {
  if (endianness() === 'LE') return Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  const b = Buffer.alloc(f.length * 4);
  f.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}
