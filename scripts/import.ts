// CLI: import a scaling_mlps PyTorch checkpoint as a servable model directory.
//   npm run import -- --checkpoint FILE [--config FILE] --arch B_12-Wi_1024 --dataset cifar10|cifar100|imagenet|in21k
//                     --out DIR [--labels FILE] [--name NAME]

import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { PAPER_DATASETS, importCheckpoint, parseLabelsFile, type PaperDataset, type ReferenceConfig } from '../src/import/import-torch.js';
import { UsageError, choice, parseFlags, required, runCli } from '../src/util/cli.js';

const DATASETS = Object.keys(PAPER_DATASETS) as PaperDataset[];
const USAGE =
  'usage: npm run import -- --checkpoint FILE [--config FILE] --arch B_<d>-Wi_<w> ' +
  `--dataset ${DATASETS.join('|')} --out DIR [--labels FILE] [--name NAME]`;

runCli('import', USAGE, async () => {
  const argv = process.argv.slice(2);
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, { checkpoint: s, config: s, arch: s, dataset: s, out: s, labels: s, name: s });
  const { checkpoint, out } = required(v, 'checkpoint', 'dataset', 'out');
  const dataset = choice('dataset', v.dataset, DATASETS[0], DATASETS);
  let config: ReferenceConfig | undefined;
  if (v.config) {
    try {
      config = JSON.parse(await readFile(v.config, 'utf8')) as ReferenceConfig;
    } catch (err) {
      throw new UsageError(`--config ${v.config}: ${(err as Error).message}`);
    }
  }
  const labels = v.labels ? parseLabelsFile(await readFile(v.labels, 'utf8'), v.labels) : undefined;
  const dir = resolve(out);
  const card = await importCheckpoint({
    checkpoint,
    out: dir,
    name: v.name ?? basename(dir),
    dataset,
    arch: v.arch,
    config,
    labels,
    command: `import ${argv.join(' ')}`,
  });
  console.log(`wrote ${dir}: ${card.arch.name}, ${card.params} params, ${card.labels.length} classes (${dataset})`);
});
