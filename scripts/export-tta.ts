// CLI: re-export a trained model with test-time augmentation built into its graph. Candidate view sets are scored
// on the validation images the trainer held out; the best is built in and only it is scored on the test split.
//   npm run export:tta -- --from DIR --tta 'none;flip;flip,shift:1;flip,shift:2' --out DIR [--name NAME] [--data SET]

import { exportWithTta } from '../src/export/tta-export.js';
import { parseTtaSpec } from '../src/model/tta.js';
import { commandLine, parseFlags, parsed, required, runCli } from '../src/util/cli.js';

const USAGE = `usage: npm run export:tta -- --from MODEL_DIR --tta SETS --out MODEL_DIR [--name NAME] [--data SET]
  --tta SETS   view sets separated by ';', each none | flip | shift:N | flip,shift:N; with more than one, the best
               on the validation images recorded in the source card is built in (none = the plain one-view graph)
`;

interface TtaRecord {
  candidates?: { spec: string; valTop1: number }[];
  views?: { dx: number; dy: number; flip: boolean; valTop1: number }[];
}

runCli('export:tta', USAGE, async () => {
  const argv = process.argv.slice(2);
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { from: s, out: s, tta: s, name: s, data: s });
  const { from, out, tta } = required(v, 'from', 'tta', 'out');
  for (const spec of tta.split(';').map((x) => x.trim()).filter(Boolean)) if (spec !== 'none') parsed('tta', spec, parseTtaSpec);
  const card = await exportWithTta({ from, out, spec: tta, name: v.name, data: v.data, command: commandLine('npm run export:tta --', argv) });
  const m = card.metrics;
  const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
  const rec = (card.provenance as { tta?: TtaRecord }).tta;
  for (const w of rec?.views ?? []) console.log(`view dx ${w.dx} dy ${w.dy}${w.flip ? ' mirrored' : ''}: val top-1 ${pct(w.valTop1)}`);
  for (const c of rec?.candidates ?? []) console.log(`views "${c.spec}": val top-1 ${pct(c.valTop1)}`);
  console.log(
    `wrote ${out} (${card.tta?.views.length ?? 1} views): val top-1 ${pct(m.valTop1)}, test top-1 ${pct(m.testTop1)} ` +
      `(test loss ${m.testLoss?.toFixed(4) ?? 'n/a'}); one view: val ${pct(m.valTop1NoTta)}, test ${pct(m.testTop1NoTta)}`,
  );
});
