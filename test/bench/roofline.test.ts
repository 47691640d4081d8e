// The training bench's arithmetic: the products of a step (counted against the model's own FLOP count), GFLOP/s,
// images/s, the roofline fraction, and how rounds of timings become one architecture's figures.

import { describe, expect, it } from 'vitest';
import { flopsPerImage, parseArch, type MlpConfig } from '../../src/model/mlp.js';
import { paramSpecs } from '../../src/train/engines/ort-graph.js';
import {
  gemmFlops,
  gflopsPerSecond,
  imagesPerSecond,
  median,
  rooflineFraction,
  stepGemms,
  summarizeArch,
  totalFlops,
  type ArchRound,
} from '../../src/bench/roofline.js';

const cfg = (arch: string): MlpConfig => ({ ...parseArch(arch), expansion: 4, inputDim: 3 * 64 * 64, classes: 10 });

describe('the products of one training step', () => {
  it('B_6-Wi_512 at batch 128: three per Linear but the stem (no input gradient), with the shapes of the graph', () => {
    const g = stepGemms(paramSpecs(cfg('B_6-Wi_512')), 128);
    // stem, 12 block Linears, head: 14 Linears × 3 − 1
    expect(g).toHaveLength(41);
    expect(g.filter((x) => x.layer === 'stem.weight')).toEqual([
      { layer: 'stem.weight', role: 'forward', m: 128, k: 12288, n: 512 },
      { layer: 'stem.weight', role: 'weight-grad', m: 12288, k: 128, n: 512 },
    ]);
    expect(g.filter((x) => x.layer === 'blocks.3.expand.weight')).toEqual([
      { layer: 'blocks.3.expand.weight', role: 'forward', m: 128, k: 512, n: 2048 },
      { layer: 'blocks.3.expand.weight', role: 'weight-grad', m: 512, k: 128, n: 2048 },
      { layer: 'blocks.3.expand.weight', role: 'input-grad', m: 128, k: 2048, n: 512 },
    ]);
    expect(g.filter((x) => x.layer === 'head.weight').map((x) => [x.m, x.k, x.n])).toEqual([[128, 512, 10], [512, 128, 10], [128, 10, 512]]);
  });

  it('forward products are the model\'s own forward FLOPs; the step is 3× that less the stem\'s input gradient', () => {
    for (const arch of ['B_4-Wi_256', 'B_6-Wi_512', 'B_1-Wi_8']) {
      const c = cfg(arch);
      const g = stepGemms(paramSpecs(c), 32);
      const fwd = totalFlops(g.filter((x) => x.role === 'forward'));
      expect(fwd).toBe(32 * flopsPerImage(c));
      expect(totalFlops(g)).toBe(3 * fwd - 2 * 32 * c.inputDim * c.width);
    }
    // by hand: stem 2·128·12288·W·2, blocks 2·128·W·4W × 6 per block, head 2·128·W·10 × 3
    expect(totalFlops(stepGemms(paramSpecs(cfg('B_4-Wi_256')), 128)) / 1e9).toBe(3_223_191_552 / 1e9);
    expect(totalFlops(stepGemms(paramSpecs(cfg('B_6-Wi_512')), 128)) / 1e9).toBe(12_888_834_048 / 1e9);
  });

  it('EXPECTED FAILURE - a batch that is not a positive integer', () => {
    expect(() => stepGemms(paramSpecs(cfg('B_1-Wi_8')), 0)).toThrow(/batch 0 must be a positive integer/);
  });
});

