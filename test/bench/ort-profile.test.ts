// onnxruntime's profile read into per-run times: warm-up runs left out, kernels attributed to the run they ran in,
// matrix products told apart from the rest; and a real trace from onnxruntime-node has the fields this relies on.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { profileFiles, readProfile, summarizeProfile, type ProfileEvent } from '../../src/bench/ort-profile.js';
import { OrtEngine } from '../../src/train/engines/ort.js';
import { initWeights, type MlpConfig } from '../../src/model/mlp.js';
import { benchBatch, HYPER } from '../../src/bench/train-measure.js';

const run = (ts: number, dur: number): ProfileEvent => ({ cat: 'Session', name: 'model_run', ts, dur });
const kernel = (op: string, ts: number, dur: number): ProfileEvent => ({ cat: 'Node', name: `${op}_7_kernel_time`, ts, dur, args: { op_name: op } });

describe('summarizeProfile', () => {
  it('per-run means after the warm-up run; kernels outside the kept runs are not counted', () => {
    const events = [
      run(0, 9000), kernel('Gemm', 10, 8000), // warm-up, skipped
      run(10_000, 1000), kernel('Gemm', 10_010, 600), kernel('MatMul', 10_610, 100), kernel('Mul', 10_710, 50), { cat: 'Node', name: 'Mul_fence_before', ts: 10_700, dur: 1 },
      run(20_000, 2000), kernel('Gemm', 20_010, 1400), kernel('Add', 21_500, 250), kernel('Mul', 21_800, 150),
    ];
    const s = summarizeProfile(events, 1);
    expect(s.runs).toBe(2);
    expect(s.runMs).toBeCloseTo(1.5, 12);
    expect(s.gemmMs).toBeCloseTo((600 + 100 + 1400) / 2 / 1000, 12);
    expect(s.byOp).toEqual([
      { op: 'Gemm', ms: 1 },
      { op: 'Add', ms: 0.125 },
      { op: 'Mul', ms: 0.1 },
      { op: 'MatMul', ms: 0.05 },
    ]);
  });

  it('EXPECTED FAILURE - a profile without runs after the warm-up', () => {
    expect(() => summarizeProfile([run(0, 10)], 1)).toThrow(/no model_run after the first 1/);
  });

  it('a real trace of the engine from onnxruntime-node: its operators found, kernels within the runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ort-profile-'));
    try {
      const cfg: MlpConfig = { depth: 1, width: 16, expansion: 4, inputDim: 48, classes: 3 };
      const engine = new OrtEngine({ executionProviders: ['cpu'], intraOpNumThreads: 1, profileFilePrefix: join(dir, 'step') });
      await engine.init(cfg, initWeights(cfg, 0));
      for (let i = 0; i < 3; i++) await engine.step(benchBatch(cfg, 8), HYPER);
      await engine.endProfiling();
      await engine.dispose();
      const [file] = await profileFiles(join(dir, 'step'));
      const s = summarizeProfile(await readProfile(file), 1);
      expect(s.runs).toBe(2);
      expect(s.byOp.map((o) => o.op)).toEqual(expect.arrayContaining(['Gemm', 'LayerNormalization', 'Erf', 'LogSoftmax']));
      const kernels = s.byOp.reduce((a, o) => a + o.ms, 0);
      expect(kernels).toBeGreaterThan(0);
      expect(kernels).toBeLessThanOrEqual(s.runMs);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
