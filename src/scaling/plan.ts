// The scaling sweep spread over a Kubernetes Indexed Job: a plan file lists every run (recipe + arch × budget, in
// the single-process sweep's order); pod i trains run i alone (JOB_COMPLETION_INDEX) into its own file under
// --out; collect gathers whatever runs are finished, in plan order, for the same fits the single sweep makes.

import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configFor, flopsPerImage } from '../model/mlp.js';
import { UsageError } from '../util/cli.js';
import { RUNS_FILE, readRuns, recipeHash, runId, runSweep, type RunRecord, type SweepOptions, type SweepRecipe } from './sweep.js';

const PLAN_FORMAT = 'mlp-serve-scaling-plan/1';
/** Where the per-run files of a planned sweep live under --out. */
export const PLAN_RUNS_DIR = 'plan-runs';

export interface PlannedRun {
  index: number;
  id: string;
  arch: string;
  examples: number;
  /** Training FLOPs of the budget (the order of the plan, as the single sweep's). */
  compute: number;
}

export interface Plan {
  format: typeof PLAN_FORMAT;
  recipe: SweepRecipe;
  runs: PlannedRun[];
}

/** Every cell of archs × examples, smallest compute first (the order runSweep trains them in). */
export function makePlan(archs: readonly string[], examples: readonly number[], recipe: SweepRecipe, classes: number): Plan {
  const hash = recipeHash(recipe);
  const cells = archs.flatMap((arch) => {
    const cfg = configFor(arch, recipe.expansion, recipe.channels * recipe.size * recipe.size, classes);
    return examples.map((n) => ({ arch, examples: n, compute: 3 * flopsPerImage(cfg) * n }));
  });
  cells.sort((a, b) => a.compute - b.compute);
  return { format: PLAN_FORMAT, recipe, runs: cells.map((c, index) => ({ index, id: runId(c.arch, c.examples, hash), ...c })) };
}

export async function writePlan(file: string, plan: Plan): Promise<void> {
  await writeFile(file, JSON.stringify(plan, null, 2) + '\n');
}

export async function readPlan(file: string): Promise<Plan> {
  let plan: Plan;
  try {
    plan = JSON.parse(await readFile(file, 'utf8')) as Plan;
  } catch (err) {
    throw new UsageError(`--plan ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (write it with --plan FILE and no --run-index)' : `not a plan (${(err as Error).message})`}`);
  }
  if (plan.format !== PLAN_FORMAT || !Array.isArray(plan.runs)) throw new UsageError(`--plan ${file}: not a scaling plan (format ${String(plan.format)})`);
  return plan;
}

function runDir(out: string, index: number): string {
  return join(out, PLAN_RUNS_DIR, `run-${String(index).padStart(4, '0')}`);
}

/** Trains run `index` of the plan alone (resumable: a finished run is not trained again). */
export async function runPlanned(
  plan: Plan,
  index: number,
  out: string,
  o: Omit<SweepOptions, 'archs' | 'examples' | 'recipe' | 'out'> = {},
): Promise<RunRecord | undefined> {
  const run = plan.runs[index];
  if (!Number.isInteger(index) || !run) throw new UsageError(`run index ${index} is out of range 0..${plan.runs.length - 1} of the plan`);
  const rows = await runSweep({ ...o, archs: [run.arch], examples: [run.examples], recipe: plan.recipe, out: runDir(out, index) });
  return rows.find((r) => r.id === run.id);
}

/** The finished runs of the plan (plan order) and the ones still missing. */
export async function collectPlan(plan: Plan, out: string): Promise<{ rows: RunRecord[]; missing: PlannedRun[] }> {
  await mkdir(join(out, PLAN_RUNS_DIR), { recursive: true });
  const found = new Map<string, RunRecord>();
  for (const d of await readdir(join(out, PLAN_RUNS_DIR)))
    for (const r of await readRuns(join(out, PLAN_RUNS_DIR, d, RUNS_FILE))) found.set(r.id, r);
  const rows: RunRecord[] = [];
  const missing: PlannedRun[] = [];
  for (const run of plan.runs) {
    const r = found.get(run.id);
    if (r) rows.push(r);
    else missing.push(run);
  }
  return { rows, missing };
}
