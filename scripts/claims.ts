// `npm run claims -- [--quick] [--seeds 3] --out docs/claims`: the paper's architecture, augmentation and batch-size
// claims at small scale (src/claims), resumable (<out>/runs.jsonl), then <out>/report.md and one SVG per claim.
// Parses flags and calls src/claims. Ctrl-C stops after the current training step; the same command resumes.

import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { runClaims, type ClaimRun } from '../src/claims/run.js';
import { writeClaimsReport } from '../src/claims/report.js';
import { DEFAULT_SCALE, QUICK_SCALE } from '../src/claims/studies.js';
import { RUNS_FILE, readRuns } from '../src/scaling/sweep.js';
import { ENGINE_CHOICES } from '../src/train/engines/index.js';
import { formatDuration } from '../src/train/progress.js';
import { choice, commandLine, num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = `Usage: npm run claims -- --out <dir> [--quick] [--seeds n] [options]

  --out <dir>          runs.jsonl (resumable), report.md, architecture.svg, augmentation.svg, batch-size.svg
  --quick              a few minutes: 12×12 input, ${QUICK_SCALE.trainImages} training images, tiny models (CI, the report's shape)
  --seeds <n>          seeds per reported cell (default ${DEFAULT_SCALE.seeds}, at least 3)
  --engine <name>      ${ENGINE_CHOICES.join(' | ')} (default auto)
  --cache-dir <dir>    preprocessed data cache (default $MLP_CACHE_DIR or ./.cache/datasets)
  --report-only        write the report from the runs already in <out>/runs.jsonl, train nothing
`;

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' });
  } catch {
    return 'uptime unavailable';
  }
}

async function main(argv: string[]): Promise<void> {
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  const v = parseFlags(argv, { out: s, quick: b, seeds: s, engine: s, 'cache-dir': s, 'report-only': b });
  const out = resolve(required(v, 'out').out);
  const base = v.quick ? QUICK_SCALE : DEFAULT_SCALE;
  const scale = { ...base, seeds: num('seeds', v.seeds, base.seeds, { integer: true, min: 3 }) };
  const engine = choice('engine', v.engine, 'auto', ENGINE_CHOICES);
  const command = commandLine('npm run claims --', argv.filter((a) => a !== '--report-only'));

  let rows: ClaimRun[];
  if (v['report-only']) rows = await readRuns<ClaimRun>(join(out, RUNS_FILE));
  else {
    process.stdout.write(`claims (${scale.name} scale): runs in ${join(out, RUNS_FILE)}\n`);
    const stop = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('\nstopping after the current step (the finished runs are kept; run again to resume)\n');
      stop.abort();
    });
    const started = performance.now();
    rows = await runClaims({
      scale,
      out,
      engine,
      cacheDir: v['cache-dir'],
      signal: stop.signal,
      onRun: (e) => {
        if (!e.record || e.skipped) return;
        const r = e.record;
        process.stdout.write(
          `${e.variant.claim}: ${e.variant.label}, ${e.note}, seed ${e.seed}: val ${(100 * r.valAccuracy).toFixed(2)}% ` +
            `test ${(100 * r.testAccuracy).toFixed(2)}% (${formatDuration(r.wallSeconds)}, load ${r.loadEnd.toFixed(1)}; ` +
            `${formatDuration((performance.now() - started) / 1000)} so far)\n`,
        );
      },
    });
    if (stop.signal.aborted) {
      process.stdout.write(`stopped with ${rows.length} runs in the file; run the same command to resume\n`);
      return;
    }
  }
  const rep = await writeClaimsReport(out, rows, { scale, command, uptime: uptime() });
  for (const verdict of rep.verdicts) process.stdout.write(`${verdict.claim}: ${verdict.kind}: ${verdict.line}\n`);
  process.stdout.write(`wrote ${out}/{report.md,architecture.svg,augmentation.svg,batch-size.svg}\n`);
}

runCli('claims', USAGE, () => main(process.argv.slice(2)));
