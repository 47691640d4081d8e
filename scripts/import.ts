// CLI: import a scaling_mlps PyTorch checkpoint as a servable model directory.
//   npm run import -- --checkpoint FILE [--config FILE] --arch B_12-Wi_1024 --dataset cifar10|cifar100|imagenet|in21k
//                     --out DIR [--labels FILE] [--name NAME]

import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  PAPER_DATASETS,
  importCheckpoint,
  parseLabelsFile,
  type PaperDataset,
  type ReferenceConfig,
} from '../src/import/import-torch.js';

const USAGE =
  'usage: npm run import -- --checkpoint FILE [--config FILE] --arch B_<d>-Wi_<w> ' +
  '--dataset cifar10|cifar100|imagenet|in21k --out DIR [--labels FILE] [--name NAME]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      arch: { type: 'string' },
      dataset: { type: 'string' },
      out: { type: 'string' },
      labels: { type: 'string' },
      name: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.checkpoint || !values.dataset || !values.out)
    throw new RangeError(`--checkpoint, --dataset and --out are required\n${USAGE}`);
  if (!(values.dataset in PAPER_DATASETS))
    throw new RangeError(`--dataset must be one of ${Object.keys(PAPER_DATASETS).join(', ')}, got "${values.dataset}"`);
  let config: ReferenceConfig | undefined;
  if (values.config) {
    try {
      config = JSON.parse(await readFile(values.config, 'utf8')) as ReferenceConfig;
    } catch (err) {
      throw new RangeError(`--config ${values.config}: ${(err as Error).message}`);
    }
  }
  const labels = values.labels ? parseLabelsFile(await readFile(values.labels, 'utf8'), values.labels) : undefined;
  const out = resolve(values.out);
  const card = await importCheckpoint({
    checkpoint: values.checkpoint,
    out,
    name: values.name ?? basename(out),
    dataset: values.dataset as PaperDataset,
    arch: values.arch,
    config,
    labels,
    command: `import ${process.argv.slice(2).join(' ')}`,
  });
  console.log(`wrote ${out}: ${card.arch.name}, ${card.params} params, ${card.labels.length} classes (${values.dataset})`);
}

main().catch((err: unknown) => {
  console.error(`import: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
