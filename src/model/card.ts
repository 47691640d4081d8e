// The model card: the config stored with the weights. `models/<name>/model.json` beside `model.onnx`.
// Training writes it, the exporter embeds it in the ONNX metadata, the server validates it at load.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const PositiveInt = (description: string) => Type.Integer({ minimum: 1, description });

// Every field says what it means in `description`: docs/models.md's field table is generated from this schema.
export const ModelCardSchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      description: 'Served name; must equal the directory name. Letters, digits, `._-`, no path separators.',
    }),
    version: Type.String({
      minLength: 1,
      maxLength: 64,
      description: 'Version served; in the layout `NAME/VERSION/` it must equal the directory name (letters, digits, `._-`).',
    }),
    arch: Type.Object(
      {
        name: Type.String({
          pattern: '^[BS]_\\d+-Wi_\\d+$',
          description: '`B_<depth>-Wi_<width>` (the paper\'s inverted-bottleneck MLP), or `S_<depth>-Wi_<width>` for the standard MLP; must agree with depth and width.',
        }),
        depth: Type.Integer({ minimum: 0, description: 'Number of blocks.' }),
        width: PositiveInt('Width of the residual stream (the embedding size).'),
        expansion: PositiveInt('Hidden width of a block ÷ width (4 in the paper).'),
      },
      { description: 'The architecture the weights belong to.' },
    ),
    labels: Type.Array(Type.String(), { minItems: 1, description: 'Class names, in the order of the `logits` output.' }),
    input: Type.Object(
      {
        width: PositiveInt('Image width the model reads, in pixels (uploads are resized to it).'),
        height: PositiveInt('Image height the model reads, in pixels.'),
        channels: Type.Union([Type.Literal(1), Type.Literal(3)], { description: '1 (greyscale) or 3 (RGB).' }),
        layout: Type.Literal('CHW', { description: 'Channel-major (C, H, W) flattened to C·H·W values: the paper\'s layout.' }),
      },
      { description: 'The geometry of the graph\'s input `[batch, C·H·W]`.' },
    ),
    normalization: Type.Object(
      {
        mean: Type.Array(Type.Number(), { minItems: 1, maxItems: 3, description: 'Per-channel mean on the 0–255 pixel scale, one per input channel.' }),
        std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 3, description: 'Per-channel standard deviation on the 0–255 scale, one per input channel.' }),
      },
      { description: 'What the model was trained on: x = (pixel − mean) / std.' },
    ),
    embeddingDim: PositiveInt('Size of the `embedding` output; must equal arch.width.'),
    params: PositiveInt('Number of parameters (shown by `GET /models`).'),
    flopsPerImage: PositiveInt('Forward FLOPs per image (2 × multiply-accumulates).'),
    provenance: Type.Object(
      {
        kind: Type.Union([Type.Literal('random'), Type.Literal('trained'), Type.Literal('imported'), Type.Literal('finetuned'), Type.Literal('probe')], {
          description: 'How the weights came to be (`probe`: a base model\'s body with a linear head fitted on its embeddings; `base` names that model).',
        }),
        command: Type.Optional(Type.String({ description: 'The command line that made them, to re-run it.' })),
      },
      { additionalProperties: true, description: 'Where the weights come from; other fields are kept as they are.' },
    ),
    tta: Type.Optional(
      Type.Object(
        {
          views: Type.Array(
            Type.Object(
              {
                dx: Type.Integer({ description: 'Horizontal shift in pixels.' }),
                dy: Type.Integer({ description: 'Vertical shift in pixels.' }),
                flip: Type.Boolean({ description: 'Mirrored left to right.' }),
              },
              { additionalProperties: false },
            ),
            { minItems: 1, maxItems: 64, description: 'The views averaged over.' },
          ),
        },
        {
          description:
            'Test-time augmentation built into the graph (src/model/tta.ts): the embedding is the mean residual stream over these views. Absent: the image is seen once, as is.',
        },
      ),
    ),
    precision: Type.Optional(
      Type.Union([Type.Literal('fp32'), Type.Literal('fp16'), Type.Literal('int8')], {
        description:
          'Storage of the MatMul weights (src/export/precision.ts): `fp16` cast to float32 in the graph, `int8` dynamically quantised per output column; LayerNorm, GELU and biases stay float32. Absent: `fp32`.',
      }),
    ),
    metrics: Type.Record(Type.String(), Type.Number(), { description: 'Measured results, e.g. `{"testTop1": 0.912}`; may be empty.' }),
    createdAt: Type.Optional(Type.String({ description: 'When the card was written (ISO 8601).' })),
  },
  { additionalProperties: true },
);

