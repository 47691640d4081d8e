// The service's whole configuration: one typed, frozen object read from the environment once at start-up.
// SETTINGS below is the single source: each row names its variable, parses and validates it, holds its default
// and its documentation; the Config type, CONFIG_ENV_VARS, loadConfig and docs/configuration.md (`npm run
// docs:config`) are all derived from it. A bad value fails start-up with a message naming the variable, so nothing
// deeper in the code ever sees a string it has to re-check. To add a variable, add one row.

import { availableParallelism } from 'node:os';

export type ExecutionProvider = 'cuda' | 'cpu' | 'webgpu' | 'tensorrt';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** How a batch is closed: after a fixed delay, or from the learned batch cost and a latency target. */
export type BatchPolicyName = 'fixed' | 'adaptive';
/** What a model that cannot be loaded does to start-up (and to a reload): stop it, or be skipped with a warning. */
export type ModelLoadPolicy = 'fail' | 'skip-bad';

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

type Env = Record<string, string | undefined>;

/** What a parser may look at besides its own value. */
interface ParseContext {
  env: Env;
  cores: number;
}

/** How one kind of value is read, and how its default and accepted values read in the docs. */
interface Kind<T> {
  /** Reads the trimmed value (undefined when unset or blank); throws ConfigError naming `name`. */
  parse(name: string, value: string | undefined, ctx: ParseContext): T;
  /** The default as docs/configuration.md shows it. */
  defaultDoc: string;
  /** The accepted values as docs/configuration.md shows them. */
  accepts: string;
}

/** Sections of docs/configuration.md, in order. */
export const CONFIG_GROUPS = {
  server: 'Server',
  batching: 'Batching and deadlines',
  inference: 'Inference (onnxruntime and threads)',
  limits: 'Request limits',
  security: 'Security',
  models: 'Model management',
} as const;

/** One row of the table: a Kind plus the variable's name, section and meaning. */
export interface Setting<T> extends Kind<T> {
  env: string;
  group: keyof typeof CONFIG_GROUPS;
  /** What it does, for an operator (docs/configuration.md). */
  doc: string;
}

function read(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function checkInt(name: string, v: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(v)) throw new ConfigError(name, `must be an integer, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** An integer in [min, max]; `def` is a number or computed from the context (documented by `defaultDoc`). */
function int(def: number, min: number, max: number): Kind<number>;
function int(def: (ctx: ParseContext) => number, min: number, max: number, defaultDoc: string): Kind<number>;
function int(def: number | ((ctx: ParseContext) => number), min: number, max: number, defaultDoc?: string): Kind<number> {
  return {
    parse: (name, v, ctx) => (v === undefined ? (typeof def === 'number' ? def : def(ctx)) : checkInt(name, v, min, max)),
    defaultDoc: defaultDoc ?? String(def),
    accepts: `integer ${min}–${max}`,
  };
}

/** An integer in [min, max], or undefined when unset. */
function optionalInt(min: number, max: number, defaultDoc: string): Kind<number | undefined> {
  return { parse: (name, v) => (v === undefined ? undefined : checkInt(name, v, min, max)), defaultDoc, accepts: `integer ${min}–${max}` };
}

function bool(): Kind<boolean> {
  return {
    parse: (name, raw) => {
      const v = raw?.toLowerCase();
      if (v === undefined || v === '0' || v === 'false' || v === 'no') return false;
      if (v === '1' || v === 'true' || v === 'yes') return true;
      throw new ConfigError(name, `must be 1/0 (or true/false), got "${v}"`);
    },
    defaultDoc: '0',
    accepts: '1/0, true/false, yes/no',
  };
}

function str(def: string): Kind<string> {
  return { parse: (_name, v) => v ?? def, defaultDoc: def, accepts: 'text' };
}

/** One of a few lower-case words (matched case-insensitively). */
function oneOf<T extends string>(values: readonly T[], def: T, message: (got: string) => string): Kind<T> {
  return {
    parse: (name, raw) => {
      const v = (raw ?? def).toLowerCase();
      if (!values.includes(v as T)) throw new ConfigError(name, message(v));
      return v as T;
    },
    defaultDoc: def,
    accepts: values.join(', '),
  };
}

function commaList(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
}

// A key is a secret: never echo it in a message, only its position in the list.
const KEY_RE = /^[\x21-\x7e]{16,256}$/;
const ORIGIN_RE = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;
const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'cpu', 'webgpu', 'tensorrt'];
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function keys(defaultDoc: string): Kind<readonly string[]> {
  return {
    parse: (name, v) => {
      const ks = commaList(v);
      ks.forEach((k, i) => {
        if (!KEY_RE.test(k)) throw new ConfigError(name, `key ${i + 1} must be 16 to 256 printable characters without spaces or commas`);
      });
      return Object.freeze(ks);
    },
    defaultDoc,
    accepts: 'comma-separated keys, 16–256 printable characters each',
  };
}

const origins: Kind<readonly string[]> = {
  parse: (name, v) => {
    const os = commaList(v);
    for (const o of os) if (o !== '*' && !ORIGIN_RE.test(o)) throw new ConfigError(name, `has "${o}", which is not * or an origin like https://app.example.com`);
    return Object.freeze(os);
  },
  defaultDoc: 'empty: no CORS headers',
  accepts: '`*`, or comma-separated origins like `https://app.example.com`',
};

