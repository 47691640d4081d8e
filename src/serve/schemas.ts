// TypeBox schemas of the HTTP API: they validate requests, serialise responses, type the handlers and generate the
// OpenAPI document, all from one source.

import { Type, type Static } from '@sinclair/typebox';

export const ModelName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
  description: 'A served model name (GET /models); default: the default model.',
});

export const ModelVersion = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
  description: 'Pin a served version of the model (GET /models lists them); default: its newest.',
});

export const ModelQuery = Type.Object({ model: Type.Optional(ModelName), version: Type.Optional(ModelVersion) }, { additionalProperties: false });
export type ModelQuery = Static<typeof ModelQuery>;

export const ClassifyQuery = Type.Object(
  {
    model: Type.Optional(ModelName),
    version: Type.Optional(ModelVersion),
    top_k: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'How many classes to return, most probable first (capped at the number of classes).' }),
    ),
  },
  { additionalProperties: false },
);
export type ClassifyQuery = Static<typeof ClassifyQuery>;

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable machine-readable code, e.g. UNDECODABLE_IMAGE.' }),
      message: Type.String(),
    }),
  },
  { description: 'Every error: {"error":{"code","message"}}.' },
);

export const Prediction = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  label: Type.String(),
  score: Type.Number({ description: 'Softmax probability.' }),
});

export const ClassifyResponse = Type.Union([
  Type.Object({ model: Type.String(), predictions: Type.Array(Prediction) }),
  Type.Object({ model: Type.String(), results: Type.Array(Type.Object({ predictions: Type.Array(Prediction) })) }),
]);

export const EmbedResponse = Type.Union([
  Type.Object({ model: Type.String(), dim: Type.Integer(), embedding: Type.Array(Type.Number()) }),
  Type.Object({ model: Type.String(), dim: Type.Integer(), embeddings: Type.Array(Type.Array(Type.Number())) }),
]);

export const ModelInfo = Type.Object({
  name: Type.String(),
  default: Type.Boolean(),
  version: Type.String(),
  arch: Type.String({ description: 'B_<depth>-Wi_<width>' }),
  labels: Type.Array(Type.String()),
  input: Type.Object({ width: Type.Integer(), height: Type.Integer(), channels: Type.Integer() }),
  embeddingDim: Type.Integer(),
  params: Type.Integer(),
  flopsPerImage: Type.Integer(),
  provider: Type.Union([Type.String(), Type.Null()], { description: 'Execution provider running it; null while loading.' }),
  versions: Type.Array(
    Type.Object({
      version: Type.String(),
      arch: Type.String(),
      classes: Type.Integer(),
      embeddingDim: Type.Integer(),
      provider: Type.Union([Type.String(), Type.Null()]),
    }),
    { description: 'Every served version, newest first; the first answers unless a request pins one with ?version=.' },
  ),
});

export const ThreadsInfo = Type.Object(
  {
    inferenceWorkers: Type.Integer(),
    intraOpThreads: Type.Integer({ description: 'onnxruntime threads per session' }),
    uvThreadpoolSize: Type.Integer({ description: 'libuv threads, where sharp decodes' }),
    source: Type.Union([Type.Literal('measured'), Type.Literal('env')], { description: 'measured at start-up, or pinned by INFERENCE_WORKERS / ORT_INTRA_OP_THREADS' }),
    decodeMs: Type.Optional(Type.Number({ description: 'measured: decode of an image at the default model\'s input size, CPU ms' })),
    inferMs: Type.Optional(Type.Number({ description: 'measured: onnxruntime per image at its cheapest warm-up batch, ms' })),
    inferBatch: Type.Optional(Type.Integer()),
    inferenceCores: Type.Optional(Type.Number({ description: 'measured: onnxruntime\'s share of the cores, before rounding to workers' })),
  },
  { description: 'How the cores are split between decoding and inference (docs/performance.md).' },
);

export const ModelsResponse = Type.Object({ models: Type.Array(ModelInfo), threads: Type.Union([ThreadsInfo, Type.Null()]) });

export const ReadyResponse = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('loading'), Type.Literal('draining'), Type.Literal('failed')]),
  models: Type.Array(Type.Object({ name: Type.String(), provider: Type.Union([Type.String(), Type.Null()]) })),
});

/** Error responses every inference route can give (for the OpenAPI document). */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  415: ErrorBody,
  500: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
};

const binary = { type: 'string', format: 'binary' };

/** OpenAPI requestBody of /classify and /embed: one raw image, or file parts. */
export const IMAGE_REQUEST_BODY = {
  required: true,
  content: {
    'image/*': { schema: binary },
    'application/octet-stream': { schema: binary },
    'multipart/form-data': {
      schema: {
        type: 'object',
        description: '1..MAX_FILES file parts (any field names), answered in part order; other fields are ignored.',
        additionalProperties: binary,
      },
    },
  },
};

/** OpenAPI requestBody of the v2 infer routes: JSON, or JSON followed by binary tensors (binary data extension). */
export const V2_REQUEST_BODY = {
  required: true,
  content: {
    'application/json': { schema: { type: 'object', description: 'An $inference_request (Open Inference Protocol).' } },
    'application/octet-stream': {
      schema: { ...binary, description: 'Inference-Header-Content-Length bytes of JSON, then the binary tensors in input order.' },
    },
  },
};
