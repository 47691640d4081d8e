// Every error the API can answer with, in one table (code, message, status), and the one function that turns any
// thrown error into the public body {"error":{"code","message"}}. Nothing else reaches a client: no stack trace, no
// file path, no library message that could carry either. Client mistakes are 4xx; 5xx only for our own faults
// (a worker that died, a failed run) and load shedding (503 with Retry-After, 504 past the deadline). The gRPC
// service answers the same errors with the status code grpcStatusOf gives.

import createError from '@fastify/error';
import { ImageDecodeError } from '../data/preprocess.js';
import { ClientGoneError, DeadlineError, QueueFullError } from './batcher.js';
import { InferenceError, WorkerCrashedError } from './worker-pool.js';

export const Errors = {
  INVALID_PARAMETER: createError<'INVALID_PARAMETER', 400, [string]>('INVALID_PARAMETER', '%s', 400),
  INVALID_REQUEST: createError<'INVALID_REQUEST', 400, [string]>('INVALID_REQUEST', '%s', 400),
  EMPTY_BODY: createError<'EMPTY_BODY', 400, []>('EMPTY_BODY', 'the request has no image: send the image bytes as the body, or multipart/form-data file parts', 400),
  NO_FILE: createError<'NO_FILE', 400, []>('NO_FILE', 'the multipart request has no file part', 400),
  EMPTY_FILE: createError<'EMPTY_FILE', 400, [number]>('EMPTY_FILE', 'file part %d is empty', 400),
  MALFORMED_MULTIPART: createError<'MALFORMED_MULTIPART', 400, []>('MALFORMED_MULTIPART', 'the multipart body is malformed or incomplete', 400),
  UNDECODABLE_IMAGE: createError<'UNDECODABLE_IMAGE', 400, [string]>('UNDECODABLE_IMAGE', '%s', 400),
  UNKNOWN_MODEL: createError<'UNKNOWN_MODEL', 404, [string]>('UNKNOWN_MODEL', 'no model named "%s"; GET /models lists them', 404),
  UNKNOWN_VERSION: createError<'UNKNOWN_VERSION', 404, [string, string]>('UNKNOWN_VERSION', 'model "%s" has no version "%s" being served; GET /models lists them', 404),
  UNAUTHORIZED: createError<'UNAUTHORIZED', 401, []>('UNAUTHORIZED', 'a valid API key is required (Authorization: Bearer KEY, or X-API-Key)', 401),
  FORBIDDEN: createError<'FORBIDDEN', 403, [string]>('FORBIDDEN', '%s', 403),
  REQUEST_TIMEOUT: createError<'REQUEST_TIMEOUT', 408, []>('REQUEST_TIMEOUT', 'the request was not received in time', 408),
  INVALID_TRAINING_SET: createError<'INVALID_TRAINING_SET', 400, [string]>('INVALID_TRAINING_SET', '%s', 400),
  UNKNOWN_JOB: createError<'UNKNOWN_JOB', 404, [string]>('UNKNOWN_JOB', 'no probe job "%s" (jobs are kept in memory until the server restarts)', 404),
  MODEL_NAME_TAKEN: createError<'MODEL_NAME_TAKEN', 409, [string]>('MODEL_NAME_TAKEN', '%s', 409),
  PROBE_QUEUE_FULL: createError<'PROBE_QUEUE_FULL', 503, [string, number]>('PROBE_QUEUE_FULL', 'base model %s already has %d probe jobs waiting; retry later', 503),
  RELOAD_IN_PROGRESS: createError<'RELOAD_IN_PROGRESS', 409, []>('RELOAD_IN_PROGRESS', 'a model reload is already running; retry when it is done', 409),
  TOO_MANY_FRAMES: createError<'TOO_MANY_FRAMES', 413, [string]>('TOO_MANY_FRAMES', '%s', 413),
  BATCH_TOO_LARGE: createError<'BATCH_TOO_LARGE', 413, [number]>('BATCH_TOO_LARGE', 'at most %d images per request', 413),
  RELOAD_FAILED: createError<'RELOAD_FAILED', 422, [string]>('RELOAD_FAILED', 'the reload was refused and the models served are unchanged: %s', 422),
  RATE_LIMITED: createError<'RATE_LIMITED', 429, [number]>('RATE_LIMITED', 'too many requests from this client; retry in %d s', 429),
  HEADERS_TOO_LARGE: createError<'HEADERS_TOO_LARGE', 431, []>('HEADERS_TOO_LARGE', 'the request headers are too large', 431),
  // Never seen by a client (it has gone); the code labels the metrics and the log.
  CLIENT_GONE: createError<'CLIENT_GONE', 499, []>('CLIENT_GONE', 'the client closed the connection before the answer', 499),
  OVERLOADED: createError<'OVERLOADED', 503, []>('OVERLOADED', 'the server is at capacity; retry shortly', 503),
  NOT_FOUND: createError<'NOT_FOUND', 404, []>('NOT_FOUND', 'no such route; GET /docs/json lists the API', 404),
  PAYLOAD_TOO_LARGE: createError<'PAYLOAD_TOO_LARGE', 413, [number]>('PAYLOAD_TOO_LARGE', 'the request body is over the limit of %d bytes', 413),
  TOO_MANY_FILES: createError<'TOO_MANY_FILES', 413, [number]>('TOO_MANY_FILES', 'at most %d files per request', 413),
  TOO_MANY_PIXELS: createError<'TOO_MANY_PIXELS', 413, [string]>('TOO_MANY_PIXELS', '%s', 413),
  UNSUPPORTED_MEDIA_TYPE: createError<'UNSUPPORTED_MEDIA_TYPE', 415, [string]>('UNSUPPORTED_MEDIA_TYPE', '%s', 415),
  INFERENCE_FAILED: createError<'INFERENCE_FAILED', 500, []>('INFERENCE_FAILED', 'inference failed', 500),
  INTERNAL: createError<'INTERNAL', 500, []>('INTERNAL', 'internal error', 500),
  NOT_READY: createError<'NOT_READY', 503, []>('NOT_READY', 'models are still loading; retry shortly', 503),
  QUEUE_FULL: createError<'QUEUE_FULL', 503, [string]>('QUEUE_FULL', 'model %s is at capacity; retry shortly', 503),
  SHUTTING_DOWN: createError<'SHUTTING_DOWN', 503, []>('SHUTTING_DOWN', 'the server is shutting down; retry on another instance', 503),
  WORKER_RESTARTING: createError<'WORKER_RESTARTING', 503, []>('WORKER_RESTARTING', 'the inference worker restarted while running this request; retry it', 503),
  DEADLINE_EXCEEDED: createError<'DEADLINE_EXCEEDED', 504, [number]>('DEADLINE_EXCEEDED', 'the request did not complete within %d ms', 504),
} as const;

