// Every generated section of docs/ matches what its source renders today: a variable added to src/config.ts (or
// a code to the error table, a field to the card) without `npm run docs:generate` fails here.

import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { GENERATED_SECTIONS, readSection, writeSection } from '../../src/docs/generated.js';
import { CONFIG_ENV_VARS } from '../../src/config.js';
import { Errors } from '../../src/serve/errors.js';

describe('generated docs', () => {
  for (const s of GENERATED_SECTIONS)
    it(`${s.file} section "${s.name}" matches its source (else: npm run docs:generate)`, () => {
      const section = readSection(readFileSync(s.file, 'utf8'), s.name);
      expect(section, `${s.file} lacks the markers of section "${s.name}"`).toBeDefined();
      expect(section).toBe(s.render());
    });

  it('the configuration page documents every variable, once', () => {
    const page = readFileSync('docs/configuration.md', 'utf8');
    for (const v of CONFIG_ENV_VARS) expect(page.split(`| \`${v}\` |`).length - 1, v).toBe(1);
  });

  it('the errors page documents every code of the error table, once, with its status', () => {
    const page = readFileSync('docs/errors.md', 'utf8');
    for (const [code, make] of Object.entries(Errors)) {
      const rows = page.split('\n').filter((l) => l.includes(`| \`${code}\` |`));
      expect(rows, code).toHaveLength(1);
      expect(rows[0].startsWith(`| ${(make as unknown as () => { statusCode: number })().statusCode}`), code).toBe(true);
    }
  });

  it('writeSection replaces only the content between the markers, and readSection reads it back', () => {
    const page = writeSection('# Title\n\nprose\n', 'x', 'old');
    const updated = writeSection(`${page}\nafter\n`, 'x', 'new\ntable');
    expect(readSection(updated, 'x')).toBe('new\ntable');
    expect(updated.startsWith('# Title\n\nprose\n\n<!-- generated:x')).toBe(true);
    expect(updated.endsWith('<!-- /generated:x -->\n\nafter\n')).toBe(true);
    expect(readSection('no markers', 'x')).toBeUndefined();
  });
});
