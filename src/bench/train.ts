// `npm run bench:train`: training throughput of the engines against a fair PyTorch, and the step against its own
// matrix-multiply roofline, per architecture, in one run. Each round times, back to back so they share the machine's
// load: the fused onnxruntime engine at every thread count, the PyTorch step at every knob (and torch.mm on the
// step's products), onnxruntime MatMul alone on the same products, and the other engines. Rounds alternate which side
// goes first; every configuration keeps its best round (roofline.ts).

import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArch, type MlpConfig } from '../model/mlp.js';
import type { EngineName } from '../train/engines/index.js';
import { paramSpecs } from '../train/engines/ort-graph.js';
import { stepGemms, summarizeArch, type ArchRound, type ArchSummary, type Gemm } from './roofline.js';
import {
  profileOrtEngine,
  runTorch,
  timeEngine,
  timeOrtEngine,
  timeOrtGemms,
  type EngineProfile,
  type TimingPlan,
} from './train-measure.js';

export interface BenchTrainOptions {
  archs: readonly string[];
  batch: number;
  /** Timed steps per configuration (after `warmup` untimed ones). */
  steps: number;
  warmup: number;
  rounds: number;
  /** Thread counts of the ort engine and of PyTorch. */
  threads: readonly number[];
  /** Engines besides ort, at their `npm run train` settings (tfjs is slow: it gets ⌈steps/3⌉ steps). */
  others: readonly EngineName[];
  /** Input geometry of the bench's models. */
  inputDim: number;
  classes: number;
  /** When set, a last profiled run of the ort engine (at its best thread count) writes onnxruntime's trace here. */
  profileDir?: string;
  log: (line: string) => void;
}

export interface ArchResult {
  arch: string;
  params: number;
  gemms: Gemm[];
  rounds: ArchRound[];
  summary: ArchSummary;
  torchVersion?: string;
  torchError?: string;
  profile?: EngineProfile;
}

export interface BenchTrainResult {
  date: string;
  options: Omit<BenchTrainOptions, 'log'>;
  archs: ArchResult[];
}

const load1 = () => Math.round(loadavg()[0] * 100) / 100;

async function benchArch(arch: string, o: BenchTrainOptions): Promise<ArchResult> {
  const cfg: MlpConfig = { ...parseArch(arch), expansion: 4, inputDim: o.inputDim, classes: o.classes };
  const specs = paramSpecs(cfg);
  const gemms = stepGemms(specs, o.batch);
  const plan: TimingPlan = { batch: o.batch, steps: o.steps, warmup: o.warmup };
  const rounds: ArchRound[] = [];
  let torchVersion: string | undefined;
  let torchError: string | undefined;
  for (let r = 0; r < o.rounds; r++) {
    const round: ArchRound = { load: [load1()], ort: [], ortGemm: [], others: [] };
    const ortSide = async () => {
      for (const t of o.threads) round.ort.push({ threads: t, ...(await timeOrtEngine(cfg, t, plan)) });
      for (const t of o.threads) round.ortGemm.push({ threads: t, ...(await timeOrtGemms(gemms, t, o.steps)) });
    };
    const torchSide = async () => {
      const res = await runTorch(cfg, plan, gemms, o.threads);
      if ('error' in res) torchError = res.error;
      else {
        torchVersion = res.version;
        round.torch = { runs: res.runs, gemm: res.gemm };
      }
    };
    for (const side of r % 2 === 0 ? [ortSide, torchSide] : [torchSide, ortSide]) await side();
    for (const name of o.others) {
      const few = { ...plan, steps: Math.max(1, Math.ceil(o.steps / 3)), warmup: 1 };
      const t = await timeEngine(name, cfg, few);
      round.others.push({ engine: t.label, stepMs: t.stepMs, cpuMs: t.cpuMs });
    }
    round.load.push(load1());
    rounds.push(round);
    o.log(`  ${arch} round ${r + 1}/${o.rounds}: ${roundLine(round)}`);
  }
  const params = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const summary = summarizeArch(rounds, gemms, o.batch);
  const profile = o.profileDir
    ? await profileOrtEngine(cfg, summary.ortBest.threads, plan, join(o.profileDir, `ort-step-${arch}-t${summary.ortBest.threads}`))
    : undefined;
  return { arch, params, gemms, rounds, summary, torchVersion, torchError, profile };
}

function roundLine(r: ArchRound): string {
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const parts = [
    ...r.ort.map((e) => `ort@${e.threads} ${ms(e.stepMs)}`),
    ...r.ortGemm.map((e) => `MatMul@${e.threads} ${ms(e.ms)}`),
    ...(r.torch?.runs ?? []).map((e) => `torch@${e.threads}/${e.lion} ${ms(e.stepMs)}`),
    ...r.others.map((e) => `${e.engine} ${ms(e.stepMs)}`),
  ];
  return `${parts.join(', ')} (load ${r.load.join('→')})`;
}