describe('rates and the fraction', () => {
  it('GFLOP/s, images/s, median', () => {
    expect(gemmFlops({ layer: 'l', role: 'forward', m: 2, k: 3, n: 4 })).toBe(48);
    expect(gflopsPerSecond(12.885e9, 100)).toBeCloseTo(128.85, 6);
    expect(imagesPerSecond(128, 160)).toBe(800);
    expect(median([5, 1, 4, 2, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3);
    expect(() => gflopsPerSecond(1, 0)).toThrow(RangeError);
  });

  it('fraction = products alone ÷ whole step, capped at 1', () => {
    expect(rooflineFraction(85, 100)).toBeCloseTo(0.85, 12);
    expect(rooflineFraction(101, 100)).toBe(1);
    expect(() => rooflineFraction(0, 100)).toThrow(/must be positive/);
  });
});

describe('rounds → figures', () => {
  const gemms = stepGemms(paramSpecs(cfg('B_1-Wi_8')), 128);
  // CPU time: a fixed share of the wall time per round (`cpu`), as if the round had waited for a core that much.
  const round = (ortMs: number[], gemmMs: number[], torchMs: number[], load: number, cpu = 0.9): ArchRound => ({
    load: [load, load + 1],
    ort: ortMs.map((stepMs, i) => ({ threads: i + 1, stepMs, cpuMs: cpu * stepMs, runMs: stepMs - 2, updateMs: 2 })),
    ortGemm: gemmMs.map((ms, i) => ({ threads: i + 1, ms, cpuMs: cpu * ms })),
    torch: {
      runs: torchMs.map((stepMs, i) => ({ threads: 1 + (i >> 1), lion: i % 2 ? 'foreach' : 'lerp', stepMs, cpuMs: cpu * stepMs })),
      gemm: [{ threads: 1, ms: 90, cpuMs: cpu * 90 }, { threads: 2, ms: 60, cpuMs: cpu * 60 }],
    },
    others: [{ engine: 'tfjs-wasm', stepMs: 1000 + load, cpuMs: cpu * (1000 + load) }],
  });

  it('each configuration keeps its best round; ratio and roofline at the best thread count', () => {
    const s = summarizeArch([round([100, 80], [70, 64], [200, 210, 160, 170], 3), round([90, 85], [72, 60], [190, 220, 180, 150], 5)], gemms, 128);
    expect(s.ort.map((e) => [e.threads, e.stepMs])).toEqual([[1, 90], [2, 80]]);
    expect(s.ortBest).toMatchObject({ threads: 2, stepMs: 80, imagesPerSecond: 1600 });
    expect(s.torchBest).toMatchObject({ threads: 2, lion: 'foreach', stepMs: 150 });
    expect(s.ratio).toBeCloseTo(150 / 80, 12);
    // the MatMul time at the engine's best thread count (2), its best round: 60 ms
    expect(s.roofline).toMatchObject({ threads: 2, gemmMs: 60, stepMs: 80, fraction: 0.75 });
    expect(s.roofline.gemmGflops).toBeCloseTo(totalFlops(gemms) / 60e6, 9);
    expect(s.torchGemm).toMatchObject({ threads: 2, ms: 60 });
    expect(s.others).toEqual([expect.objectContaining({ engine: 'tfjs-wasm', stepMs: 1003, imagesPerSecond: 128000 / 1003 })]);
    expect(s.load).toEqual({ min: 3, max: 6 });
  });

  it('the CPU-time view: at the fewest threads, each side\'s lowest CPU time over the rounds', () => {
    // round 1 waited more for a core (CPU = 0.5 of wall), round 2 less (0.9)
    const s = summarizeArch([round([100, 80], [70, 64], [200, 210, 160, 170], 3, 0.5), round([90, 85], [72, 60], [190, 220, 180, 150], 5, 0.9)], gemms, 128);
    // ort@1: 50 vs 81 → 50; MatMul@1: 35 vs 64.8 → 35; torch@1: lerp 100 / foreach 105 vs 171 / 198 → lerp 100
    expect(s.cpu).toMatchObject({ threads: 1, ortMs: 50, gemmMs: 35, torchMs: 100, torchLion: 'lerp', ratio: 2, fraction: 0.7, torchGemmMs: 45 });
    expect(s.cpu.ortGemmGflops).toBeCloseTo(totalFlops(gemms) / 35e6, 9);
  });

  it('without PyTorch there is no ratio, the roofline still stands', () => {
    const r = { ...round([100], [85], [], 1, 1), torch: undefined };
    const s = summarizeArch([r], gemms, 128);
    expect(s.ratio).toBeUndefined();
    expect(s.torchBest).toBeUndefined();
    expect(s.roofline.fraction).toBeCloseTo(0.85, 12);
  });
});
