// The outside load generator's output as the bench reads it: hey's summary (real outputs of Debian's hey, saved in
// test/fixtures/hey/) and bash's `times`, which gives hey's CPU time, so the bound can leave the generator's cores out.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { heyArgs, parseBashTimes, parseHeyOutput } from '../../src/bench/hey.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/hey/${name}`, import.meta.url), 'utf8');

describe('parseHeyOutput', () => {
  it('reads total time, 200 answers and latency percentiles of a clean run', () => {
    const r = parseHeyOutput(fixture('ok.txt'));
    expect(r.seconds).toBeCloseTo(1.002, 6);
    expect(r.ok).toBe(1107);
    expect(r.failed).toEqual({});
    expect(r.p50Ms).toBeCloseTo(3.0, 6);
    expect(r.p99Ms).toBeCloseTo(10.6, 6);
  });

  it('EXPECTED FAILURE - non-200 answers are counted apart from the served ones', () => {
    const r = parseHeyOutput(fixture('mixed-status.txt'));
    expect(r.ok).toBe(30);
    expect(r.failed).toEqual({ '503': 10 });
    // This run was too short for hey to print a 99th percentile: NaN, not a number made up.
    expect(r.p99Ms).toBeNaN();
  });

  it('EXPECTED FAILURE - transport errors are counted by their cause', () => {
    const r = parseHeyOutput(fixture('refused.txt'));
    expect(r.ok).toBe(0);
    expect(r.failed).toEqual({ 'connection refused': 5 });
  });

  it('EXPECTED FAILURE - output without a summary is refused', () => {
    expect(() => parseHeyOutput('flag provided but not defined: -x')).toThrow(/no summary/);
  });
});

describe('parseBashTimes', () => {
  it('takes the children line (the second) as user + system seconds', () => {
    expect(parseBashTimes('hey output\n0m0.002s 0m0.000s\n0m1.250s 0m0.500s\n')).toBeCloseTo(1.75, 9);
    expect(parseBashTimes(fixture('mixed-status.txt'))).toBeCloseTo(0.017, 9);
    expect(parseBashTimes('0m0.000s 0m0.000s\n2m3.000s 0m1.000s')).toBeCloseTo(124, 9);
  });

  it('EXPECTED FAILURE - missing times output is an error, not zero CPU', () => {
    expect(() => parseBashTimes('0m0.002s 0m0.000s')).toThrow(/no bash times/);
  });
});

it('heyArgs: a closed loop of POSTs of one file for a duration', () => {
  expect(heyArgs({ url: 'http://h/classify', bodyFile: '/tmp/b', contentType: 'image/png', concurrency: 64, seconds: 5 })).toEqual([
    '-z', '5s', '-c', '64', '-m', 'POST', '-T', 'image/png', '-D', '/tmp/b', '-disable-compression', 'http://h/classify',
  ]);
  const v2 = heyArgs({ url: 'http://h/v2', bodyFile: '/tmp/b', contentType: 'application/octet-stream', concurrency: 1, seconds: 1, headers: { 'Inference-Header-Content-Length': '120' } });
  expect(v2.slice(v2.indexOf('-H'), v2.indexOf('-H') + 2)).toEqual(['-H', 'Inference-Header-Content-Length: 120']);
});
