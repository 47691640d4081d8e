// `npm run train -- --data fashion-mnist --arch B_2-Wi_128 --epochs 1 --out DIR`: parse flags, call src/train.
// Ctrl-C once stops after the current step and writes a checkpoint (`--resume` continues it); twice quits at once.

import { parseArgs } from 'node:util';
import { relative } from 'node:path';
import { DatasetMissingError } from '../src/data/resolve.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { ENGINE_CHOICES, type EngineChoice } from '../src/train/engines/index.js';
import { terminalReporter } from '../src/train/progress.js';
import { DEFAULT_TRAIN_OPTIONS as D, train, type TrainOptions } from '../src/train/train.js';
import { UsageError, commandLine, num } from '../src/util/cli.js';

const USAGE = `Usage: npm run train -- --data <set> --arch B_<depth>-Wi_<width> --epochs <n> --out <models dir> [options]

Data and model
  --data <set>            fashion-mnist | mnist | cifar10:DIR | cifar100:DIR | idx:DIR | folder:DIR | DIR
  --arch <name>           e.g. B_2-Wi_128, B_6-Wi_512; S_<depth>-Wi_<width> is the standard MLP (Linear + GELU, no residuals, no norm)
  --size <px>             input width = height (default ${D.size}); every image goes through the server's preprocessing
  --channels <1|3>        input channels (default ${D.channels})
  --max-examples <n>      train on the first n training images only
  --max-eval-examples <n> test on the first n test images only
  --name <name>           model name = directory under --out (default <data>-<arch>)
Validation and test
  --val <n>               validation images held out of the training images, stratified by class (default ${D.val};
                          0 = none): every epoch is scored on them, and choices are made on them
  --val-seed <n>          seed of the hold-out (default ${D.valSeed}; independent of --seed)
  --final-test / --no-final-test
                          read the test split once, after the last epoch (default on); it chooses nothing
  --refit                 train on training + validation images (a recipe and epoch count chosen on validation
                          before); nothing is held out and the card says so
Recipe (paper defaults unless noted)
  --epochs <n>            epochs
  --batch-size <n>        (default ${D.batchSize})
  --lr <x>                peak learning rate, LION (default ${D.lr}; docs/training.md)
  --wd <x>                decoupled weight decay (default ${D.weightDecay}; docs/training.md)
  --beta1 <x> --beta2 <x> LION betas (default ${D.beta1}, ${D.beta2})
  --label-smoothing <x>   (default ${D.labelSmoothing})
  --mixup <alpha>         MixUp α, 0 = off (default ${D.mixup})
  --crop-scale <lo,hi>    random-resized crop area range, or "none" (default ${D.augment.cropScale!.join(',')})
  --crop-ratio <lo,hi>    crop aspect-ratio range (default 0.75,1.3333)
  --flip / --no-flip      random horizontal flip (default on)
  --translate <px>        pad-and-crop shift of up to px pixels (default ${D.augment.translate} = off)
  --schedule <kind>       cosine | constant (default ${D.schedule})
  --warmup <epochs>       linear warm-up length (default ${D.warmupEpochs})
  --seed <n>              (default ${D.seed})
Run
  --engine <name>         ${ENGINE_CHOICES.join(' | ')} (default ${D.engine}: ort when available, else tfjs)
  --out <dir>             models directory: writes <dir>/<name>/{model.onnx,model.json,train.jsonl,training.svg}
  --eval-every <epochs>   score the validation images and checkpoint every n epochs (default ${D.evalEvery})
  --checkpoint-dir <dir>  (default <out>/.checkpoints)
  --keep-checkpoints <n>  newest checkpoints kept (default ${D.keepCheckpoints})
  --resume [path]         continue from a checkpoint file, a directory's newest, or the checkpoint dir's newest
  --init-from <ckpt.json> start from a checkpoint's weights and momentum under this run's (new) schedule; the
                          card records it (continuedFrom); same data, validation split and architecture required
  --cache-dir <dir>       preprocessed data cache (default ./.cache/datasets)
  --log-every <steps>     train-loss log/plot interval (default ${D.logEvery})
`;

function pair(name: string, v: string | undefined, fallback: readonly [number, number]): [number, number] {
  if (v === undefined) return [...fallback];
  const parts = v.split(',').map(Number);
  if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p))) throw new UsageError(`--${name} "${v}" is not <lo>,<hi>`);
  return [parts[0], parts[1]];
}

