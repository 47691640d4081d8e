// CLI: write a random-init servable model directory.
//   npm run export:random -- --arch B_6-Wi_512 --out DIR [--name N] [--classes 10] [--size 64] [--channels 3]
//                            [--seed 0] [--expansion 4] [--labels generic|fashion-mnist|cifar10|cifar100]

import { basename, resolve } from 'node:path';
import { LABEL_SETS, writeRandomModel } from '../src/export/random.js';
import { parseArch } from '../src/model/mlp.js';
import { choice, num, parseFlags, parsed, required, runCli } from '../src/util/cli.js';

const USAGE =
  'usage: npm run export:random -- --arch B_<d>-Wi_<w> --out DIR [--name N] [--classes 10] [--size 64] ' +
  `[--channels 1|3] [--seed 0] [--expansion 4] [--labels ${LABEL_SETS.join('|')}]`;

runCli('export:random', USAGE, async () => {
  const argv = process.argv.slice(2);
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { arch: s, out: s, name: s, classes: s, size: s, channels: s, seed: s, expansion: s, labels: s });
  const { arch, out } = required(v, 'arch', 'out');
  parsed('arch', arch, parseArch);
  const int = (flag: string, x: string | undefined) => (x === undefined ? undefined : num(flag, x, 0, { integer: true, min: 1 }));
  const channels = choice('channels', v.channels, '3', ['1', '3']);
  const dir = resolve(out);
  const card = await writeRandomModel({
    arch,
    out: dir,
    name: v.name ?? basename(dir),
    classes: int('classes', v.classes),
    size: int('size', v.size),
    channels: Number(channels) as 1 | 3,
    seed: v.seed === undefined ? undefined : num('seed', v.seed, 0, { integer: true }),
    expansion: int('expansion', v.expansion),
    labels: choice('labels', v.labels, 'generic', LABEL_SETS),
    command: `export:random ${argv.join(' ')}`,
  });
  console.log(`wrote ${dir}: ${card.arch.name}, ${card.params} params, ${card.labels.length} classes`);
});
