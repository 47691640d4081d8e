// Models plugin: exposes the ModelManager (src/serve/model-manager.ts) as `app.models` and stops it when the app
// closes, after fastify has answered every accepted request.

import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { ModelManager } from '../model-manager.js';
import type { ModelRegistry } from '../model-types.js';

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelRegistry;
  }
}

async function modelsPlugin(app: FastifyInstance, opts: { config: Readonly<Config>; loadAfter?: Promise<unknown> }): Promise<void> {
  const manager = await ModelManager.start(opts.config, { metrics: app.metrics, log: app.log, loadAfter: opts.loadAfter });
  app.decorate('models', manager);
  app.addHook('onClose', () => manager.close());
}

export default fp(modelsPlugin, { name: 'mlp-models', fastify: '5.x', dependencies: ['mlp-metrics'] });
