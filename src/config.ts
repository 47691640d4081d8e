// The service's whole configuration: one typed, frozen object read from the environment once at start-up.
// Every variable is validated here, and a bad value fails start-up with a message naming the variable, so nothing
// deeper in the code ever sees a string it has to re-check.

import { availableParallelism } from 'node:os';

export type ExecutionProvider = 'cuda' | 'cpu' | 'webgpu' | 'tensorrt';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** How a batch is closed: after a fixed delay, or from the learned batch cost and a latency target. */
export type BatchPolicyName = 'fixed' | 'adaptive';
/** What a model that cannot be loaded does to start-up (and to a reload): stop it, or be skipped with a warning. */
export type ModelLoadPolicy = 'fail' | 'skip-bad';

export interface Config {
  /** TCP port to listen on (0 picks a free one). Default 8080. */
  port: number;
  /** Interface to bind. Default 0.0.0.0. */
  host: string;
  /** Directory whose sub-directories each hold one model (model.onnx + model.json). Default `models`. */
  modelsDir: string;
  /** Model served when a request names none; undefined = the only model, else the first alphabetically. */
  defaultModel: string | undefined;
  /** Largest batch handed to onnxruntime; 1 turns batching off. Default 32. */
  batchMaxSize: number;
  /** Longest a request waits for companions, counted from the oldest queued request. Default 5 ms. */
  batchMaxDelayMs: number;
  /** `fixed`: a partial batch leaves BATCH_MAX_DELAY_MS after its oldest request; `adaptive`: it waits only while
   *  the learned batch cost and arrival rate say more requests will join before LATENCY_TARGET_MS. Default adaptive (npm run bench:serve compares both). */
  batchPolicy: BatchPolicyName;
  /** adaptive: queue wait + batch run time an image should stay under. Default 20 ms. */
  latencyTargetMs: number;
  /** Images waiting per model beyond which requests are shed with 503 + Retry-After. Default 1024. */
  queueMax: number;
  /** Deadline of one request from arrival; past it the answer is 504. Default 10000 ms. */
  requestTimeoutMs: number;
  /** Providers tried in order; a GPU provider that cannot start falls back to the next one. Default cuda,cpu. */
  executionProviders: readonly ExecutionProvider[];
  /** Fail start-up instead of falling back to CPU when the GPU provider cannot start. Default false. */
  requireGpu: boolean;
  /** onnxruntime intra-op threads per session. Default: half the cores over INFERENCE_WORKERS, at least 1 (1 on a
   *  2-core machine); see defaultIntraOpThreads. */
  ortIntraOpThreads: number;
  /** onnxruntime inter-op threads per session (only used by the parallel execution mode). Default 1. */
  ortInterOpThreads: number;
  /** worker_threads each holding a session per model; batches go to a free one. Default 1. */
  inferenceWorkers: number;
  /** libuv thread pool size (sharp decodes on it). Only readable here: libuv reads it from the environment
   *  before any JavaScript runs, so it must be set where the process is started. Default 4 (libuv's). */
  uvThreadpoolSize: number;
  /** Largest request body: a raw image, or the sum of a multipart request's files. Default 10 MiB. */
  maxBodyBytes: number;
  /** Most file parts in one multipart request. Default 64. */
  maxFiles: number;
  /** Largest source image (width × height) decoded; larger ones are refused from their header. Default 40 MP. */
  maxPixels: number;
  /** After SIGTERM/SIGINT: time to finish accepted requests before exiting anyway. Default 10000 ms. */
  shutdownGraceMs: number;
  /** pino log level. Default info. */
  logLevel: LogLevel;

  // ------------------------------------------------------------------ security and limits (issue 7)
  /** Keys accepted for inference and model metadata (Authorization: Bearer KEY, or X-API-Key). Empty = open. */
  apiKeys: readonly string[];
  /** Keys accepted for /admin routes (and for everything else). Empty = admin routes refused. */
  adminApiKeys: readonly string[];
  /** Requests per client (IP) per window; 0 turns rate limiting off. Default 0. */
  rateLimitMax: number;
  /** Rate-limit window. Default 60000 ms. */
  rateLimitWindowMs: number;
  /** Origins allowed by CORS (`*` for any); empty = no CORS headers at all. Default empty. */
  corsOrigins: readonly string[];
  /** Proxy hops whose X-Forwarded-For is trusted for the client IP (rate limiting); 0 = the socket's address. */
  trustProxyHops: number;
  /** Accept SVG/PDF (vector formats can reference other files); off by default. */
  allowVectorImages: boolean;
  /** Most frames (pages) an animated or multi-page image may declare; refused from the header. Default 1000. */
  maxFrames: number;
  /** Largest request head (request line + headers) in bytes; larger ones get 431. Default 16384. */
  maxHeaderBytes: number;
  /** Inference requests being read, decoded or queued at once; beyond it, 503 OVERLOADED. Default 256. */
  maxInflightRequests: number;

