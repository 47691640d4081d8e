// `npm run docs:generate`: rewrites the generated sections of docs/ from their sources (the configuration table,
// the error table, the model card schema). `--check` only reports pages that differ, and exits 1 if any does.

import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { GENERATED_SECTIONS, readSection, writeSection } from '../src/docs/generated.js';

const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
let stale = 0;
for (const s of GENERATED_SECTIONS) {
  const page = await readFile(s.file, 'utf8').catch(() => '');
  const content = s.render();
  if (readSection(page, s.name) === content) continue;
  stale++;
  if (values.check) console.log(`${s.file}: section "${s.name}" is stale`);
  else {
    await writeFile(s.file, writeSection(page, s.name, content));
    console.log(`${s.file}: section "${s.name}" rewritten`);
  }
}
if (values.check && stale > 0) process.exit(1);
