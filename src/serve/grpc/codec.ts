// The Open Inference Protocol's gRPC encoding: a decoded ModelInferRequest (typed `contents` or
// `raw_input_contents`) into the shared InferRequest of v2/core.ts, and output tensors into a ModelInferResponse
// (typed `contents`, or `raw_output_contents` when the request sent raw inputs). Validation is core's.

import { bad, checkInputDecl, fp32FromBytes, fp32FromValues, leBytes, selectOutputs, toRows, type InferRequest, type ModelShape, type OutputTensor, type ParamValue, type TensorMetadata } from '../v2/core.js';

/** InferParameter as proto-loader decodes it (oneofs: true). */
export interface InferParameter {
  parameter_choice?: string;
  bool_param?: boolean;
  int64_param?: number;
  string_param?: string;
  double_param?: number;
  uint64_param?: number;
}

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameter>;
  inputs: { name: string; datatype: string; shape: number[]; parameters: Record<string, InferParameter>; contents?: InferTensorContents | null }[];
  outputs: { name: string; parameters: Record<string, InferParameter> }[];
  raw_input_contents: Buffer[];
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[]; contents?: { fp32_contents: number[] } }[];
  raw_output_contents: Buffer[];
}

/** Reads the request's one input into rows; `maxRows` bounds the batch. */
export function parseGrpcInfer(req: ModelInferRequest, model: ModelShape, maxRows: number): InferRequest & { raw: boolean } {
  if (req.inputs.length === 0) throw bad('inputs must hold one tensor');
  if (req.inputs.length !== 1) throw bad(`model ${model.name} has one input, "input"; the request has ${req.inputs.length}`);
  const input = req.inputs[0];
  const n = checkInputDecl(input, model, maxRows);
  const count = n * model.inputDim;
  const raw = req.raw_input_contents.length > 0;
  const c = input.contents;
  const typed = c ? Object.entries(c).filter(([, v]) => Array.isArray(v) && v.length > 0).map(([k]) => k) : [];
  let flat: Float32Array;
  if (raw) {
    if (typed.length > 0) throw bad('inputs[0] has contents and the request has raw_input_contents; send one of them');
    if (req.raw_input_contents.length !== 1) throw bad(`raw_input_contents holds ${req.raw_input_contents.length} tensors; the request has 1 input`);
    flat = fp32FromBytes(req.raw_input_contents[0], count, 'raw_input_contents[0]');
  } else {
    if (typed.length === 0) throw bad('inputs[0] has no data: send contents.fp32_contents or raw_input_contents');
    if (typed.length > 1 || typed[0] !== 'fp32_contents') throw bad(`inputs[0] is FP32: its values go in contents.fp32_contents, not ${typed.join(', ')}`);
    flat = fp32FromValues(c!.fp32_contents!, count);
  }
  const outputs = selectOutputs(req.outputs.map((o) => ({ name: o.name, binary: false })), false, model);
  return { id: req.id === '' ? undefined : req.id, rows: toRows(flat, n, model.inputDim), outputs, raw };
}

/** Encodes the outputs: raw bytes when the inputs came raw (as Triton's clients expect), typed values otherwise. */
export function buildGrpcResponse(model: Pick<ModelShape, 'name' | 'version'>, id: string | undefined, tensors: OutputTensor[], raw: boolean): ModelInferResponse {
  return {
    model_name: model.name,
    model_version: model.version,
    id: id ?? '',
    outputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, ...(raw ? {} : { contents: { fp32_contents: Array.from(t.data) } }) })),
    raw_output_contents: raw ? tensors.map((t) => leBytes(t.data)) : [],
  };
}

/** A scalar parameter as InferParameter. */
export function toParameter(v: ParamValue): InferParameter {
  if (typeof v === 'boolean') return { bool_param: v };
  if (typeof v === 'string') return { string_param: v };
  return Number.isSafeInteger(v) ? { int64_param: v } : { double_param: v };
}

/** Tensor metadata in gRPC form (parameters as InferParameter). */
export function grpcTensorMetadata(t: TensorMetadata) {
  return { ...t, parameters: Object.fromEntries(Object.entries(t.parameters ?? {}).map(([k, v]) => [k, toParameter(v)])) };
}
