// The model card contract: one error naming every field missing or invalid (a bare model.onnx gets the whole list),
// the cross-field checks, and the example card of docs/models.md, which must load and count its model right.

import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelCardError, readCard, validateCard, type ModelCard } from '../../src/model/card.js';
import { configFor, flopsPerImage, paramCount } from '../../src/model/mlp.js';

const REQUIRED = ['name', 'version', 'arch', 'labels', 'input', 'normalization', 'embeddingDim', 'params', 'flopsPerImage', 'provenance', 'metrics'];

/** The example card of docs/models.md (the JSON block after `<!-- example-card -->`). */
function exampleCard(): ModelCard {
  const page = readFileSync('docs/models.md', 'utf8');
  const m = /<!-- example-card -->\s*```json\n([\s\S]*?)```/.exec(page);
  expect(m, 'docs/models.md has an example card').not.toBeNull();
  return JSON.parse(m![1]) as ModelCard;
}

function cardError(value: unknown): ModelCardError {
  try {
    validateCard(value, 'x/model.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ModelCardError);
    return e as ModelCardError;
  }
  throw new Error('the card was accepted');
}

describe('model card', () => {
  it("docs/models.md's example card is valid, and its params and FLOPs are those of its architecture", () => {
    const card = validateCard(exampleCard(), 'docs/models.md');
    const cfg = configFor(card.arch.name, card.arch.expansion, card.input.channels * card.input.height * card.input.width, card.labels.length);
    expect(card.params).toBe(paramCount(cfg));
    expect(card.flopsPerImage).toBe(flopsPerImage(cfg));
  });

  it('EXPECTED FAILURE - one bad field: the message names it as before', () => {
    const err = cardError({ ...exampleCard(), labels: [] });
    expect(err.message).toBe('x/model.json: field "labels" expected array length to be greater or equal to 1');
    expect(err.field).toBe('labels');
  });

  it('EXPECTED FAILURE - several missing or invalid fields: all of them in one error, each once', () => {
    const card = exampleCard() as unknown as Record<string, any>;
    delete card.labels;
    delete card.params;
    card.arch = { name: 'B_2-Wi_128', depth: 2 };
    card.input = { ...card.input, channels: 2 };
    const err = cardError(card);
    expect(err.problems.map((p) => p.field).sort()).toEqual(['arch.expansion', 'arch.width', 'input.channels', 'labels', 'params']);
    expect(err.message).toContain('field "labels" is missing');
    expect(err.message).toContain('field "arch.width" is missing');
    expect(err.message).toContain('field "input.channels" expected union value');
    expect(err.message.split('; ')).toHaveLength(5);
  });

  it('EXPECTED FAILURE - contradictions between fields are all listed once the schema holds', () => {
    const err = cardError({ ...exampleCard(), embeddingDim: 99, normalization: { mean: [1, 2, 3], std: [1] } });
    expect(err.problems.map((p) => p.field)).toEqual(['normalization.mean', 'embeddingDim']);
  });

  it('EXPECTED FAILURE - a bare model.onnx: the missing card is one error listing every required field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlp-card-'));
    try {
      await writeFile(join(dir, 'model.onnx'), 'graph');
      const err = await readCard(dir).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ModelCardError);
      const e = err as ModelCardError;
      expect(e.message).toBe(
        `${join(dir, 'model.json')}: missing; every model needs this card beside model.onnx (see docs/models.md), with the fields ${REQUIRED.join(', ')}`,
      );
      expect(e.problems.map((p) => p.field)).toEqual(['(file)', ...REQUIRED]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
