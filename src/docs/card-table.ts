// docs/models.md's card reference: every field of the TypeBox schema in src/model/card.ts, nested fields as dotted
// paths, with whether it is required, what it accepts and its description.

import type { TSchema } from '@sinclair/typebox';
import { ModelCardSchema } from '../model/card.js';
import { markdownTable } from './markdown.js';

interface Schema {
  type?: string;
  description?: string;
  const?: unknown;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  patternProperties?: Record<string, Schema>;
  items?: Schema;
  pattern?: string;
  minimum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
}

function range(lo: number | undefined, hi: number | undefined, unit: string): string {
  if (lo !== undefined && hi !== undefined) return ` (${lo === hi ? lo : `${lo}–${hi}`} ${unit})`;
  if (lo !== undefined) return ` (at least ${lo} ${unit})`;
  return hi !== undefined ? ` (at most ${hi} ${unit})` : '';
}

/** What a value of `s` must be, in words. */
function accepts(s: Schema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.anyOf) return s.anyOf.map(accepts).join(' or ');
  switch (s.type) {
    case 'string':
      return `string${s.pattern ? ` matching \`${s.pattern}\`` : ''}${range(s.minLength, s.maxLength, 'characters')}`;
    case 'integer':
    case 'number':
      return `${s.type}${s.minimum !== undefined ? ` ≥ ${s.minimum}` : ''}${s.exclusiveMinimum !== undefined ? ` > ${s.exclusiveMinimum}` : ''}`;
    case 'boolean':
      return 'true or false';
    case 'array':
      return `array of ${s.items && s.items.type !== 'object' ? accepts(s.items) : 'objects'}${range(s.minItems, s.maxItems, 'items')}`;
    case 'object':
      if (s.patternProperties) return `object of name → ${Object.values(s.patternProperties).map(accepts).join(' or ')}`;
      return 'object';
    default:
      return 'any';
  }
}

/** Rows for `s`'s properties, nested objects (and arrays of objects, as `name[]`) depth-first. */
function rows(s: Schema, prefix: string, out: string[][]): string[][] {
  const required = new Set(s.required ?? []);
  for (const [key, p] of Object.entries(s.properties ?? {})) {
    const path = `${prefix}${key}`;
    out.push([`\`${path}\``, required.has(key) ? 'yes' : 'no', accepts(p), p.description ?? '']);
    if (p.properties) rows(p, `${path}.`, out);
    if (p.items?.properties) rows(p.items, `${path}[].`, out);
  }
  return out;
}

export function renderCardTable(schema: TSchema = ModelCardSchema): string {
  return markdownTable(['field', 'required', 'accepts', 'meaning'], rows(schema as Schema, '', []));
}