export async function benchTrain(o: BenchTrainOptions): Promise<BenchTrainResult> {
  const { log, ...options } = o;
  const archs: ArchResult[] = [];
  for (const arch of o.archs) archs.push(await benchArch(arch, o));
  return { date: new Date().toISOString(), options, archs };
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');

function profileLines(p: EngineProfile): string[] {
  const o = p.ort;
  const kernels = o.byOp.reduce((a, e) => a + e.ms, 0);
  const top = o.byOp.filter((e) => e.op !== 'Gemm' && e.op !== 'MatMul').slice(0, 6);
  const pct = (ms: number) => `${((100 * ms) / p.stepMs).toFixed(1)}%`;
  return [
    `  profile @${p.threads} (onnxruntime's profiler, ${o.runs} steps; shares of the ${p.stepMs.toFixed(1)} ms step):`,
    `    matrix products ${o.gemmMs.toFixed(1)} ms (${pct(o.gemmMs)}); other kernels ${(kernels - o.gemmMs).toFixed(1)} ms (${pct(kernels - o.gemmMs)}): ` +
      top.map((e) => `${e.op} ${e.ms.toFixed(1)}`).join(', '),
    `    between kernels inside the run ${(o.runMs - kernels).toFixed(1)} ms (${pct(o.runMs - kernels)}); binding (run as seen from node − model_run) ` +
      `${(p.runMs - o.runMs).toFixed(1)} ms (${pct(p.runMs - o.runMs)}); LION ${p.updateMs.toFixed(1)} ms (${pct(p.updateMs)}); ` +
      `rest of the step ${(p.stepMs - p.runMs - p.updateMs).toFixed(1)} ms`,
    `    trace: ${p.file}`,
  ];
}

/** The report: one block per architecture. */
export function formatReport(res: BenchTrainResult): string {
  const o = res.options;
  const lines = [
    `training step, batch ${o.batch}, ${o.inputDim} inputs → ${o.classes} classes; ${o.steps} timed steps after ` +
      `${o.warmup} warm-up, best of ${o.rounds} rounds per configuration`,
  ];
  for (const a of res.archs) {
    const s = a.summary;
    lines.push('', `${a.arch} (${(a.params / 1e6).toFixed(1)}M parameters, ${s.gemmGflop.toFixed(2)} GFLOP of matrix products per step; load average ${s.load.min}–${s.load.max})`);
    for (const e of s.ort) {
      const split = e.runMs !== undefined ? ` (onnxruntime run ${e.runMs.toFixed(1)} ms + LION ${e.updateMs!.toFixed(1)} ms)` : '';
      lines.push(`  ort     @${e.threads}             ${int(e.imagesPerSecond).padStart(6)} img/s  ${e.stepMs.toFixed(1)} ms/step${split}`);
    }
    for (const e of s.torch)
      lines.push(`  pytorch @${e.threads} lion=${e.lion.padEnd(7)} ${int(e.imagesPerSecond).padStart(6)} img/s  ${e.stepMs.toFixed(1)} ms/step`);
    if (a.torchError) lines.push(`  pytorch: ${a.torchError}`);
    for (const e of s.others)
      lines.push(`  ${e.engine.padEnd(7)} (train settings)  ${int(e.imagesPerSecond).padStart(6)} img/s${e.ratio ? `  ${e.ratio.toFixed(2)}× PyTorch` : ''}`);
    if (s.ratio && s.torchBest)
      lines.push(`  ratio ort/PyTorch (best/best): ${s.ratio.toFixed(2)}×  (ort@${s.ortBest.threads} vs PyTorch@${s.torchBest.threads} lion=${s.torchBest.lion}, torch ${a.torchVersion})`);
    const r = s.roofline;
    lines.push(
      `  roofline @${r.threads}: MatMul alone ${r.gemmMs.toFixed(1)} ms (${r.gemmGflops.toFixed(1)} GFLOP/s) ÷ ort step ` +
        `${r.stepMs.toFixed(1)} ms (${r.stepGflops.toFixed(1)} GFLOP/s) = fraction ${r.fraction.toFixed(3)}`,
    );
    if (s.torchGemm)
      lines.push(`  torch.mm alone on the same products @${s.torchGemm.threads}: ${s.torchGemm.ms.toFixed(1)} ms (${s.torchGemm.gflops.toFixed(1)} GFLOP/s)`);
    const c = s.cpu;
    lines.push(
      `  in CPU time @${c.threads} (one core's work, unaffected by waiting for a core): ort step ${c.ortMs.toFixed(1)} ms` +
        (c.torchMs ? `, PyTorch (lion=${c.torchLion}) ${c.torchMs.toFixed(1)} ms: ratio ${c.ratio!.toFixed(2)}×` : '') +
        `; MatMul alone ${c.gemmMs.toFixed(1)} ms (${c.ortGemmGflops.toFixed(1)} GFLOP/s): fraction ${c.fraction.toFixed(3)}` +
        (c.torchGemmMs ? `; torch.mm alone ${c.torchGemmMs.toFixed(1)} ms (${c.torchGemmGflops!.toFixed(1)} GFLOP/s)` : ''),
    );
    if (a.profile) lines.push(...profileLines(a.profile));
  }
  return lines.join('\n');
}
