// The Open Inference Protocol's REST encoding: an HTTP body (JSON tensors; the binary tensor data extension's JSON
// header of `Inference-Header-Content-Length` bytes followed by raw little-endian tensors; or Triton's raw binary
// request, a header length of 0 and the single input's bytes as the whole body) into an InferRequest, and output
// tensors into a JSON response or a JSON header followed by binary tensors. Validation is v2/core.ts's.

import { bad, checkInputDecl, fp32FromBytes, leBytes, selectOutputs, toRows, type InferRequest, type ModelShape, type OutputTensor } from './core.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parameters(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObject(v)) throw bad(`${where}.parameters must be an object`);
  for (const [k, p] of Object.entries(v))
    if (typeof p !== 'string' && typeof p !== 'number' && typeof p !== 'boolean') throw bad(`${where}.parameters.${k} must be a string, number or boolean`);
  return v;
}

function boolParam(params: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(`${where}.parameters.${key} must be a boolean`);
  return v;
}

/**
 * binary_data_size is an int64 in the extension; some clients send it as a string of digits, which means the same
 * number and is accepted. Anything else is refused naming the type received.
 */
function byteCount(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  throw bad(`${where}.parameters.binary_data_size must be a non-negative integer number of bytes, got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v)}`);
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

/** Flattens JSON tensor data (flat, or nested row-major up to the tensor's rank) into `out`. */
function flattenData(data: unknown, rank: number, out: Float32Array): void {
  let n = 0;
  const walk = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth >= rank) throw bad("inputs[0].data is nested deeper than the tensor's shape");
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
 * Triton's raw binary request: no JSON at all, the body is the single input's FP32 bytes, [n, C·H·W] with n from the
 * size. Every output is answered, as JSON.
 */
function parseRawBinary(body: Buffer, model: ModelShape, maxRows: number): InferRequest {
  const rowBytes = model.inputDim * 4;
  if (body.length % rowBytes !== 0)
    throw bad(`a raw binary request (Inference-Header-Content-Length: 0) carries ${body.length} bytes, not a whole number of ${rowBytes}-byte rows of input "input" [n, ${model.inputDim}] FP32`);
  const n = body.length / rowBytes;
  checkInputDecl({ name: 'input', datatype: 'FP32', shape: [n, model.inputDim] }, model, maxRows, 'the raw binary input');
  const flat = fp32FromBytes(body, n * model.inputDim, 'the body');
  return { id: undefined, rows: toRows(flat, n, model.inputDim), outputs: selectOutputs(undefined, false, model) };
}

/**
 * Validates an inference request and extracts its rows. `body` is the whole HTTP body; `jsonBytes` the length of its
 * JSON part (Inference-Header-Content-Length), or undefined when the body is JSON only. `maxRows` bounds the batch.
 * Throws API errors (400 INVALID_REQUEST, 413 BATCH_TOO_LARGE) whose messages say what is wrong.
 */
export function parseInferRequest(body: Buffer, jsonBytes: number | undefined, model: ModelShape, maxRows: number): InferRequest {
  if (jsonBytes === 0) return parseRawBinary(body, model, maxRows);
  const head = jsonBytes === undefined ? body : body.subarray(0, jsonBytes);
  let doc: unknown;
  try {
    doc = JSON.parse(head.toString('utf8'));
  } catch {
    throw bad('the inference request is not valid JSON' + (jsonBytes === undefined ? '' : ' (check Inference-Header-Content-Length)'));
  }
  if (!isObject(doc)) throw bad('the inference request must be a JSON object');
  if (doc.id !== undefined && typeof doc.id !== 'string') throw bad('id must be a string');
  const binaryAll = boolParam(parameters(doc.parameters, 'request'), 'binary_data_output', 'request') ?? false;

  if (!Array.isArray(doc.inputs) || doc.inputs.length === 0) throw bad('inputs must be a non-empty array');
  if (doc.inputs.length !== 1) throw bad(`model ${model.name} has one input, "input"; the request has ${doc.inputs.length}`);
  const input: unknown = doc.inputs[0];
  if (!isObject(input)) throw bad('inputs[0] must be an object');
  const n = checkInputDecl({ name: input.name, datatype: input.datatype, shape: input.shape }, model, maxRows);
  const values = n * model.inputDim;

  const inParams = parameters(input.parameters, 'inputs[0]');
  let flat: Float32Array;
  if (inParams.binary_data_size !== undefined) {
    const size = byteCount(inParams.binary_data_size, 'inputs[0]');
    if (jsonBytes === undefined) throw bad('inputs[0] has binary_data_size but the request has no Inference-Header-Content-Length header');
    if (input.data !== undefined) throw bad('inputs[0] has both data and binary_data_size');
    if (size !== values * 4) throw bad(`inputs[0].parameters.binary_data_size is ${size}; shape [${n}, ${model.inputDim}] of FP32 takes ${values * 4} bytes`);
    flat = fp32FromBytes(body.subarray(jsonBytes), values, 'the body');
  } else {
    if (jsonBytes !== undefined && jsonBytes !== body.length)
      throw bad(`the body has ${body.length - jsonBytes} bytes after the JSON header but no input declares binary_data_size`);
    flat = new Float32Array(values);
    flattenData(input.data, 2, flat);
  }

  let requested: { name: unknown; binary: boolean }[] | undefined;
  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs)) throw bad('outputs must be an array');
    requested = doc.outputs.map((o: unknown, i: number) => {
      if (!isObject(o)) throw bad(`outputs[${i}] must be an object`);
      return { name: o.name, binary: boolParam(parameters(o.parameters, `outputs[${i}]`), 'binary_data', `outputs[${i}]`) ?? binaryAll };
    });
  }
  return { id: doc.id as string | undefined, rows: toRows(flat, n, model.inputDim), outputs: selectOutputs(requested, binaryAll, model) };
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

/** Encodes output tensors as the REST response. */
export function buildInferResponse(model: Pick<ModelShape, 'name' | 'version'>, id: string | undefined, tensors: OutputTensor[]): InferResponse {
  const binary: Buffer[] = [];
  const outputs = tensors.map(({ name, datatype, shape, data, binary: asBinary }) => {
    if (!asBinary) return { name, datatype, shape, data: Array.from(data) };
    const bytes = leBytes(data);
    binary.push(bytes);
    return { name, datatype, shape, parameters: { binary_data_size: bytes.length } };
  });
  return { json: { model_name: model.name, model_version: model.version, ...(id !== undefined ? { id } : {}), outputs }, binary };
}

