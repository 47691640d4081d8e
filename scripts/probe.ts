// `npm run probe -- --url URL --model NAME --data DATASET [--train-n N --test-n N] [--local [--export DIR/NAME]]`: linear probe on a
// model's embeddings (fetched from a running service, or computed locally), raw pixels, or a random-init twin.
// Parses flags and calls src/probe.

import { writeFile } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { countBar } from '../src/probe/progress.js';
import { probeTable, resolveModelDir, runProbe, type FeatureSource, type ProbeReport } from '../src/probe/probe.js';
import { UsageError, num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run probe -- --data <set> (--url <service> | --local) --model <name|dir> [options]

Features (one of)
  --url <url>            fetch embeddings from a running service's POST /embed (PNG uploads, multipart batches)
  --local                compute embeddings in-process with onnxruntime from the model directory
  --pixels               probe the raw pixels (no model)
  --random-init          a random-init model of the model's architecture and input (needs the model directory)
  --embeddings <tr,te>   two directories written by \`npm run embed\` (train split, test split), merged shards or not
  --compare              the model (served with --url, else local), its random-init twin and raw pixels: a table
Options
  --model <name|dir>     model name (served: ?model=; local: a directory under --models-dir) or a model directory
  --models-dir <dir>     where local models live (default $MODELS_DIR or models)
  --data <set>           fashion-mnist | mnist | cifar10:DIR | cifar100:DIR | idx:DIR | folder:DIR | DIR
  --train-n <n>          first n training images (default 6000)
  --test-n <n>           first n test images (default 10000)
  --batch-size <n>       images per /embed request (default 32)
  --concurrency <n>      requests in flight (default 4)
  --seed <n>             seed of the validation split and of the random-init twin (default 0)
  --json <file>          also write the reports as JSON
  --export <dir/name>    with --local: also write the probe as a servable model (the body, the head as logits) in
                         dir/name, flat layout; name is the served name. MODELS_DIR=dir serves it
`;

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  const v = parseFlags(argv, {
    url: s, model: s, 'models-dir': s, data: s, 'train-n': s, 'test-n': s, local: b, pixels: b, 'random-init': b,
    compare: b, embeddings: s, 'batch-size': s, concurrency: s, seed: s, json: s, export: s,
  });
  const { data } = required(v, 'data');
  const seed = num('seed', v.seed, 0, { integer: true, min: 0 });
  const modelsDir = v['models-dir'] ?? process.env.MODELS_DIR ?? 'models';
  const modelDir = (): string => {
    if (!v.model) throw new UsageError('--model is required for local, random-init and compare runs');
    const candidates = isAbsolute(v.model) || v.model.includes('/') ? [resolve(v.model)] : [resolve(modelsDir, v.model), resolve(v.model)];

    for (const c of candidates) {
      const dir = resolveModelDir(c);
      if (dir) return dir;
    }
    throw new UsageError(`no model (model.onnx + model.json, or versions of it) at ${candidates.join(' or ')}`);
  };
  const served = (): FeatureSource => ({
    kind: 'served',
    url: v.url!,
    model: v.model,
    batchSize: num('batch-size', v['batch-size'], 32, { integer: true, min: 1 }),
    concurrency: num('concurrency', v.concurrency, 4, { integer: true, min: 1 }),
  });

  const modes = [v.url && !v.compare, v.local && !v.compare, v.pixels, v['random-init'], v.compare, v.embeddings].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('choose one of --url, --local, --pixels, --random-init, --compare, --embeddings');
  let sources: FeatureSource[];
  if (v.embeddings) {
    const dirs = v.embeddings.split(',');
    if (dirs.length !== 2) throw new UsageError(`--embeddings takes TRAIN_DIR,TEST_DIR, got "${v.embeddings}"`);
    sources = [{ kind: 'files', trainDir: resolve(dirs[0]), testDir: resolve(dirs[1]) }];
  } else if (v.compare) {
    const dir = modelDir();
    sources = [v.url ? served() : { kind: 'local', modelDir: dir }, { kind: 'random-init', modelDir: dir, seed }, { kind: 'pixels' }];
  } else if (v.url) sources = [served()];
  else if (v.local) sources = [{ kind: 'local', modelDir: modelDir() }];
  else if (v.pixels) sources = [{ kind: 'pixels' }];
  else sources = [{ kind: 'random-init', modelDir: modelDir(), seed }];

  if (v.export && !(v.local && !v.compare)) throw new UsageError('--export needs --local (the body comes from the model directory)');
  const exportTo = v.export ? { dir: resolve(v.export), name: basename(resolve(v.export)), command: `npm run probe -- ${argv.join(' ')}` } : undefined;
  const reports: ProbeReport[] = [];
  for (const source of sources) {
    const name = source.kind === 'served' ? 'served' : source.kind;
    const r = await runProbe({
      data,
      trainN: num('train-n', v['train-n'], 6000, { integer: true, min: 1 }),
      testN: num('test-n', v['test-n'], 10_000, { integer: true, min: 1 }),
      source,
      probe: { seed },
      ...(exportTo ? { exportTo } : {}),
      progress: (split) => {
        const bar = countBar(`${name} ${split} features`);
        return { update: (d, t) => bar.update(d, t), done: () => bar.done() };
      },
    });
    reports.push(r);
    process.stdout.write(
      `${r.features} on ${r.data}: test top-1 ${(100 * r.testAccuracy).toFixed(2)}% (λ ${r.lambda.toExponential(1)}, ` +
        `val ${(100 * r.valAccuracy).toFixed(2)}%, dim ${r.dim}; features ${r.featureSeconds.toFixed(1)} s, fit ${r.fitSeconds.toFixed(1)} s` +
        `${r.retries ? `, ${r.retries} retries` : ''})\n`,
    );
  }
  if (exportTo) process.stdout.write(`probe written as model "${exportTo.name}" to ${exportTo.dir}\n`);
  if (reports.length > 1) process.stdout.write('\n' + probeTable(reports) + '\n');
  if (v.json) await writeFile(v.json, JSON.stringify({ command: `npm run probe -- ${argv.join(' ')}`, reports }, null, 2) + '\n');
}

runCli('probe', USAGE, () => main(process.argv.slice(2)));
