// `npm run finetune -- --from models/NAME --data DATASET --out DIR`: replace the head for the new label set, train
// with body lr × 0.1 and label smoothing, export a servable model to DIR/<name>/. `--compare-scratch` also trains
// the same recipe from random init at the same budget and prints both accuracies. Parses flags, calls src/finetune.

import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_FINETUNE as D, finetune, type FinetuneOptions } from '../src/finetune/finetune.js';
import { ENGINE_CHOICES } from '../src/train/engines/index.js';
import { formatDuration, terminalReporter } from '../src/train/progress.js';
import type { TrainResult } from '../src/train/train.js';
import { choice, commandLine, num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run finetune -- --from <model dir> --data <set> --out <models dir> [options]

  --from <dir>            pretrained model directory (model.onnx + model.json), e.g. models/fashion-mlp
  --data <set>            new task: mnist | fashion-mnist | cifar10:DIR | cifar100:DIR | idx:DIR | folder:DIR | DIR
  --out <dir>             writes <dir>/<name>/{model.onnx,model.json,train.jsonl,training.svg}: serve with MODELS_DIR=<dir>
  --name <name>           default <source model>-<data set>
  --epochs <n>            (default ${D.epochs})
  --lr <x>                LION lr of the new head (default ${D.lr})
  --body-lr-scale <x>     body lr = lr × this (default ${D.bodyLrScale}, the paper's)
  --label-smoothing <x>   (default ${D.labelSmoothing}, the paper's)
  --batch-size <n>        (default ${D.batchSize})
  --wd <x>                weight decay (default ${D.weightDecay})
  --mixup <alpha>         (default ${D.mixup} = off)
  --flip                  random horizontal flips (off by default: digits are not mirror-symmetric)
  --translate <px>        random shifts of up to px pixels (default 0)
  --max-examples <n>      train on the first n images of the new training split
  --max-eval-examples <n> evaluate on the first n test images
  --seed <n>              head init, data order (default ${D.seed})
  --engine <name>         ${ENGINE_CHOICES.join(' | ')} (default ${D.engine})
  --compare-scratch       also train the same recipe from random init (same budget) and compare
  --json <file>           write the result(s) as JSON
`;

function summary(r: TrainResult) {
  return {
    model: r.modelDir,
    provenance: r.card?.provenance.kind,
    testTop1: r.test?.accuracy,
    testLoss: r.test?.loss,
    examplesSeen: r.examplesSeen,
    wallSeconds: Math.round(r.wallSeconds),
  };
}

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, {
    from: s, data: s, out: s, name: s, epochs: s, lr: s, 'body-lr-scale': s, 'label-smoothing': s, 'batch-size': s,
    wd: s, mixup: s, flip: { type: 'boolean' }, translate: s, 'max-examples': s, 'max-eval-examples': s, seed: s,
    engine: s, 'compare-scratch': { type: 'boolean' }, json: s,
  });
  const { from, data, out } = required(v, 'from', 'data', 'out');
  const engine = choice('engine', v.engine, D.engine, ENGINE_CHOICES);
  const command = commandLine('npm run finetune --', argv);
  const o: FinetuneOptions = {
    ...D,
    from: resolve(from),
    data,
    out: resolve(out),
    name: v.name,
    epochs: num('epochs', v.epochs, D.epochs, { integer: true }),
    lr: num('lr', v.lr, D.lr),
    bodyLrScale: num('body-lr-scale', v['body-lr-scale'], D.bodyLrScale),
    labelSmoothing: num('label-smoothing', v['label-smoothing'], D.labelSmoothing),
    batchSize: num('batch-size', v['batch-size'], D.batchSize, { integer: true }),
    weightDecay: num('wd', v.wd, D.weightDecay),
    mixup: num('mixup', v.mixup, D.mixup),
    augment: { ...D.augment, flip: v.flip === true, translate: num('translate', v.translate, 0, { integer: true }) },
    seed: num('seed', v.seed, D.seed, { integer: true }),
    maxExamples: v['max-examples'] ? num('max-examples', v['max-examples'], 0, { integer: true }) : undefined,
    maxEvalExamples: v['max-eval-examples'] ? num('max-eval-examples', v['max-eval-examples'], 0, { integer: true }) : undefined,
    engine,
    command,
  };
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const reporter = terminalReporter();
  const tuned = await finetune(o, { reporter, signal: stop.signal });
  if (tuned.stopped) return;
  const results: Record<string, ReturnType<typeof summary>> = { finetuned: summary(tuned) };
  if (v['compare-scratch']) {
    const scratch = await finetune({ ...o, scratch: true }, { reporter, signal: stop.signal });
    if (scratch.stopped) return;
    results.scratch = summary(scratch);
    const pct = (x?: number) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
    process.stdout.write(
      `\n| init | test top-1 | examples seen | time |\n| --- | ---: | ---: | ---: |\n` +
        `| fine-tuned from ${v.from} | ${pct(results.finetuned.testTop1)} | ${tuned.examplesSeen} | ${formatDuration(tuned.wallSeconds)} |\n` +
        `| from scratch | ${pct(results.scratch.testTop1)} | ${scratch.examplesSeen} | ${formatDuration(scratch.wallSeconds)} |\n`,
    );
  }
  if (v.json) await writeFile(v.json, JSON.stringify({ command, options: { ...o }, results }, null, 2) + '\n');
  process.stdout.write(`serve it with MODELS_DIR=${o.out} npm start (model ${join(o.out, tuned.card!.name)})\n`);
}

runCli('finetune', USAGE, () => main(process.argv.slice(2)));
