// The runtime image's /app laid out in a scratch directory without a container engine, by the Dockerfile's steps:
// a build directory (package files, tsconfigs, src/, the repository's node_modules standing for the build stage's
// `npm ci`) where `npm run build` makes dist/; then the runtime directory with package files, `npm ci --omit=dev`
// (production dependencies only, nothing borrowed from the repository's node_modules), the build stage's own
// pruning commands (onnxruntime binaries of other platforms, read from the Dockerfile and run as written) and dist/.

import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDockerfile } from './dockerfile.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface AppDir {
  /** The directory standing for the image's WORKDIR (/app). */
  dir: string;
  /** The runtime stage's CMD, e.g. ['node', 'dist/serve/server.js'], to run with cwd = dir. */
  cmd: string[];
  /** The runtime stage's ENV. */
  env: Record<string, string>;
  /** The runtime stage's HEALTHCHECK command. */
  healthcheck: string[];
  /** Deletes the directory (asynchronous: node_modules holds thousands of files). */
  remove(): Promise<void>;
}

/** The build stage's RUN fragments that prune node_modules after `npm prune` (the `find … -exec rm` ones). */
export function pruneCommands(dockerfile: string): string[] {
  const build = parseDockerfile(readFileSync(join(ROOT, dockerfile), 'utf8')).find((s) => s.name === 'build')!;
  return build.runs
    .flatMap((r) => r.replace(/\\\n/g, ' ').split(/\s*&&\s*/))
    .map((c) => c.trim())
    .filter((c) => /^find node_modules\/\S+ .*-exec rm -rf/.test(c));
}

/** Builds the layout (the build about 5 s, npm ci from the npm cache about 10 s on an idle machine). */
export function prepareAppDir(dockerfile = 'Dockerfile'): AppDir {
  const stages = parseDockerfile(readFileSync(join(ROOT, dockerfile), 'utf8'));
  const runtime = stages.at(-1)!;
  const dir = mkdtempSync(join(tmpdir(), 'mlp-app-'));
  const build = mkdtempSync(join(tmpdir(), 'mlp-build-'));
  try {
    for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) copyFileSync(join(ROOT, f), join(build, f));
    cpSync(join(ROOT, 'src'), join(build, 'src'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'));
    execFileSync('npm', ['run', '-s', 'build'], { cwd: build, stdio: 'pipe' });
    cpSync(join(build, 'dist'), join(dir, 'dist'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) copyFileSync(join(ROOT, f), join(dir, f));
    // --prefer-offline: the tarballs are in npm's cache after the repository's own `npm ci`.
    execFileSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'pipe' });
    for (const c of pruneCommands(dockerfile)) execFileSync('sh', ['-c', c], { cwd: dir, stdio: 'pipe' });
    // The runtime stage needs package.json only (dist/ is ESM by its "type"); the lock and .npmrc stay behind.
    for (const f of ['package-lock.json', '.npmrc']) rmSync(join(dir, f));
    return { dir, cmd: runtime.cmd!, env: runtime.env, healthcheck: runtime.healthcheck!.cmd, remove: () => rm(dir, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as Error & { stderr?: Buffer | string; stdout?: Buffer | string };
    throw new Error(`${err.message}\n${String(err.stdout ?? '')}\n${String(err.stderr ?? '')}`);
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}
