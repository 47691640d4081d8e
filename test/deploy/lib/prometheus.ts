// A real Prometheus (Debian's /usr/bin/prometheus) for tests: started on loopback with its data in a temp dir,
// stopped by its pid, and queried through its HTTP API.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';

export interface ScrapeGroup {
  targets: string[];
  labels: Record<string, string>;
}

export interface PrometheusOptions {
  dir: string;
  jobName: string;
  metricsPath: string;
  groups: ScrapeGroup[];
  ruleFiles: string[];
  /** Scrape and rule evaluation interval, e.g. "1s". */
  interval: string;
}

export interface Sample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  query: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
  state?: string;
  alerts?: { labels: Record<string, string>; state: string }[];
}

/** A free TCP port on loopback (the listener is closed before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export class Prometheus {
  private constructor(
    readonly url: string,
    private readonly proc: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(o: PrometheusOptions): Promise<Prometheus> {
    const port = await freePort();
    const config = {
      global: { scrape_interval: o.interval, evaluation_interval: o.interval, scrape_timeout: o.interval },
      rule_files: o.ruleFiles,
      scrape_configs: [{ job_name: o.jobName, metrics_path: o.metricsPath, static_configs: o.groups }],
    };
    const configFile = join(o.dir, 'prometheus.yml');
    writeFileSync(configFile, YAML.stringify(config));
    const proc = spawn(
      '/usr/bin/prometheus',
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(o.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const p = new Prometheus(`http://127.0.0.1:${port}`, proc, () => stderr);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}: ${stderr}`);
      const ok = await fetch(`${p.url}/-/ready`).then((r) => r.ok, () => false);
      if (ok) return p;
      if (Date.now() > deadline) throw new Error(`prometheus not ready in 15 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }

  stderr(): string {
    return this.log();
  }

  private async api<T>(path: string, params: Record<string, string | string[]>): Promise<T> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
    const res = await fetch(`${this.url}/api/v1/${path}`, { method: 'POST', body });
    const json = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (json.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${json.errorType}: ${json.error}`);
    return json.data;
  }

  async query(expr: string): Promise<Sample[]> {
    return (await this.api<{ result: Sample[] }>('query', { query: expr })).result;
  }

  async queryRange(expr: string, startS: number, endS: number, stepS: number): Promise<Sample[]> {
    return (
      await this.api<{ result: Sample[] }>('query_range', {
        query: expr,
        start: String(startS),
        end: String(endS),
        step: String(stepS),
      })
    ).result;
  }

  async series(match: string): Promise<Record<string, string>[]> {
    return this.api('series', { 'match[]': match });
  }

  /** Grafana's label_values(selector, label): the label's values among the series matching the selector. */
  async labelValues(selector: string, label: string): Promise<string[]> {
    return [...new Set((await this.series(selector)).map((s) => s[label]).filter((v): v is string => v !== undefined))].sort();
  }

  /** GET-only endpoints (rules, targets). */
  private async get<T>(path: string): Promise<T> {
    const json = (await fetch(`${this.url}/api/v1/${path}`).then((r) => r.json())) as { status: string; data: T; error?: string };
    if (json.status !== 'success') throw new Error(`${path}: ${json.error}`);
    return json.data;
  }

  async rules(): Promise<RuleState[]> {
    return (await this.get<{ groups: { rules: RuleState[] }[] }>('rules')).groups.flatMap((g) => g.rules);
  }

  async targets(): Promise<{ health: string; labels: Record<string, string>; lastError: string }[]> {
    return (await this.get<{ activeTargets: never[] }>('targets')).activeTargets;
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it became true. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True when any sample of the result holds a finite number. */
export function hasFiniteValue(result: Sample[]): boolean {
  return result.some((s) => [...(s.values ?? []), ...(s.value ? [s.value] : [])].some(([, v]) => Number.isFinite(Number(v))));
}
