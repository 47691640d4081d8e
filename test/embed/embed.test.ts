// Batch embedding as a Kubernetes Indexed Job runs it: three shard processes (JOB_COMPLETION_INDEX 0..2), a merge,
// and the result compared byte for byte with a single run, with /embed over HTTP, and read by numpy.

import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataSource } from '../../src/data/resolve.js';
import { readNpy } from '../../src/embed/npy.js';
import { shardRange, shardFromEnv } from '../../src/embed/shard.js';
import { servedEmbeddings } from '../../src/probe/embeddings.js';
import { runProbe } from '../../src/probe/probe.js';
import { fashionMnistPngs, makeModels, startApp, type TempModels } from '../serve/helpers.js';

const BATCH = '32';
let root: string;
let folder: string;
let models: TempModels;

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/embed.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env, MODELS_DIR: models.dir },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const embedArgs = (out: string, model = 'emb-a') => ['--model', model, '--data', `folder:${folder}`, '--split', 'train', '--out', out, '--batch-size', BATCH, '--threads', '1'];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mlp-serve-embed-'));
  folder = join(root, 'images');
  const items = await fashionMnistPngs(288);
  for (const [i, it] of items.entries()) {
    await mkdir(join(folder, `class${it.label}`), { recursive: true });
    await writeFile(join(folder, `class${it.label}`, `img${String(i).padStart(3, '0')}.png`), it.png);
  }
  models = await makeModels([
    { name: 'emb-a', arch: 'B_2-Wi_64', size: 28, channels: 1, seed: 1 },
    { name: 'emb-b', arch: 'B_2-Wi_64', size: 28, channels: 1, seed: 2 },
  ]);
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
  await rm(root, { recursive: true, force: true });
});

describe('shard ranges', () => {
  it('cut on batch boundaries, cover every row once, and come from the Job environment', () => {
    for (const [total, batch, count] of [[259, 32, 3], [10_000, 256, 7], [5, 32, 3], [64, 32, 2]]) {
      let at = 0;
      for (let index = 0; index < count; index++) {
        const { start, end } = shardRange(total, batch, { index, count });
        expect(start).toBe(at);
        expect(start % batch === 0 || start === total).toBe(true);
        at = end;
      }
      expect(at).toBe(total);
    }
    expect(shardFromEnv(undefined, { JOB_COMPLETION_INDEX: '2', JOB_COMPLETIONS: '3' })).toEqual({ index: 2, count: 3 });
    expect(shardFromEnv(undefined, {})).toBeUndefined();
    expect(() => shardFromEnv(undefined, { JOB_COMPLETION_INDEX: '1' })).toThrow(/set together/);
    expect(() => shardFromEnv('3/3', {})).toThrow(/out of range 0..2/);
  });
});

