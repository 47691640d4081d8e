// How to start a worker thread on one of our modules, from sources or from a build. Under tsx or vitest the sources
// are .ts and the worker needs tsx's loader too; Node 20 ignores `--import` hooks for a worker's entry module, so a
// .ts worker starts from a one-line bootstrap that registers tsx first. A tsc build (.js) starts the file directly.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function tsxApiUrl(): string {
  // tsx/esm/api has an ESM entry and a CJS one; the ESM one is the entry of the package's "import" condition.
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import?: string | { default?: string } }> };
  const imp = pkg.exports['./esm/api']?.import;
  const rel = typeof imp === 'string' ? imp : imp?.default;
  if (!rel) throw new Error('tsx/esm/api has no ESM entry');
  return pathToFileURL(join(dirname(pkgFile), rel)).href;
}

/**
 * The Worker constructor's first argument and `eval` flag for the module `name` (without extension) next to
 * `from` (the caller's import.meta.url), in the caller's own flavour (.ts or .js).
 */
export function workerEntry(name: string, from: string): { entry: string | URL; eval: boolean } {
  const ext = extname(fileURLToPath(from));
  const url = new URL(`./${name}${ext}`, from);
  if (ext !== '.ts') return { entry: url, eval: false };
  const code = `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return { entry: code, eval: true };
}
