// Start-up as a user sees it, from real processes: `npm start` with the default settings prints no warning (no
// npm config warning, no CUDA warning: one info line says the provider is cpu), and a port already in use is one
// clear line on stderr and exit code 1, with no stack trace, after a warning for a misspelled variable.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { makeModels, withTimeout, type TempModels } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let models: TempModels;

beforeAll(async () => {
  models = await makeModels([{ name: 'quiet', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 3, seed: 5 }]);
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

/** The environment of a user's shell: none of the service's variables set except those given. */
function userEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(EXECUTION_PROVIDERS|REQUIRE_GPU|MALLOC_MMAP_THRESHOLD_|LOG_LEVEL|PORT|GRPC_PORT|HOST)$/.test(k)),
  );
  return { ...base, MODELS_DIR: models.dir, HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', ORT_INTRA_OP_THREADS: '1', ...env };
}

interface Run {
  stdout: string[];
  stderr: string[];
  code: number | null;
}

/** Runs `cmd` until `until(stdoutLine)` (then SIGTERM) or until it exits by itself. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, until?: (line: string) => boolean): Promise<Run> {
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out: Run = { stdout: [], stderr: [], code: null };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      out.stdout.push(line);
      // To npm alone, as a terminal or tini would: npm forwards it to the server, which drains and exits 0.
      if (until?.(line)) child.kill('SIGTERM');
    }
  });
  child.stderr!.on('data', (d: Buffer) => out.stderr.push(...d.toString().split('\n').filter((l) => l.trim() !== '')));
  return withTimeout(
    new Promise<Run>((resolve) =>
      child.on('exit', (code) => {
        if (buf) out.stdout.push(buf);
        resolve({ ...out, code });
      }),
    ),
    60_000,
    `${cmd} ${args.join(' ')}`,
  ).catch((err: Error) => {
    process.kill(-child.pid!, 'SIGKILL');
    throw err;
  });
}

const logLines = (r: Run) => r.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });

describe('start-up output', () => {
  it('npm start with the default providers: no warning from npm or the server; one info line names the provider', async () => {
    const r = await run('npm', ['start'], userEnv({}), (line) => line.includes('"msg":"ready"'));
    const logs = logLines(r);
    expect(logs.some((l) => l.msg === 'ready'), r.stdout.join('\n')).toBe(true);
    expect(r.stderr, 'nothing on stderr (npm prints its warnings there)').toEqual([]);
    expect(logs.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
    const provider = logs.filter((l) => /execution provider/.test(l.msg));
    // On a machine with CUDA there is nothing to fall back from; here, one line at info says what runs.
    if (provider.length > 0) {
      expect(provider).toHaveLength(1);
      expect(provider[0]).toMatchObject({ level: 30, msg: expect.stringMatching(/^inference worker 0: execution provider cpu \(execution provider cuda unavailable: /) });
    }
    expect(r.code).toBe(0);
  }, 90_000);

  it('EXPECTED FAILURE - a port in use: one line naming PORT on stderr, exit code 1, no stack; a misspelled variable is named first', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const r = await run('npm', ['start'], userEnv({ PORT: String(port), BATCH_MAXSIZE: '4', EXECUTION_PROVIDERS: 'cpu' }));
      expect(r.code).toBe(1);
      expect(r.stderr).toEqual([`start-up failed: PORT=${port}: 127.0.0.1:${port} is already in use (EADDRINUSE); stop what holds it or set PORT to a free port`]);
      expect([...r.stdout, ...r.stderr].filter((l) => /^\s+at /.test(l))).toEqual([]);
      expect(logLines(r).filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
        'BATCH_MAXSIZE is not a variable mlp-serve reads (ignored); did you mean BATCH_MAX_SIZE?',
      ]);
    } finally {
      holder.close();
    }
  }, 90_000);
});
