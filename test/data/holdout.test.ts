// The validation hold-out: stratified by class, reproducible from its seed, disjoint from what is trained on, and an
// index view that reads the parent split's images without copying them.
import { describe, expect, it } from 'vitest';
import type { CachedSplit } from '../../src/data/cache.js';
import { stratifiedHoldout, subsetSplit } from '../../src/data/holdout.js';

// 1000 labels: class 0 ×500, class 1 ×300, class 2 ×200, interleaved.
const labels = Uint16Array.from({ length: 1000 }, (_, i) => (i % 10 < 5 ? 0 : i % 10 < 8 ? 1 : 2));

describe('stratifiedHoldout', () => {
  it('holds out each class in proportion, disjoint from the rest, both ascending, together everything', () => {
    const { train, val } = stratifiedHoldout(labels, 100, 7);
    expect(val.length).toBe(100);
    expect(train.length).toBe(900);
    const count = (idx: Uint32Array, c: number) => Array.from(idx).filter((i) => labels[i] === c).length;
    expect([0, 1, 2].map((c) => count(val, c))).toEqual([50, 30, 20]);
    expect(new Set([...train, ...val]).size).toBe(1000);
    for (const idx of [train, val]) for (let k = 1; k < idx.length; k++) expect(idx[k]).toBeGreaterThan(idx[k - 1]);
  });

  it('gives the largest remainders the last images when the proportions are not whole', () => {
    const { val } = stratifiedHoldout(labels, 7, 0); // exact shares 3.5, 2.1, 1.4 → 4, 2, 1
    expect([0, 1, 2].map((c) => Array.from(val).filter((i) => labels[i] === c).length)).toEqual([4, 2, 1]);
  });

  it('is a function of its seed: same seed same images, another seed other images', () => {
    expect(stratifiedHoldout(labels, 100, 3).val).toEqual(stratifiedHoldout(labels, 100, 3).val);
    expect(stratifiedHoldout(labels, 100, 4).val).not.toEqual(stratifiedHoldout(labels, 100, 3).val);
    expect(stratifiedHoldout(labels, 0, 3)).toEqual({ train: Uint32Array.from({ length: 1000 }, (_, i) => i), val: new Uint32Array(0) });
  });

  it('BAD CALL - a hold-out of the whole split, or not a whole number, is refused with the range', () => {
    expect(() => stratifiedHoldout(labels, 1000, 0)).toThrow(/validation size 1000 must be a whole number in \[0, 1000\)/);
    expect(() => stratifiedHoldout(labels, 2.5, 0)).toThrow(RangeError);
  });
});

describe('subsetSplit', () => {
  it("reads the parent's images and labels at the indices; closing it leaves the parent open", () => {
    let closed = false;
    const parent: CachedSplit = {
      meta: {} as CachedSplit['meta'], dir: '/x', size: 5, labels: Uint16Array.from([4, 3, 2, 1, 0]),
      pixels: (i) => Uint8Array.of(10 * i), close: () => (closed = true),
    };
    const sub = subsetSplit(parent, Uint32Array.of(1, 4));
    expect(sub.size).toBe(2);
    expect(Array.from(sub.labels)).toEqual([3, 0]);
    expect(Array.from(sub.pixels(1))).toEqual([40]);
    sub.close();
    expect(closed).toBe(false);
  });
});
