// CLI: re-export a trained model with test-time augmentation built into its graph, and report top-1 with and
// without it on the test split.
//   npm run export:tta -- --from DIR --tta flip,shift:2 --out DIR [--name NAME] [--data fashion-mnist]
//   (--tta none writes the plain one-view graph of the same weights)

import { parseArgs } from 'node:util';
import { exportWithTta } from '../src/export/tta-export.js';

const USAGE = 'usage: npm run export:tta -- --from MODEL_DIR --tta none|flip|shift:N|flip,shift:N --out MODEL_DIR [--name NAME] [--data SET]';

const { values } = parseArgs({
  options: {
    from: { type: 'string' },
    out: { type: 'string' },
    tta: { type: 'string' },
    name: { type: 'string' },
    data: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!values.from || !values.out || !values.tta) {
  console.error(`--from, --tta and --out are required\n${USAGE}`);
  process.exit(2);
}
try {
  const card = await exportWithTta({
    from: values.from,
    out: values.out,
    spec: values.tta,
    name: values.name,
    data: values.data,
    command: `npm run export:tta -- ${process.argv.slice(2).join(' ')}`,
  });
  const m = card.metrics;
  const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
  console.log(`wrote ${values.out} (${card.tta?.views.length ?? 1} views): test top-1 ${pct(m.testTop1)}, without TTA ${pct(m.testTop1NoTta)}`);
} catch (err) {
  console.error(`export:tta: ${(err as Error).message}`);
  process.exit(1);
}
