// Metrics plugin: owns the app's prom-client Registry, times every HTTP request, counts inference requests by
// outcome (including clients that left before their answer: fastify runs no onResponse hook for those), and serves
// GET /metrics in the Prometheus text format.

import fp from 'fastify-plugin';
import { Registry } from 'prom-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createMetrics, outcomeOf, type Metrics } from '../metrics.js';
import { clientLeft, whenClosed } from '../closed.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
  interface FastifyRequest {
    /** Model the handler resolved (label of the inference metrics). */
    modelName?: string;
    /** Public error code of the response, set by the error handler. */
    errorCode?: string;
  }
  interface FastifyContextConfig {
    /** Marks /classify and /embed: counted in mlp_requests_total and mlp_rejections_total. */
    inference?: boolean;
  }
}

const COUNTED = Symbol('mlp.inflightCounted');
const SETTLED = Symbol('mlp.settled');
type Tracked = FastifyRequest & { [COUNTED]?: boolean; [SETTLED]?: boolean };

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  const metrics = createMetrics(new Registry());
  app.decorate('metrics', metrics);
  app.decorateRequest('modelName', undefined);
  app.decorateRequest('errorCode', undefined);

  /** Ends a request's accounting once: false if it was already accounted for. */
  const finish = (req: Tracked) => {
    if (req[SETTLED]) return false;
    req[SETTLED] = true;
    if (req[COUNTED]) metrics.inflightRequests.dec();
    return true;
  };

  app.addHook('onRequest', async (req: Tracked, reply) => {
    req[COUNTED] = true;
    metrics.inflightRequests.inc();
    // The connection closed before the answer was sent: the client has gone (status 499, as nginx logs it).
    whenClosed(reply, () => {
      if (!clientLeft(reply) || !finish(req)) return;
      const route = req.routeOptions.url ?? 'unmatched';
      metrics.httpRequestDuration.observe({ route, method: req.method, status: '499' }, reply.elapsedTime / 1000);
      if (!req.routeOptions.config?.inference) return;
      const model = req.modelName ?? 'unknown';
      metrics.requestsTotal.inc({ route, model, outcome: 'cancelled', protocol: 'http' });
      metrics.rejectionsTotal.inc({ model, reason: 'client_gone', protocol: 'http' });
    });
  });
  app.addHook('onResponse', async (req: Tracked, reply: FastifyReply) => {
    if (!finish(req)) return;
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.httpRequestDuration.observe({ route, method: req.method, status: String(status) }, reply.elapsedTime / 1000);
    if (!req.routeOptions.config?.inference) return;
    const model = req.modelName ?? 'unknown';
    metrics.requestsTotal.inc({ route, model, outcome: outcomeOf(status), protocol: 'http' });
    // Refusals: every 4xx, load shedding (503) and deadlines (504); 500s are our faults, counted as outcome=error.
    if (req.errorCode && status !== 500) metrics.rejectionsTotal.inc({ model, reason: req.errorCode.toLowerCase(), protocol: 'http' });
  });

  app.get(
    '/metrics',
    {
      config: { access: 'open' },
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        produces: ['text/plain'],
      },
    },
    async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );
}

export default fp(metricsPlugin, { name: 'mlp-metrics', fastify: '5.x' });
