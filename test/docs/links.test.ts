// The README and the docs/ pages link to each other and to files of the repository: every relative link must name a
// file that exists, and every #anchor a heading of its page (GitHub's slugs), so a newcomer's clicks all land.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const PAGES = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f)), 'examples/README.md'];

/** GitHub's heading anchor: lower case, punctuation other than `-` and `_` dropped, spaces to `-`. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\- _]/gu, '').replace(/ /g, '-');
}

function anchorsOf(page: string): Set<string> {
  const text = readFileSync(page, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.*)$/gm)].map((m) => slug(m[1])));
}

function linksOf(page: string): string[] {
  const text = readFileSync(page, 'utf8').replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((l) => !/^(https?|mailto):/.test(l));
}

describe('links in the README and docs/', () => {
  it('the README links every docs/ page', () => {
    const readme = linksOf('README.md');
    for (const page of PAGES.filter((p) => p.startsWith('docs/'))) expect(readme, page).toContain(page);
  });

  it.each(PAGES)('%s: every relative link names an existing file, and every anchor a heading', (page) => {
    for (const link of linksOf(page)) {
      const [path, anchor] = link.split('#');
      const target = path ? normalize(join(dirname(page), path)) : page;
      expect(existsSync(target), `${page} → ${link}`).toBe(true);
      if (anchor && target.endsWith('.md')) expect(anchorsOf(target), `${page} → ${link}`).toContain(anchor);
    }
  });
});
