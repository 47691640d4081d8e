// The configuration module: documented defaults, one clear error per bad variable, a frozen result, and
// CONFIG_ENV_VARS listing exactly the variables it reads (the k8s manifests are checked against that list).

import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import { CONFIG_ENV_VARS, CONFIG_SETTINGS, defaultIntraOpThreads, editDistance, loadConfig, misspelledVariables } from '../../src/config.js';
import { expectConfigError } from './helpers.js';
import { pinnedPlan } from '../../src/serve/thread-plan.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toEqual({
      port: 8080,
      host: '0.0.0.0',
      grpcPort: 8081,
      modelsDir: 'models',
      defaultModel: undefined,
      batchMaxSize: 64,
      batchMaxDelayMs: 5,
      batchPolicy: 'adaptive',
      latencyTargetMs: 20,
      queueMax: 1024,
      requestTimeoutMs: 10_000,
      executionProviders: ['cuda', 'cpu'],
      requireGpu: false,
      // Unset: the thread split is measured at start-up (src/serve/thread-plan.ts).
      ortIntraOpThreads: undefined,
      ortInterOpThreads: 1,
      inferenceWorkers: undefined,
      uvThreadpoolSize: 4,
      maxBodyBytes: 10 * 1024 * 1024,
      maxFiles: 64,
      maxPixels: 40_000_000,
      shutdownGraceMs: 10_000,
      logLevel: 'info',
      // security, limits and model management (test/serve/config-security.test.ts checks each)
      apiKeys: [],
      adminApiKeys: [],
      rateLimitMax: 0,
      rateLimitWindowMs: 60_000,
      corsOrigins: [],
      trustProxyHops: 0,
      allowVectorImages: false,
      maxFrames: 1000,
      maxHeaderBytes: 16_384,
      maxInflightRequests: 256,
      modelLoadPolicy: 'fail',
      maxModelVersions: 2,
      probeMaxImages: 5000,
      probeMaxBytes: 256 * 1024 * 1024,
      probeQueueMax: 4,
      mallocMmapThreshold: undefined,
    });
  });

  it('GRPC_PORT: a port, 0 for any free one, or off (any case)', () => {
    expect([loadConfig({ GRPC_PORT: '9001' }).grpcPort, loadConfig({ GRPC_PORT: '0' }).grpcPort, loadConfig({ GRPC_PORT: 'OFF' }).grpcPort]).toEqual([9001, 0, 'off']);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      MODELS_DIR: '/srv/models',
      DEFAULT_MODEL: 'fashion-mlp',
      BATCH_MAX_SIZE: '1',
      BATCH_MAX_DELAY_MS: '0',
      BATCH_POLICY: 'Fixed',
      LATENCY_TARGET_MS: '50',
      QUEUE_MAX: '10',
      REQUEST_TIMEOUT_MS: '500',
      EXECUTION_PROVIDERS: ' CUDA , cpu ',
      REQUIRE_GPU: '1',
      ORT_INTRA_OP_THREADS: '3',
      ORT_INTER_OP_THREADS: '2',
      INFERENCE_WORKERS: '2',
      UV_THREADPOOL_SIZE: '8',
      MAX_BODY_BYTES: '2048',
      MAX_FILES: '4',
      MAX_PIXELS: '1000000',
      SHUTDOWN_GRACE_MS: '2500',
      LOG_LEVEL: 'WARN',
    });
    expect(c).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      modelsDir: '/srv/models',
      defaultModel: 'fashion-mlp',
      batchMaxSize: 1,
      batchMaxDelayMs: 0,
      batchPolicy: 'fixed',
      latencyTargetMs: 50,
      queueMax: 10,
      requestTimeoutMs: 500,
      executionProviders: ['cuda', 'cpu'],
      requireGpu: true,
      ortIntraOpThreads: 3,
      ortInterOpThreads: 2,
      inferenceWorkers: 2,
      uvThreadpoolSize: 8,
      maxBodyBytes: 2048,
      maxFiles: 4,
      maxPixels: 1_000_000,
      shutdownGraceMs: 2500,
      logLevel: 'warn',
    });
  });

  it('pinned by INFERENCE_WORKERS alone, onnxruntime gets half the cores divided between the workers, at least 1', () => {
    const c = loadConfig({ INFERENCE_WORKERS: '64' });
    expect(pinnedPlan(availableParallelism(), c.inferenceWorkers, c.ortIntraOpThreads)).toEqual({ inferenceWorkers: 64, intraOpThreads: 1, source: 'env' });
    expect(pinnedPlan(16, undefined, 3)).toEqual({ inferenceWorkers: 1, intraOpThreads: 3, source: 'env' });
    expect([1, 2, 4, 8, 16].map((cores) => defaultIntraOpThreads(cores, 1))).toEqual([1, 1, 2, 4, 8]);
    expect(defaultIntraOpThreads(16, 2)).toBe(4);
  });

  it('is frozen', () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.executionProviders)).toBe(true);
    expect(() => ((c as { port: number }).port = 1)).toThrow(TypeError);
  });

  it('CONFIG_ENV_VARS lists exactly the variables loadConfig reads', () => {
    const read = new Set<string>();
    const env = new Proxy({} as Record<string, string | undefined>, {
      get(_t, key) {
        if (typeof key === 'string') read.add(key);
        return undefined;
      },
    });
    loadConfig(env);
    expect([...read].sort()).toEqual([...CONFIG_ENV_VARS].sort());
  });

  it('every variable is read from one row of the table, named once, with a default and a meaning', () => {
    expect(new Set(CONFIG_ENV_VARS).size).toBe(CONFIG_ENV_VARS.length);
    expect(CONFIG_SETTINGS.map((s) => s.key).sort()).toEqual(Object.keys(loadConfig({})).sort());
    for (const s of CONFIG_SETTINGS) {
      expect(s.doc.length, s.env).toBeGreaterThan(10);
      expect(s.defaultDoc.length, s.env).toBeGreaterThan(0);
    }
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ PORT: 'http' }, 'PORT', /must be an integer, got "http"/],
    [{ PORT: '70000' }, 'PORT', /between 0 and 65535/],
    [{ BATCH_MAX_SIZE: '0' }, 'BATCH_MAX_SIZE', /between 1 and/],
    [{ BATCH_MAX_DELAY_MS: '-1' }, 'BATCH_MAX_DELAY_MS', /between 0 and/],
    [{ BATCH_POLICY: 'greedy' }, 'BATCH_POLICY', /fixed or adaptive, got "greedy"/],
    [{ LATENCY_TARGET_MS: '0' }, 'LATENCY_TARGET_MS', /between 1 and/],
    [{ QUEUE_MAX: '1.5' }, 'QUEUE_MAX', /integer/],
    [{ REQUEST_TIMEOUT_MS: '0' }, 'REQUEST_TIMEOUT_MS', /between 1 and/],
    [{ EXECUTION_PROVIDERS: 'cuda,tpu' }, 'EXECUTION_PROVIDERS', /unknown provider "tpu"/],
    [{ EXECUTION_PROVIDERS: 'cpu,cpu' }, 'EXECUTION_PROVIDERS', /twice/],
    [{ EXECUTION_PROVIDERS: ' , ' }, 'EXECUTION_PROVIDERS', /at least one/],
    [{ REQUIRE_GPU: 'maybe' }, 'REQUIRE_GPU', /1\/0/],
    [{ REQUIRE_GPU: '1', EXECUTION_PROVIDERS: 'cpu' }, 'REQUIRE_GPU', /no GPU provider/],
    [{ INFERENCE_WORKERS: '0' }, 'INFERENCE_WORKERS', /between 1 and 64/],
    [{ ORT_INTRA_OP_THREADS: 'all' }, 'ORT_INTRA_OP_THREADS', /integer/],
    [{ MAX_BODY_BYTES: '10' }, 'MAX_BODY_BYTES', /between 1024 and/],
    [{ MAX_PIXELS: '999999999' }, 'MAX_PIXELS', /between 1 and 268402689/],
    [{ DEFAULT_MODEL: '../x' }, 'DEFAULT_MODEL', /not a model name/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /must be one of/],
    [{ SHUTDOWN_GRACE_MS: '1e3' }, 'SHUTDOWN_GRACE_MS', /integer/],
    [{ GRPC_PORT: 'none' }, 'GRPC_PORT', /must be an integer/],
    [{ GRPC_PORT: '70000' }, 'GRPC_PORT', /between 0 and 65535/],
  ];
  for (const [env, variable, message] of bad) {
    it(`EXPECTED FAILURE - ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} names ${variable}`, () => {
      expectConfigError(env, variable, message);
    });
  }
});

