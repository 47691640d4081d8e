// Builds the fastify app from a config, without listening (tests start it on an ephemeral port; server.ts on $PORT).
// Wiring only: connection limits, body parsers and limits, OpenAPI, the security, limits, metrics and models plugins,
// the routes, and the one error handler that turns every failure into {"error":{"code","message"}} (or, on the
// Open Inference Protocol routes, {"error": message}), including the errors Node answers before fastify sees a
// request (431 headers too large, 408 request not received in time, 400 unparsable).

import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import type { Socket } from 'node:net';
import type { Config } from '../config.js';
import { Errors, RETRY_AFTER_SECONDS, errorBody, isV2Url, toPublicError } from './errors.js';
import { IMAGE_REQUEST_BODY, V2_REQUEST_BODY } from './schemas.js';
import { isPartAFile } from './inputs.js';
import type {} from './grpc/server.js';
import metricsPlugin from './plugins/metrics.js';
import modelsPlugin from './plugins/models.js';
import securityPlugin from './plugins/security.js';
import limitsPlugin from './plugins/limits.js';
import docsPlugin from './plugins/docs.js';
import adminRoutes from './routes/admin.js';
import probeRoutes from './routes/probe.js';
import v2Routes from './routes/v2.js';
import classifyRoute from './routes/classify.js';
import embedRoute from './routes/embed.js';
import healthRoutes from './routes/health.js';
import modelsRoute from './routes/models.js';

export interface ServingState {
  /** Set on SIGTERM/SIGINT: /readyz answers 503 from then on. */
  draining: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Readonly<Config>;
    serving: ServingState;
  }
}

const OPEN_WHILE_DRAINING = new Set(['/healthz', '/readyz', '/metrics', '/v2/health/live', '/v2/health/ready']);

/** Node's own refusals (before fastify parses a request), answered in the API's JSON format. */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? Errors.REQUEST_TIMEOUT()
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? Errors.HEADERS_TOO_LARGE()
        : Errors.INVALID_REQUEST('the request could not be parsed as HTTP');
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  const reason = e.statusCode === 408 ? 'Request Timeout' : e.statusCode === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${e.statusCode} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface BuildOptions {
  /** Overrides the logger built from config.logLevel (tests pass false). */
  logger?: FastifyServerOptions['logger'];
  /** The models start loading once this settles (tests hold the not-ready window open with it). */
  loadAfter?: Promise<unknown>;
}

