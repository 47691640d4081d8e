// `npm run embed -- --model NAME --data SET [--split train|test] --out DIR [--shard i/n]` and
// `npm run embed -- --merge DIR`: batch embeddings of a data set in-process (see src/embed/run.ts). Inside a
// Kubernetes Indexed Job the shard comes from JOB_COMPLETION_INDEX / JOB_COMPLETIONS. Parses flags, calls src/.

import { resolve } from 'node:path';
import { DatasetMissingError } from '../src/data/resolve.js';
import { shardFromEnv } from '../src/embed/shard.js';
import { mergeParts, runEmbed } from '../src/embed/run.js';
import { resolveModelDir } from '../src/probe/probe.js';
import { countBar } from '../src/probe/progress.js';
import { UsageError, choice, num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run embed -- --model <name|dir> --data <set> --out <dir> [options]
       npm run embed -- --merge <dir>

Writes <out>/embeddings.npy (float32 [n, dim]), labels.npy (int32 [n]) and index.json; resumable (rerun the
same command after a stop). With --shard i/n, or JOB_COMPLETION_INDEX and JOB_COMPLETIONS (a Kubernetes Indexed
Job), only shard i's rows, into <out>/part-<i>-of-<n>/; --merge <out> then joins the parts.
  --model <name|dir>   a model under --models-dir (newest version) or a model directory
  --models-dir <dir>   (default $MODELS_DIR or models)
  --data <set>         fashion-mnist | mnist | cifar10:DIR | cifar100:DIR | idx:DIR | folder:DIR
  --split <s>          train | test (default test)
  --out <dir>          output directory
  --shard <i/n>        shard i of n (0-based)
  --batch-size <n>     images per onnxruntime run (default 256; every shard of a run must use the same)
  --threads <n>        onnxruntime threads (default: all cores)
  --merge <dir>        join <dir>/part-*-of-<n>/ into <dir>
`;

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const v = parseFlags(argv, {
    model: s, 'models-dir': s, data: s, split: s, out: s, shard: s, 'batch-size': s, threads: s, merge: s,
  });
  if (v.merge) {
    const index = await mergeParts(resolve(v.merge));
    process.stdout.write(`merged ${index.rows.end} rows × ${index.dim} of ${index.model.name} into ${v.merge}\n`);
    return;
  }
  const { model, data, out } = required(v, 'model', 'data', 'out');
  const modelsDir = v['models-dir'] ?? process.env.MODELS_DIR ?? 'models';
  const modelDir = [resolve(modelsDir, model), resolve(model)].map(resolveModelDir).find((d) => d !== undefined);
  if (!modelDir) throw new UsageError(`--model ${model}: no model (model.onnx + model.json) under ${modelsDir} or at that path`);
  const shard = shardFromEnv(v.shard, process.env);
  const bar = countBar(`embed${shard ? ` shard ${shard.index}/${shard.count}` : ''}`);
  let r;
  try {
    r = await runEmbed({
      modelDir,
      data,
      split: choice('split', v.split, 'test', ['train', 'test'] as const),
      out: resolve(out),
      shard,
      batchSize: num('batch-size', v['batch-size'], 256, { integer: true, min: 1 }),
      ...(v.threads ? { threads: num('threads', v.threads, 0, { integer: true, min: 1 }) } : {}),
      onProgress: (d, t) => bar.update(d, t),
    });
  } catch (err) {
    if (err instanceof DatasetMissingError) throw new UsageError(err.message);
    throw err;
  } finally {
    bar.done();
  }
  const rows = r.index.rows.end - r.index.rows.start;
  process.stdout.write(
    r.computed === 0 && r.resumed === 0
      ? `${r.dir} is already complete (${rows} rows)\n`
      : `${r.dir}: rows ${r.index.rows.start}..${r.index.rows.end} × ${r.index.dim} (${r.resumed} resumed); ` +
          `${(r.computed / r.seconds).toFixed(0)} images/s, ${((1000 * r.cpuSeconds) / Math.max(1, r.computed)).toFixed(2)} ms CPU per image\n`,
  );
}

runCli('embed', USAGE, () => main(process.argv.slice(2)));
