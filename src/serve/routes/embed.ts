// POST /embed: the model's embedding (the head's input, `width` values) of one image or of each file part.

import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { runUpload } from './run-upload.js';
import { EmbedResponse, ModelQuery, errorResponses } from '../schemas.js';

export default async function embedRoute(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  app.post<{ Querystring: ModelQuery }>(
    '/embed',
    {
      config: { inference: true },
      schema: {
        summary: 'Embed images',
        description:
          'Same inputs as /classify. Raw body → {model, dim, embedding}; multipart → {model, dim, embeddings} in ' +
          'part order. The embedding is the final residual stream (the head\'s input), not normalised.',
        tags: ['inference'],
        querystring: ModelQuery,
        response: { 200: EmbedResponse, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { model, multipart, outs } = await runUpload(app, req, reply, config);
      const dim = model.card.embeddingDim;
      if (!multipart) return { model: model.name, dim, embedding: Array.from(outs[0].embedding) };
      return { model: model.name, dim, embeddings: outs.map((o) => Array.from(o.embedding)) };
    },
  );
}