function parseTrainArgs(argv: string[]): TrainOptions & { initFrom?: string } {
  // `--resume` may stand alone: give it the value "true" so parseArgs' string option accepts it.
  const args = argv.flatMap((a, i) => (a === '--resume' && (i === argv.length - 1 || argv[i + 1].startsWith('--')) ? [a, 'true'] : [a]));
  const s = { type: 'string' } as const;
  const { values: v } = parseArgs({
    args,
    strict: true,
    options: {
      data: s, arch: s, epochs: s, out: s, name: s, size: s, channels: s, 'max-examples': s, 'max-eval-examples': s,
      'batch-size': s, lr: s, wd: s, beta1: s, beta2: s, 'label-smoothing': s, mixup: s, 'crop-scale': s, 'crop-ratio': s,
      flip: { type: 'boolean' }, 'no-flip': { type: 'boolean' }, translate: s, schedule: s, warmup: s, seed: s,
      val: s, 'val-seed': s, 'final-test': { type: 'boolean' }, 'no-final-test': { type: 'boolean' }, refit: { type: 'boolean' },
      engine: s, 'eval-every': s, 'checkpoint-dir': s, 'keep-checkpoints': s, resume: s, 'init-from': s, 'cache-dir': s, 'log-every': s,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  for (const k of ['data', 'arch', 'epochs', 'out'] as const) if (v[k] === undefined) throw new UsageError(`--${k} is required`);
  if (v.flip && v['no-flip']) throw new UsageError('--flip and --no-flip contradict each other');
  if (v['final-test'] && v['no-final-test']) throw new UsageError('--final-test and --no-final-test contradict each other');
  if (v.refit && v.val !== undefined && v.val !== '0') throw new UsageError('--refit holds nothing out: drop --val (or pass --val 0)');
  const cropScale = v['crop-scale'] === 'none' ? null : pair('crop-scale', v['crop-scale'], D.augment.cropScale!);
  const channels = num('channels', v.channels, D.channels);
  if (channels !== 1 && channels !== 3) throw new UsageError(`--channels ${channels} must be 1 or 3`);
  const engine = (v.engine ?? D.engine) as EngineChoice;
  if (!ENGINE_CHOICES.includes(engine)) throw new UsageError(`--engine "${engine}" is not one of ${ENGINE_CHOICES.join(', ')}`);
  const schedule = v.schedule ?? D.schedule;
  if (schedule !== 'cosine' && schedule !== 'constant') throw new UsageError(`--schedule "${schedule}" is not cosine or constant`);
  const optional = (name: string, x: string | undefined) => (x === undefined ? undefined : num(name, x, 0));
  return {
    data: v.data!,
    arch: v.arch!,
    expansion: D.expansion,
    epochs: num('epochs', v.epochs, 0),
    out: v.out!,
    name: v.name,
    batchSize: num('batch-size', v['batch-size'], D.batchSize),
    lr: num('lr', v.lr, D.lr),
    weightDecay: num('wd', v.wd, D.weightDecay),
    beta1: num('beta1', v.beta1, D.beta1),
    beta2: num('beta2', v.beta2, D.beta2),
    labelSmoothing: num('label-smoothing', v['label-smoothing'], D.labelSmoothing),
    mixup: num('mixup', v.mixup, D.mixup),
    augment: {
      cropScale,
      cropRatio: pair('crop-ratio', v['crop-ratio'], D.augment.cropRatio),
      flip: !v['no-flip'],
      translate: num('translate', v.translate, D.augment.translate),
    },
    schedule,
    warmupEpochs: num('warmup', v.warmup, D.warmupEpochs),
    seed: num('seed', v.seed, D.seed),
    val: num('val', v.val, D.val, { integer: true, min: 0 }),
    valSeed: num('val-seed', v['val-seed'], D.valSeed, { integer: true, min: 0 }),
    finalTest: !v['no-final-test'],
    refit: v.refit ?? false,
    evalEvery: num('eval-every', v['eval-every'], D.evalEvery),
    maxExamples: optional('max-examples', v['max-examples']),
    maxEvalExamples: optional('max-eval-examples', v['max-eval-examples']),
    checkpointDir: v['checkpoint-dir'],
    keepCheckpoints: num('keep-checkpoints', v['keep-checkpoints'], D.keepCheckpoints),
    resume: v.resume === undefined ? undefined : v.resume === 'true' ? true : v.resume,
    size: num('size', v.size, D.size),
    channels,
    engine,
    cacheDir: v['cache-dir'],
    logEvery: num('log-every', v['log-every'], D.logEvery),
    command: commandLine('npm run train --', argv),
    initFrom: v['init-from'],
  };
}

async function main(): Promise<void> {
  let options: TrainOptions;
  let initFrom: string | undefined;
  try {
    ({ initFrom, ...options } = parseTrainArgs(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const controller = new AbortController();
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this step and writing a checkpoint (Ctrl-C again to quit now)\n');
    controller.abort();
  });
  try {
    if (initFrom) {
      const ck = await loadCheckpoint(initFrom);
      options.init = { weights: ck.weights, momentum: ck.momentum, from: relative(process.cwd(), initFrom) };
    }
    const result = await train(options, { reporter: terminalReporter(), signal: controller.signal });
    if (result.stopped) {
      process.stderr.write(`resume with: ${options.command} --resume ${result.checkpoint}\n`);
      process.exit(130);
    }
  } catch (err) {
    const e = err as Error;
    const expected = e instanceof RangeError || e instanceof DatasetMissingError;
    process.stderr.write(`train: ${expected ? e.message : (e.stack ?? e.message)}\n`);
    process.exit(1);
  }
}

await main();
