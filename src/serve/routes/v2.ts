// The Open Inference Protocol (KServe v2 REST): server and model health, metadata, and inference on preprocessed
// tensors through the same batchers as /classify and /embed. Health answers carry no body: 200 is true, 400 false,
// as the specification says. Errors are `{"error": "..."}` (the app's error handler formats every /v2 route so).
// An encapsulated plugin: the JSON body parser registered here serves only these routes (elsewhere JSON is a 415).

import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../../config.js';
import { inputDim } from '../../model/card.js';
import { Errors } from '../errors.js';
import { runTensors } from '../inference.js';
import { clientGone } from '../plugins/limits.js';
import type { LoadedModel } from '../plugins/models.js';
import { ModelName, ModelVersion } from '../schemas.js';
import { buildInferResponse, headerLength, modelMetadata, parseInferRequest, type ModelShape } from '../v2-protocol.js';

const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const V2Error = Type.Object({ error: Type.String() }, { description: 'Every /v2 error: {"error": message}.' });
const V2Errors = { 400: V2Error, 401: V2Error, 404: V2Error, 413: V2Error, 415: V2Error, 500: V2Error, 503: V2Error, 504: V2Error };

const Tensor = Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer()) });
const ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(Tensor),
  outputs: Type.Array(Tensor),
});
const InferResponse = Type.Object({
  model_name: Type.String(),
  model_version: Type.String(),
  id: Type.Optional(Type.String()),
  outputs: Type.Array(
    Type.Object({
      name: Type.String(),
      datatype: Type.String(),
      shape: Type.Array(Type.Integer()),
      parameters: Type.Optional(Type.Object({ binary_data_size: Type.Integer() })),
      data: Type.Optional(Type.Array(Type.Number())),
    }),
  ),
});

const ModelParams = Type.Object({ model: ModelName });
const VersionParams = Type.Object({ model: ModelName, version: ModelVersion });
type Params = Static<typeof ModelParams> & { version?: string };

function shapeOf(m: LoadedModel): ModelShape {
  return { name: m.name, inputDim: inputDim(m.card), classes: m.card.labels.length, embeddingDim: m.card.embeddingDim };
}

export default async function v2Routes(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  // Raw bytes: the JSON is parsed by the handler, which also handles the binary extension's JSON-then-tensors body.
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.maxBodyBytes }, (_req, body, done) => done(null, body));

  // 200 and 400 without a body mean true and false; a 400 with a body is an error ({"error"}).
  const health = { tags: ['v2'], response: { 200: Type.Null(), 400: V2Error } };
  app.get('/v2/health/live', { config: { access: 'open' }, schema: { summary: 'v2 server live: 200 while the process runs', ...health } }, async (_req, reply) =>
    reply.code(200).send(),
  );
  app.get(
    '/v2/health/ready',
    { config: { access: 'open' }, schema: { summary: 'v2 server ready: 200 when every model is ready, 400 otherwise', ...health } },
    async (_req, reply) => reply.code(app.models.state === 'ready' && !app.serving.draining ? 200 : 400).send(),
  );

  app.get(
    '/v2',
    {
      schema: {
        summary: 'v2 server metadata',
        tags: ['v2'],
        response: { 200: Type.Object({ name: Type.String(), version: Type.String(), extensions: Type.Array(Type.String()) }), ...V2Errors },
      },
    },
    async () => ({ name: 'mlp-serve', version: PKG_VERSION, extensions: ['binary_tensor_data'] }),
  );

  const metadata = async (req: { params: Params }) => {
    const model = app.models.find(req.params.model, req.params.version);
    if (!model) lookupError(req.params);
    return modelMetadata(shapeOf(model!), app.models.versionsOf(model!.name).map((v) => v.version));
  };
  const lookupError = (p: Params): never => {
    if (app.models.versionsOf(p.model).length === 0) throw Errors.UNKNOWN_MODEL(p.model);
    throw Errors.UNKNOWN_VERSION(p.model, p.version ?? '');
  };
  const metaSchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 model metadata: input and output tensors (-1 = any batch size)',
    tags: ['v2'],
    params,
    response: { 200: ModelMetadata, ...V2Errors },
  });
  app.get<{ Params: Params }>('/v2/models/:model', { schema: metaSchema(ModelParams) }, metadata);
  app.get<{ Params: Params }>('/v2/models/:model/versions/:version', { schema: metaSchema(VersionParams) }, metadata);

  const modelReady = async (req: { params: Params }, reply: { code(n: number): { send(): unknown } }) => {
    const model = app.models.find(req.params.model, req.params.version);
    if (!model) lookupError(req.params);
    return reply.code(app.models.state === 'ready' && model!.batcher && !app.serving.draining ? 200 : 400).send();
  };
  const readySchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 model ready: 200 when the model (version) can infer, 400 otherwise',
    tags: ['v2'],
    params,
    response: { 200: Type.Null(), 400: V2Error, 401: V2Error, 404: V2Error },
  });
  app.get<{ Params: Params }>('/v2/models/:model/ready', { schema: readySchema(ModelParams) }, modelReady);
  app.get<{ Params: Params }>('/v2/models/:model/versions/:version/ready', { schema: readySchema(VersionParams) }, modelReady);

  const inferSchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 inference on preprocessed tensors',
    description:
      'Body: an $inference_request with one input "input", FP32 [n, C·H·W] (the image preprocessed as the model card ' +
      'says: resized, channel-major, normalised). Outputs "logits" [n, classes] and "embedding" [n, width], all unless ' +
      '`outputs` selects some. Binary tensor data extension: send Inference-Header-Content-Length and ' +
      '`parameters.binary_data_size` on the input; ask `parameters.binary_data_output` (request) or ' +
      '`parameters.binary_data` (output) for binary outputs.',
    tags: ['v2'],
    params,
    response: { 200: InferResponse, ...V2Errors },
  });
  const infer = async (req: { params: Params; body: unknown; headers: Record<string, string | string[] | undefined>; modelName?: string }, reply: import('fastify').FastifyReply) => {
    const model = app.models.resolve(req.params.model, req.params.version, reply);
    req.modelName = model.name;
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw Errors.INVALID_REQUEST('the request has no body: send an inference request object');
    const shape = shapeOf(model);
    const parsed = parseInferRequest(body, headerLength(req.headers['inference-header-content-length'], body.length), shape, config.maxFiles);
    const results = await runTensors(model, parsed.rows, {
      timeoutMs: config.requestTimeoutMs,
      remainingMs: () => config.requestTimeoutMs - reply.elapsedTime,
      metrics: app.metrics,
      signal: clientGone(reply),
    });
    const out = buildInferResponse({ name: model.name, version: model.version, classes: shape.classes, embeddingDim: shape.embeddingDim }, parsed, results);
    if (out.binary.length === 0) return out.json;
    const head = Buffer.from(JSON.stringify(out.json), 'utf8');
    reply.header('inference-header-content-length', String(head.length)).type('application/octet-stream');
    return reply.send(Buffer.concat([head, ...out.binary]));
  };
  app.post<{ Params: Params }>('/v2/models/:model/infer', { config: { inference: true }, schema: inferSchema(ModelParams) }, infer);
  app.post<{ Params: Params }>('/v2/models/:model/versions/:version/infer', { config: { inference: true }, schema: inferSchema(VersionParams) }, infer);
}
