// The generated parts of docs/: each page keeps hand-written prose around a section between two HTML comments
// (`<!-- generated:NAME -->` … `<!-- /generated:NAME -->`) whose content is rendered from the code's one source.
// `npm run docs:generate` rewrites the sections; test/docs/generated.test.ts fails when a page and its source drift.

import { renderCardTable } from './card-table.js';
import { renderConfigTable } from './config-table.js';
import { renderErrorsTable } from './errors-table.js';

export interface GeneratedSection {
  /** Page, relative to the repository root. */
  file: string;
  /** Name in the markers. */
  name: string;
  render(): string;
}

export const GENERATED_SECTIONS: readonly GeneratedSection[] = [
  { file: 'docs/configuration.md', name: 'config', render: renderConfigTable },
  { file: 'docs/errors.md', name: 'errors', render: renderErrorsTable },
  { file: 'docs/models.md', name: 'card', render: () => renderCardTable() },
];

function markers(name: string): [string, string] {
  return [`<!-- generated:${name} (npm run docs:generate) -->`, `<!-- /generated:${name} -->`];
}

/** The content between a section's markers, or undefined when the page lacks them. */
export function readSection(page: string, name: string): string | undefined {
  const [open, close] = markers(name);
  const a = page.indexOf(open);
  const b = page.indexOf(close);
  if (a < 0 || b < a) return undefined;
  return page.slice(a + open.length, b).replace(/^\n/, '').replace(/\n$/, '');
}

/** The page with the section's content replaced (appended with its markers when absent). */
export function writeSection(page: string, name: string, content: string): string {
  const [open, close] = markers(name);
  const a = page.indexOf(open);
  const b = page.indexOf(close);
  if (a < 0 || b < a) return `${page.replace(/\n*$/, '\n\n')}${open}\n${content}\n${close}\n`;
  return `${page.slice(0, a + open.length)}\n${content}\n${page.slice(b)}`;
}
