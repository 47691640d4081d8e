// `npm run bench:serve`: how close the service comes to the machine's limit, judged from outside. For each case
// (src/bench/cases.ts) the real server is driven by hey at 64 concurrent uploads, with the default settings and with
// BATCH_MAX_SIZE=1, and compared with the strict bound (src/bench/bound.ts) timed in the same run. Prints the
// tables and the targets with the load average, and writes everything to a JSON file. `--protocols` instead runs the
// protocol phase (src/bench/protocols.ts): the default model through /classify, /v2 (JSON, binary) and gRPC.
//
//   npm run bench:serve [-- --cases default-png,b6-jpeg,b12-png] [--seconds 5] [--warmup 2] [--concurrency 64]
//                       [--bound-seconds 1] [--env KEY=VALUE ...] [--out FILE] [--quick] [--protocols]

import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CASE_NAMES, namedCase, runCase, type CaseName, type CaseResult } from '../src/bench/cases.js';
import { ensureHey } from '../src/bench/hey.js';
import { fashionMnistImage, jpeg500, png28 } from '../src/bench/images.js';
import { casesTable, f2, serverTable, targetsOf, targetsTable } from '../src/bench/report.js';
import { protocolsTable, runProtocols } from '../src/bench/protocols.js';
import { loadConfig } from '../src/config.js';
import { UsageError, isUsageError, list, num } from '../src/util/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const USAGE =
  'usage: npm run bench:serve -- [--cases ' + CASE_NAMES.join(',') + '] [--seconds S] [--warmup S] [--concurrency N] ' +
  '[--bound-seconds S] [--env KEY=VALUE ...] [--out FILE] [--quick] [--protocols]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      'bound-seconds': { type: 'string' },
      env: { type: 'string', multiple: true },
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
      protocols: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return void console.log(USAGE);
  const quick = values.quick!;
  const cases = list<CaseName>('cases', values.cases, CASE_NAMES.slice(0, 3), (c) => {
    if (!(CASE_NAMES as readonly string[]).includes(c)) throw new UsageError(`--cases: unknown case "${c}" (known: ${CASE_NAMES.join(', ')})`);
    return c as CaseName;
  });
  const env = Object.fromEntries(
    (values.env ?? []).map((kv) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new UsageError(`--env expects KEY=VALUE, got "${kv}"`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  loadConfig({ ...process.env, ...env }); // a bad --env fails here, before anything starts
  const cores = availableParallelism();
  const settings = {
    cores,
    concurrency: num('concurrency', values.concurrency, 64, { integer: true, min: 1 }),
    seconds: num('seconds', values.seconds, quick ? 3 : 5, { min: 1 }),
    warmupSeconds: num('warmup', values.warmup, quick ? 1 : 2, { min: 1 }),
    boundSeconds: num('bound-seconds', values['bound-seconds'], quick ? 0.5 : 1, { min: 0.1 }),
    boundBatches: [8, 16, 32, 64],
    env,
    modelCache: join(ROOT, 'runs', 'bench-serve', 'models'),
    hey: ensureHey(),
    log: (m: string) => console.error(`[bench] ${m}`),
  };

  const startedAt = new Date().toISOString();
  const load0 = loadavg();
  const raw = await fashionMnistImage(0);
  const uploads = { png: await png28(raw), jpeg: await jpeg500(raw) };
  console.log(
    `mlp-serve bench: ${cores} cores (${cpus()[0]?.model ?? '?'}), load average ${load0.map(f2).join(' ')}; ` +
      `hey ${settings.concurrency} concurrent uploads, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s measured per server`,
  );
  const out = resolve(values.out ?? join(ROOT, 'runs', 'bench-serve', `${values.protocols ? 'protocols-' : ''}${startedAt.replace(/[:.]/g, '-')}.json`));
  await mkdir(dirname(out), { recursive: true });
  const { hey: _hey, log: _log, ...recorded } = settings;
  const machine = () => ({ cores, cpu: cpus()[0]?.model, node: process.version, loadavgBefore: load0, loadavgAfter: loadavg() });

  if (values.protocols) {
    const modelDir = join(ROOT, 'models', 'fashion-mlp');
    const rows = await runProtocols({ ...settings, modelDir, upload: uploads.png });
    const load1 = loadavg();
    console.log(protocolsTable(rows, settings.concurrency));
    console.log(`\nload average before ${load0.map(f2).join(' ')}, after ${load1.map(f2).join(' ')}`);
    await writeFile(out, JSON.stringify({ startedAt, machine: machine(), settings: { ...recorded, modelDir }, protocols: rows }, null, 2) + '\n');
    console.log(`results: ${out}`);
    return;
  }

  const results: CaseResult[] = [];
  for (const name of cases) results.push(await runCase(namedCase(name, join(ROOT, 'models'), uploads), settings));
  const load1 = loadavg();
  const targets = targetsOf(results, ['b12-png']);
  console.log(casesTable(results, cores));
  console.log(serverTable(results));
  console.log(targetsTable(targets));
  console.log(`\nload average before ${load0.map(f2).join(' ')}, after ${load1.map(f2).join(' ')}`);

  await writeFile(out, JSON.stringify({ startedAt, machine: machine(), settings: recorded, results, targets }, null, 2) + '\n');
  console.log(`results: ${out}`);
}

main().catch((err: Error) => {
  if (isUsageError(err)) {
    console.error(`${err.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(err.stack ?? err.message);
  process.exit(1);
});
