// The Open Inference Protocol (KServe v2 REST) as plain data: parse an inference request (JSON tensors, or the binary
// tensor data extension: a JSON header of `Inference-Header-Content-Length` bytes followed by raw little-endian
// tensors) into model input rows, and build the response (JSON `data`, or binary after the JSON header).
// No HTTP here: routes/v2.ts does the I/O. Our models have one input and two outputs:
//   input      FP32 [n, C·H·W]   the preprocessed image (channel-major, normalised with the card's mean/std)
//   logits     FP32 [n, classes]
//   embedding  FP32 [n, width]   the head's input

import { endianness } from 'node:os';
import { Errors } from './errors.js';

export const INPUT_NAME = 'input';
export const OUTPUT_NAMES = ['logits', 'embedding'] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

/** The tensor data types of the specification; only FP32 is accepted, the others are named in the error. */
const DATATYPES = new Set(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES']);

export interface ModelShape {
  name: string;
  inputDim: number;
  classes: number;
  embeddingDim: number;
}

export interface InferRequest {
  /** Echoed in the response when given. */
  id: string | undefined;
  /** n rows of `inputDim` values each. */
  rows: Float32Array[];
  /** Outputs to return, in the requested order, each as JSON data or as binary. */
  outputs: { name: OutputName; binary: boolean }[];
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

/** $metadata_model_response. Variable dimensions are -1. */
export function modelMetadata(shape: ModelShape, versions: string[]) {
  return {
    name: shape.name,
    versions,
    platform: 'onnx_onnxv1',
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, shape.inputDim] }] as TensorMetadata[],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, shape.classes] },
      { name: 'embedding', datatype: 'FP32', shape: [-1, shape.embeddingDim] },
    ] as TensorMetadata[],
  };
}

const bad = (message: string) => Errors.INVALID_REQUEST(message);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parameters(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObject(v)) throw bad(`${where}.parameters must be an object`);
  for (const [k, p] of Object.entries(v))
    if (typeof p !== 'string' && typeof p !== 'number' && typeof p !== 'boolean')
      throw bad(`${where}.parameters.${k} must be a string, number or boolean`);
  return v;
}

function boolParam(params: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(`${where}.parameters.${key} must be a boolean`);
  return v;
}

/** Parses `Inference-Header-Content-Length`; undefined when absent. */
export function headerLength(value: string | string[] | undefined, bodyBytes: number): number | undefined {
  if (value === undefined) return undefined;
  const v = Array.isArray(value) ? value[0] : value;
  if (!/^\d{1,12}$/.test(v.trim())) throw bad('Inference-Header-Content-Length must be a non-negative integer');
  const n = Number(v.trim());
  if (n > bodyBytes) throw bad(`Inference-Header-Content-Length (${n}) is larger than the body (${bodyBytes} bytes)`);
  return n;
}

/** Copies `count` little-endian float32 values out of `bytes` (any alignment) into a new array. */
function readFp32(bytes: Buffer, count: number): Float32Array {
  const out = new Float32Array(count);
  if (endianness() === 'LE') new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  else for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** Flattens JSON tensor data (flat, or nested row-major up to the tensor's rank) into `out`. */
function flattenData(data: unknown, rank: number, out: Float32Array): void {
  let n = 0;
  const walk = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth >= rank) throw bad('inputs[0].data is nested deeper than the tensor\'s shape');
      for (const x of v) walk(x, depth + 1);
      return;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad('inputs[0].data must hold finite numbers only');
    if (n >= out.length) throw bad(`inputs[0].data holds more than the ${out.length} values its shape declares`);
    out[n++] = v;
  };
  if (!Array.isArray(data)) throw bad('inputs[0].data must be an array');
  walk(data, 0);
  if (n !== out.length) throw bad(`inputs[0].data holds ${n} values, its shape declares ${out.length}`);
}

/**
 * Validates an inference request and extracts its rows. `body` is the whole HTTP body; `jsonBytes` the length of its
 * JSON part (Inference-Header-Content-Length), or undefined when the body is JSON only. `maxRows` bounds the batch.
 * Throws API errors (400 INVALID_REQUEST, 413 BATCH_TOO_LARGE) whose messages say what is wrong.
 */
