// Teaching routes, behind ADMIN_API_KEYS like the reload route:
// POST /admin/models/{base}/probe?name={new}: multipart/form-data whose file parts' field names are their labels →
// 202 {job, status: "queued"}; the job (src/serve/probe-jobs.ts) fits a linear head on the base model's embeddings
// and serves it as model {new} (a new version if the name exists). GET /admin/jobs/{id}: the job's state.
// Everything a client can get wrong is checked here, before 202: labels, counts, every image decoded once.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../../config.js';
import { CARD_FILE } from '../../model/card.js';
import { ImageDecodeError, decodeToChw } from '../../data/preprocess.js';
import { Errors } from '../errors.js';
import { ProbeJobs, type TeachRequest } from '../probe-jobs.js';
import { ErrorBody, ModelName } from '../schemas.js';

/** The fewest images per label a head is fitted from (a fifth is held out to choose λ). */
export const MIN_IMAGES_PER_LABEL = 5;

declare module 'fastify' {
  interface FastifyInstance {
    probeJobs: ProbeJobs;
  }
}

const ProbeParams = Type.Object({ base: ModelName }, { additionalProperties: false });
const ProbeQuery = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'Name of the model to create (or add a version to): letters, digits, `._-`.' }),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: 'Seed of the train/validation split that chooses λ.' })),
  },
  { additionalProperties: false },
);
const JobView = Type.Object({
  job: Type.String(),
  status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
  base: Type.String(),
  model: Type.String({ description: 'The model being taught (served under this name once done).' }),
  version: Type.Optional(Type.String({ description: 'The version written (done).' })),
  valAccuracy: Type.Optional(Type.Number({ description: 'Accuracy on the held-out fifth at the chosen λ.' })),
  lambda: Type.Optional(Type.Number()),
  images: Type.Integer(),
  labels: Type.Array(Type.String()),
  error: Type.Optional(Type.String()),
  seconds: Type.Optional(Type.Number()),
  fitSeconds: Type.Optional(Type.Number()),
});
const Accepted = Type.Object({ job: Type.String(), status: Type.Literal('queued') });

/** The labelled images of the upload, each decoded once so a bad one is refused now, by its part. */
async function readLabelled(app: FastifyInstance, req: FastifyRequest, base: string, config: Readonly<Config>) {
  if (!req.isMultipart()) throw Errors.UNSUPPORTED_MEDIA_TYPE('send the labelled images as multipart/form-data: one file part per image, its field name the label');
  const card = app.models.resolve(base).card;
  const labels: string[] = [];
  const index = new Map<string, number>();
  const images: Buffer[] = [];
  const labelOf: number[] = [];
  let total = 0;
  let part = 0;
  try {
    for await (const p of req.parts({ limits: { files: config.probeMaxImages, parts: config.probeMaxImages + 16, fileSize: config.maxBodyBytes } })) {
      if (p.type !== 'file') continue;
      part++;
      const bytes = await p.toBuffer();
      total += bytes.length;
      if (total > config.probeMaxBytes) throw Errors.PAYLOAD_TOO_LARGE(config.probeMaxBytes);
      const label = p.fieldname.trim();
      const what = `part ${part} (label "${label}"${p.filename ? `, file "${p.filename}"` : ''})`;
      if (!label) throw Errors.INVALID_TRAINING_SET(`${what}: the field name is the label and must not be empty`);
      if (bytes.length === 0) throw Errors.UNDECODABLE_IMAGE(`${what} is empty`);
      try {
        await decodeToChw(bytes, card.input, { maxPixels: config.maxPixels, maxFrames: config.maxFrames, allowVector: config.allowVectorImages });
      } catch (err) {
        if (err instanceof ImageDecodeError) throw new ImageDecodeError(err.kind, `${what}: ${err.message}`);
        throw err;
      }
      let c = index.get(label);
      if (c === undefined) index.set(label, (c = labels.push(label) - 1));
      images.push(bytes);
      labelOf.push(c);
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'FST_FILES_LIMIT') throw Errors.INVALID_TRAINING_SET(`at most PROBE_MAX_IMAGES = ${config.probeMaxImages} images per probe`);
    if (err instanceof ImageDecodeError || typeof (err as { code?: unknown }).code === 'string') throw err;
    throw Errors.MALFORMED_MULTIPART();
  }
  if (images.length === 0) throw Errors.NO_FILE();
  if (labels.length < 2) throw Errors.INVALID_TRAINING_SET(`a classifier needs at least 2 labels (field names); got ${labels.length}: ${labels.map((l) => `"${l}"`).join(', ')}`);
  const counts = labels.map((_, c) => labelOf.filter((y) => y === c).length);
  const few = labels.filter((_, c) => counts[c] < MIN_IMAGES_PER_LABEL);
  if (few.length > 0)
    throw Errors.INVALID_TRAINING_SET(`every label needs at least ${MIN_IMAGES_PER_LABEL} images; too few for ${few.map((l) => `"${l}" (${counts[labels.indexOf(l)]})`).join(', ')}`);
  return { labels, images, labelOf: Int32Array.from(labelOf) };
}

export default async function probeRoutes(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;
  await ProbeJobs.clearStaging(config.modelsDir);
  const jobs = new ProbeJobs(config, app.models, app.metrics, app.log);
  app.decorate('probeJobs', jobs);
  // Before the listener drains: a running job is abandoned (its staging directory removed), not waited for.
  app.addHook('preClose', () => jobs.close());

  app.post<{ Params: Static<typeof ProbeParams>; Querystring: Static<typeof ProbeQuery> }>(
    '/admin/models/:base/probe',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Teach a new classifier: a linear head on the base model\'s embeddings, from labelled images',
        description:
          'multipart/form-data, one file part per image, its field name the label (≥ 2 labels, ≥ 5 images each, ≤ PROBE_MAX_IMAGES). ' +
          'Answers 202 with a job id; GET /admin/jobs/{id} follows it. Once done, /classify?model={name} serves it.',
        tags: ['models'],
        params: ProbeParams,
        querystring: ProbeQuery,
        response: { 202: Accepted, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const { base } = req.params;
      const { name } = req.query;
      app.models.resolve(base); // UNKNOWN_MODEL / NOT_READY before reading the body
      if (existsSync(join(config.modelsDir, name, CARD_FILE)))
        throw Errors.MODEL_NAME_TAKEN(`model "${name}" uses the flat layout (${name}/${CARD_FILE}), which cannot take a new version; choose another name`);
      const upload = await readLabelled(app, req, base, config);
      const teach: TeachRequest = { base, name, seed: req.query.seed ?? 0, ...upload };
      const view = jobs.submit(teach);
      return reply.code(202).send({ job: view.job, status: 'queued' as const });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/admin/jobs/:id',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'State of a probe job',
        tags: ['models'],
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: { 200: JobView, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => jobs.get(req.params.id),
  );
}
