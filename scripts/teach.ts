// `npm run teach -- --url URL --admin-key KEY --base MODEL --name NEW --data SET --n N`: teaches a running service a
// new classifier from a data set's first N training images and prints how long the job took, seen from outside.
// Parses flags and calls src/probe/teach-client.ts.

import { runTeach } from '../src/probe/teach-client.js';
import { num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run teach -- --url <service> --base <model> --name <new> --data <set> [--n 200] [--seed 0]
  --admin-key <key>   an ADMIN_API_KEYS key (default $ADMIN_KEY)
`;

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { url: s, 'admin-key': s, base: s, name: s, data: s, n: s, seed: s });
  const { url, base, name, data } = required(v, 'url', 'base', 'name', 'data');
  const adminKey = v['admin-key'] ?? process.env.ADMIN_KEY ?? '';
  const r = await runTeach({ url, adminKey, base, name, data, n: num('n', v.n, 200, { integer: true, min: 10 }), seed: num('seed', v.seed, 0, { integer: true, min: 0 }) });
  const j = r.job;
  process.stdout.write(
    `${r.images} images: job ${String(j.status)} in ${r.totalSeconds.toFixed(1)} s (upload accepted in ${r.acceptSeconds.toFixed(1)} s, ` +
      `fit ${Number(j.fitSeconds ?? NaN).toFixed(2)} s); ${String(j.model)} version ${String(j.version)}, val accuracy ${String(j.valAccuracy)}, λ ${String(j.lambda)}` +
      `${j.error ? `; error: ${String(j.error)}` : ''}\n`,
  );
}

runCli('teach', USAGE, () => main(process.argv.slice(2)));
