// POST /classify: one image (raw body) or several (multipart file parts) → softmax top-k per image.

import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { topK } from '../inference.js';
import { runUpload } from './run-upload.js';
import { ClassifyQuery, ClassifyResponse, errorResponses } from '../schemas.js';

export default async function classifyRoute(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  app.post<{ Querystring: ClassifyQuery }>(
    '/classify',
    {
      config: { inference: true },
      schema: {
        summary: 'Classify images',
        description:
          'Body: the image bytes (Content-Type image/* or application/octet-stream) → {model, predictions}; or ' +
          'multipart/form-data with 1..MAX_FILES file parts → {model, results:[{predictions}]} in part order. ' +
          'Scores are softmax probabilities, highest first.',
        tags: ['inference'],
        querystring: ClassifyQuery,
        response: { 200: ClassifyResponse, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { model, multipart, outs } = await runUpload(app, req, reply, config);
      const labels = model.card.labels;
      const k = req.query.top_k ?? 5; // the schema's default fills it in; this only satisfies the type
      if (!multipart) return { model: model.name, predictions: topK(outs[0].logits, labels, k) };
      return { model: model.name, results: outs.map((o) => ({ predictions: topK(o.logits, labels, k) })) };
    },
  );
}
