// The strict bound's arithmetic, and its two timings run for real (sharp on a real PNG, onnxruntime on a small
// random model): the costs are positive, scale the way they must, and the best batch is the cheapest one.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bestBatch, cheapest, inferSweep, minimalDecode, strictBound, type PerImage } from '../../src/bench/bound.js';
import { fashionMnistImage, png28 } from '../../src/bench/images.js';
import { writeRandomModel } from '../../src/export/random.js';

const cost = (cpuMs: number): PerImage => ({ cpuMs, wallMs: cpuMs * 1.5, images: 100 });

describe('strictBound', () => {
  it('is (cores − generator cores) ÷ (t_decode + t_infer)', () => {
    expect(strictBound({ cores: 2, generatorCores: 0, decodeMs: 1, inferMs: 1 })).toBeCloseTo(1000, 9);
    expect(strictBound({ cores: 2, generatorCores: 0.5, decodeMs: 0.5, inferMs: 2.5 })).toBeCloseTo(500, 9);
    // A generator that took every core leaves nothing to serve with.
    expect(strictBound({ cores: 2, generatorCores: 2.3, decodeMs: 1, inferMs: 1 })).toBe(0);
  });

  it('EXPECTED FAILURE - negative or all-zero costs are refused', () => {
    expect(() => strictBound({ cores: 2, generatorCores: 0, decodeMs: 0, inferMs: 0 })).toThrow(RangeError);
    expect(() => strictBound({ cores: 2, generatorCores: 0, decodeMs: -1, inferMs: 2 })).toThrow(/decode -1/);
  });

  it('cheapest and bestBatch take the lowest CPU time per image', () => {
    expect(cheapest([cost(3), cost(2), cost(4)]).cpuMs).toBe(2);
    const best = bestBatch(new Map([[8, cost(3)], [16, cost(2.1)], [32, cost(1.9)], [64, cost(2)]]));
    expect(best.batch).toBe(32);
    expect(best.cost.cpuMs).toBe(1.9);
    expect(() => bestBatch(new Map())).toThrow(/no batch sizes/);
  });
});

describe('the two timings, for real', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bound-test-'));
    await writeRandomModel({ arch: 'B_2-Wi_128', out: dir, name: 'm', size: 16, channels: 1 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('minimal decode of a 28×28 PNG costs a positive, sub-10 ms CPU time per image', async () => {
    const png = await png28(await fashionMnistImage(0));
    const d = await minimalDecode(png.bytes, { width: 64, height: 64, channels: 1 }, { seconds: 0.1, repeats: 2 });
    expect(d.images).toBeGreaterThan(0);
    expect(d.cpuMs).toBeGreaterThan(0);
    expect(d.cpuMs).toBeLessThan(10);
  });

  it('onnxruntime per image is cheaper at batch 32 than at batch 1 (the fixed cost of a run is shared)', async () => {
    const costs = await inferSweep(join(dir, 'model.onnx'), 16 * 16, [1, 32], { seconds: 0.2, repeats: 2 });
    expect(costs.get(32)!.cpuMs).toBeGreaterThan(0);
    expect(costs.get(32)!.cpuMs).toBeLessThan(costs.get(1)!.cpuMs);
    expect(bestBatch(costs).batch).toBe(32);
  });
});