/** When each code is answered, for docs/errors.md (a code added to the table without a line here fails to compile). */
export const ERROR_MEANINGS: { readonly [C in keyof typeof Errors]: string } = {
  INVALID_PARAMETER: 'A query or path parameter or a JSON field fails its schema (`top_k=-3`, a path-like `model=../x`); the message names the field.',
  INVALID_REQUEST: 'A request that cannot be processed: a Content-Length that does not match the body, an unparsable HTTP request, a bad `/v2` tensor.',
  EMPTY_BODY: 'No image in the request: no body, or an empty one.',
  NO_FILE: 'A multipart request without a file part.',
  EMPTY_FILE: 'A multipart file part without bytes.',
  MALFORMED_MULTIPART: 'A multipart body cut short or not following the format.',
  UNDECODABLE_IMAGE: 'The bytes are not an image, or a truncated or corrupt one.',
  UNKNOWN_MODEL: 'No model of that name is served (`GET /models` lists them).',
  UNKNOWN_VERSION: 'The model is served, but not at the version pinned by `?version=` or `/versions/{v}`.',
  UNAUTHORIZED: '`API_KEYS` is set and the request has no valid key.',
  FORBIDDEN: 'An `/admin` route called without an admin key (or with no `ADMIN_API_KEYS` configured).',
  REQUEST_TIMEOUT: 'The request (headers and body) did not arrive within `REQUEST_TIMEOUT_MS`: a slow upload.',
  INVALID_TRAINING_SET: 'A probe upload the head cannot be fitted on: fewer than 2 labels, fewer than 5 images for a label, more than `PROBE_MAX_IMAGES`; the message says which.',
  UNKNOWN_JOB: 'No probe job with that id (`GET /admin/jobs/{id}`); ids do not survive a restart.',
  MODEL_NAME_TAKEN: 'A probe asked to write a model whose name is served from the flat layout (`MODELS_DIR/NAME/model.json`), which cannot take versions.',
  PROBE_QUEUE_FULL: 'The base model already has `PROBE_QUEUE_MAX` probe jobs waiting; with `Retry-After`.',
  RELOAD_IN_PROGRESS: 'A model reload was asked for while one (or start-up) is still loading.',
  TOO_MANY_FRAMES: 'An animated or multi-page image declares more than `MAX_FRAMES` frames (read from its header).',
  BATCH_TOO_LARGE: 'A `/v2` infer request with more than `MAX_FILES` images.',
  RELOAD_FAILED: 'The reload found a bad card or a model onnxruntime cannot open; nothing changed, the message names the file.',
  RATE_LIMITED: 'More than `RATE_LIMIT_MAX` requests from this client in `RATE_LIMIT_WINDOW_MS`; `Retry-After` says when to retry.',
  HEADERS_TOO_LARGE: 'The request line and headers are over `MAX_HEADER_BYTES`.',
  CLIENT_GONE: 'Never sent: the client closed the connection before the answer. Labels the metrics and the log.',
  OVERLOADED: 'More than `MAX_INFLIGHT_REQUESTS` inference requests at once; refused before the body is read, with `Retry-After`.',
  NOT_FOUND: 'No such route (`GET /docs/json` lists the API).',
  PAYLOAD_TOO_LARGE: 'The body (or the sum of the multipart files) is over `MAX_BODY_BYTES`.',
  TOO_MANY_FILES: 'More than `MAX_FILES` file parts in a multipart request.',
  TOO_MANY_PIXELS: 'An image over `MAX_PIXELS` (width × height, read from its header before decoding).',
  UNSUPPORTED_MEDIA_TYPE: 'A content type that is not an image, octet-stream or multipart (JSON, text), or SVG/PDF without `ALLOW_VECTOR_IMAGES`.',
  INFERENCE_FAILED: 'onnxruntime failed a batch: a fault of ours, logged with its details.',
  INTERNAL: 'Any other fault of ours, logged with its details; the answer carries none.',
  NOT_READY: 'The models are still loading (or failed to load: `/readyz` says which); with `Retry-After`.',
  QUEUE_FULL: "The model's queue holds `QUEUE_MAX` images; load is shed with `Retry-After`.",
  SHUTTING_DOWN: 'The server is draining after SIGTERM/SIGINT; retry on another instance.',
  WORKER_RESTARTING: 'The inference worker running the batch died; it is being replaced, and the request may be retried.',
  DEADLINE_EXCEEDED: 'Not answered within `REQUEST_TIMEOUT_MS` of arrival.',
};

