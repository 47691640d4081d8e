// The ModelManager on its own (no fastify, no socket): real onnxruntime workers on small random models. Start-up
// state and lookups, a run through a resolved model's batcher, reload diffing, a held generation drained only after
// its release, the MODEL_LOAD_POLICY fault probing, and close.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.js';
import { createMetrics } from '../../src/serve/metrics.js';
import { ModelManager } from '../../src/serve/model-manager.js';
import { ModelLoadError, warmupSizes } from '../../src/serve/model-pool.js';
import type { ManagerLog } from '../../src/serve/model-types.js';
import { GpuUnavailableError, openSession } from '../../src/serve/session.js';
import { makeModels, type TempModels } from './helpers.js';
import { copyModel, modelRepos } from './hostile.js';

let src: TempModels;
const repos = modelRepos(() => src.dir);
const repo = repos.make;

beforeAll(async () => {
  src = await makeModels([
    { name: 'w1', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 4, seed: 41 },
    { name: 'w2', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 4, seed: 42 },
  ]);
}, 60_000);

afterAll(async () => {
  await src?.cleanup();
  await repos.cleanup();
});


function recordingLog(): ManagerLog & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (a: object | string, b?: string) => lines.push(`${level} ${typeof a === 'string' ? a : `${b} ${JSON.stringify(a)}`}`);
  return { lines, info: rec('info'), warn: rec('warn'), error: rec('error') };
}