describe('misspelled variables', () => {
  it('edit distance counts insertions, deletions, substitutions and swaps as 1', () => {
    expect(editDistance('BATCH_MAXSIZE', 'BATCH_MAX_SIZE')).toBe(1);
    expect(editDistance('QUEUE_MAX', 'QEUUE_MAX')).toBe(1);
    expect(editDistance('HOME', 'HOST')).toBe(2);
    expect(editDistance('', 'PORT')).toBe(4);
  });

  it('names the closest known variable for a near miss or a wrong case', () => {
    expect(
      misspelledVariables({ BATCH_MAXSIZE: '4', MODEL_DIR: '/m', batch_policy: 'fixed', LOGLEVEL: 'debug', PORT: '1', QUEUE_MAX: '2' }),
    ).toEqual([
      { name: 'BATCH_MAXSIZE', closest: 'BATCH_MAX_SIZE' },
      { name: 'LOGLEVEL', closest: 'LOG_LEVEL' },
      { name: 'MODEL_DIR', closest: 'MODELS_DIR' },
      { name: 'batch_policy', closest: 'BATCH_POLICY' },
    ]);
  });

  it('stays quiet about unrelated variables, including this machine\'s own environment', () => {
    expect(misspelledVariables({ HOME: '/root', HOSTNAME: 'x', PATH: '/bin', PWD: '/', TERM: 'xterm', NODE_ENV: 'production', TZ: 'UTC' })).toEqual([]);
    expect(misspelledVariables(process.env)).toEqual([]);
  });
});
