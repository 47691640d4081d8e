// The handlers of inference.GRPCInferenceService over the app's own state: the same models and batchers, admission
// control (MAX_INFLIGHT_REQUESTS counts HTTP and gRPC together), API keys (metadata `authorization: Bearer KEY` or
// `x-api-key`), metrics (protocol="grpc") and draining as the HTTP routes. Every failure is a public error of
// src/serve/errors.ts answered with its gRPC status (grpcStatusOf), never an internal message.

import { performance } from 'node:perf_hooks';
import type { Metadata, sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { Errors, GrpcStatus, grpcStatusOf, toPublicError, type GrpcStatusName } from '../errors.js';
import { outcomeOf } from '../metrics.js';
import { inferenceKeyCheck, presentedKey } from '../plugins/security.js';
import { SERVER_METADATA } from '../routes/v2.js';
import { bad, modelMetadata, runInfer, shapeOf } from '../v2/core.js';
import { buildGrpcResponse, grpcTensorMetadata, parseGrpcInfer, type ModelInferRequest } from './codec.js';

/** What the deserializer hands over for bytes that are not a valid message (so the answer is INVALID_ARGUMENT). */
export class Undecodable {
  constructor(readonly message: string) {}
}

const SERVICE = '/inference.GRPCInferenceService/';

interface CallContext {
  /** When the call arrived (performance.now()). */
  t0: number;
  /** The model an inference call resolved (metrics label). */
  model?: string;
}

type Handler<Req> = (req: Req, call: ServerUnaryCall<Req, unknown>, ctx: CallContext) => Promise<object>;

function metadataKey(md: Metadata): string | undefined {
  const first = (k: string) => {
    const v = md.get(k)[0];
    return typeof v === 'string' ? v : undefined;
  };
  return presentedKey({ headers: { authorization: first('authorization'), 'x-api-key': first('x-api-key') } });
}

/** The deadline left for a call: the server's REQUEST_TIMEOUT_MS from arrival, or the client's, whichever is first. */
function remaining(call: ServerUnaryCall<unknown, unknown>, t0: number, timeoutMs: number): () => number {
  const d = call.getDeadline();
  const clientEnd = d instanceof Date ? d.getTime() : d; // epoch ms, or Infinity without a deadline
  return () => Math.min(timeoutMs - (performance.now() - t0), clientEnd - Date.now());
}

export function grpcService(app: FastifyInstance): UntypedServiceImplementation {
  const config = app.config;
  const metrics = app.metrics;
  const allowed = inferenceKeyCheck(config);

  const unary =
    <Req>(method: string, access: 'open' | 'inference', fn: Handler<Req>) =>
    (call: ServerUnaryCall<Req | Undecodable, unknown>, callback: sendUnaryData<object>) => {
      const t0 = performance.now();
      const ctx: CallContext = { t0 };
      const done = (code: GrpcStatusName | 'OK', status: number, reason?: string) => {
        metrics.grpcRequestDuration.observe({ method, code }, (performance.now() - t0) / 1000);
        if (method !== 'ModelInfer') return;
        const model = ctx.model ?? 'unknown';
        metrics.requestsTotal.inc({ route: SERVICE + method, model, outcome: code === 'CANCELLED' ? 'cancelled' : outcomeOf(status), protocol: 'grpc' });
        if (reason && status !== 500) metrics.rejectionsTotal.inc({ model, reason, protocol: 'grpc' });
      };
      (async () => {
        if (call.request instanceof Undecodable) throw bad(`the message is not a valid inference.${method}Request: ${call.request.message}`);
        if (access === 'inference' && !allowed(metadataKey(call.metadata))) throw Errors.UNAUTHORIZED();
        return fn(call.request, call as ServerUnaryCall<Req, unknown>, ctx);
      })().then(
        (res) => {
          done('OK', 200);
          callback(null, res);
        },
        (err: unknown) => {
          const pub = toPublicError(err, config);
          const code = grpcStatusOf(pub);
          if (pub.status >= 500 && !['QUEUE_FULL', 'NOT_READY', 'OVERLOADED', 'SHUTTING_DOWN'].includes(pub.code)) app.log.error({ err, method }, 'gRPC call failed');
          done(code, pub.status, pub.code.toLowerCase());
          callback({ code: GrpcStatus[code], details: pub.message });
        },
      );
    };

  const lookup = (name: string, version: string) => {
    if (name === '') throw bad('name the model: the model name is empty');
    const v = version === '' ? undefined : version;
    const model = app.models.find(name, v);
    if (model) return model;
    if (app.models.versionsOf(name).length === 0) throw Errors.UNKNOWN_MODEL(name);
    throw Errors.UNKNOWN_VERSION(name, version);
  };
  const serverReady = () => app.models.state === 'ready' && !app.serving.draining;

  return {
    ServerLive: unary('ServerLive', 'open', async () => ({ live: true })),
    ServerReady: unary('ServerReady', 'open', async () => ({ ready: serverReady() })),
    ServerMetadata: unary('ServerMetadata', 'inference', async () => ({ ...SERVER_METADATA })),
    ModelReady: unary<{ name: string; version: string }>('ModelReady', 'inference', async (req) => {
      const model = lookup(req.name, req.version);
      return { ready: serverReady() && model.batcher !== undefined };
    }),
    ModelMetadata: unary<{ name: string; version: string }>('ModelMetadata', 'inference', async (req) => {
      const model = lookup(req.name, req.version);
      const meta = modelMetadata(model, app.models.versionsOf(model.name).map((v) => v.version));
      return { ...meta, inputs: meta.inputs.map(grpcTensorMetadata), outputs: meta.outputs.map(grpcTensorMetadata) };
    }),
    ModelInfer: unary<ModelInferRequest>('ModelInfer', 'inference', async (req, call, ctx) => {
      if (app.serving.draining) throw Errors.SHUTTING_DOWN();
      const release = app.admission.enter();
      let unlease: (() => void) | undefined;
      const gone = new AbortController();
      const onCancel = () => gone.abort();
      call.on('cancelled', onCancel);
      try {
        if (req.model_name === '') throw bad('name the model: model_name is empty');
        // The lease keeps the version's generation (its workers) alive through a reload until this call is answered.
        const model = app.models.resolve(req.model_name, req.model_version === '' ? undefined : req.model_version, (r) => (unlease = r));
        ctx.model = model.name;
        const parsed = parseGrpcInfer(req, shapeOf(model), config.maxFiles);
        const tensors = await runInfer(model, parsed, {
          timeoutMs: config.requestTimeoutMs,
          remainingMs: remaining(call, ctx.t0, config.requestTimeoutMs),
          metrics,
          signal: gone.signal,
        });
        return buildGrpcResponse(model, parsed.id, tensors, parsed.raw);
      } finally {
        call.removeListener('cancelled', onCancel);
        unlease?.();
        release();
      }
    }),
  };
}
