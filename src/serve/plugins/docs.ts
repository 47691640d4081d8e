// The browsable API: Swagger UI at /docs over the OpenAPI document @fastify/swagger builds from the route schemas
// (also served at /docs/json and /docs/yaml). The UI's assets come from the @fastify/swagger-ui package itself, so the
// page works offline. Every route here is open (no API key, like the probes), and gets the UI's own
// Content-Security-Policy (script and style hashes of its files) instead of the API's load-nothing one.

import type { FastifyInstance } from 'fastify';
import swaggerUi from '@fastify/swagger-ui';

export default async function docsPlugin(app: FastifyInstance): Promise<void> {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), access: 'open' };
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: false },
    staticCSP: true,
    // The service is usually reached over plain HTTP inside a cluster: do not make browsers upgrade its assets.
    transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  });
}