export type ModelCard = Static<typeof ModelCardSchema>;

/** One field of a card at fault. */
export interface CardProblem {
  /** Dotted path, e.g. `arch.width`; `(root)` or `(file)` for the whole card. */
  field: string;
  detail: string;
}

/** A card that failed validation: the message names the file and every field at fault, in one line. */
export class ModelCardError extends Error {
  readonly problems: readonly CardProblem[];
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
    more: readonly CardProblem[] = [],
  ) {
    const problems = [{ field, detail }, ...more];
    super(`${file}: ${problems.map((p) => `field "${p.field}" ${p.detail}`).join('; ')}`);
    this.name = 'ModelCardError';
    this.problems = problems;
  }
}

function cardError(file: string, problems: CardProblem[]): ModelCardError {
  const [first, ...more] = problems;
  return new ModelCardError(file, first.field, first.detail, more);
}

/** No card at all (a bare model.onnx brought from elsewhere): one error saying everything the card must hold. */
function missingCard(file: string): ModelCardError {
  const fields = schemaProblems({}).map((p) => p.field);
  const err = new ModelCardError(file, '(file)', 'is missing', fields.map((field) => ({ field, detail: 'is missing' })));
  err.message = `${file}: missing; every model needs this card beside ${ONNX_FILE} (see docs/models.md), with the fields ${fields.join(', ')}`;
  return err;
}

/** Every schema violation of `value`, one per field (the first TypeBox reports for it). */
function schemaProblems(value: unknown): CardProblem[] {
  const byField = new Map<string, string>();
  for (const e of Value.Errors(ModelCardSchema, value)) {
    const field = e.path.replace(/^\//, '').replace(/\//g, '.') || '(root)';
    if (!byField.has(field)) byField.set(field, e.message === 'Expected required property' ? 'is missing' : e.message.toLowerCase());
  }
  return [...byField].map(([field, detail]) => ({ field, detail }));
}

/** The fields that depend on each other; only meaningful once the schema holds. */
function crossProblems(card: ModelCard): CardProblem[] {
  const out: CardProblem[] = [];
  const c = card.input.channels;
  if (card.normalization.mean.length !== c) out.push({ field: 'normalization.mean', detail: `must have ${c} values (one per input channel)` });
  if (card.normalization.std.length !== c) out.push({ field: 'normalization.std', detail: `must have ${c} values (one per input channel)` });
  if (card.embeddingDim !== card.arch.width) out.push({ field: 'embeddingDim', detail: `must equal arch.width (${card.arch.width})` });
  const family = card.arch.name[0];
  if (card.arch.name !== `${family}_${card.arch.depth}-Wi_${card.arch.width}`)
    out.push({ field: 'arch.name', detail: `must be ${family}_${card.arch.depth}-Wi_${card.arch.width}` });
  return out;
}

/** Validates a parsed card; throws one ModelCardError listing every field missing or invalid. */
export function validateCard(value: unknown, file: string): ModelCard {
  const problems = schemaProblems(value);
  if (problems.length === 0) problems.push(...crossProblems(value as ModelCard));
  if (problems.length > 0) throw cardError(file, problems);
  return value as ModelCard;
}

export const CARD_FILE = 'model.json';
export const ONNX_FILE = 'model.onnx';

/** Reads and validates `<dir>/model.json`. */
export async function readCard(dir: string): Promise<ModelCard> {
  const file = join(dir, CARD_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    if (code === 'ENOENT') throw missingCard(file);
    throw new ModelCardError(file, '(file)', `cannot be read: ${code}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelCardError(file, '(root)', `is not valid JSON: ${(err as Error).message}`);
  }
  return validateCard(json, file);
}

/** Input size C·H·W the card's model expects. */
export function inputDim(card: Pick<ModelCard, 'input'>): number {
  return card.input.channels * card.input.height * card.input.width;
}