export function parseInferRequest(body: Buffer, jsonBytes: number | undefined, model: ModelShape, maxRows: number): InferRequest {
  const head = jsonBytes === undefined ? body : body.subarray(0, jsonBytes);
  let doc: unknown;
  try {
    doc = JSON.parse(head.toString('utf8'));
  } catch {
    throw bad('the inference request is not valid JSON' + (jsonBytes === undefined ? '' : ' (check Inference-Header-Content-Length)'));
  }
  if (!isObject(doc)) throw bad('the inference request must be a JSON object');
  if (doc.id !== undefined && typeof doc.id !== 'string') throw bad('id must be a string');
  const reqParams = parameters(doc.parameters, 'request');
  const binaryAll = boolParam(reqParams, 'binary_data_output', 'request') ?? false;

  if (!Array.isArray(doc.inputs) || doc.inputs.length === 0) throw bad('inputs must be a non-empty array');
  if (doc.inputs.length !== 1) throw bad(`model ${model.name} has one input, "${INPUT_NAME}"; the request has ${doc.inputs.length}`);
  const input: unknown = doc.inputs[0];
  if (!isObject(input)) throw bad('inputs[0] must be an object');
  if (input.name !== INPUT_NAME)
    throw bad(`unknown input ${JSON.stringify(String(input.name)).slice(0, 80)}; model ${model.name} has one input, "${INPUT_NAME}"`);
  if (typeof input.datatype !== 'string' || !DATATYPES.has(input.datatype))
    throw bad('inputs[0].datatype must be one of ' + [...DATATYPES].join(', '));
  if (input.datatype !== 'FP32') throw bad(`inputs[0].datatype is ${input.datatype}; input "${INPUT_NAME}" is FP32`);
  const shape = input.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw bad('inputs[0].shape must be an array of non-negative integers');
  if (shape.length !== 2 || shape[1] !== model.inputDim)
    throw bad(`inputs[0].shape is [${shape.join(', ')}]; input "${INPUT_NAME}" is [n, ${model.inputDim}] (n images, C·H·W preprocessed values each)`);
  const n = shape[0] as number;
  if (n === 0) throw bad('inputs[0].shape has a batch of 0');
  if (n > maxRows) throw Errors.BATCH_TOO_LARGE(maxRows);
  const values = n * model.inputDim;

  const inParams = parameters(input.parameters, 'inputs[0]');
  let flat: Float32Array;
  const binarySize = inParams.binary_data_size;
  if (binarySize !== undefined) {
    if (jsonBytes === undefined) throw bad('inputs[0] has binary_data_size but the request has no Inference-Header-Content-Length header');
    if (input.data !== undefined) throw bad('inputs[0] has both data and binary_data_size');
    if (binarySize !== values * 4) throw bad(`inputs[0].parameters.binary_data_size is ${String(binarySize)}; shape [${n}, ${model.inputDim}] of FP32 takes ${values * 4} bytes`);
    const bin = body.subarray(jsonBytes as number);
    if (bin.length !== values * 4) throw bad(`the body carries ${bin.length} bytes of binary tensor data; binary_data_size says ${values * 4}`);
    flat = readFp32(bin, values);
    for (let i = 0; i < flat.length; i++) if (!Number.isFinite(flat[i])) throw bad('inputs[0] holds a NaN or infinite value');
  } else {
    if (jsonBytes !== undefined && jsonBytes !== body.length)
      throw bad(`the body has ${body.length - (jsonBytes as number)} bytes after the JSON header but no input declares binary_data_size`);
    flat = new Float32Array(values);
    flattenData(input.data, 2, flat);
  }
  const rows = Array.from({ length: n }, (_, i) => flat.slice(i * model.inputDim, (i + 1) * model.inputDim));

  let outputs: InferRequest['outputs'];
  if (doc.outputs === undefined) outputs = OUTPUT_NAMES.map((name) => ({ name, binary: binaryAll }));
  else {
    if (!Array.isArray(doc.outputs)) throw bad('outputs must be an array');
    outputs = doc.outputs.map((o: unknown, i: number) => {
      if (!isObject(o)) throw bad(`outputs[${i}] must be an object`);
      if (!OUTPUT_NAMES.includes(o.name as OutputName))
        throw bad(`unknown output ${JSON.stringify(String(o.name)).slice(0, 80)}; model ${model.name} has outputs "logits" and "embedding"`);
      const binary = boolParam(parameters(o.parameters, `outputs[${i}]`), 'binary_data', `outputs[${i}]`) ?? binaryAll;
      return { name: o.name as OutputName, binary };
    });
    if (new Set(outputs.map((o) => o.name)).size !== outputs.length) throw bad('outputs names an output twice');
  }
  return { id: doc.id as string | undefined, rows, outputs };
}

export interface InferResponse {
  /** The $inference_response object (the JSON header when some output is binary). */
  json: {
    model_name: string;
    model_version: string;
    id?: string;
    outputs: { name: string; datatype: 'FP32'; shape: number[]; parameters?: { binary_data_size: number }; data?: number[] }[];
  };
  /** Binary tensor data to append after the JSON, in output order; empty when every output is JSON. */
  binary: Buffer[];
}

/** Builds the response from each row's outputs. */
export function buildInferResponse(
  model: { name: string; version: string; classes: number; embeddingDim: number },
  req: Pick<InferRequest, 'id' | 'outputs'>,
  results: { logits: Float32Array; embedding: Float32Array }[],
): InferResponse {
  const n = results.length;
  const binary: Buffer[] = [];
  const outputs = req.outputs.map(({ name, binary: asBinary }) => {
    const width = name === 'logits' ? model.classes : model.embeddingDim;
    const flat = new Float32Array(n * width); // [n, width], row-major
    results.forEach((r, i) => flat.set(r[name], i * width));
    const shape = [n, width];
    if (!asBinary) return { name, datatype: 'FP32' as const, shape, data: Array.from(flat) };
    let bytes = Buffer.from(flat.buffer, flat.byteOffset, flat.byteLength);
    if (endianness() !== 'LE') {
      bytes = Buffer.alloc(flat.length * 4);
      flat.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
    }
    binary.push(bytes);
    return { name, datatype: 'FP32' as const, shape, parameters: { binary_data_size: bytes.length } };
  });
  const json = { model_name: model.name, model_version: model.version, ...(req.id !== undefined ? { id: req.id } : {}), outputs };
  return { json, binary };
}
