// GET /models: what is served, with each model's labels, input geometry, embedding size and provider (of its newest
// version, the one answering by default), every served version, and the thread split.

import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { ModelsResponse } from '../schemas.js';

export default async function modelsRoute(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  app.get(
    '/models',
    { schema: { summary: 'List the served models', tags: ['models'], response: { 200: ModelsResponse } } },
    async () => ({
      models: app.models.list.map((m) => ({
        name: m.name,
        default: m.isDefault,
        version: m.card.version,
        arch: m.card.arch.name,
        labels: m.card.labels,
        input: { width: m.card.input.width, height: m.card.input.height, channels: m.card.input.channels },
        embeddingDim: m.card.embeddingDim,
        params: m.card.params,
        flopsPerImage: m.card.flopsPerImage,
        provider: m.provider ?? null,
        versions: app.models.versionsOf(m.name).map((v) => ({
          version: v.version,
          arch: v.card.arch.name,
          classes: v.card.labels.length,
          embeddingDim: v.card.embeddingDim,
          provider: v.provider ?? null,
        })),
      })),
      threads: app.models.threads ? { ...app.models.threads, uvThreadpoolSize: config.uvThreadpoolSize } : null,
    }),
  );
}
