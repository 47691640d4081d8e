// The service's Prometheus metrics: one factory over a registry the caller owns, returning typed handles.
// The names below are a contract with the dashboards and alerts: rename nothing without updating them.

import client, { type Registry } from 'prom-client';

/** Every metric name this module registers (besides prom-client's default process_* and nodejs_* metrics). */
export const METRIC_NAMES = Object.freeze({
  httpRequestDuration: 'mlp_http_request_duration_seconds',
  grpcRequestDuration: 'mlp_grpc_request_duration_seconds',
  queueWait: 'mlp_queue_wait_seconds',
  preprocessDuration: 'mlp_preprocess_duration_seconds',
  inferenceDuration: 'mlp_inference_duration_seconds',
  batchSize: 'mlp_batch_size',
  queueDepth: 'mlp_queue_depth',
  inflightRequests: 'mlp_inflight_requests',
  requestsTotal: 'mlp_requests_total',
  rejectionsTotal: 'mlp_rejections_total',
  imagesTotal: 'mlp_images_total',
  modelInfo: 'mlp_model_info',
  imagesCancelled: 'mlp_images_cancelled_total',
  modelReloads: 'mlp_model_reloads_total',
  workerRestarts: 'mlp_worker_restarts_total',
  threads: 'mlp_threads',
  probeJobs: 'mlp_probe_jobs_total',
  probeFitDuration: 'mlp_probe_fit_seconds',
} as const);

/** The same names as a list, for cross-checks (dashboards, tests). */
export const METRIC_NAME_LIST: readonly string[] = Object.freeze(Object.values(METRIC_NAMES));

export type RequestOutcome = 'ok' | 'client_error' | 'rejected' | 'timeout' | 'error' | 'cancelled';

export interface Metrics {
  registry: Registry;
  httpRequestDuration: client.Histogram<'route' | 'method' | 'status'>;
  grpcRequestDuration: client.Histogram<'method' | 'code'>;
  queueWait: client.Histogram<'model'>;
  preprocessDuration: client.Histogram<'model'>;
  inferenceDuration: client.Histogram<'model'>;
  batchSize: client.Histogram<'model'>;
  queueDepth: client.Gauge<'model'>;
  inflightRequests: client.Gauge;
  requestsTotal: client.Counter<'route' | 'model' | 'outcome' | 'protocol'>;
  rejectionsTotal: client.Counter<'model' | 'reason' | 'protocol'>;
  imagesTotal: client.Counter<'model'>;
  modelInfo: client.Gauge<'model' | 'version' | 'arch' | 'provider'>;
  imagesCancelled: client.Counter<'model'>;
  modelReloads: client.Counter<'outcome'>;
  workerRestarts: client.Counter;
  threads: client.Gauge<'role' | 'source'>;
  probeJobs: client.Counter<'base' | 'event'>;
  probeFitDuration: client.Histogram<'base'>;
}

const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

// Latency buckets from 0.5 ms (one small batch on CPU) to 10 s (the default request deadline).
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Registers the service's metrics and the default process metrics on `registry`. */
export function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  client.collectDefaultMetrics({ register: registry });
  // prom-client names three gauges `*_total`, which promtool's lint rejects; their per-type twins
  // (nodejs_active_handles{type}, ...) carry the same numbers, so the misnamed sums are dropped.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  return {
    registry,
    httpRequestDuration: new client.Histogram({
      name: METRIC_NAMES.httpRequestDuration,
      help: 'HTTP request latency from arrival to the last byte of the response, by route template, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    grpcRequestDuration: new client.Histogram({
      name: METRIC_NAMES.grpcRequestDuration,
      help: 'gRPC call latency (inference.GRPCInferenceService) from arrival to the answer, by method and status code name.',
      labelNames: ['method', 'code'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    queueWait: new client.Histogram({
      name: METRIC_NAMES.queueWait,
      help: 'Time an image waited in the batch queue before its batch was sent to a worker.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    preprocessDuration: new client.Histogram({
      name: METRIC_NAMES.preprocessDuration,
      help: 'Decode, resize and normalise time of one image (sharp, on the libuv pool).',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inferenceDuration: new client.Histogram({
      name: METRIC_NAMES.inferenceDuration,
      help: 'onnxruntime session.run time of one batch, measured in the worker.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    batchSize: new client.Histogram({
      name: METRIC_NAMES.batchSize,
      help: 'Images per batch sent to onnxruntime.',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    }),
    queueDepth: new client.Gauge({
      name: METRIC_NAMES.queueDepth,
      help: 'Images waiting in the batch queue.',
      labelNames: ['model'],
      registers,
    }),
    inflightRequests: new client.Gauge({
      name: METRIC_NAMES.inflightRequests,
      help: 'HTTP requests received and not yet answered.',
      registers,
    }),
    requestsTotal: new client.Counter({
      name: METRIC_NAMES.requestsTotal,
      help: 'Inference requests by route (the gRPC method for gRPC), model, outcome (ok, client_error, rejected, timeout, error, cancelled) and protocol (http, grpc).',
      labelNames: ['route', 'model', 'outcome', 'protocol'],
      registers,
    }),
    rejectionsTotal: new client.Counter({
      name: METRIC_NAMES.rejectionsTotal,
      help: 'Inference requests refused, by model, reason (the error code, lower case) and protocol (http, grpc).',
      labelNames: ['model', 'reason', 'protocol'],
      registers,
    }),
    imagesTotal: new client.Counter({
      name: METRIC_NAMES.imagesTotal,
      help: 'Images run through a model.',
      labelNames: ['model'],
      registers,
    }),
    modelInfo: new client.Gauge({
      name: METRIC_NAMES.modelInfo,
      help: 'Served model versions (always 1), with version, architecture and the execution provider running them.',
      labelNames: ['model', 'version', 'arch', 'provider'],
      registers,
    }),
    imagesCancelled: new client.Counter({
      name: METRIC_NAMES.imagesCancelled,
      help: 'Images taken out of the batch queue uncomputed because their client disconnected.',
      labelNames: ['model'],
      registers,
    }),
    modelReloads: new client.Counter({
      name: METRIC_NAMES.modelReloads,
      help: 'Model reloads (POST /admin/models/reload) by outcome: ok, unchanged or failed.',
      labelNames: ['outcome'],
      registers,
    }),
    workerRestarts: new client.Counter({
      name: METRIC_NAMES.workerRestarts,
      help: 'Inference workers that died and were replaced.',
      registers,
    }),
    threads: new client.Gauge({
      name: METRIC_NAMES.threads,
      help: 'The thread split: inference_workers, intra_op (onnxruntime threads per session), uv_threadpool (decoding); source measured at start-up or env.',
      labelNames: ['role', 'source'],
      registers,
    }),
    probeJobs: new client.Counter({
      name: METRIC_NAMES.probeJobs,
      help: 'Probe jobs (POST /admin/models/{base}/probe) by base model and event: started, finished or failed.',
      labelNames: ['base', 'event'],
      registers,
    }),
    probeFitDuration: new client.Histogram({
      name: METRIC_NAMES.probeFitDuration,
      help: 'Time to fit a probe head (the λ path and the final fit, off the event loop), by base model.',
      labelNames: ['base'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
  };
}

/** The outcome label of a finished inference request, from its status code. */
export function outcomeOf(status: number): RequestOutcome {
  if (status < 400) return 'ok';
  if (status === 503) return 'rejected';
  if (status === 504) return 'timeout';
  if (status >= 500) return 'error';
  return 'client_error';
}
