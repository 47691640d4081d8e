// CLI: re-export a trained model with test-time augmentation built into its graph, and report top-1 with and
// without it on the test split.
//   npm run export:tta -- --from DIR --tta flip,shift:2 --out DIR [--name NAME] [--data fashion-mnist]
//   (--tta none writes the plain one-view graph of the same weights)

import { exportWithTta } from '../src/export/tta-export.js';
import { parseTtaSpec } from '../src/model/tta.js';
import { parseFlags, parsed, required, runCli } from '../src/util/cli.js';

const USAGE = 'usage: npm run export:tta -- --from MODEL_DIR --tta none|flip|shift:N|flip,shift:N --out MODEL_DIR [--name NAME] [--data SET]';

runCli('export:tta', USAGE, async () => {
  const argv = process.argv.slice(2);
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { from: s, out: s, tta: s, name: s, data: s });
  const { from, out, tta } = required(v, 'from', 'tta', 'out');
  if (tta.trim() !== 'none') parsed('tta', tta, parseTtaSpec);
  const card = await exportWithTta({ from, out, spec: tta, name: v.name, data: v.data, command: `npm run export:tta -- ${argv.join(' ')}` });
  const m = card.metrics;
  const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
  console.log(`wrote ${out} (${card.tta?.views.length ?? 1} views): test top-1 ${pct(m.testTop1)}, without TTA ${pct(m.testTop1NoTta)}`);
});
