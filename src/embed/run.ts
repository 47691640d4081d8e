// Batch embedding of a data set (one run, or one shard of a Kubernetes Indexed Job): rows appended to a partial
// file as batches finish, so a killed run resumes where it stopped; finished output is embeddings.npy (float32
// [n, dim]), labels.npy (int32 [n]) and index.json (what the rows are). index.json is written last: its presence
// means the directory is complete. A run's identity (model card, data set, split, batch size) is checked against
// everything already under --out, so parts of different models never mix.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { openDataSource } from '../data/resolve.js';
import { CARD_FILE } from '../model/card.js';
import { UsageError } from '../util/cli.js';
import { openEmbedder } from './embedder.js';
import { npyHeader, readNpy, writeNpy } from './npy.js';
import { parsePartDir, partDir, shardRange, type Shard } from './shard.js';

export const INDEX_FILE = 'index.json';
export const EMBEDDINGS_FILE = 'embeddings.npy';
export const LABELS_FILE = 'labels.npy';
const PARTIAL_FILE = 'embeddings.f32.partial';
const RUN_FILE = 'run.json';
const INDEX_FORMAT = 'mlp-serve-embeddings/1';

/** What a set of rows is: identical for a single run and the merge of its shards. */
export interface EmbedIndex {
  format: typeof INDEX_FORMAT;
  model: { name: string; version: string; arch: string; cardHash: string };
  data: { spec: string; name: string; split: string; fingerprint: string; size: number; classes: readonly string[] };
  /** Images per onnxruntime run; shards cut on its multiples. */
  batchSize: number;
  dim: number;
  /** Row r of embeddings.npy is example rows.start + r of the data set, in the data set's own order. */
  rows: { start: number; end: number };
  /** Relative file name of every row, for image folders. */
  files?: string[];
}

