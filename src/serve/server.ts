// `npm start`: reads the config, builds the app, listens on $HOST:$PORT (and gRPC on $GRPC_PORT), and drains gracefully on SIGTERM/SIGINT:
// /readyz turns 503 at once, the listener closes, accepted requests finish, and the process exits 0, or 1 if the
// grace period (SHUTDOWN_GRACE_MS) runs out first.

import { ConfigError, loadConfig, misspelledVariables, type Config } from '../config.js';
import { buildApp } from './app.js';
import { startGrpc } from './grpc/server.js';

/** What a port that cannot be listened on means, in one line naming the variable to change. */
function bindFailure(variable: string, host: string, port: number | string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = String(e?.message ?? err);
  if (e?.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(text))
    return `${variable}=${port}: ${host}:${port} is already in use (EADDRINUSE); stop what holds it or set ${variable} to a free port`;
  if (e?.code === 'EACCES' || /EACCES|permission denied/i.test(text))
    return `${variable}=${port}: not allowed to listen on ${host}:${port} (EACCES); ports below 1024 need privileges`;
  return `${variable}=${port}: cannot listen on ${host}:${port}: ${text.split('\n')[0]}`;
}

async function main(): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  // A misspelled variable is otherwise silently ignored (its default applies); say so, even if start-up then fails.
  const misspelled = misspelledVariables(process.env).map(({ name, closest }) => `${name} is not a variable mlp-serve reads (ignored); did you mean ${closest}?`);
  let app;
  try {
    app = await buildApp(config);
    for (const m of misspelled) app.log.warn(m);
    if (config.mallocMmapThreshold === undefined)
      app.log.warn('MALLOC_MMAP_THRESHOLD_ is not set: with glibc\'s dynamic threshold, resident memory can grow with every hot model reload; the image sets 131072');
    await app.ready();
  } catch (err) {
    // Bad model cards, a missing MODELS_DIR, an unknown DEFAULT_MODEL: say which, and stop.
    if (!app) for (const m of misspelled) console.error(`warning: ${m}`);
    console.error(`start-up failed: ${(err as Error).message}`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.serving.draining = true;
    app.log.info({ signal }, 'draining: readiness is 503, finishing accepted requests');
    const force = setTimeout(() => {
      app.log.error(`shutdown grace of ${config.shutdownGraceMs} ms ran out with requests still open; exiting`);
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    app.close().then(
      () => {
        app.log.info('drained; exiting');
        process.exit(0);
      },
      (err: Error) => {
        app.log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // Nothing was served yet: one line, no stack. The workers still loading are let finish and stopped first
    // (onnxruntime aborts the process if its thread is torn down mid-load).
    console.error(`start-up failed: ${bindFailure('PORT', config.host, config.port, err)}`);
    await app.close().catch(() => undefined);
    process.exit(1);
  }
  try {
    const grpc = await startGrpc(app);
    if (grpc) app.log.info(`gRPC (inference.GRPCInferenceService) listening on ${config.host}:${grpc.port}`);
  } catch (err) {
    app.log.fatal(`start-up failed: ${bindFailure('GRPC_PORT', config.host, config.grpcPort, err)}`);
    await app.close().catch(() => undefined);
    process.exit(1);
  }
  try {
    await app.models.whenReady();
    app.log.info({ models: app.models.list.map((m) => `${m.name} (${m.provider})`) }, 'ready');
  } catch (err) {
    // e.g. REQUIRE_GPU=1 without a usable GPU, or a model.onnx onnxruntime cannot open.
    app.log.fatal(`start-up failed: ${(err as Error).message}`);
    await app.close().catch(() => undefined);
    process.exit(1);
  }
}

void main();
