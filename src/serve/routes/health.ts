// GET /healthz (alive) and GET /readyz (every model loaded and warmed up, and not draining).

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ReadyResponse } from '../schemas.js';

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/healthz',
    {
      config: { access: 'open' },
      schema: {
        summary: 'Liveness: 200 while the process runs',
        tags: ['operations'],
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'open' },
      schema: {
        summary: 'Readiness: 200 once every model is warmed up; 503 while loading, after a failure and while draining',
        tags: ['operations'],
        response: { 200: ReadyResponse, 503: ReadyResponse },
      },
    },
    async (_req, reply) => {
      const state = app.serving.draining ? 'draining' : app.models.state;
      const models = app.models.list.map((m) => ({ name: m.name, provider: m.provider ?? null }));
      if (state !== 'ready') reply.code(503).header('retry-after', '1');
      return { status: state, models };
    },
  );
}