  // ------------------------------------------------------------------ model management (issue 7)
  /** A model that fails to load: `fail` stops start-up (default), `skip-bad` serves the others. */
  modelLoadPolicy: ModelLoadPolicy;
  /** Newest versions served per model (models/NAME/VERSION/); the newest answers unless a request pins one. */
  maxModelVersions: number;
  /** glibc's malloc mmap threshold in bytes, or undefined for glibc's dynamic one. Only readable here: glibc reads
   *  it at process start. Fixed (the image sets 131072), large buffers go back to the system when freed; with the
   *  dynamic threshold, resident memory grew by ~100 MB per hot reload under traffic (measured). */
  mallocMmapThreshold: number | undefined;
}

/** Every environment variable this module reads (the k8s manifests are checked against this list). */
export const CONFIG_ENV_VARS: readonly string[] = Object.freeze([
  'PORT',
  'HOST',
  'MODELS_DIR',
  'DEFAULT_MODEL',
  'BATCH_MAX_SIZE',
  'BATCH_MAX_DELAY_MS',
  'BATCH_POLICY',
  'LATENCY_TARGET_MS',
  'QUEUE_MAX',
  'REQUEST_TIMEOUT_MS',
  'EXECUTION_PROVIDERS',
  'REQUIRE_GPU',
  'ORT_INTRA_OP_THREADS',
  'ORT_INTER_OP_THREADS',
  'INFERENCE_WORKERS',
  'UV_THREADPOOL_SIZE',
  'MAX_BODY_BYTES',
  'MAX_FILES',
  'MAX_PIXELS',
  'SHUTDOWN_GRACE_MS',
  'LOG_LEVEL',
  'API_KEYS',
  'ADMIN_API_KEYS',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_WINDOW_MS',
  'CORS_ORIGINS',
  'TRUST_PROXY',
  'ALLOW_VECTOR_IMAGES',
  'MAX_FRAMES',
  'MAX_HEADER_BYTES',
  'MAX_INFLIGHT_REQUESTS',
  'MODEL_LOAD_POLICY',
  'MAX_MODEL_VERSIONS',
  'MALLOC_MMAP_THRESHOLD_',
]);

/** A variable with a bad value; the message names it and says what is accepted. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable} ${detail}`);
    this.name = 'ConfigError';
  }
}

const PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'cpu', 'webgpu', 'tensorrt'];
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type Env = Record<string, string | undefined>;

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const v = raw(env, name);
  if (v === undefined) return def;
  if (!/^-?\d+$/.test(v)) throw new ConfigError(name, `must be an integer, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string): boolean {
  const v = raw(env, name)?.toLowerCase();
  if (v === undefined || v === '0' || v === 'false' || v === 'no') return false;
  if (v === '1' || v === 'true' || v === 'yes') return true;
  throw new ConfigError(name, `must be 1/0 (or true/false), got "${v}"`);
}

function providers(env: Env): ExecutionProvider[] {
  const v = raw(env, 'EXECUTION_PROVIDERS') ?? 'cuda,cpu';
  const list = v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new ConfigError('EXECUTION_PROVIDERS', 'must name at least one provider');
  for (const p of list)
    if (!PROVIDERS.includes(p as ExecutionProvider))
      throw new ConfigError('EXECUTION_PROVIDERS', `has unknown provider "${p}"; known: ${PROVIDERS.join(', ')}`);
  if (new Set(list).size !== list.length) throw new ConfigError('EXECUTION_PROVIDERS', `lists a provider twice: "${v}"`);
  return list as ExecutionProvider[];
}

// A key is a secret: never echo it in a message, only its position in the list.
const KEY_RE = /^[\x21-\x7e]{16,256}$/;
const ORIGIN_RE = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;

function list(env: Env, name: string): string[] {
  const v = raw(env, name);
  return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
}

function keys(env: Env, name: string): string[] {
  const ks = list(env, name);
  ks.forEach((k, i) => {
    if (!KEY_RE.test(k)) throw new ConfigError(name, `key ${i + 1} must be 16 to 256 printable characters without spaces or commas`);
  });
  return ks;
}

function origins(env: Env): string[] {
  const os = list(env, 'CORS_ORIGINS');
  for (const o of os)
    if (o !== '*' && !ORIGIN_RE.test(o)) throw new ConfigError('CORS_ORIGINS', `has "${o}", which is not * or an origin like https://app.example.com`);
  return os;
}

function loadPolicy(env: Env): ModelLoadPolicy {
  const v = (raw(env, 'MODEL_LOAD_POLICY') ?? 'fail').toLowerCase();
  if (v !== 'fail' && v !== 'skip-bad') throw new ConfigError('MODEL_LOAD_POLICY', `must be fail or skip-bad, got "${v}"`);
  return v;
}

function batchPolicy(env: Env): BatchPolicyName {
  const v = (raw(env, 'BATCH_POLICY') ?? 'adaptive').toLowerCase();
  if (v !== 'fixed' && v !== 'adaptive') throw new ConfigError('BATCH_POLICY', `must be fixed or adaptive, got "${v}"`);
  return v;
}

/**
 * onnxruntime's share of the cores. Per image, decoding (sharp: ~1-1.4 ms of CPU even for a thumbnail) and HTTP
 * cost as much as or more than onnxruntime does for these MLPs at the batch sizes served (0.01-0.4 ms for one view,
 * 0.7-1 ms for the default model's 10 test-time-augmentation views: measured by `npm run bench:serve`), so half the
 * cores is enough for inference; on 2 cores that is one thread per session, which also never waits in a parallel
 * section for a thread the decoder holds.
 */
