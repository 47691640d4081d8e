// The fetch-models init container's script, run for real (sh, curl, sha256sum, tar) against an archive of the
// repository's models served over HTTP on loopback: what it unpacks is the model directory, byte for byte; a
// checksum mismatch or a missing archive fails it before anything is unpacked. Paths are remapped from the
// container's (/tmp, /models) to a scratch directory; nothing else in the script is changed.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderKustomization } from './lib/kustomize.js';
import { K8S, one, ROOT } from './lib/overlays.js';

const deploy = one(renderKustomization(join(K8S, 'examples/own-models')), 'Deployment');
const init = deploy.spec.template.spec.initContainers[0] as { command: string[] };

let dir: string;
let server: Server;
let url: string;
let sha256: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mlp-fetch-'));
  const archive = join(dir, 'models.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', join(ROOT, 'models'), 'fashion-mlp']);
  const bytes = readFileSync(archive);
  sha256 = createHash('sha256').update(bytes).digest('hex');
  server = createServer((req, res) => {
    if (req.url === '/models.tar.gz') res.writeHead(200, { 'content-type': 'application/gzip' }).end(bytes);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the init container's command with /tmp and /models moved under a fresh scratch directory. */
async function runInit(env: Record<string, string>): Promise<{ status: number | null; models: string; output: string }> {
  const root = mkdtempSync(join(dir, 'pod-'));
  for (const d of ['tmp', 'models']) mkdirSync(join(root, d));
  const [shell, flags, script] = init.command;
  expect([shell, flags]).toEqual(['sh', '-ec']);
  const remapped = script!.replaceAll('/tmp/', `${root}/tmp/`).replace(/(\s)\/models\b/g, `$1${root}/models`);
  expect(remapped).not.toBe(script);
  // Asynchronous: the HTTP server answering curl runs on this process's event loop.
  const child = spawn(shell!, [flags!, remapped], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const status = await new Promise<number | null>((r) => child.once('close', r));
  return { status, models: join(root, 'models'), output };
}

describe('fetch-models init container', () => {
  it('downloads, verifies and unpacks the model directory', async () => {
    const r = await runInit({ MODELS_URL: `${url}/models.tar.gz`, MODELS_SHA256: sha256 });
    expect(r.status, r.output).toBe(0);
    expect(readdirSync(r.models)).toEqual(['fashion-mlp']);
    for (const f of readdirSync(join(ROOT, 'models/fashion-mlp')))
      expect(readFileSync(join(r.models, 'fashion-mlp', f)).equals(readFileSync(join(ROOT, 'models/fashion-mlp', f))), f).toBe(true);
  });

  it('EXPECTED FAILURE - a checksum mismatch stops it before anything is unpacked', async () => {
    const r = await runInit({ MODELS_URL: `${url}/models.tar.gz`, MODELS_SHA256: '0'.repeat(64) });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED/);
    expect(readdirSync(r.models)).toEqual([]);
  });

  it('EXPECTED FAILURE - a missing archive stops it', async () => {
    const r = await runInit({ MODELS_URL: `${url}/nope.tar.gz`, MODELS_SHA256: sha256 });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/404/);
    expect(readdirSync(r.models)).toEqual([]);
  });
});
