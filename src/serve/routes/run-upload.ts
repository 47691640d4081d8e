// The path /classify and /embed share: resolve the model (a pinned version or the newest), read the upload (raw
// body or multipart parts), and run every image through the model's batcher, in upload order.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../config.js';
import type { ItemResult } from '../batcher.js';
import { runImages } from '../inference.js';
import { readUpload } from '../inputs.js';
import { holdUntilClosed } from '../closed.js';
import { clientGone } from '../plugins/limits.js';
import type { ModelQuery } from '../schemas.js';

export async function runUpload(
  app: FastifyInstance,
  req: FastifyRequest<{ Querystring: ModelQuery }>,
  reply: FastifyReply,
  config: Readonly<Config>,
) {
  const model = app.models.resolve(req.query.model, req.query.version, holdUntilClosed(reply));
  req.modelName = model.name;
  reply.header('x-model-version', model.version);
  const upload = await readUpload(req, config);
  const outs: ItemResult[] = await runImages(model, upload.images, {
    maxPixels: config.maxPixels,
    maxFrames: config.maxFrames,
    allowVector: config.allowVectorImages,
    signal: clientGone(reply),
    timeoutMs: config.requestTimeoutMs,
    remainingMs: () => config.requestTimeoutMs - reply.elapsedTime,
    metrics: app.metrics,
  });
  return { model, multipart: upload.multipart, outs };
}