export function defaultIntraOpThreads(cores: number, inferenceWorkers: number): number {
  return Math.max(1, Math.floor(cores / (2 * inferenceWorkers)));
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const executionProviders = providers(env);
  const requireGpu = bool(env, 'REQUIRE_GPU');
  if (requireGpu && !executionProviders.some((p) => p === 'cuda' || p === 'tensorrt'))
    throw new ConfigError('REQUIRE_GPU', `is set but EXECUTION_PROVIDERS (${executionProviders.join(',')}) has no GPU provider`);

  const defaultModel = raw(env, 'DEFAULT_MODEL');
  if (defaultModel !== undefined && !MODEL_NAME_RE.test(defaultModel))
    throw new ConfigError('DEFAULT_MODEL', `"${defaultModel}" is not a model name (letters, digits, ._-)`);

  const logLevel = (raw(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel))
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);

  const inferenceWorkers = int(env, 'INFERENCE_WORKERS', 1, 1, 64);
  const cores = availableParallelism();

  const config: Config = {
    port: int(env, 'PORT', 8080, 0, 65535),
    host: raw(env, 'HOST') ?? '0.0.0.0',
    modelsDir: raw(env, 'MODELS_DIR') ?? 'models',
    defaultModel,
    batchMaxSize: int(env, 'BATCH_MAX_SIZE', 32, 1, 4096),
    batchMaxDelayMs: int(env, 'BATCH_MAX_DELAY_MS', 5, 0, 10_000),
    batchPolicy: batchPolicy(env),
    latencyTargetMs: int(env, 'LATENCY_TARGET_MS', 20, 1, 600_000),
    queueMax: int(env, 'QUEUE_MAX', 1024, 1, 1_000_000),
    requestTimeoutMs: int(env, 'REQUEST_TIMEOUT_MS', 10_000, 1, 3_600_000),
    executionProviders: Object.freeze(executionProviders),
    requireGpu,
    ortIntraOpThreads: int(env, 'ORT_INTRA_OP_THREADS', defaultIntraOpThreads(cores, inferenceWorkers), 1, 1024),
    ortInterOpThreads: int(env, 'ORT_INTER_OP_THREADS', 1, 1, 1024),
    inferenceWorkers,
    uvThreadpoolSize: int(env, 'UV_THREADPOOL_SIZE', 4, 1, 1024),
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 10 * 1024 * 1024, 1024, 2 ** 31 - 1),
    maxFiles: int(env, 'MAX_FILES', 64, 1, 10_000),
    maxPixels: int(env, 'MAX_PIXELS', 40_000_000, 1, 268_402_689),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 3_600_000),
    logLevel: logLevel as LogLevel,
    apiKeys: Object.freeze(keys(env, 'API_KEYS')),
    adminApiKeys: Object.freeze(keys(env, 'ADMIN_API_KEYS')),
    rateLimitMax: int(env, 'RATE_LIMIT_MAX', 0, 0, 1_000_000_000),
    rateLimitWindowMs: int(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1, 86_400_000),
    corsOrigins: Object.freeze(origins(env)),
    trustProxyHops: int(env, 'TRUST_PROXY', 0, 0, 32),
    allowVectorImages: bool(env, 'ALLOW_VECTOR_IMAGES'),
    maxFrames: int(env, 'MAX_FRAMES', 1000, 1, 1_000_000),
    maxHeaderBytes: int(env, 'MAX_HEADER_BYTES', 16_384, 1024, 1_048_576),
    maxInflightRequests: int(env, 'MAX_INFLIGHT_REQUESTS', 256, 1, 1_000_000),
    modelLoadPolicy: loadPolicy(env),
    maxModelVersions: int(env, 'MAX_MODEL_VERSIONS', 2, 1, 1000),
    mallocMmapThreshold: raw(env, 'MALLOC_MMAP_THRESHOLD_') === undefined ? undefined : int(env, 'MALLOC_MMAP_THRESHOLD_', 0, 0, 32 * 1024 * 1024),
  };
  return Object.freeze(config);
}