async function manager(env: Record<string, string>) {
  const config = loadConfig({ EXECUTION_PROVIDERS: 'cpu', ORT_INTRA_OP_THREADS: '1', BATCH_MAX_SIZE: '4', LOG_LEVEL: 'silent', ...env });
  const registry = new Registry();
  const log = recordingLog();
  const mgr = await ModelManager.start(config, { metrics: createMetrics(registry), log });
  return { mgr, registry, log };
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

describe('ModelManager', () => {
  it('warms each model up at powers of two up to the largest batch', () => {
    expect(warmupSizes(1)).toEqual([1]);
    expect(warmupSizes(32)).toEqual([1, 2, 4, 8, 16, 32]);
    expect(warmupSizes(12)).toEqual([1, 2, 4, 8, 12]);
  });

  it('loads in the background, then resolves models by name and version and runs a batch', async () => {
    const dir = await repo({ 'a/1': 'w1', 'a/2': 'w2', b: 'w1' });
    const { mgr, registry } = await manager({ MODELS_DIR: dir });
    try {
      expect(mgr.state).toBe('loading');
      expect(codeOf(() => mgr.resolve('a'))).toBe('NOT_READY');
      await mgr.whenReady();
      expect(mgr.state).toBe('ready');
      expect(mgr.defaultName).toBe('a');
      expect(mgr.list.map((m) => m.key)).toEqual(['a:2', 'b:1']);
      expect(mgr.versions.map((m) => m.key)).toEqual(['a:2', 'a:1', 'b:1']);
      expect(mgr.versionsOf('a').map((m) => m.version)).toEqual(['2', '1']);
      expect(mgr.versionsOf('zzz')).toEqual([]);
      expect(mgr.resolve(undefined).key).toBe('a:2');
      expect(mgr.resolve('a', '1').key).toBe('a:1');
      expect(codeOf(() => mgr.resolve('zzz'))).toBe('UNKNOWN_MODEL');
      expect(codeOf(() => mgr.resolve('a', '3'))).toBe('UNKNOWN_VERSION');
      expect(mgr.find('a', '3')).toBeUndefined();
      expect(mgr.list.every((m) => m.provider === 'cpu')).toBe(true);

      // Two versions with different weights give different logits for the same input, through their own batchers.
      const input = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
      const [v1] = await mgr.resolve('a', '1').batcher.submit([input], 5000);
      const [v2] = await mgr.resolve('a', '2').batcher.submit([input], 5000);
      expect(v1.logits.length).toBe(4);
      expect(v1.embedding.length).toBe(16);
      expect(Array.from(v1.logits)).not.toEqual(Array.from(v2.logits));

      const text = await registry.metrics();
      expect(text).toContain('mlp_model_info{model="a",version="1",arch="B_1-Wi_16",provider="cpu"} 1');
      expect(text).toMatch(/mlp_batch_size_count\{model="a"\} 2/);
    } finally {
      await mgr.close();
    }
  }, 60_000);

  it('reload: nothing changed does nothing; a new version is warmed up, swapped in, and the held generation drains after its release', async () => {
    const dir = await repo({ 'a/1': 'w1' });
    const { mgr, registry, log } = await manager({ MODELS_DIR: dir, MAX_MODEL_VERSIONS: '1' });
    try {
      await mgr.whenReady();
      const same = await mgr.reload();
      expect(same).toMatchObject({ changed: false, generation: 1, served: ['a:1'], loaded: [], unloaded: [] });

      let release: (() => void) | undefined;
      const held = mgr.resolve('a', undefined, (r) => (release = r));
      expect(release).toBeTypeOf('function');
      const oldPool = mgr.pool!;

      await copyModel(join(src.dir, 'w2'), join(dir, 'a', '2'), { name: 'a', version: '2' });
      const running = mgr.reload();
      await expect(mgr.reload()).rejects.toMatchObject({ code: 'RELOAD_IN_PROGRESS' });
      const report = await running;
      expect(report).toMatchObject({ changed: true, generation: 2, served: ['a:2'], loaded: ['a:2'], unloaded: ['a:1'], skipped: [] });
      expect(mgr.resolve('a').key).toBe('a:2');
      expect(mgr.pool).not.toBe(oldPool);

      // The old generation still runs what was resolved before the swap, until released.
      await new Promise((r) => setTimeout(r, 200));
      expect(mgr.retiring).toBe(1);
      const [out] = await held.batcher.submit([new Float32Array(64)], 5000);
      expect(out.logits.length).toBe(4);
      release!();
      release!(); // a second release is harmless
      for (let i = 0; i < 50 && mgr.retiring > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(mgr.retiring).toBe(0);
      expect(oldPool.freeSlots()).toBe(0);
      expect(log.lines.some((l) => l.startsWith('info previous model generation drained and stopped'))).toBe(true);

      const text = await registry.metrics();
      expect(text).not.toContain('version="1"');
      expect(text).toContain('mlp_model_reloads_total{outcome="ok"} 1');
      expect(text).toContain('mlp_model_reloads_total{outcome="unchanged"} 1');
    } finally {
      await mgr.close();
    }
  }, 60_000);

  it('EXPECTED FAILURE - a model.onnx onnxruntime cannot open: fail names the file; skip-bad serves the rest and reports it', async () => {
    for (const policy of ['fail', 'skip-bad'] as const) {
      const dir = await repo({ a: 'w1', b: 'w2' });
      await writeFile(join(dir, 'b', 'model.onnx'), 'not an onnx file');
      const { mgr, log } = await manager({ MODELS_DIR: dir, MODEL_LOAD_POLICY: policy });
      try {
        const err = await mgr.whenReady().then(() => undefined, (e: Error) => e);
        if (policy === 'fail') {
          expect(err).toBeInstanceOf(ModelLoadError);
          expect((err as ModelLoadError).file).toBe(join(dir, 'b', 'model.onnx'));
          expect(mgr.state).toBe('failed');
          expect(mgr.failure).toBe(err);
        } else {
          expect(err).toBeUndefined();
          expect(mgr.list.map((m) => m.name)).toEqual(['a']);
          expect(mgr.skipped).toEqual([{ path: 'b/model.onnx', reason: expect.stringMatching(/^b\/model\.onnx: onnxruntime cannot load or run it/) }]);
          expect(log.lines.filter((l) => l.startsWith('warn MODEL_LOAD_POLICY=skip-bad: skipping b/model.onnx'))).toHaveLength(1);
        }
      } finally {
        await mgr.close();
      }
    }
  }, 90_000);

  it('EXPECTED FAILURE - REQUIRE_GPU=1 without a GPU fails with GpuUnavailableError, no model blamed', async () => {
    const dir = await repo({ a: 'w1' });
    const cuda = await openSession(join(dir, 'a', 'model.onnx'), { providers: ['cuda'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1 }).catch(() => undefined);
    if (cuda) return void (await cuda.session.release()); // a machine with a working GPU: nothing to refuse
    const { mgr } = await manager({ MODELS_DIR: dir, EXECUTION_PROVIDERS: 'cuda,cpu', REQUIRE_GPU: '1' });
    try {
      const err = await mgr.whenReady().then(() => undefined, (e: Error) => e);
      // The worker's error kind crossed the thread boundary: it is not taken for a broken model file.
      expect(err).toBeInstanceOf(GpuUnavailableError);
      expect(err).not.toBeInstanceOf(ModelLoadError);
      expect(mgr.state).toBe('failed');
    } finally {
      await mgr.close();
    }
  }, 30_000);

  it('EXPECTED FAILURE - a DEFAULT_MODEL that is not in the repository fails start', async () => {
    const dir = await repo({ a: 'w1' });
    await expect(manager({ MODELS_DIR: dir, DEFAULT_MODEL: 'b' })).rejects.toThrow(/^DEFAULT_MODEL "b" is not among the models in .* \(a\)$/);
  });

  it('close stops the workers; a reload after it is refused', async () => {
    const dir = await repo({ a: 'w1' });
    const { mgr } = await manager({ MODELS_DIR: dir });
    await mgr.whenReady();
    const pool = mgr.pool!;
    await mgr.close();
    expect(pool.freeSlots()).toBe(0);
    await expect(mgr.reload()).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
  }, 30_000);
});
