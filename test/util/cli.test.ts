// The shared flag parser and the CLIs' one exit-code convention: 0 for done or --help (usage on stdout), 2 for a
// usage error (the message and the usage on stderr), 1 for a failure (`name: message`). Every thin CLI is run once
// with an unknown flag to prove it goes through runCli.

import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { UsageError, choice, commandLine, isUsageError, list, num, parseFlags, parsed, required } from '../../src/util/cli.js';

const run = promisify(execFile);

async function cli(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', `scripts/${script}.ts`, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('flag helpers', () => {
  const s = { type: 'string' } as const;

  it('parseFlags is strict: an unknown flag or a positional argument is a usage error', () => {
    expect(parseFlags(['--a', '1'], { a: s })).toMatchObject({ a: '1' });
    for (const argv of [['--b', '1'], ['stray']]) {
      const err = (() => {
        try {
          parseFlags(argv, { a: s });
        } catch (e) {
          return e;
        }
      })();
      expect(isUsageError(err), argv.join(' ')).toBe(true);
    }
  });

  it('BAD CALL - required names every missing flag at once', () => {
    expect(required({ a: 'x', b: 'y' }, 'a', 'b')).toEqual({ a: 'x', b: 'y' });
    expect(() => required({ a: 'x' }, 'a', 'b')).toThrow(new UsageError('--b is required'));
    expect(() => required({}, 'a', 'b', 'c')).toThrow(new UsageError('--a, --b and --c are required'));
    expect(() => required({ a: '' }, 'a')).toThrow(UsageError);
  });

  it('BAD CALL - choice, num, list and parsed name the flag and the bad value', () => {
    expect(choice('engine', undefined, 'auto', ['ort', 'auto'])).toBe('auto');
    expect(choice('engine', 'ort', 'auto', ['ort', 'auto'])).toBe('ort');
    expect(() => choice('engine', 'cuda', 'auto', ['ort', 'auto'])).toThrow(new UsageError('--engine "cuda" is not one of ort, auto'));
    expect(() => num('epochs', '1.5', 1, { integer: true })).toThrow(new UsageError('--epochs "1.5" is not a whole number'));
    expect(() => list('archs', ' , ', [], String)).toThrow(new UsageError('--archs is empty'));
    expect(() => parsed('arch', 'B6', () => { throw new RangeError('bad arch'); })).toThrow(new UsageError('--arch: bad arch'));
  });
});

describe('the CLIs exit codes', () => {
  it('--help prints the usage on stdout and exits 0', async () => {
    const r = await cli('export-random', ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run export:random -- --arch/);
  }, 60_000);

  it('a failure that is not a usage error exits 1 with `name: message`', async () => {
    const r = await cli('import', ['--checkpoint', '/nonexistent/x.pt', '--arch', 'B_1-Wi_8', '--dataset', 'cifar10', '--out', '/tmp/never-written']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^import: .*\/nonexistent\/x\.pt/);
  }, 60_000);

  // Every script that runs through runCli (new ones are picked up as they are written).
  const scripts = readdirSync('scripts')
    .filter((f) => f.endsWith('.ts') && /\brunCli\(/.test(readFileSync(join('scripts', f), 'utf8')))
    .map((f) => f.replace(/\.ts$/, ''));
  it('covers the thin CLIs', () => expect(scripts).toEqual(expect.arrayContaining(['export-random', 'import', 'probe', 'scaling', 'soak'])));
  it.each(scripts)('BAD CALL - %s with an unknown flag exits 2 with the message and its usage', async (script) => {
    const r = await cli(script, ['--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--no-such-flag'/);
    expect(r.stderr).toMatch(/usage: npm run /i);
  }, 60_000);
});

describe('commandLine', () => {
  it('rewrites absolute paths, also after a scheme prefix, relative to the working directory; quotes where needed', () => {
    const argv = ['--out', '/work/runs/A', '--data', 'idx:/work/data/x', '--name', 'my model', '--lr', '1e-4', '--from', '/work/app'];
    expect(commandLine('npm run train --', argv, '/work/app')).toBe(
      "npm run train -- --out ../runs/A --data idx:../data/x --name 'my model' --lr 1e-4 --from .",
    );
  });
});