/** CUDA when it can start, else CPU: on a machine without CUDA the fallback is expected and logged at info. */
export const DEFAULT_EXECUTION_PROVIDERS: readonly ExecutionProvider[] = Object.freeze(['cuda', 'cpu']);

const providers: Kind<readonly ExecutionProvider[]> = {
  parse: (name, raw) => {
    const v = raw ?? DEFAULT_EXECUTION_PROVIDERS.join(',');
    const list = commaList(v.toLowerCase());
    if (list.length === 0) throw new ConfigError(name, 'must name at least one provider');
    for (const p of list)
      if (!PROVIDERS.includes(p as ExecutionProvider)) throw new ConfigError(name, `has unknown provider "${p}"; known: ${PROVIDERS.join(', ')}`);
    if (new Set(list).size !== list.length) throw new ConfigError(name, `lists a provider twice: "${v}"`);
    return Object.freeze(list as ExecutionProvider[]);
  },
  defaultDoc: DEFAULT_EXECUTION_PROVIDERS.join(','),
  accepts: `comma-separated, in order: ${PROVIDERS.join(', ')}`,
};

const modelName: Kind<string | undefined> = {
  parse: (name, v) => {
    if (v !== undefined && !MODEL_NAME_RE.test(v)) throw new ConfigError(name, `"${v}" is not a model name (letters, digits, ._-)`);
    return v;
  },
  defaultDoc: 'the only model, else the first alphabetically',
  accepts: 'a model directory name (letters, digits, `._-`)',
};

/**
 * onnxruntime's share of the cores: per image, decoding and HTTP cost as much as or more than onnxruntime does for
 * these MLPs (docs/performance.md), so half the cores is enough for inference; on 2 cores that is one thread per
 * session, which also never waits in a parallel section for a thread the decoder holds.
 */
export function defaultIntraOpThreads(cores: number, inferenceWorkers: number): number {
  return Math.max(1, Math.floor(cores / (2 * inferenceWorkers)));
}

/** The gRPC listener's port: a port number (`0` picks a free one), or `off`. */
const grpcPort: Kind<number | 'off'> = {
  parse: (name, v) => (v === undefined ? 8081 : v.toLowerCase() === 'off' ? 'off' : checkInt(name, v, 0, 65535)),
  defaultDoc: '8081',
  accepts: 'integer 0–65535, or `off`',
};

