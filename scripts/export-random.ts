// CLI: write a random-init servable model directory.
//   npm run export:random -- --arch B_6-Wi_512 --out DIR [--name N] [--classes 10] [--size 64] [--channels 3]
//                            [--seed 0] [--expansion 4] [--labels generic|fashion-mnist|cifar10|cifar100]

import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeRandomModel, type LabelSet } from '../src/export/random.js';

const USAGE =
  'usage: npm run export:random -- --arch B_<d>-Wi_<w> --out DIR [--name N] [--classes 10] [--size 64] ' +
  '[--channels 1|3] [--seed 0] [--expansion 4] [--labels generic|fashion-mnist|cifar10|cifar100]';

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new RangeError(`--${flag} must be an integer, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string' },
      out: { type: 'string' },
      name: { type: 'string' },
      classes: { type: 'string' },
      size: { type: 'string' },
      channels: { type: 'string' },
      seed: { type: 'string' },
      expansion: { type: 'string' },
      labels: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.arch || !values.out) throw new RangeError(`--arch and --out are required\n${USAGE}`);
  const channels = int('channels', values.channels) ?? 3;
  if (channels !== 1 && channels !== 3) throw new RangeError(`--channels must be 1 or 3, got ${channels}`);
  const labels = (values.labels ?? 'generic') as LabelSet;
  if (!['generic', 'fashion-mnist', 'cifar10', 'cifar100'].includes(labels))
    throw new RangeError(`--labels must be generic, fashion-mnist, cifar10 or cifar100, got "${labels}"`);
  const out = resolve(values.out);
  const card = await writeRandomModel({
    arch: values.arch,
    out,
    name: values.name ?? basename(out),
    classes: int('classes', values.classes),
    size: int('size', values.size),
    channels,
    seed: int('seed', values.seed),
    expansion: int('expansion', values.expansion),
    labels,
    command: `export:random ${process.argv.slice(2).join(' ')}`,
  });
  console.log(`wrote ${out}: ${card.arch.name}, ${card.params} params, ${card.labels.length} classes`);
}

main().catch((err: unknown) => {
  console.error(`export:random: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