const UNSUPPORTED_TYPE_MESSAGE =
  'send the image as image/* or application/octet-stream, or as multipart/form-data file parts';

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 1;

export interface PublicError {
  status: number;
  code: string;
  message: string;
  /** Seconds for the Retry-After header, on 503s. */
  retryAfter?: number;
}

interface ErrorLike {
  code?: unknown;
  statusCode?: unknown;
  validation?: unknown;
  validationContext?: unknown;
  message?: unknown;
}

/** Maps anything thrown while handling a request to what the client may see. */
export function toPublicError(err: unknown, limits: { maxBodyBytes: number; maxFiles: number }): PublicError {
  const pub = classify(err, limits);
  return pub.status === 503 ? { ...pub, retryAfter: RETRY_AFTER_SECONDS } : pub;
}

function of(e: { code: string; statusCode: number; message: string }): PublicError {
  return { status: e.statusCode, code: e.code, message: e.message };
}

function classify(err: unknown, limits: { maxBodyBytes: number; maxFiles: number }): PublicError {
  if (err instanceof ImageDecodeError) {
    if (err.kind === 'too_many_pixels') return of(Errors.TOO_MANY_PIXELS(err.message));
    if (err.kind === 'too_many_frames') return of(Errors.TOO_MANY_FRAMES(err.message));
    if (err.kind === 'unsupported_format') return of(Errors.UNSUPPORTED_MEDIA_TYPE(err.message));
    return of(Errors.UNDECODABLE_IMAGE(err.message));
  }
  if (err instanceof QueueFullError) return of(Errors.QUEUE_FULL(err.model));
  if (err instanceof DeadlineError) return of(Errors.DEADLINE_EXCEEDED(err.timeoutMs));
  if (err instanceof ClientGoneError) return of(Errors.CLIENT_GONE());
  if (err instanceof WorkerCrashedError) return of(Errors.WORKER_RESTARTING());
  if (err instanceof InferenceError) return of(Errors.INFERENCE_FAILED());

  const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorLike;
  const code = typeof e.code === 'string' ? e.code : '';
  if (code in Errors && typeof e.statusCode === 'number' && typeof e.message === 'string')
    return { status: e.statusCode, code, message: e.message };
  // Schema validation: fastify's message names the part and field ("querystring/top_k must be >= 1").
  if (Array.isArray(e.validation) && typeof e.message === 'string') return of(Errors.INVALID_PARAMETER(e.message));
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return of(Errors.PAYLOAD_TOO_LARGE(limits.maxBodyBytes));
    case 'FST_FILES_LIMIT':
      return of(Errors.TOO_MANY_FILES(limits.maxFiles));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_EMPTY_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return of(Errors.UNSUPPORTED_MEDIA_TYPE(UNSUPPORTED_TYPE_MESSAGE));
    case 'FST_MP_PREMATURE_CLOSE':
    case 'FST_PROTO_VIOLATION':
      return of(Errors.MALFORMED_MULTIPART());
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return of(Errors.INVALID_REQUEST('the Content-Length header does not match the body'));
  }
  // Any other client error fastify raised: keep its status, not its wording (it may name internals).
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return { status: e.statusCode, code: 'INVALID_REQUEST', message: 'the request could not be processed' };
  return of(Errors.INTERNAL());
}

