// An image folder: one subfolder per class (sorted names = label order, as torchvision's ImageFolder), any file
// format sharp reads, nested folders allowed. Files are listed once, sorted, then put in a fixed pseudo-random
// order so that a prefix (`--max-examples`) or a hold-out slice has every class, and the order never depends on
// the training seed (the cache key does not either).

import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { createRng, permutation } from '../util/rng.js';
import { shortHash, type Dataset } from './dataset.js';

/** Extensions of the formats sharp decodes (raster only; vector formats are refused by the preprocessing). */
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.avif', '.tif', '.tiff', '.heic', '.heif', '.jp2', '.jxl']);

/** Fixed seed of the listing order (not the training seed: see the module comment). */
const LISTING_SEED = 0x5eed;

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(p);
  }
}

/** Class subfolders of `root`, sorted. */
export async function classFolders(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** Reads `root/<class>/**` as one split. `classes` fixes the label order (the train split's) for a test split. */
export async function readFolderSplit(opts: {
  name: string;
  split: string;
  root: string;
  classes?: readonly string[];
}): Promise<Dataset> {
  const classes = opts.classes ?? (await classFolders(opts.root));
  if (classes.length === 0) throw new RangeError(`${opts.root}: no class subfolders (expected <root>/<class>/<image>)`);
  const files: string[] = [];
  const labelOf: number[] = [];
  for (let c = 0; c < classes.length; c++) {
    const found: string[] = [];
    try {
      await walk(join(opts.root, classes[c]), found);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // a class absent from this split
    }
    found.sort();
    for (const f of found) {
      files.push(f);
      labelOf.push(c);
    }
  }
  if (files.length === 0) throw new RangeError(`${opts.root}: no image files (${[...IMAGE_EXTENSIONS].join(' ')})`);
  const order = permutation(createRng(LISTING_SEED), files.length);
  const paths = Array.from(order, (i) => files[i]);
  const labels = Uint16Array.from(order, (i) => labelOf[i]);
  // Sizes and mtimes of every file: a changed or replaced image invalidates the cache.
  const stats = await Promise.all(files.map((f) => stat(f)));
  const listing = files.map((f, i) => `${relative(opts.root, f)}:${stats[i].size}:${stats[i].mtimeMs}`).join('\n');
  return {
    name: opts.name,
    split: opts.split,
    size: paths.length,
    classes,
    fingerprint: `folder:${files.length}:${shortHash(listing)}`,
    label: (i) => labels[i],
    image: (i) => readFile(paths[i]),
    file: (i) => relative(opts.root, paths[i]),
  };
}