describe('npm run embed as an Indexed Job', () => {
  it('three shards merged equal a single run byte for byte, /embed within 1e-5, and numpy reads them', async () => {
    const single = join(root, 'single');
    expect(cli(embedArgs(single)).code).toBe(0);
    const sharded = join(root, 'sharded');
    for (let i = 0; i < 3; i++) {
      const r = cli(embedArgs(sharded), { JOB_COMPLETION_INDEX: String(i), JOB_COMPLETIONS: '3' });
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`part-${i}-of-3`);
    }
    const merged = cli(['--merge', sharded]);
    expect(merged.code, merged.err).toBe(0);
    for (const f of ['embeddings.npy', 'labels.npy', 'index.json'])
      expect(Buffer.compare(await readFile(join(sharded, f)), await readFile(join(single, f))), f).toBe(0);

    const index = JSON.parse(await readFile(join(single, 'index.json'), 'utf8'));
    const ds = (await openDataSource(`folder:${folder}`)).train;
    expect(index.rows).toEqual({ start: 0, end: ds.size });
    expect(index.files).toHaveLength(ds.size);
    expect(index.model).toMatchObject({ name: 'emb-a', arch: 'B_2-Wi_64' });

    const emb = await readNpy(join(single, 'embeddings.npy'));
    const running = await startApp({ MODELS_DIR: models.dir });
    try {
      const served = await servedEmbeddings(ds, { url: running.base, model: 'emb-a', batchSize: 16 });
      expect(served.rows).toBe(ds.size);
      let worst = 0;
      for (let k = 0; k < served.data.length; k++) worst = Math.max(worst, Math.abs(served.data[k] - emb.data[k]));
      expect(worst).toBeLessThan(1e-5);
    } finally {
      await running.close();
    }

    const py = spawnSync(
      '/usr/bin/python3',
      ['-c', 'import json,sys,numpy as np; e=np.load(sys.argv[1]+"/embeddings.npy"); l=np.load(sys.argv[1]+"/labels.npy"); print(json.dumps([list(e.shape), str(e.dtype), list(l.shape), str(l.dtype), float(e[5,7]), int(l[9])]))', single],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    const [shape, dtype, lshape, ldtype, v, label] = JSON.parse(py.stdout);
    expect([shape, dtype, lshape, ldtype]).toEqual([[ds.size, 64], 'float32', [ds.size], 'int32']);
    expect(v).toBeCloseTo(emb.data[5 * 64 + 7], 6);
    expect(label).toBe(ds.label(9));

    // npm run probe reads such directories as its features: the same probe as on locally computed embeddings.
    const singleTest = join(root, 'single-test');
    expect(cli([...embedArgs(singleTest), '--split', 'test']).code).toBe(0);
    const common = { data: `folder:${folder}`, trainN: ds.size, testN: 29 };
    const fromFiles = await runProbe({ ...common, source: { kind: 'files', trainDir: single, testDir: singleTest } });
    const local = await runProbe({ ...common, source: { kind: 'local', modelDir: join(models.dir, 'emb-a') } });
    expect(fromFiles.lambda).toBe(local.lambda);
    expect(fromFiles.testAccuracy).toBe(local.testAccuracy);
    await expect(runProbe({ ...common, source: { kind: 'files', trainDir: singleTest, testDir: singleTest } })).rejects.toThrow(/not .* train/);
  }, 120_000);

  it('a killed shard resumes without duplicating rows (a torn last write is dropped)', async () => {
    const out = join(root, 'killed');
    const args = [...embedArgs(out), '--batch-size', '8'];
    const partial = join(out, 'part-1-of-3', 'embeddings.f32.partial');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/embed.ts', ...args, '--shard', '1/3'], {
      env: { ...process.env, MODELS_DIR: models.dir },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('exit', r));
    for (let t = 0; t < 600; t++) {
      const size = await stat(partial).then((s) => s.size, () => 0);
      if (size >= 2 * 8 * 64 * 4) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await exited;
    await appendFile(partial, Buffer.alloc(100, 7)); // half a row of garbage, as a write cut short
    const resumed = cli([...args, '--shard', '1/3']);
    expect(resumed.code, resumed.err).toBe(0);
    const kept = Number(/\((\d+) resumed\)/.exec(resumed.out)?.[1]);
    expect(kept).toBeGreaterThan(0);
    expect(kept % 8).toBe(0);

    const clean = join(root, 'clean');
    expect(cli([...embedArgs(clean), '--batch-size', '8', '--shard', '1/3']).code).toBe(0);
    for (const f of ['embeddings.npy', 'labels.npy', 'index.json'])
      expect(Buffer.compare(await readFile(join(out, 'part-1-of-3', f)), await readFile(join(clean, 'part-1-of-3', f))), f).toBe(0);
  }, 120_000);

  it('EXPECTED FAILURE - bad arguments exit 2 with a message that says what is wrong', async () => {
    const out = join(root, 'bad');
    const outOfRange = cli(embedArgs(out), { JOB_COMPLETION_INDEX: '3', JOB_COMPLETIONS: '3' });
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.err).toMatch(/shard index 3 is out of range 0..2/);

    const unknown = cli(['--model', 'emb-a', '--data', 'no-such-set', '--out', out]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/no-such-set/);

    expect(cli(embedArgs(out), { JOB_COMPLETION_INDEX: '0', JOB_COMPLETIONS: '3' }).code).toBe(0);
    const other = cli(embedArgs(out, 'emb-b'), { JOB_COMPLETION_INDEX: '1', JOB_COMPLETIONS: '3' });
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/already holds embeddings of model emb-a/);

    const incomplete = cli(['--merge', out]);
    expect(incomplete.code).toBe(2);
    expect(incomplete.err).toMatch(/part 1 of 3 is missing/);
  }, 120_000);
});
