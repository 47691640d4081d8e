// The engine registry: names resolve to engines implementing the interface; `auto` prefers the fused onnxruntime
// engine when its module is in the checkout and loads.
import { describe, expect, it } from 'vitest';
import { availableEngines, createEngine } from '../../src/train/engines/index.js';

describe('engine registry', () => {
  it('lists the engines of this checkout and creates each by name', async () => {
    const names = availableEngines();
    expect(names).toContain('tfjs');
    for (const n of names) {
      const { engine, note } = await createEngine(n);
      expect(note).toBeUndefined();
      expect(engine.name.startsWith(n)).toBe(true);
      for (const m of ['init', 'step', 'predict', 'readWeights', 'readMomentum', 'dispose'] as const)
        expect(typeof engine[m]).toBe('function');
      await engine.dispose();
    }
  });

  it('auto picks ort when it is available, else tfjs with a note saying why', async () => {
    const { engine, note } = await createEngine('auto');
    if (availableEngines().includes('ort')) {
      expect(engine.name).toBe('ort');
      expect(note).toBeUndefined();
    } else {
      expect(engine.name).toMatch(/^tfjs/);
      expect(note).toMatch(/ort engine unavailable/);
    }
    await engine.dispose();
  });

  it('BAD CALL - an unknown engine name is a RangeError listing the choices', async () => {
    await expect(createEngine('cuda' as 'tfjs')).rejects.toThrow(/engine "cuda" is not one of tfjs, ort, auto/);
  });
});
