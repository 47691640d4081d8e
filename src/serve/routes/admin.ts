// Admin routes, behind ADMIN_API_KEYS (refused with 403 while none is configured).
// POST /admin/models/reload: re-read MODELS_DIR; new or changed versions are loaded and warmed up while the current
// ones keep serving, then swapped in; the previous generation drains and stops. Nothing changed → nothing reloaded.

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ErrorBody } from '../schemas.js';

const ReloadResponse = Type.Object({
  changed: Type.Boolean({ description: 'false when nothing on disk changed since the last load' }),
  generation: Type.Integer({ description: 'Increments with every reload that changed what is served' }),
  served: Type.Array(Type.String(), { description: 'name:version now served' }),
  loaded: Type.Array(Type.String(), { description: 'name:version loaded by this reload' }),
  unloaded: Type.Array(Type.String(), { description: 'name:version no longer served (draining)' }),
  skipped: Type.Array(Type.Object({ path: Type.String(), reason: Type.String() }), { description: 'Left out under MODEL_LOAD_POLICY=skip-bad' }),
  reloadMs: Type.Number(),
});

export default async function adminRoutes(app: FastifyInstance): Promise<void> {
  app.post(
    '/admin/models/reload',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Reload the model repository without dropping a request',
        tags: ['models'],
        response: { 200: ReloadResponse, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 422: ErrorBody, 503: ErrorBody },
      },
    },
    async () => app.models.reload(),
  );
}
