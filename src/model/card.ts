// The model card: the config stored with the weights. `models/<name>/model.json` beside `model.onnx`.
// Training writes it, the exporter embeds it in the ONNX metadata, the server validates it at load.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const PositiveInt = Type.Integer({ minimum: 1 });

export const ModelCardSchema = Type.Object(
  {
    /** Served name; also the directory name. Letters, digits, `._-`, no path separators. */
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }),
    version: Type.String({ minLength: 1, maxLength: 64 }),
    arch: Type.Object({
      /** `B_<depth>-Wi_<width>`, or `S_<depth>-Wi_<width>` for the standard MLP (src/model/standard-mlp.ts). */
      name: Type.String({ pattern: '^[BS]_\\d+-Wi_\\d+$' }),
      depth: Type.Integer({ minimum: 0 }),
      width: PositiveInt,
      expansion: PositiveInt,
    }),
    labels: Type.Array(Type.String(), { minItems: 1 }),
    input: Type.Object({
      width: PositiveInt,
      height: PositiveInt,
      channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
      /** Channel-major (C, H, W) flattened to C·H·W values: the paper's layout. */
      layout: Type.Literal('CHW'),
    }),
    /** Per-channel mean and std on the 0–255 pixel scale: x = (pixel − mean) / std. */
    normalization: Type.Object({
      mean: Type.Array(Type.Number(), { minItems: 1, maxItems: 3 }),
      std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 3 }),
    }),
    embeddingDim: PositiveInt,
    params: PositiveInt,
    /** Forward FLOPs per image (2 × multiply-accumulates). */
    flopsPerImage: PositiveInt,
    /** How the weights came to be: random init, trained here (with the recipe), imported, fine-tuned. */
    provenance: Type.Object(
      {
        kind: Type.Union([
          Type.Literal('random'),
          Type.Literal('trained'),
          Type.Literal('imported'),
          Type.Literal('finetuned'),
        ]),
        command: Type.Optional(Type.String()),
      },
      { additionalProperties: true },
    ),
    /**
     * Test-time augmentation built into the graph (src/model/tta.ts): the embedding is the mean residual stream over
     * these views. Absent: the image is seen once, as is.
     */
    tta: Type.Optional(
      Type.Object({
        views: Type.Array(
          Type.Object({ dx: Type.Integer(), dy: Type.Integer(), flip: Type.Boolean() }, { additionalProperties: false }),
          { minItems: 1, maxItems: 64 },
        ),
      }),
    ),
    /** Measured results, e.g. { "testTop1": 0.912 }. */
    metrics: Type.Record(Type.String(), Type.Number()),
    createdAt: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export type ModelCard = Static<typeof ModelCardSchema>;

/** A card that failed validation: the message names the file and the field. */
export class ModelCardError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: field "${field}" ${detail}`);
    this.name = 'ModelCardError';
  }
}

/** Validates a parsed card; cross-checks the fields that depend on each other. */
export function validateCard(value: unknown, file: string): ModelCard {
  const first = Value.Errors(ModelCardSchema, value).First();
  if (first) {
    const field = first.path.replace(/^\//, '').replace(/\//g, '.') || '(root)';
    throw new ModelCardError(file, field, first.message.toLowerCase());
  }
  const card = value as ModelCard;
  const c = card.input.channels;
  if (card.normalization.mean.length !== c)
    throw new ModelCardError(file, 'normalization.mean', `must have ${c} values (one per input channel)`);
  if (card.normalization.std.length !== c)
    throw new ModelCardError(file, 'normalization.std', `must have ${c} values (one per input channel)`);
  if (card.embeddingDim !== card.arch.width)
    throw new ModelCardError(file, 'embeddingDim', `must equal arch.width (${card.arch.width})`);
  const family = card.arch.name[0];
  if (card.arch.name !== `${family}_${card.arch.depth}-Wi_${card.arch.width}`)
    throw new ModelCardError(file, 'arch.name', `must be ${family}_${card.arch.depth}-Wi_${card.arch.width}`);
  return card;
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
    throw new ModelCardError(file, '(file)', `cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
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