export interface EmbedRunOptions {
  modelDir: string;
  /** `--data` spec: fashion-mnist, mnist, cifar10:DIR, folder:DIR, … */
  data: string;
  split: 'train' | 'test';
  out: string;
  shard?: Shard;
  /** Images per onnxruntime run (default 256). */
  batchSize?: number;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EmbedRunResult {
  dir: string;
  index: EmbedIndex;
  /** Rows computed by this process (0 when the directory was already complete). */
  computed: number;
  /** Rows found in a partial file and kept. */
  resumed: number;
  seconds: number;
  cpuSeconds: number;
}

type Identity = Omit<EmbedIndex, 'rows' | 'files'>;

function sameIdentity(a: Identity, b: Identity): boolean {
  return JSON.stringify([a.model, a.data, a.batchSize, a.dim]) === JSON.stringify([b.model, b.data, b.batchSize, b.dim]);
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The identities recorded under `out` (the directory itself and its part-* directories). */
async function identitiesUnder(out: string): Promise<{ where: string; id: Identity }[]> {
  const dirs = [out];
  if (existsSync(out)) for (const e of await readdir(out)) if (parsePartDir(e)) dirs.push(join(out, e));
  const found: { where: string; id: Identity }[] = [];
  for (const d of dirs)
    for (const f of [INDEX_FILE, RUN_FILE]) {
      const id = await readJson<Identity>(join(d, f));
      if (id?.format === INDEX_FORMAT) found.push({ where: join(d, f), id });
    }
  return found;
}

function describe(id: Identity): string {
  return `model ${id.model.name} v${id.model.version} (card ${id.model.cardHash}) on ${id.data.spec} ${id.data.split}, batch ${id.batchSize}`;
}

function indexFor(id: Identity, ds: Dataset, start: number, end: number): EmbedIndex {
  const files = ds.file ? Array.from({ length: end - start }, (_, r) => ds.file!(start + r)) : undefined;
  return { ...id, rows: { start, end }, ...(files ? { files } : {}) };
}

async function writeFinal(dir: string, index: EmbedIndex, embeddings: Float32Array | string, labels: Int32Array): Promise<void> {
  const n = index.rows.end - index.rows.start;
  const tmp = join(dir, `${EMBEDDINGS_FILE}.tmp`);
  if (typeof embeddings === 'string') {
    // From the partial file: header + its bytes, without holding the whole matrix twice.
    await writeFile(tmp, npyHeader('<f4', [n, index.dim]));
    const fh = await open(tmp, 'a');
    try {
      await fh.write(await readFile(embeddings));
    } finally {
      await fh.close();
    }
  } else await writeNpy(tmp, embeddings, [n, index.dim]);
  await rename(tmp, join(dir, EMBEDDINGS_FILE));
  await writeNpy(join(dir, LABELS_FILE), labels, [n]);
  await writeFile(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
}

/** Embeds the run's rows (see the module comment). */
export async function runEmbed(o: EmbedRunOptions): Promise<EmbedRunResult> {
  const batchSize = o.batchSize ?? 256;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const source = await openDataSource(o.data, { install: false });
  const ds = o.split === 'train' ? source.train : source.test;
  const cardText = await readFile(join(o.modelDir, CARD_FILE), 'utf8');
  const embedder = await openEmbedder(o.modelDir, { threads: o.threads });
  try {
    const { card } = embedder;
    const id: Identity = {
      format: INDEX_FORMAT,
      model: { name: card.name, version: card.version, arch: card.arch.name, cardHash: createHash('sha256').update(cardText).digest('hex').slice(0, 16) },
      data: { spec: o.data, name: ds.name, split: ds.split, fingerprint: ds.fingerprint, size: ds.size, classes: ds.classes },
      batchSize,
      dim: embedder.dim,
    };
    for (const other of await identitiesUnder(o.out))
      if (!sameIdentity(other.id, id))
        throw new UsageError(`${o.out} already holds embeddings of ${describe(other.id)} (${other.where}); this run is ${describe(id)}: choose another --out`);

    const { start, end } = o.shard ? shardRange(ds.size, batchSize, o.shard) : { start: 0, end: ds.size };
    const dir = o.shard ? join(o.out, partDir(o.shard)) : o.out;
    await mkdir(dir, { recursive: true });
    const done = await readJson<EmbedIndex>(join(dir, INDEX_FILE));
    if (done) return { dir, index: done, computed: 0, resumed: 0, seconds: 0, cpuSeconds: 0 };

    // Resume: keep the whole batches already in the partial file, drop a torn last write.
    const partial = join(dir, PARTIAL_FILE);
    const rowBytes = id.dim * 4;
    let kept = 0;
    if (existsSync(partial) && (await readJson<Identity>(join(dir, RUN_FILE)))) {
      const rows = Math.floor((await stat(partial)).size / rowBytes);
      kept = Math.min(end - start, rows - (rows % batchSize === 0 || start + rows === end ? 0 : rows % batchSize));
      await truncate(partial, kept * rowBytes);
    } else {
      await writeFile(join(dir, RUN_FILE), JSON.stringify(id, null, 2) + '\n');
      await writeFile(partial, new Uint8Array(0));
    }
    const fh = await open(partial, 'a');
    try {
      for (let i = start + kept; i < end; i += batchSize) {
        const n = Math.min(batchSize, end - i);
        const rows = await embedder.embed(ds, i, n);
        await fh.write(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
        o.onProgress?.(i + n - start, end - start);
      }
    } finally {
      await fh.close();
    }
    const labels = Int32Array.from({ length: end - start }, (_, r) => ds.label(start + r));
    const index = indexFor(id, ds, start, end);
    await writeFinal(dir, index, partial, labels);
    await rm(partial, { force: true });
    await rm(join(dir, RUN_FILE), { force: true });
    const cpu = process.cpuUsage(cpu0);
    return {
      dir,
      index,
      computed: end - start - kept,
      resumed: kept,
      seconds: (performance.now() - t0) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    await embedder.close();
  }
}

/**
 * Concatenates `out`'s part-<i>-of-<n> directories, in order, into `out`'s own embeddings.npy, labels.npy and
 * index.json (the files a single run writes). Refuses missing, incomplete, duplicated or mismatched parts.
 */
export async function mergeParts(out: string): Promise<EmbedIndex> {
  if (!existsSync(out)) throw new UsageError(`--merge ${out}: no such directory`);
  const parts = (await readdir(out)).map((name) => ({ name, shard: parsePartDir(name) })).filter((p) => p.shard);
  if (parts.length === 0) throw new UsageError(`--merge ${out}: no part-<i>-of-<n> directories`);
  const counts = new Set(parts.map((p) => p.shard!.count));
  if (counts.size > 1) throw new UsageError(`--merge ${out}: parts of different shard counts (${[...counts].join(', ')}): ${parts.map((p) => p.name).join(', ')}`);
  const count = parts[0].shard!.count;
  const indexes: EmbedIndex[] = [];
  for (let i = 0; i < count; i++) {
    const dir = join(out, partDir({ index: i, count }));
    const index = await readJson<EmbedIndex>(join(dir, INDEX_FILE));
    if (!index) throw new UsageError(`--merge ${out}: part ${i} of ${count} is ${existsSync(dir) ? 'incomplete (rerun its index to resume it)' : 'missing'}`);
    indexes.push(index);
  }
  const first = indexes[0];
  let at = 0;
  for (const [i, index] of indexes.entries()) {
    if (!sameIdentity(index, first)) throw new UsageError(`--merge ${out}: part ${i} holds ${describe(index)}, part 0 ${describe(first)}`);
    if (index.rows.start !== at) throw new UsageError(`--merge ${out}: part ${i} starts at row ${index.rows.start}, expected ${at} (overlap or gap)`);
    at = index.rows.end;
  }
  if (at !== first.data.size) throw new UsageError(`--merge ${out}: the parts cover rows 0..${at} of ${first.data.size}`);

  const embeddings = new Float32Array(first.data.size * first.dim);
  const labels = new Int32Array(first.data.size);
  for (const [i, index] of indexes.entries()) {
    const dir = join(out, partDir({ index: i, count }));
    embeddings.set((await readNpy(join(dir, EMBEDDINGS_FILE))).data, index.rows.start * first.dim);
    labels.set((await readNpy(join(dir, LABELS_FILE))).data, index.rows.start);
  }
  const files = first.files ? indexes.flatMap((x) => x.files ?? []) : undefined;
  const { rows: _rows, files: _files, ...id } = first;
  const merged: EmbedIndex = { ...id, rows: { start: 0, end: first.data.size }, ...(files ? { files } : {}) };
  await writeFinal(out, merged, embeddings, labels);
  return merged;
}

/** A finished embedding directory (a single run or a merge): its index, rows and labels. */
export async function readEmbeddings(dir: string): Promise<{ index: EmbedIndex; embeddings: Float32Array; labels: Int32Array }> {
  const index = await readJson<EmbedIndex>(join(dir, INDEX_FILE));
  if (index?.format !== INDEX_FORMAT) throw new UsageError(`${dir}: no finished embeddings (index.json); run npm run embed, or --merge its parts`);
  const embeddings = (await readNpy(join(dir, EMBEDDINGS_FILE))).data;
  const labels = (await readNpy(join(dir, LABELS_FILE))).data;
  if (!(embeddings instanceof Float32Array) || !(labels instanceof Int32Array)) throw new UsageError(`${dir}: embeddings must be float32 and labels int32`);
  return { index, embeddings, labels };
}
