// Class names of the data sets the project knows, in their official index order: one place, imported by the
// trainer, the importer and the random exporter, so a model's labels never drift from its data set.

/** Fashion-MNIST (Zalando), indices 0..9. */
export const FASHION_MNIST_LABELS: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** CIFAR-10, indices 0..9 (batches.meta order). */
export const CIFAR10_LABELS: readonly string[] = Object.freeze([
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
]);

/** CIFAR-100 fine labels, indices 0..99 (meta order, alphabetical). */
export const CIFAR100_LABELS: readonly string[] = Object.freeze(
  (
    'apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can ' +
    'castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin ' +
    'elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster ' +
    'man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck ' +
    'pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk ' +
    'skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger ' +
    'tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm'
  ).split(' '),
);

/** `class_0`, `class_1`, … for models without named classes (random-weight test models). */
export function genericLabels(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `class_${i}`);
}

/**
 * Per-channel normalisation on the 0–255 scale, per data set. Fashion-MNIST: 0.286/0.353 × 255. CIFAR: the reference
 * code's data_stats.py values (PAPER.md rounds them to 4 digits). ImageNet (also ImageNet-21k): PAPER.md.
 */
export const NORMALIZATIONS = Object.freeze({
  'fashion-mnist': { mean: [72.94], std: [90.02] },
  cifar: {
    mean: [0.49139968 * 255, 0.48215827 * 255, 0.44653124 * 255],
    std: [0.24703233 * 255, 0.24348505 * 255, 0.26158768 * 255],
  },
  imagenet: { mean: [0.485 * 255, 0.456 * 255, 0.406 * 255], std: [0.229 * 255, 0.224 * 255, 0.225 * 255] },
} as const);
