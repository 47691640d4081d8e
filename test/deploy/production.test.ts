// The production runtime, proven without a container engine: the image's /app is laid out in a scratch directory
// by the build stage's steps (tsc to dist/, `npm ci --omit=dev`, the image's pruning), so only production
// dependencies are there; the compiled server is started with the image's CMD from that directory and classifies
// real Fashion-MNIST images over a socket. The import graph of dist/ is also walked: every package it names is a
// production dependency, and none of the training, plotting or TypeScript tooling is reachable.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { connect } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fashionMnistPngs } from '../serve/helpers.js';
import { type AppDir, prepareAppDir, pruneCommands, ROOT } from './lib/app-dir.js';
import { freePort, waitFor } from './lib/prometheus.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
// Needed to train, plot or run TypeScript, never to serve. (protobufjs is served: teaching writes ONNX models.)
const NOT_AT_RUNTIME = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'vega', 'vega-lite', 'tsx', 'typescript', 'vitest'];
const ENTRIES = ['dist/serve/server.js', 'dist/serve/inference-worker.js', 'dist/probe/fit-worker.js'];

let app: AppDir;
let server: ChildProcess | undefined;
let exit: Promise<number | null>;
let log = '';
let base: string;
let grpcPort: number;

/** Package name of a bare import specifier ('@scope/name/sub' → '@scope/name'). */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Every JS file reachable from the entries through relative imports, and the packages they import. */
function importGraph(dir: string, entries: string[]): { files: string[]; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = entries.map((e) => join(dir, e));
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const { fileName: spec } of importedFiles) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) packages.add(packageOf(spec));
    }
  }
  return { files: [...files].map((f) => relative(dir, f)).sort(), packages };
}

function duBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, e) => sum + duBytes(join(path, e)), 0);
}

beforeAll(async () => {
  app = prepareAppDir('Dockerfile');
  const port = await freePort();
  grpcPort = await freePort();
  // Nothing from the test runner's environment may steer module resolution towards the repository.
  const { NODE_OPTIONS: _o, NODE_PATH: _p, ...inherited } = process.env;
  const env = { ...inherited, ...app.env, PORT: String(port), GRPC_PORT: String(grpcPort), HOST: '127.0.0.1', MODELS_DIR: join(ROOT, 'models') };
  server = spawn(app.cmd[0] === 'node' ? process.execPath : app.cmd[0]!, app.cmd.slice(1), { cwd: app.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  server.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  exit = new Promise((r) => server!.once('exit', (code) => r(code)));
  base = `http://127.0.0.1:${port}`;
  const ready = await waitFor(() => fetch(`${base}/readyz`).then((r) => r.ok), 60_000, 200);
  if (!ready) throw new Error(`compiled server not ready:\n${log}`);
}, 240_000);

afterAll(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  await app?.remove();
}, 60_000);

describe('production runtime (compiled server, production dependencies only)', () => {
  it('the image runs the compiled server with node, not a TypeScript loader', () => {
    expect(app.cmd).toEqual(['node', 'dist/serve/server.js']);
    for (const e of ENTRIES) expect(existsSync(join(app.dir, e)), e).toBe(true);
    expect(readdirSync(app.dir).sort()).toEqual(['dist', 'node_modules', 'package.json']);
  });

  it('the compiled import graph reaches only production dependencies, none of the training or plotting ones', () => {
    const { files, packages } = importGraph(app.dir, ENTRIES);
    expect(files).toEqual(expect.arrayContaining(['dist/serve/app.js', 'dist/config.js', 'dist/data/preprocess.js']));
    // Teaching (POST /admin/models/{base}/probe) fits and exports probe heads, so src/probe serves; training does not.
    expect(files.some((f) => /^dist\/(train|scaling|finetune)\//.test(f)), files.join('\n')).toBe(false);
    expect(files).toEqual(expect.arrayContaining(['dist/probe/fit-worker.js', 'dist/probe/export-probe.js']));
    for (const p of packages) expect(Object.keys(pkg.dependencies), `${p} is a production dependency`).toContain(p);
    for (const p of NOT_AT_RUNTIME) {
      expect(packages.has(p), p).toBe(false);
      expect(pkg.dependencies[p], `${p} is not a production dependency`).toBeUndefined();
    }
    expect([...packages]).toEqual(expect.arrayContaining(['fastify', 'onnxruntime-node', 'sharp']));
    // The walk sees imports (the check is not vacuous): a training module names tfjs.
    const train = ts.preProcessFile(readFileSync(join(ROOT, 'src/train/engines/tfjs.ts'), 'utf8'), true, true);
    expect(train.importedFiles.map((f) => packageOf(f.fileName))).toContain('@tensorflow/tfjs');
  });

  it('npm ci --omit=dev installs no training, plotting or TypeScript tooling, and the image prunes foreign binaries', () => {
    const nm = join(app.dir, 'node_modules');
    for (const p of NOT_AT_RUNTIME) expect(existsSync(join(nm, p)), p).toBe(false);
    for (const p of Object.keys(pkg.dependencies)) expect(existsSync(join(nm, p, 'package.json')), p).toBe(true);
    expect(pruneCommands('Dockerfile').length).toBeGreaterThanOrEqual(2);
    const bins = join(nm, 'onnxruntime-node/bin/napi-v6');
    expect(readdirSync(bins)).toEqual(['linux']);
    expect(readdirSync(join(bins, 'linux'))).toEqual([process.arch]);
    // The size an operator pays for, printed for docs/deploy.md.
    console.log(`runtime node_modules: ${(duBytes(nm) / 2 ** 20).toFixed(0)} MiB (npm ci --omit=dev + the image's pruning)`);
  });

  it('answers /classify on real Fashion-MNIST images over a socket', async () => {
    const images = await fashionMnistPngs(32);
    let correct = 0;
    for (const img of images) {
      const res = await fetch(`${base}/classify`, { method: 'POST', body: new Uint8Array(img.png), headers: { 'content-type': 'image/png' } });
      expect(res.status, log).toBe(200);
      const body = (await res.json()) as { model: string; predictions: { label: string; index?: number; score: number }[] };
      expect(body.model).toBe('fashion-mlp');
      const card = JSON.parse(readFileSync(join(ROOT, 'models/fashion-mlp/model.json'), 'utf8')) as { labels: string[] };
      if (body.predictions[0]!.label === card.labels[img.label]) correct++;
    }
    // The served model's top-1 on these images: well above the 10% of chance, so decoding and inference work.
    expect(correct / images.length).toBeGreaterThan(0.6);
    const bad = await fetch(`${base}/classify`, { method: 'POST', body: 'not an image', headers: { 'content-type': 'image/png' } });
    expect(bad.status).toBe(400);
  });

  it('serves gRPC too: the .proto the listener loads was built into dist/', async () => {
    expect(existsSync(join(app.dir, 'dist/serve/grpc/grpc_predict_v2.proto'))).toBe(true);
    const open = await new Promise<boolean>((r) => {
      const s = connect(grpcPort, '127.0.0.1', () => (s.end(), r(true)));
      s.once('error', () => r(false));
    });
    expect(open, log).toBe(true);
  });

  it('SIGTERM (what tini forwards to node) drains and exits 0', async () => {
    server!.kill('SIGTERM');
    const code = await Promise.race([exit, new Promise((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(code, log).toBe(0);
    expect(log).toMatch(/drained; exiting/);
  }, 30_000);
});
