// `npm run scaling -- --archs B_1-Wi_64,B_2-Wi_128,... --examples 6000,15000,60000 --out DIR`: the scaling sweep
// (resumable, DIR/runs.jsonl), then the fits and plots (DIR/report.md, report.json, *.svg). Parses flags and calls
// src/scaling. Ctrl-C stops after the current training step; running the same command again resumes.
// Spread over a Kubernetes Indexed Job: `--plan FILE` writes the runs, `--plan FILE --run-index i` (or
// JOB_COMPLETION_INDEX) trains run i, `--plan FILE --collect` fits whatever runs are finished.

import { join, resolve } from 'node:path';
import { parseArch } from '../src/model/mlp.js';
import { countBar } from '../src/probe/progress.js';
import { reportMarkdown } from '../src/scaling/analyze.js';
import { openDataSource } from '../src/data/resolve.js';
import { collectPlan, makePlan, readPlan, runPlanned, writePlan } from '../src/scaling/plan.js';
import { REPORT_FILES, describeRecipe, writeReport } from '../src/scaling/report.js';
import {
  DEFAULT_ARCHS,
  DEFAULT_EXAMPLES,
  DEFAULT_RECIPE as R,
  RUNS_FILE,
  readRuns,
  recipeHash,
  runSweep,
  type RunRecord,
  type SweepRecipe,
} from '../src/scaling/sweep.js';
import { ENGINE_CHOICES } from '../src/train/engines/index.js';
import { formatDuration } from '../src/train/progress.js';
import { UsageError, choice, commandLine, list, num, parseFlags, parsed, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run scaling -- --out <dir> [--archs a,b,...] [--examples n,m,...] [options]

Sweep (defaults: the grid that fits in two hours on a 2-core CPU)
  --archs <list>        B_<depth>-Wi_<width>,... (default ${DEFAULT_ARCHS.join(',')})
  --examples <list>     examples-seen budgets (default ${DEFAULT_EXAMPLES.join(',')}); a budget larger than the
                        training set is whole epochs over it
  --out <dir>           runs.jsonl (resumable), report.md, report.json, error-vs-compute.svg, frontier.svg, axes.svg
Recipe (default: ${R.size}×${R.size}×${R.channels} input, LION, cosine, smoothing ${R.labelSmoothing}, flip, no MixUp)
  --data <set>          (default ${R.data})
  --size <px>           input side (default ${R.size}: Fashion-MNIST's native resolution)
  --channels <1|3>      (default ${R.channels})
  --lr <x>              LION lr at the reference width (default ${R.lr} at width ${R.lrReferenceWidth}; lr ∝ 1/width)
  --fixed-lr            use --lr for every width instead
  --wd <x>              weight decay (default ${R.weightDecay})
  --batch-size <n>      (default ${R.batchSize})
  --label-smoothing <x> (default ${R.labelSmoothing})
  --eval-n <n>          test images evaluated (default: all)
  --seed <n>            (default ${R.seed})
Run
  --engine <name>       ${ENGINE_CHOICES.join(' | ')} (default auto)
  --cache-dir <dir>     preprocessed data cache (default ./.cache/datasets)
  --report-only         fit and plot the rows already in <out>/runs.jsonl, train nothing
Spread over an Indexed Job (k8s/jobs/sweep-job.yaml)
  --plan <file>         alone (with the grid and recipe flags): write the plan of every run to <file>
  --run-index <i>       with --plan and --out: train run i of the plan only (default $JOB_COMPLETION_INDEX)
  --collect             with --plan and --out: fit and plot the finished runs, list the missing ones
`;

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  const v = parseFlags(argv, {
    archs: s, examples: s, out: s, data: s, size: s, channels: s, lr: s, 'fixed-lr': b, wd: s, 'batch-size': s,
    'label-smoothing': s, 'eval-n': s, seed: s, engine: s, 'cache-dir': s, 'report-only': b,
    plan: s, 'run-index': s, collect: b,
  });
  if (v.plan && !v.collect && v['run-index'] === undefined && process.env.JOB_COMPLETION_INDEX === undefined) v.out ??= '.';
  const out = resolve(required(v, 'out').out);
  const archs = list('archs', v.archs, DEFAULT_ARCHS, (a) => {
    parsed('archs', a, parseArch);
    return a;
  });
  const examples = list('examples', v.examples, DEFAULT_EXAMPLES, (e) => num('examples', e, 0, { integer: true }));
  const channels = Number(choice('channels', v.channels, String(R.channels), ['1', '3'])) as 1 | 3;
  const engine = choice('engine', v.engine, 'auto', ENGINE_CHOICES);
  const recipe: SweepRecipe = {
    ...R,
    data: v.data ?? R.data,
    size: num('size', v.size, R.size, { integer: true }),
    channels,
    lr: num('lr', v.lr, R.lr),
    weightDecay: num('wd', v.wd, R.weightDecay),
    batchSize: num('batch-size', v['batch-size'], R.batchSize, { integer: true }),
    labelSmoothing: num('label-smoothing', v['label-smoothing'], R.labelSmoothing),
    seed: num('seed', v.seed, R.seed, { integer: true }),
    ...(v['eval-n'] ? { evalExamples: num('eval-n', v['eval-n'], 0, { integer: true }) } : {}),
  };
  if (v['fixed-lr']) delete recipe.lrReferenceWidth;
  const command = commandLine('npm run scaling --', argv);
  const where = describeRecipe(recipe);

  let rows: RunRecord[];
  if (v.plan) {
    const runIndex = v['run-index'] ?? process.env.JOB_COMPLETION_INDEX;
    if (!v.collect && runIndex === undefined) {
      const classes = (await openDataSource(recipe.data)).train.classes.length;
      const plan = makePlan(archs, examples, recipe, classes);
      await writePlan(v.plan, plan);
      process.stdout.write(`wrote ${v.plan}: ${plan.runs.length} runs (indexes 0..${plan.runs.length - 1}) on ${where}\n`);
      return;
    }
    const plan = await readPlan(v.plan);
    if (!v.collect) {
      const index = num('run-index', runIndex, 0, { integer: true, min: 0 });
      const run = plan.runs[index];
      if (!run) throw new UsageError(`run index ${index} is out of range 0..${plan.runs.length - 1} of ${v.plan}`);
      process.stdout.write(`run ${index} of ${plan.runs.length}: ${run.arch} × ${run.examples} examples\n`);
      const r = await runPlanned(plan, index, out, { engine, cacheDir: v['cache-dir'] });
      if (r) process.stdout.write(`${r.arch} × ${r.examples} examples: test error ${(100 * r.testError).toFixed(2)}% (${formatDuration(r.wallSeconds)})\n`);
      return;
    }
    const collected = await collectPlan(plan, out);
    if (collected.missing.length)
      process.stdout.write(`${collected.missing.length} of ${plan.runs.length} runs missing: indexes ${collected.missing.map((m) => m.index).join(', ')}\n`);
    if (collected.rows.length === 0) throw new UsageError(`no finished runs of ${v.plan} under ${out}`);
    const report = await writeReport(out, collected.rows, plan.recipe, command);
    process.stdout.write('\n' + reportMarkdown(report) + `\nwrote ${out}/{${REPORT_FILES.join(',')}}\n`);
    return;
  }
  if (v['report-only']) {
    const hash = recipeHash(recipe);
    rows = (await readRuns(join(out, RUNS_FILE))).filter((r) => r.recipeHash === hash);
    if (rows.length === 0) throw new UsageError(`${join(out, RUNS_FILE)} has no runs of this recipe`);
  } else {
    process.stdout.write(`scaling sweep: ${archs.length} sizes × ${examples.length} budgets on ${where}; rows in ${join(out, RUNS_FILE)}\n`);
    const stop = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('\nstopping after the current step (the finished runs are kept; run again to resume)\n');
      stop.abort();
    });
    const started = performance.now();
    const bar = countBar('runs');
    rows = await runSweep({
      archs,
      examples,
      recipe,
      out,
      engine,
      cacheDir: v['cache-dir'],
      signal: stop.signal,
      reporter: { progress() {}, line() {}, done() {} },
      onRun: (e) => {
        if (e.skipped) return;
        if (e.record) {
          bar.done();
          const r = e.record;
          process.stdout.write(
            `[${e.index + 1}/${e.total}] ${r.arch} × ${r.examples} examples: val error ${(100 * r.valError).toFixed(2)}% ` +
              `(test ${(100 * r.testError).toFixed(2)}%) ` +
              `(${formatDuration(r.wallSeconds)}, ${r.imagesPerSecond.toFixed(0)} img/s, lr ${r.lr.toExponential(1)}; ` +
              `${formatDuration((performance.now() - started) / 1000)} so far)\n`,
          );
        }
        bar.update(e.index + (e.record ? 1 : 0), e.total);
      },
    });
    bar.done();
    if (stop.signal.aborted) {
      process.stdout.write(`stopped with ${rows.length} runs done; run the same command to resume\n`);
      return;
    }
  }

  const report = await writeReport(out, rows, recipe, command);
  process.stdout.write('\n' + reportMarkdown(report) + `\nwrote ${out}/{${REPORT_FILES.join(',')}}\n`);
}

runCli('scaling', USAGE, () => main(process.argv.slice(2)));
