// Augmentation on uint8 CHW: seeded determinism, and each transform's exact effect on a known image.
import { describe, expect, it } from 'vitest';
import { createRng } from '../../src/util/rng.js';
import { PAPER_AUGMENT, augment, isIdentity, sampleCrop, validateAugment, type AugmentOptions } from '../../src/train/augment.js';

const geo = { width: 8, height: 6, channels: 3 as const };
/** Every value distinct: value = its CHW index (3·6·8 = 144 < 256). */
const img = Uint8Array.from({ length: 3 * 6 * 8 }, (_, i) => i % 256);
const at = (a: Uint8Array, c: number, y: number, x: number) => a[c * 48 + y * 8 + x];
const off: AugmentOptions = { cropScale: null, cropRatio: [3 / 4, 4 / 3], flip: false, translate: 0 };

describe('augment', () => {
  it('the same seed gives the same view; other seeds give other views', () => {
    const opts = { ...PAPER_AUGMENT, translate: 2 };
    const a = augment(img, geo, opts, createRng(42));
    const b = augment(img, geo, opts, createRng(42));
    expect(b).toEqual(a);
    const others = [1, 2, 3, 4, 5].map((s) => augment(img, geo, opts, createRng(s)));
    expect(others.some((o) => !o.every((v, i) => v === a[i]))).toBe(true);
    expect(Array.from(img.subarray(0, 4))).toEqual([0, 1, 2, 3]); // the source is never written
  });

  it('flip mirrors every row of every channel (half of the seeds), else copies', () => {
    let flipped = 0;
    for (let s = 0; s < 40; s++) {
      const out = augment(img, geo, { ...off, flip: true }, createRng(s));
      const mirrored = at(out, 0, 0, 0) === at(img, 0, 0, 7);
      if (mirrored) {
        flipped++;
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < 6; y++) for (let x = 0; x < 8; x++) expect(at(out, c, y, x)).toBe(at(img, c, y, 7 - x));
      } else expect(out).toEqual(img);
    }
    expect(flipped).toBeGreaterThan(8);
    expect(flipped).toBeLessThan(32);
  });

  it('translate shifts the content by at most ±t and fills the uncovered border with 0', () => {
    const ones = new Uint8Array(img.length).fill(1);
    for (let s = 0; s < 30; s++) {
      const out = augment(img, geo, { ...off, translate: 2 }, createRng(s));
      // Find the shift from where pixel (0, 3, 4) went, then check every pixel against it.
      const k = out.findIndex((v) => v === at(img, 0, 3, 4));
      const dy = Math.floor(k / 8) - 3;
      const dx = (k % 8) - 4;
      expect(Math.abs(dy)).toBeLessThanOrEqual(2);
      expect(Math.abs(dx)).toBeLessThanOrEqual(2);
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 6; y++)
          for (let x = 0; x < 8; x++) {
            const sy = y - dy;
            const sx = x - dx;
            const inside = sy >= 0 && sy < 6 && sx >= 0 && sx < 8;
            expect(at(out, c, y, x)).toBe(inside ? at(img, c, sy, sx) : 0);
          }
      expect(augment(ones, geo, { ...off, translate: 2 }, createRng(s)).reduce((a, b) => a + b, 0)).toBe(
        3 * (6 - Math.abs(dy)) * (8 - Math.abs(dx)),
      );
    }
  });

  it('a full-size crop (scale 1, ratio of the image) is the identity; a smaller one upsamples a region', () => {
    const full = augment(img, geo, { ...off, cropScale: [1, 1], cropRatio: [8 / 6, 8 / 6] }, createRng(1));
    expect(full).toEqual(img);
    // A constant image stays constant under any crop (bilinear weights sum to 1).
    const flat = new Uint8Array(img.length).fill(77);
    expect(augment(flat, geo, PAPER_AUGMENT, createRng(9)).every((v) => v === 77)).toBe(true);
  });

  it('sampleCrop keeps boxes inside the image with the area and ratio asked for', () => {
    const rng = createRng(5);
    for (let i = 0; i < 500; i++) {
      const b = sampleCrop(64, 64, [0.08, 1], [3 / 4, 4 / 3], rng);
      expect(b.top).toBeGreaterThanOrEqual(0);
      expect(b.left).toBeGreaterThanOrEqual(0);
      expect(b.top + b.height).toBeLessThanOrEqual(64);
      expect(b.left + b.width).toBeLessThanOrEqual(64);
      const area = (b.width * b.height) / (64 * 64);
      expect(area).toBeGreaterThan(0.05); // 0.08 up to rounding of a few pixels
      expect(b.width / b.height).toBeGreaterThan(0.6);
      expect(b.width / b.height).toBeLessThan(1.6);
    }
  });

  it('isIdentity and validateAugment', () => {
    expect(isIdentity(off)).toBe(true);
    expect(isIdentity(PAPER_AUGMENT)).toBe(false);
    expect(() => validateAugment({ ...off, cropScale: [0.5, 0.2] })).toThrow(RangeError);
    expect(() => validateAugment({ ...off, translate: 1.5 })).toThrow(/translate/);
  });
});
