// LION's reference update against cases worked out by hand from the paper's definition:
//   p ← p·(1 − lr·wd);  p ← p − lr·sign(β1·m + (1 − β1)·g);  m ← β2·m + (1 − β2)·g
import { describe, expect, it } from 'vitest';
import { LION_BETAS, lionUpdate } from '../../src/train/lion.js';

const f32 = (xs: number[]) => Float32Array.from(xs);

describe('lionUpdate', () => {
  it('zero momentum, no decay: every coordinate moves by exactly lr against its gradient sign; zero gradient stays', () => {
    const p = f32([1, -2, 0.5, 0]);
    const g = f32([0.5, -1, 0, 0]);
    const m = f32([0, 0, 0, 0]);
    lionUpdate(p, g, m, { lr: 0.1, beta1: 0.9, beta2: 0.99, weightDecay: 0 });
    // c = 0.1·g → sign (1, −1, 0, 0)
    expect(Array.from(p)).toEqual(Array.from(f32([0.9, -1.9, 0.5, 0])));
    // m = 0.01·g
    expect(Array.from(m)).toEqual(Array.from(f32([0.005, -0.01, 0, 0])));
  });

  it('decoupled weight decay shrinks by (1 − lr·wd) before the sign step', () => {
    const p = f32([1, -2]);
    const g = f32([3, -3]);
    const m = f32([0, 0]);
    lionUpdate(p, g, m, { lr: 0.1, beta1: 0.9, beta2: 0.99, weightDecay: 0.5 });
    // 1·0.95 − 0.1 = 0.85 ; −2·0.95 + 0.1 = −1.8
    expect(p[0]).toBeCloseTo(0.85, 6);
    expect(p[1]).toBeCloseTo(-1.8, 6);
  });

  it('the sign comes from the interpolation with β1, the momentum update uses β2', () => {
    const p = f32([0, 0]);
    const g = f32([-5, 5]);
    const m = f32([1, 1]);
    lionUpdate(p, g, m, { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0 });
    // coordinate 0: c = 0.9·1 + 0.1·(−5) = 0.4 > 0, so p moves down although the gradient is negative
    // coordinate 1: c = 0.9 + 0.5 = 1.4 > 0
    expect(Array.from(p)).toEqual(Array.from(f32([-0.01, -0.01])));
    // m = 0.99·1 + 0.01·(∓5) = 0.94, 1.04
    expect(m[0]).toBeCloseTo(0.94, 6);
    expect(m[1]).toBeCloseTo(1.04, 6);
  });

  it('two steps compound: the second sign uses the momentum of the first', () => {
    const p = f32([0]);
    const m = f32([0]);
    const h = { lr: 1, ...LION_BETAS, weightDecay: 0 };
    lionUpdate(p, f32([1]), m, h); // c = 0.1 → p = −1 ; m = 0.01
    lionUpdate(p, f32([-0.05]), m, h); // c = 0.009 − 0.005 = 0.004 > 0 → p = −2 ; m = 0.0099 − 0.0005 = 0.0094
    expect(p[0]).toBe(-2);
    expect(m[0]).toBeCloseTo(0.0094, 7);
  });

  it('BAD CALL - mismatched lengths are a RangeError naming all three', () => {
    expect(() => lionUpdate(f32([1, 2]), f32([1]), f32([1, 2]), { lr: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0 })).toThrow(
      /param has 2 values, grad 1, momentum 2/,
    );
  });
});