export async function buildApp(config: Readonly<Config>, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: config.logLevel },
    bodyLimit: config.maxBodyBytes,
    // One line per request at info would dominate the log under load; errors are logged by the handler below.
    logController: new LogController({ disableRequestLogging: true }),
    // Draining is answered by our own hook below, in the API's error format.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // Slow uploads: a request must arrive whole within its own deadline (it could not be answered in time anyway);
    // Node checks every second, not every 30 s, so a trickling client holds its socket ~1 s past that at most.
    requestTimeout: config.requestTimeoutMs,
    http: {
      maxHeaderSize: config.maxHeaderBytes,
      headersTimeout: Math.min(config.requestTimeoutMs, 10_000),
      requestTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: 1000,
    },
    clientErrorHandler,
    // X-Forwarded-For names the client (for rate limiting) only through the configured number of proxies.
    trustProxy: config.trustProxyHops > 0 ? (_addr: string, hop: number) => hop < config.trustProxyHops : false,
  });
  app.decorate('config', config);
  app.decorate('serving', { draining: false } satisfies ServingState);
  // Set by startGrpc (src/serve/grpc/server.ts); its calls are drained before the models close, like HTTP's.
  app.decorate('grpcListener', undefined);
  app.addHook('preClose', async () => app.grpcListener?.drain());

  // Only what the API accepts: raw image bytes, and multipart (registered below). JSON and text get 415.
  app.removeAllContentTypeParsers();
  for (const type of [/^image\/[\w.+-]+$/i, 'application/octet-stream'])
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: config.maxBodyBytes }, (_req, body, done) =>
      done(null, body),
    );
  await app.register(multipart, {
    isPartAFile,
    throwFileSizeLimit: true,
    limits: {
      fileSize: config.maxBodyBytes,
      files: config.maxFiles,
      fields: 16,
      fieldSize: 4096,
      parts: config.maxFiles + 16,
      headerPairs: 100,
    },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'mlp-serve',
        description: 'Image classification and embeddings with the MLPs of "Scaling MLPs" (Bachmann et al., 2023).',
        version: '1',
      },
      tags: [
        { name: 'inference', description: 'Classify and embed images' },
        { name: 'models', description: 'What is served' },
        { name: 'operations', description: 'Health, readiness, metrics' },
        { name: 'v2', description: 'Open Inference Protocol (KServe v2, Triton) on preprocessed tensors; the same over gRPC on GRPC_PORT' },
      ],
    },
    // The image bodies are parsed by content-type parsers, not validated by a schema, so the document gets their
    // description here.
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject;
      for (const path of ['/classify', '/embed']) {
        const post = doc.openapiObject.paths?.[path]?.post as Record<string, unknown> | undefined;
        if (post) post.requestBody = IMAGE_REQUEST_BODY;
      }
      for (const path of ['/v2/models/{model}/infer', '/v2/models/{model}/versions/{version}/infer']) {
        const post = doc.openapiObject.paths?.[path]?.post as Record<string, unknown> | undefined;
        if (post) post.requestBody = V2_REQUEST_BODY;
      }
      return doc.openapiObject;
    },
  });

  app.setErrorHandler((err, req, reply) => {
    const pub = toPublicError(err, config);
    if (pub.status >= 500 && !['QUEUE_FULL', 'NOT_READY', 'OVERLOADED'].includes(pub.code)) req.log.error({ err }, 'request failed');
    else req.log.debug({ code: pub.code, status: pub.status }, 'request refused');
    req.errorCode = pub.code;
    if (pub.retryAfter !== undefined) reply.header('retry-after', String(pub.retryAfter));
    // Our own error body, whatever a route's reply had been set up for (a binary v2 answer, say).
    reply.removeHeader('inference-header-content-length');
    return reply.code(pub.status).type(isV2Url(req.url) ? 'application/json' : 'application/json; charset=utf-8').send(errorBody(pub, req.url));
  });
  // After SIGTERM: requests still arriving on open keep-alive connections are turned away (probes excepted), so
  // only what was accepted before finishes.
  app.addHook('onRequest', async (req, reply) => {
    if (!app.serving.draining || OPEN_WHILE_DRAINING.has(req.url)) return;
    const e = Errors.SHUTTING_DOWN();
    req.errorCode = e.code;
    reply.header('connection', 'close').header('retry-after', String(RETRY_AFTER_SECONDS));
    return reply.code(503).send(errorBody(e, req.url));
  });
  // Answers given while draining close their connection, so keep-alive sockets do not hold the server open.
  // The Open Inference Protocol's clients (KServe's SDK) compare the JSON type exactly: no charset on /v2.
  app.addHook('onSend', async (req, reply, payload) => {
    if (app.serving.draining) reply.header('connection', 'close');
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('application/json') && isV2Url(req.url)) reply.header('content-type', 'application/json');
    return payload;
  });
  app.setNotFoundHandler((req, reply) => {
    // The URL is not echoed: it is the client's, but a response should never carry path-like text.
    const e = Errors.NOT_FOUND();
    req.errorCode = e.code;
    return reply.code(404).send(errorBody(e, req.url));
  });

  // Hook order matters: security (headers, CORS, rate limit, API keys) before admission (limits), both before any
  // body is read; metrics times everything.
  await app.register(securityPlugin, { config });
  await app.register(limitsPlugin, { config });
  await app.register(metricsPlugin);
  await app.register(modelsPlugin, { config, loadAfter: opts.loadAfter });
  await app.register(healthRoutes);
  await app.register(modelsRoute, { config });
  await app.register(classifyRoute, { config });
  await app.register(embedRoute, { config });
  await app.register(v2Routes, { config });
  await app.register(adminRoutes);
  await app.register(probeRoutes, { config });
  await app.register(docsPlugin);

  return app;
}