/** The table. Order is the documentation's order (within a group) and the order variables are checked in. */
const SETTINGS = {
  port: { env: 'PORT', group: 'server', ...int(8080, 0, 65535), doc: 'TCP port to listen on (`0` picks a free one).' },
  host: { env: 'HOST', group: 'server', ...str('0.0.0.0'), doc: 'Interface to bind.' },
  grpcPort: {
    env: 'GRPC_PORT',
    group: 'server',
    ...grpcPort,
    doc: 'Port of the Open Inference Protocol gRPC service (`inference.GRPCInferenceService`, on HOST); `0` picks a free one, `off` disables it.',
  },
  modelsDir: { env: 'MODELS_DIR', group: 'models', ...str('models'), doc: 'Directory with one sub-directory per model (`model.onnx` + `model.json`, or versions `NAME/VERSION/`).' },
  defaultModel: { env: 'DEFAULT_MODEL', group: 'models', ...modelName, doc: 'Model used when a request names none.' },
  batchMaxSize: { env: 'BATCH_MAX_SIZE', group: 'batching', ...int(64, 1, 4096), doc: 'Largest batch handed to onnxruntime; `1` turns batching off.' },
  batchMaxDelayMs: { env: 'BATCH_MAX_DELAY_MS', group: 'batching', ...int(5, 0, 10_000), doc: '`fixed` policy: longest a request waits for companions (ms), counted from the oldest queued image (`adaptive` waits only within its latency budget).' },
  batchPolicy: {
    env: 'BATCH_POLICY',
    group: 'batching',
    ...oneOf<BatchPolicyName>(['fixed', 'adaptive'], 'adaptive', (v) => `must be fixed or adaptive, got "${v}"`),
    doc: '`adaptive`: a free worker gets the queue at once unless the batch cost at each size (measured at warm-up, then learned) and the arrival rate say a fuller batch keeps the worker busier and forms within the latency budget; `fixed`: a partial batch always waits `BATCH_MAX_DELAY_MS` (`npm run bench:serve` compares both: [performance.md](performance.md#measured)).',
  },
  latencyTargetMs: { env: 'LATENCY_TARGET_MS', group: 'batching', ...int(20, 1, 600_000), doc: '`adaptive`: queue wait + batch run time (ms) an image should stay under; never taken below twice the time of a full batch, which no image can be promised under load.' },
  queueMax: { env: 'QUEUE_MAX', group: 'batching', ...int(1024, 1, 1_000_000), doc: 'Images waiting per model beyond which requests get 503 `QUEUE_FULL` with `Retry-After`.' },
  requestTimeoutMs: { env: 'REQUEST_TIMEOUT_MS', group: 'batching', ...int(10_000, 1, 3_600_000), doc: 'Deadline of one request from arrival (ms); past it the answer is 504 (408 if its body has not arrived).' },
  executionProviders: { env: 'EXECUTION_PROVIDERS', group: 'inference', ...providers, doc: 'onnxruntime providers tried in order; a GPU provider that cannot start falls back to the next one.' },
  requireGpu: { env: 'REQUIRE_GPU', group: 'inference', ...bool(), doc: 'Fail start-up instead of falling back to CPU when no GPU provider can start.' },
  inferenceWorkers: {
    env: 'INFERENCE_WORKERS',
    group: 'inference',
    ...optionalInt(1, 64, '1'),
    doc: 'Worker threads, each holding a session per model; a batch goes to a free one. Unset (with `ORT_INTRA_OP_THREADS` unset too): one worker, its threads chosen at start-up from the measured decode and inference cost per image ([performance.md](performance.md#threads-chosen-by-measurement)), shown in `/models` and `mlp_threads`.',
  },
  ortIntraOpThreads: {
    env: 'ORT_INTRA_OP_THREADS',
    group: 'inference',
    ...optionalInt(1, 1024, 'measured at start-up: onnxruntime\'s share of the cores; ⌊cores ÷ (2 × `INFERENCE_WORKERS`)⌋, at least 1, if `INFERENCE_WORKERS` is set'),
    doc: 'Threads of one onnxruntime operator, per session. Setting it or `INFERENCE_WORKERS` pins the thread split instead of measuring it.',
  },
  ortInterOpThreads: { env: 'ORT_INTER_OP_THREADS', group: 'inference', ...int(1, 1, 1024), doc: 'Threads across operators, per session (only the parallel execution mode uses them; the graph is a chain).' },
  uvThreadpoolSize: {
    env: 'UV_THREADPOOL_SIZE',
    group: 'inference',
    ...int(4, 1, 1024),
    doc: 'libuv thread pool that sharp decodes on. Only readable here: libuv reads it before any JavaScript runs, so set it in the environment that starts the process.',
  },
  maxBodyBytes: { env: 'MAX_BODY_BYTES', group: 'limits', ...int(10 * 1024 * 1024, 1024, 2 ** 31 - 1), doc: 'Largest request body: a raw image, or the sum of a multipart request\'s files.' },
  maxFiles: { env: 'MAX_FILES', group: 'limits', ...int(64, 1, 10_000), doc: 'Most file parts in one multipart request (and images in one `/v2` infer request).' },
  maxPixels: { env: 'MAX_PIXELS', group: 'limits', ...int(40_000_000, 1, 268_402_689), doc: 'Largest source image (width × height), refused from its header before decoding.' },
  shutdownGraceMs: { env: 'SHUTDOWN_GRACE_MS', group: 'server', ...int(10_000, 0, 3_600_000), doc: 'After SIGTERM/SIGINT: time (ms) to finish accepted requests before exiting 1 anyway.' },
  logLevel: {
    env: 'LOG_LEVEL',
    group: 'server',
    ...oneOf<LogLevel>(LOG_LEVELS, 'info', (v) => `must be one of ${LOG_LEVELS.join(', ')}, got "${v}"`),
    doc: 'pino log level.',
  },
  apiKeys: {
    env: 'API_KEYS',
    group: 'security',
    ...keys('empty: open'),
    doc: 'Keys for inference and model metadata (`Authorization: Bearer KEY` or `X-API-Key: KEY`); otherwise 401 `UNAUTHORIZED`.',
  },
  adminApiKeys: {
    env: 'ADMIN_API_KEYS',
    group: 'security',
    ...keys('empty: admin refused'),
    doc: 'Keys for `/admin/*` (they also work where `API_KEYS` do); without any, admin routes answer 403 `FORBIDDEN`.',
  },
  rateLimitMax: { env: 'RATE_LIMIT_MAX', group: 'security', ...int(0, 0, 1_000_000_000), doc: 'Requests per client (IP) per window (@fastify/rate-limit); `0` turns it off; over it, 429 `RATE_LIMITED` with `Retry-After`.' },
  rateLimitWindowMs: { env: 'RATE_LIMIT_WINDOW_MS', group: 'security', ...int(60_000, 1, 86_400_000), doc: 'The rate-limit window (ms).' },
  corsOrigins: { env: 'CORS_ORIGINS', group: 'security', ...origins, doc: 'Origins allowed cross-origin (`*` for any).' },
  trustProxyHops: { env: 'TRUST_PROXY', group: 'security', ...int(0, 0, 32), doc: 'Proxy hops whose `X-Forwarded-For` names the client (for rate limiting behind an ingress); `0` = the socket\'s address.' },
  allowVectorImages: { env: 'ALLOW_VECTOR_IMAGES', group: 'limits', ...bool(), doc: 'Accept SVG/PDF (vector formats can reference other files); otherwise 415.' },
  maxFrames: { env: 'MAX_FRAMES', group: 'limits', ...int(1000, 1, 1_000_000), doc: 'Most frames an animated or multi-page image may declare; more gets 413 `TOO_MANY_FRAMES` from the header.' },
  maxHeaderBytes: { env: 'MAX_HEADER_BYTES', group: 'limits', ...int(16_384, 1024, 1_048_576), doc: 'Largest request head (request line + headers); larger gets 431 `HEADERS_TOO_LARGE`.' },
  maxInflightRequests: {
    env: 'MAX_INFLIGHT_REQUESTS',
    group: 'limits',
    ...int(256, 1, 1_000_000),
    doc: 'Inference requests being read, decoded or queued at once; one more gets 503 `OVERLOADED` + `Retry-After` before its body is read.',
  },
  modelLoadPolicy: {
    env: 'MODEL_LOAD_POLICY',
    group: 'models',
    ...oneOf<ModelLoadPolicy>(['fail', 'skip-bad'], 'fail', (v) => `must be fail or skip-bad, got "${v}"`),
    doc: 'A model that fails to load (at start or on reload): `fail` stops start-up, `skip-bad` serves the others with a warning.',
  },
  probeMaxImages: {
    env: 'PROBE_MAX_IMAGES',
    group: 'models',
    ...int(5000, 10, 1_000_000),
    doc: 'Most images in one `POST /admin/models/{base}/probe` (teaching a new classifier); they are held in memory until the job has embedded them.',
  },
  probeMaxBytes: {
    env: 'PROBE_MAX_BYTES',
    group: 'models',
    ...int(256 * 1024 * 1024, 1024, 2 ** 31 - 1),
    doc: 'Largest probe upload (the sum of its files), in bytes; each file is also limited by `MAX_BODY_BYTES`.',
  },
  probeQueueMax: {
    env: 'PROBE_QUEUE_MAX',
    group: 'models',
    ...int(4, 1, 1000),
    doc: 'Probe jobs waiting per base model (one runs at a time per base); more are refused with 503.',
  },
  maxModelVersions: { env: 'MAX_MODEL_VERSIONS', group: 'models', ...int(2, 1, 1000), doc: 'Newest versions served per model (`NAME/VERSION/`); the newest answers unless a request pins one.' },
  mallocMmapThreshold: {
    env: 'MALLOC_MMAP_THRESHOLD_',
    group: 'server',
    ...optionalInt(0, 32 * 1024 * 1024, "glibc's dynamic threshold (the image sets 131072)"),
    doc: "glibc's malloc mmap threshold in bytes. Only readable here: glibc reads it at process start. Fixed, large buffers go back to the system when freed; with the dynamic threshold resident memory grows with every hot reload (docs/deploy.md).",
  },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;

/** The configuration: one field per row of SETTINGS, typed by its parser. */
export type Config = { [K in keyof Settings]: ReturnType<Settings[K]['parse']> };

/** Every row, in table order (docs/configuration.md is rendered from this). */
export const CONFIG_SETTINGS: readonly (Setting<unknown> & { key: keyof Config })[] = Object.freeze(
  (Object.keys(SETTINGS) as (keyof Config)[]).map((key) => Object.freeze({ key, ...SETTINGS[key] })),
);

/** Every environment variable this module reads (the k8s manifests are checked against this list). */
export const CONFIG_ENV_VARS: readonly string[] = Object.freeze(CONFIG_SETTINGS.map((s) => s.env));

/** Rules across variables, checked after each has been read on its own. */
function crossCheck(c: Config): void {
  if (c.requireGpu && !c.executionProviders.some((p) => p === 'cuda' || p === 'tensorrt'))
    throw new ConfigError('REQUIRE_GPU', `is set but EXECUTION_PROVIDERS (${c.executionProviders.join(',')}) has no GPU provider`);
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const ctx: ParseContext = { env, cores: availableParallelism() };
  const out: Record<string, unknown> = {};
  for (const s of CONFIG_SETTINGS) out[s.key] = s.parse(s.env, read(env, s.env), ctx);
  const config = out as Config;
  crossCheck(config);
  return Object.freeze(config);
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

export interface Misspelling {
  /** The variable as set. */
  name: string;
  /** The known variable it is closest to. */
  closest: string;
}

/**
 * Set variables that look like a misspelling of one of ours (a different case, or within 1 edit of a short name
 * and 2 of a name of 8+ characters), each with the closest known one. Unrelated variables (HOME vs HOST) stay
 * quiet: a short name allows a single edit only.
 */
export function misspelledVariables(env: Env = process.env): Misspelling[] {
  const known = new Set(CONFIG_ENV_VARS);
  const found: Misspelling[] = [];
  for (const name of Object.keys(env).sort()) {
    if (known.has(name) || env[name] === undefined) continue;
    const upper = name.toUpperCase();
    let best: { closest: string; d: number } | undefined;
    for (const k of CONFIG_ENV_VARS) {
      const d = editDistance(upper, k);
      if (d <= Math.min(2, Math.floor(k.length / 4)) && (best === undefined || d < best.d)) best = { closest: k, d };
    }
    if (best) found.push({ name, closest: best.closest });
  }
  return found;
}
