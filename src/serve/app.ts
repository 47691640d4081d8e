// Builds the fastify app from a config, without listening (tests start it on an ephemeral port; server.ts on $PORT).
// Wiring only: body parsers and limits, OpenAPI, the metrics and models plugins, the routes, and the one error
// handler that turns every failure into {"error":{"code","message"}}.

import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import type { Config } from '../config.js';
import { Errors, RETRY_AFTER_SECONDS, toPublicError } from './errors.js';
import { IMAGE_REQUEST_BODY } from './schemas.js';
import { isPartAFile } from './inputs.js';
import metricsPlugin from './plugins/metrics.js';
import modelsPlugin from './plugins/models.js';
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

const OPEN_WHILE_DRAINING = new Set(['/healthz', '/readyz', '/metrics']);

export interface BuildOptions {
  /** Overrides the logger built from config.logLevel (tests pass false). */
  logger?: FastifyServerOptions['logger'];
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
  });
  app.decorate('config', config);
  app.decorate('serving', { draining: false } satisfies ServingState);

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
      return doc.openapiObject;
    },
  });

  app.setErrorHandler((err, req, reply) => {
    const pub = toPublicError(err, config);
    if (pub.status >= 500 && pub.code !== 'QUEUE_FULL' && pub.code !== 'NOT_READY') req.log.error({ err }, 'request failed');
    else req.log.debug({ code: pub.code, status: pub.status }, 'request refused');
    req.errorCode = pub.code;
    if (pub.retryAfter !== undefined) reply.header('retry-after', String(pub.retryAfter));
    return reply.code(pub.status).send({ error: { code: pub.code, message: pub.message } });
  });
  // After SIGTERM: requests still arriving on open keep-alive connections are turned away (probes excepted), so
  // only what was accepted before finishes.
  app.addHook('onRequest', async (req, reply) => {
    if (!app.serving.draining || OPEN_WHILE_DRAINING.has(req.url)) return;
    const e = Errors.SHUTTING_DOWN();
    req.errorCode = e.code;
    reply.header('connection', 'close').header('retry-after', String(RETRY_AFTER_SECONDS));
    return reply.code(503).send({ error: { code: e.code, message: e.message } });
  });
  // Answers given while draining close their connection, so keep-alive sockets do not hold the server open.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (app.serving.draining) reply.header('connection', 'close');
    return payload;
  });
  app.setNotFoundHandler((req, reply) => {
    // The URL is not echoed: it is the client's, but a response should never carry path-like text.
    const e = Errors.NOT_FOUND();
    req.errorCode = e.code;
    return reply.code(404).send({ error: { code: e.code, message: e.message } });
  });

  await app.register(metricsPlugin);
  await app.register(modelsPlugin, { config });
  await app.register(healthRoutes);
  await app.register(modelsRoute);
  await app.register(classifyRoute, { config });
  await app.register(embedRoute, { config });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  return app;
}
