// The Open Inference Protocol (KServe v2 REST): server and model health, metadata, and inference on preprocessed
// tensors through the same batchers as /classify and /embed. Shaped for the clients people use: health answers
// carry KServe's bodies ({"live": true}, {"ready": bool}, 503 when not ready); an inference body with no
// Content-Type (Triton's tritonclient.http) is read as JSON, or as the binary extension when
// Inference-Header-Content-Length is present; gzip/deflate bodies are decompressed within MAX_BODY_BYTES.
// Errors are `{"error": "..."}` (the app's error handler formats every /v2 route so).
// An encapsulated plugin: the body parser registered here serves only these routes (elsewhere JSON is a 415).

import { readFileSync } from 'node:fs';
import { gunzip, inflate, inflateRaw } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../../config.js';
import { holdUntilClosed } from '../closed.js';
import { Errors } from '../errors.js';
import { clientGone } from '../plugins/limits.js';
import { ModelName, ModelVersion } from '../schemas.js';
import { modelMetadata, runInfer, shapeOf } from '../v2/core.js';
import { buildInferResponse, headerLength, parseInferRequest } from '../v2/http.js';

export const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** What GET /v2 and the gRPC ServerMetadata answer. */
export const SERVER_METADATA = Object.freeze({ name: 'mlp-serve', version: PKG_VERSION, extensions: ['binary_tensor_data'] });

const V2Error = Type.Object({ error: Type.String() }, { description: 'Every /v2 error: {"error": message}.' });
const V2Errors = { 400: V2Error, 401: V2Error, 404: V2Error, 413: V2Error, 415: V2Error, 500: V2Error, 503: V2Error, 504: V2Error };

const Param = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const Tensor = Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer()), parameters: Type.Optional(Type.Record(Type.String(), Param)) });
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

const V2_TYPES = /^application\/(json|octet-stream)$/i;

/** Decompresses a body sent with Content-Encoding, never past `limit` bytes (a zip bomb is a 413, not an OOM). */
function decode(body: Buffer, encoding: string | undefined, limit: number): Promise<Buffer> {
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  if (enc === 'identity' || enc === '') return Promise.resolve(body);
  const run = (f: typeof gunzip): Promise<Buffer> =>
    new Promise((resolve, reject) =>
      f(body, { maxOutputLength: limit }, (err, out) => {
        if (!err) return resolve(out);
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return reject(Errors.PAYLOAD_TOO_LARGE(limit));
        reject(Errors.INVALID_REQUEST(`the request body is not valid ${enc} data (Content-Encoding: ${enc})`));
      }),
    );
  if (enc === 'gzip' || enc === 'x-gzip') return run(gunzip);
  // "deflate" is zlib-wrapped by the HTTP specification; some clients send the raw stream.
  if (enc === 'deflate') return run(inflate).catch((err: unknown) => ((err as { code?: string }).code === 'PAYLOAD_TOO_LARGE' ? Promise.reject(err) : run(inflateRaw)));
  return Promise.reject(Errors.UNSUPPORTED_MEDIA_TYPE(`Content-Encoding ${JSON.stringify(enc.slice(0, 40))} is not supported; send gzip, deflate or identity`));
}

