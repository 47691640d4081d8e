// The one Dataset abstraction every reader (IDX, CIFAR binary, image folder) implements: a labelled, indexable
// list of images in a form `decodeToChw` reads (raw pixels or encoded bytes). The preprocessed cache is built
// from it; training never reads a Dataset directly.

import { createHash } from 'node:crypto';
import type { ImageInput, Normalization } from './preprocess.js';

export interface Dataset {
  /** Stable name of the source, e.g. `fashion-mnist` or `folder:/abs/path`; part of the cache key and the card. */
  readonly name: string;
  /** `train`, `test`, `holdout`, …; part of the cache key and the card. */
  readonly split: string;
  readonly size: number;
  /** Class names; a label is an index into this list. */
  readonly classes: readonly string[];
  /** Changes when the source files change (their names, sizes, mtimes): the cache is rebuilt then. */
  readonly fingerprint: string;
  label(i: number): number;
  /** Example i, as raw interleaved pixels or encoded file bytes. */
  image(i: number): Promise<ImageInput>;
  /** Where example i came from, for sets read from files (an image folder: its path relative to the root). */
  file?(i: number): string;
}

/** A numbered list of images, fetched on demand (a data set, a subset of one, uploaded files). */
export interface ImageList {
  readonly size: number;
  image(i: number): Promise<ImageInput>;
}

/** A data set with its two splits, as `--data` names it. */
export interface DataSource {
  name: string;
  train: Dataset;
  /** What accuracy is reported on (the official test split, or a held-out part of train). */
  test: Dataset;
  /** The data set's customary normalisation (0–255 scale), when it has one; else statistics of the train cache. */
  normalization?: Normalization;
}

/** Short stable hash for keys and fingerprints. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** The examples of `ds` at `indices`, as a Dataset of its own (hold-out splits). */
export function subset(ds: Dataset, indices: ArrayLike<number>, split: string): Dataset {
  const idx = Uint32Array.from(indices);
  for (const i of idx) if (i >= ds.size) throw new RangeError(`subset index ${i} ≥ size ${ds.size} of ${ds.name}`);
  return {
    name: ds.name,
    split,
    size: idx.length,
    classes: ds.classes,
    fingerprint: shortHash(`${ds.fingerprint}/${ds.split}/${shortHash(Buffer.from(idx.buffer).toString('base64'))}`),
    label: (i) => ds.label(idx[i]),
    image: (i) => ds.image(idx[i]),
    ...(ds.file ? { file: (i: number) => ds.file!(idx[i]) } : {}),
  };
}
