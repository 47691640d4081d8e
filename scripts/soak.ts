// CLI: the long fault and load scenarios against the real service, one table at the end (src/soak/scenarios.ts).
//   npm run soak -- [--arch B_6-Wi_512] [--overload-seconds 120] [--fuzz 10000] [--reloads 4] [--seed 1]
//                   [--only capacity,overload,fuzz,transport,disconnect,reload,crash,sigterm] [--json FILE]
// Exit code 1 when a scenario fails its check (a request lost, a 5xx that is not announced load shedding, memory
// or p99 unbounded, ...). Traffic goes to 127.0.0.1 only.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as s from '../src/soak/scenarios.js';
import { choice, list, num, parseFlags, runCli } from '../src/util/cli.js';

const ALL = ['capacity', 'overload', 'fuzz', 'transport', 'disconnect', 'reload', 'crash', 'sigterm'] as const;

function table(rows: s.Row[]): string {
  const head = ['scenario', 'load held', 'inputs tried', 'requests lost', '5xx', '503 shed', 'p99 ms', 'RSS MB', 'verdict'];
  const cells = rows.map((r) => [
    r.scenario,
    r.load,
    String(r.inputs),
    String(r.lost),
    String(r.fiveXX),
    String(r.shed),
    Number.isFinite(r.p99Ms) ? r.p99Ms.toFixed(0) : '-',
    r.rssMb.toFixed(0),
    r.pass ? 'pass' : 'FAIL',
  ]);
  const out = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...cells.map((c) => `| ${c.join(' | ')} |`)];
  const notes = rows.map((r) => `- ${r.scenario}: ${r.note}`);
  return [...out, '', ...notes].join('\n');
}

const USAGE =
  'usage: npm run soak -- [--arch B_6-Wi_512] [--overload-seconds 120] [--fuzz 10000] [--reloads 4] [--seed 1]\n' +
  `                       [--only ${ALL.join(',')}] [--json FILE]`;

async function main(): Promise<void> {
  const str = { type: 'string' } as const;
  const values = parseFlags(process.argv.slice(2), {
    arch: { type: 'string', default: 'B_6-Wi_512' }, 'overload-seconds': str, fuzz: str, reloads: str, seed: str, only: str, json: str,
  });
  const only = list('only', values.only, ALL, (o) => choice('only', o, ALL[0], ALL));
  const want = (x: (typeof ALL)[number]) => only.includes(x);
  const overloadSeconds = num('overload-seconds', values['overload-seconds'], 120, { min: 1 });
  const fuzzCases = num('fuzz', values.fuzz, 10_000, { integer: true, min: 1 });
  const reloads = num('reloads', values.reloads, 4, { integer: true, min: 1 });
  const seed = num('seed', values.seed, 1, { integer: true });

  const log = (m: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${m}`);
  const dir = await mkdtemp(join(tmpdir(), 'mlp-soak-'));
  const rows: s.Row[] = [];
  const t0 = Date.now();
  try {
    const ctx = await s.prepare(dir, values.arch!, log);
    const done = (r: s.Row) => {
      rows.push(r);
      log(`${r.scenario}: ${r.pass ? 'pass' : 'FAIL'}: ${r.inputs} inputs, lost ${r.lost}, 5xx ${r.fiveXX}, p99 ${r.p99Ms.toFixed(0)} ms, RSS ${r.rssMb.toFixed(0)} MB; ${r.note}`);
    };
    let perSecond = 0;
    if (want('capacity') || want('overload') || want('fuzz') || want('transport') || want('reload')) {
      const srv = await s.mainServer(ctx);
      log(`server up at ${srv.base} (pid ${srv.pid})`);
      try {
        if (want('capacity') || want('overload') || want('reload')) {
          log('capacity: closed loop, 64 clients, 5 s');
          const c = await s.capacity(ctx, srv, 5);
          perSecond = c.perSecond;
          done(c.row);
        }
        if (want('overload')) {
          log(`overload: open loop at 4 × ${perSecond.toFixed(0)} req/s for ${overloadSeconds} s`);
          done(await s.overload(ctx, srv, perSecond, overloadSeconds));
        }
        if (want('fuzz')) {
          log(`fuzz: ${fuzzCases} cases (seed ${seed})`);
          done(await s.fuzz(ctx, srv, fuzzCases, seed));
        }
        if (want('transport')) {
          log('transport: slow uploads, huge headers, garbage, with normal traffic');
          done(await s.transport(ctx, srv));
        }
        if (want('reload')) {
          log(`reload: ${reloads} hot reloads under traffic`);
          done(await s.reload(ctx, srv, perSecond, reloads, 5));
        }
      } finally {
        await srv.stop();
      }
    }
    if (want('disconnect')) {
      log('disconnect: 200 clients leave while queued');
      done(await s.disconnect(ctx, 200));
    }
    if (want('crash')) {
      log('crash: 3 worker crashes under 16 clients (in-process app)');
      done(await s.crash(ctx, 3));
    }
    if (want('sigterm')) {
      log('sigterm: SIGTERM under 32 clients');
      done(await s.sigterm(ctx, 3));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`\nsoak: ${values.arch}, ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
  console.log(table(rows));
  if (values.json) await writeFile(values.json, JSON.stringify({ arch: values.arch, rows }, null, 2));
  const failed = rows.filter((r) => !r.pass);
  if (failed.length) {
    console.error(`\nsoak: ${failed.length} scenario(s) failed: ${failed.map((r) => r.scenario).join(', ')}`);
    process.exit(1);
  }
  // Undici and the in-process app may leave timers behind; the verdict is in.
  process.exit(0);
}

runCli('soak', USAGE, main);