export default async function v2Routes(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  // Raw bytes for every v2 body: JSON, JSON followed by binary tensors, or no Content-Type at all (Triton's HTTP
  // client sends none); the handler tells them apart by Inference-Header-Content-Length.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.maxBodyBytes }, (req, body, done) => {
    const type = req.headers['content-type']?.split(';')[0].trim();
    if (type && !V2_TYPES.test(type))
      return done(Errors.UNSUPPORTED_MEDIA_TYPE('send the inference request as application/json, application/octet-stream (binary tensor data), or with no Content-Type'));
    decode(body as Buffer, req.headers['content-encoding'], config.maxBodyBytes).then(
      (b) => done(null, b),
      (err: Error) => done(err),
    );
  });

  const live = Type.Object({ live: Type.Boolean() });
  const ready = Type.Object({ ready: Type.Boolean() });
  app.get(
    '/v2/health/live',
    { config: { access: 'open' }, schema: { summary: 'v2 server live: 200 {"live": true} while the process runs', tags: ['v2'], response: { 200: live } } },
    async () => ({ live: true }),
  );
  app.get(
    '/v2/health/ready',
    {
      config: { access: 'open' },
      schema: { summary: 'v2 server ready: 200 {"ready": true} when every model is ready, 503 {"ready": false} otherwise', tags: ['v2'], response: { 200: ready, 503: ready } },
    },
    async (_req, reply) => {
      const ok = app.models.state === 'ready' && !app.serving.draining;
      return reply.code(ok ? 200 : 503).send({ ready: ok });
    },
  );

  const serverSchema = (hide: boolean) => ({
    summary: 'v2 server metadata',
    tags: ['v2'],
    hide,
    response: { 200: Type.Object({ name: Type.String(), version: Type.String(), extensions: Type.Array(Type.String()) }), ...V2Errors },
  });
  app.get('/v2', { schema: serverSchema(false) }, async () => SERVER_METADATA);
  // The specification's OpenAPI document names the server metadata path `/v2/`.
  app.get('/v2/', { schema: serverSchema(true) }, async () => SERVER_METADATA);

  const lookupError = (p: Params): never => {
    if (app.models.versionsOf(p.model).length === 0) throw Errors.UNKNOWN_MODEL(p.model);
    throw Errors.UNKNOWN_VERSION(p.model, p.version ?? '');
  };
  const metadata = async (req: { params: Params }) => {
    const model = app.models.find(req.params.model, req.params.version) ?? lookupError(req.params);
    return modelMetadata(model, app.models.versionsOf(model.name).map((v) => v.version));
  };
  const metaSchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 model metadata: input and output tensors (-1 = any batch size); the input\'s parameters say how to preprocess an image',
    tags: ['v2'],
    params,
    response: { 200: ModelMetadata, ...V2Errors },
  });
  app.get<{ Params: Params }>('/v2/models/:model', { schema: metaSchema(ModelParams) }, metadata);
  app.get<{ Params: Params }>('/v2/models/:model/versions/:version', { schema: metaSchema(VersionParams) }, metadata);

  const modelReady = async (req: { params: Params }, reply: FastifyReply) => {
    const model = app.models.find(req.params.model, req.params.version) ?? lookupError(req.params);
    const ok = app.models.state === 'ready' && model.batcher !== undefined && !app.serving.draining;
    return reply.code(ok ? 200 : 503).send({ name: model.name, ready: ok });
  };
  const modelReadyBody = Type.Object({ name: Type.String(), ready: Type.Boolean() });
  const readySchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 model ready: 200 {"name", "ready": true} when the model (version) can infer, 503 with "ready": false otherwise',
    tags: ['v2'],
    params,
    response: { 200: modelReadyBody, 503: modelReadyBody, 400: V2Error, 401: V2Error, 404: V2Error },
  });
  app.get<{ Params: Params }>('/v2/models/:model/ready', { schema: readySchema(ModelParams) }, modelReady);
  app.get<{ Params: Params }>('/v2/models/:model/versions/:version/ready', { schema: readySchema(VersionParams) }, modelReady);

  const inferSchema = (params: typeof ModelParams | typeof VersionParams) => ({
    summary: 'v2 inference on preprocessed tensors',
    description:
      'Body: an $inference_request with one input "input", FP32 [n, C·H·W] (the image preprocessed as the model ' +
      'metadata\'s input parameters say: resized, channel-major, normalised). Outputs "logits" [n, classes] and ' +
      '"embedding" [n, width], all unless `outputs` selects some. Content-Type application/json, ' +
      'application/octet-stream or none; Content-Encoding gzip or deflate accepted. Binary tensor data extension: ' +
      'send Inference-Header-Content-Length and `parameters.binary_data_size` on the input; ask ' +
      '`parameters.binary_data_output` (request) or `parameters.binary_data` (output) for binary outputs. ' +
      'Inference-Header-Content-Length: 0 makes the whole body the input\'s FP32 bytes (a raw binary request).',
    tags: ['v2'],
    params,
    response: { 200: InferResponse, ...V2Errors },
  });
  const infer = async (req: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const model = app.models.resolve(req.params.model, req.params.version, holdUntilClosed(reply));
    req.modelName = model.name;
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw Errors.INVALID_REQUEST('the request has no body: send an inference request object');
    const parsed = parseInferRequest(body, headerLength(req.headers['inference-header-content-length'], body.length), shapeOf(model), config.maxFiles);
    const tensors = await runInfer(model, parsed, {
      timeoutMs: config.requestTimeoutMs,
      remainingMs: () => config.requestTimeoutMs - reply.elapsedTime,
      metrics: app.metrics,
      signal: clientGone(reply),
    });
    const out = buildInferResponse(model, parsed.id, tensors);
    if (out.binary.length === 0) return out.json;
    const head = Buffer.from(JSON.stringify(out.json), 'utf8');
    reply.header('inference-header-content-length', String(head.length)).type('application/octet-stream');
    return reply.send(Buffer.concat([head, ...out.binary]));
  };
  app.post<{ Params: Params }>('/v2/models/:model/infer', { config: { inference: true }, schema: inferSchema(ModelParams) }, infer);
  app.post<{ Params: Params }>('/v2/models/:model/versions/:version/infer', { config: { inference: true }, schema: inferSchema(VersionParams) }, infer);
}
