// The train loop's small pure helpers: normalisation choice per channel count, independent seeded streams,
// default model names, option validation.
import { describe, expect, it } from 'vitest';
import { streamSeed } from '../../src/train/batches.js';
import { DEFAULT_TRAIN_OPTIONS, chooseNormalization, defaultModelName, heldOutCount, validateOptions } from '../../src/train/options.js';

const stats = { mean: [10.123, 20.456, 30.789], std: [5.555, 0.2, 7] };

describe('chooseNormalization', () => {
  it("uses the data set's values when they fit, repeats a grey set's for 3 channels, else the cache statistics", () => {
    expect(chooseNormalization({ mean: [72.94], std: [90.02] }, stats, 1)).toEqual({ mean: [72.94], std: [90.02] });
    expect(chooseNormalization({ mean: [72.94], std: [90.02] }, stats, 3)).toEqual({ mean: [72.94, 72.94, 72.94], std: [90.02, 90.02, 90.02] });
    expect(chooseNormalization({ mean: [1, 2, 3], std: [4, 5, 6] }, { mean: [50.004], std: [60.006] }, 1)).toEqual({ mean: [50], std: [60.01] });
    // No customary values: the statistics, rounded, with std at least 1 (a constant channel must not blow up).
    expect(chooseNormalization(undefined, stats, 3)).toEqual({ mean: [10.12, 20.46, 30.79], std: [5.56, 1, 7] });
  });
});

describe('streamSeed', () => {
  it('differs across seeds, streams and indices, and is a 32-bit unsigned integer', () => {
    const seen = new Set<number>();
    for (const seed of [0, 1, 2]) for (const stream of [1, 2]) for (let i = 0; i < 100; i++) seen.add(streamSeed(seed, stream, i));
    expect(seen.size).toBe(600);
    for (const v of seen) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
    expect(streamSeed(7, 1, 3)).toBe(streamSeed(7, 1, 3));
  });
});

describe('defaultModelName', () => {
  it('data set name or folder name, then the arch; always a valid model name', () => {
    expect(defaultModelName('fashion-mnist', 'B_2-Wi_128')).toBe('fashion-mnist-B_2-Wi_128');
    expect(defaultModelName('folder:/data/my pets/', 'B_1-Wi_8')).toBe('my-pets-B_1-Wi_8');
    expect(defaultModelName('cifar10', 'B_6-Wi_512')).toBe('cifar10-B_6-Wi_512');
  });
});

describe('validateOptions', () => {
  const ok = { ...DEFAULT_TRAIN_OPTIONS, data: 'fashion-mnist', arch: 'B_2-Wi_128', epochs: 1, out: '/tmp/x' };
  it('accepts the defaults', () => expect(() => validateOptions(ok)).not.toThrow());
  it.each([
    [{ arch: 'B2-W128' }, /B_<depth>-Wi_<width>/],
    [{ epochs: 0 }, /epochs 0/],
    [{ lr: -1 }, /lr -1/],
    [{ labelSmoothing: 1 }, /label smoothing 1/],
    [{ channels: 2 as 1 }, /channels 2/],
    [{ schedule: 'step' as 'cosine' }, /schedule "step"/],
    [{ augment: { ...ok.augment, cropScale: [0, 1] as [number, number] } }, /crop scale/],
  ])('BAD CALL - %j is a RangeError', (patch, message) => {
    expect(() => validateOptions({ ...ok, ...patch })).toThrow(message);
  });
});

describe('heldOutCount', () => {
  it('holds out val images, none when refitting, and refuses a hold-out as large as what is left', () => {
    expect(heldOutCount({ val: 5000, refit: false }, 60000)).toBe(5000);
    expect(heldOutCount({ val: 5000, refit: true }, 60000)).toBe(0);
    expect(heldOutCount({ val: 0, refit: false }, 100)).toBe(0);
    expect(heldOutCount({ val: 5000, refit: false }, 5256)).toBe(5000); // a sweep's small budget: 256 left to train on
    expect(() => heldOutCount({ val: 5000, refit: false }, 4096)).toThrow(/val 5000 must be less than the 4096 training images loaded/);
  });
});