export { UNSUPPORTED_TYPE_MESSAGE };

/**
 * The body of an error answer. The Open Inference Protocol (KServe v2) routes answer `{"error": message}` as that
 * specification requires; every other route `{"error":{"code","message"}}`.
 */
export function errorBody(pub: Pick<PublicError, 'code' | 'message'>, url: string): { error: string } | { error: { code: string; message: string } } {
  return isV2Url(url) ? { error: pub.message } : { error: { code: pub.code, message: pub.message } };
}

/** Whether a request URL belongs to the Open Inference Protocol routes (`/v2` and below). */
export function isV2Url(url: string): boolean {
  return url === '/v2' || url.startsWith('/v2/') || url.startsWith('/v2?');
}

/** gRPC status codes (the protocol's numbers), for the public errors the gRPC service answers with. */
export const GrpcStatus = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusName = keyof typeof GrpcStatus;

/** The gRPC status of a public error: the same decision as its HTTP status, in gRPC's terms. */
export function grpcStatusOf(pub: Pick<PublicError, 'status'>): GrpcStatusName {
  switch (pub.status) {
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'NOT_FOUND';
    case 429:
      return 'RESOURCE_EXHAUSTED';
    case 499:
      return 'CANCELLED';
    case 503:
      return 'UNAVAILABLE';
    case 504:
      return 'DEADLINE_EXCEEDED';
  }
  return pub.status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
}
