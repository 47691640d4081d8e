// `npm run bench:train`: training images/s of the engines against a fair PyTorch and the onnxruntime step against
// its matrix-multiply roofline, in one run (src/bench/train.ts).

import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { parseArch } from '../src/model/mlp.js';
import { benchTrain, formatReport } from '../src/bench/train.js';
import { availableEngines, type EngineName } from '../src/train/engines/index.js';
import { isUsageError, list, num, UsageError } from '../src/util/cli.js';

const USAGE = `Usage: npm run bench:train -- [options]
  --arch A,B          architectures (default B_4-Wi_256,B_6-Wi_512), 64×64×3 inputs, 10 classes
  --batch N           batch size (default 128)
  --steps N           timed steps per configuration (default 10), after --warmup N (default 3)
  --rounds N          rounds; each configuration keeps its best (default 3)
  --threads 1,2       thread counts of the ort engine and of PyTorch (default 1 and all cores, at most 2)
  --engines tfjs      other engines to time at their training settings (default: every other engine; "none")
  --json FILE         write every figure (all rounds, load averages, shapes) as JSON
  --profile DIR       then profile the ort engine at its best thread count (onnxruntime's trace into DIR)
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string' },
      batch: { type: 'string' },
      steps: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      threads: { type: 'string' },
      engines: { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'string' },
    },
    strict: true,
  });
  const archs = list('arch', values.arch, ['B_4-Wi_256', 'B_6-Wi_512'], (s) => {
    try {
      parseArch(s);
    } catch (err) {
      throw new UsageError(`--arch: ${(err as Error).message}`);
    }
    return s;
  });
  const others: EngineName[] = availableEngines().filter((e) => e !== 'ort');
  const engines =
    values.engines === 'none'
      ? []
      : list('engines', values.engines, others, (s) => {
          if (!others.includes(s as EngineName)) throw new UsageError(`--engines: "${s}" is not one of ${others.join(', ')}`);
          return s as EngineName;
        });
  if (values.profile) await mkdir(values.profile, { recursive: true });
  const res = await benchTrain({
    archs,
    batch: num('batch', values.batch, 128, { integer: true, min: 1 }),
    steps: num('steps', values.steps, 10, { integer: true, min: 1 }),
    warmup: num('warmup', values.warmup, 3, { integer: true, min: 0 }),
    rounds: num('rounds', values.rounds, 3, { integer: true, min: 1 }),
    threads: list('threads', values.threads, [...new Set([1, Math.min(2, availableParallelism())])], (s) =>
      num('threads', s, 1, { integer: true, min: 1 }),
    ),
    others: engines,
    inputDim: 3 * 64 * 64,
    classes: 10,
    profileDir: values.profile && resolve(values.profile),
    log: (line) => console.error(line),
  });
  console.log(formatReport(res));
  if (values.json) await writeFile(values.json, `${JSON.stringify(res, null, 1)}\n`);
}

main().catch((err: unknown) => {
  if (isUsageError(err)) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`bench:train failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
