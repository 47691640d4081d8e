// CLI: write a precision variant (fp16 or int8 MatMul weights) of an exported float32 model directory.
//   npm run export:precision -- --model models/fashion-mlp --precision int8|fp16|fp32 --out models/fashion-mlp-int8

import { resolve } from 'node:path';
import { PRECISIONS, parsePrecision, writePrecisionVariant } from '../src/export/precision.js';
import { parseFlags, parsed, required, runCli } from '../src/util/cli.js';

const USAGE = `usage: npm run export:precision -- --model DIR --precision ${PRECISIONS.join('|')} --out DIR`;

runCli('export:precision', USAGE, async () => {
  const argv = process.argv.slice(2);
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { model: s, precision: s, out: s });
  const { model, precision, out } = required(v, 'model', 'precision', 'out');
  const card = await writePrecisionVariant({
    from: model,
    out,
    precision: parsed('precision', precision, parsePrecision),
    command: `export:precision ${argv.join(' ')}`,
  });
  console.log(`wrote ${resolve(out)}: ${card.arch.name} at ${card.precision}`);
});
