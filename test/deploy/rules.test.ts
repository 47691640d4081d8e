// The alert and recording rules under Debian's promtool: the rule file is valid, and the unit tests in
// deploy/prometheus/mlp-serve.rules.test.yml (synthetic series per alert, firing and silent cases) pass.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const RULES = join(DIR, 'mlp-serve.rules.yml');
const TESTS = join(DIR, 'mlp-serve.rules.test.yml');
const tmp = mkdtempSync(join(tmpdir(), 'mlp-rules-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`promtool (Debian package prometheus) is required: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('Prometheus rules', () => {
  it('promtool check rules accepts the rule file', () => {
    const r = promtool('check', 'rules', RULES);
    expect(r.out).toMatch(/SUCCESS: 11 rules found/);
    expect(r.status).toBe(0);
  });

  it('promtool test rules passes every alert unit test', () => {
    const r = promtool('test', 'rules', TESTS);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.status).toBe(0);
  });

  it('the unit tests catch a changed threshold (they are not vacuous)', () => {
    const rules = readFileSync(RULES, 'utf8');
    const mutated = rules.replace('mlp:http_server_errors:ratio_rate5m > 0.05', 'mlp:http_server_errors:ratio_rate5m > 0.5');
    expect(mutated).not.toBe(rules);
    writeFileSync(join(tmp, 'mlp-serve.rules.yml'), mutated);
    copyFileSync(TESTS, join(tmp, 'mlp-serve.rules.test.yml'));
    const r = promtool('test', 'rules', join(tmp, 'mlp-serve.rules.test.yml'));
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/alertname: MlpServeHighErrorRatio/);
  });
});
