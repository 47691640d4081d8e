// The shipped class-name tables have their data sets' sizes, no duplicates, and the official first/last names.
import { describe, expect, it } from 'vitest';
import { CIFAR100_LABELS, CIFAR10_LABELS, FASHION_MNIST_LABELS } from '../../src/data/labels.js';

describe('label tables', () => {
  it.each([
    ['Fashion-MNIST', FASHION_MNIST_LABELS, 10, 'T-shirt/top', 'Ankle boot'],
    ['CIFAR-10', CIFAR10_LABELS, 10, 'airplane', 'truck'],
    ['CIFAR-100', CIFAR100_LABELS, 100, 'apple', 'worm'],
  ] as const)('%s: %i unique names from %s to %s', (_n, labels, count, first, last) => {
    expect(labels).toHaveLength(count);
    expect(new Set(labels).size).toBe(count);
    expect(labels[0]).toBe(first);
    expect(labels[count - 1]).toBe(last);
  });
});
