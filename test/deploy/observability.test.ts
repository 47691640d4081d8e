// The dashboard, the alert rules and the autoscaler's metric, proven against a real Prometheus scraping the real
// service under real traffic. The service starts the way the image starts it (the Dockerfile's CMD, the compiled
// server, from the image's /app laid out with production dependencies only) with the cpu overlay's ConfigMap as its
// environment; Prometheus (Debian's) scrapes it as the ServiceMonitor would,
// loads deploy/prometheus/mlp-serve.rules.yml, and every Grafana panel query, variable query, recording rule, alert
// and prometheus-adapter query then runs through its HTTP API.
//
// The same process is scraped as two pods: one labelled accelerator=cpu, one accelerator=gpu. The second stands for
// a GPU pod that fell back to the CPU provider, so MlpServeGpuRequiredButOnCpu must go pending on real labels.
// QUEUE_MAX is lowered to 16 (from the ConfigMap's 256) so that a 20-file upload is shed with 503 QUEUE_FULL every
// time: load shedding becomes deterministic and the error-ratio and rejection alerts must go pending too.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CONFIG_ENV_VARS } from '../../src/config.js';
import { writeRandomModel } from '../../src/export/random.js';
import { type AppDir, prepareAppDir } from './lib/app-dir.js';
import { renderKustomization, type K8sObject } from './lib/kustomize.js';
import { freePort, hasFiniteValue, Prometheus, waitFor, type RuleState } from './lib/prometheus.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES_FILE = join(ROOT, 'deploy/prometheus/mlp-serve.rules.yml');
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/mlp-serve.json'), 'utf8')) as Dashboard;
const rendered = renderKustomization(join(ROOT, 'k8s/overlays/cpu'));
const find = (kind: string, name?: string) => rendered.find((o) => o.kind === kind && (!name || o.metadata.name === name)) as K8sObject & { spec: any; data: any };
const configMap = find('ConfigMap', 'mlp-serve-config');
const deployment = find('Deployment', 'mlp-serve');
const serviceMonitor = find('ServiceMonitor');
const container = deployment.spec.template.spec.containers[0];

const MODEL = 'obs-tiny';
const QUEUE_MAX = 16;
const RATE_INTERVAL = '5s'; // Grafana's $__rate_interval at a 1 s scrape interval is 4 s; one more for safety
const PODS = { cpu: 'mlp-serve-cpu-0', gpu: 'mlp-serve-gpu-0' };

interface Target {
  expr: string;
  refId: string;
  instant?: boolean;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

let dir: string;
let app: AppDir;
let server: ChildProcess;
let serverExit: Promise<number | null>;
let serverLog = '';
let base: string;
let prom: Prometheus;
let trafficStart = 0;
const statuses = new Map<number, number>();

async function request(path: string, body: Buffer | FormData, type?: string): Promise<number> {
  const payload = body instanceof FormData ? body : new Uint8Array(body);
  const res = await fetch(`${base}${path}`, { method: 'POST', body: payload, headers: type ? { 'content-type': type } : {} });
  await res.arrayBuffer();
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  return res.status;
}

function form(images: Buffer[], type: string): FormData {
  const f = new FormData();
  images.forEach((img, i) => f.append(`file${i}`, new Blob([new Uint8Array(img)], { type }), `img${i}`));
  return f;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bounded traffic: 4 clients × 100 requests of every kind, and 100 uploads too big for the queue, over ~5 s. */
async function traffic(): Promise<void> {
  const noise = (w: number, h: number) => sharp(Buffer.from(Array.from({ length: w * h * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width: w, height: h, channels: 3 as const } });
  const png = await noise(40, 30).png().toBuffer();
  const jpeg = await noise(32, 32).jpeg().toBuffer();
  const webp = await noise(24, 24).webp().toBuffer();
  const kinds: (() => Promise<number>)[] = [
    () => request(`/classify?model=${MODEL}`, png, 'image/png'),
    () => request('/classify?top_k=3', jpeg, 'image/jpeg'),
    () => request(`/embed?model=${MODEL}`, webp, 'image/webp'),
    () => request('/classify', form([png, jpeg, webp], 'image/png')),
    () => request('/embed', form([jpeg, png], 'image/jpeg')),
    () => request('/classify', Buffer.from('not an image at all'), 'image/png'), // 400 undecodable
    () => request('/classify?model=nope', png, 'image/png'), // 404 unknown model
  ];
  const client = async (c: number) => {
    for (let i = 0; i < 100; i++) {
      await kinds[(i + c) % kinds.length]!();
      await sleep(40);
    }
  };
  const shed = async () => {
    const twenty = form(Array.from({ length: QUEUE_MAX + 4 }, () => jpeg), 'image/jpeg');
    for (let i = 0; i < 100; i++) {
      expect(await request('/classify', twenty)).toBe(503);
      await sleep(45);
    }
  };
  await Promise.all([client(0), client(1), client(2), client(3), shed()]);
}

function substitute(expr: string, vars: Record<string, string[]>): string {
  // Grafana's Prometheus formatting of multi-value variables: regex-escaped values joined with |, in a string literal.
  const fmt = (values: string[]) => {
    const esc = values.map((v) => v.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&').replace(/\\/g, '\\\\'));
    return esc.length === 1 ? esc[0]! : `(${esc.join('|')})`;
  };
  let out = expr.replace(/\$__rate_interval|\$\{__rate_interval\}/g, RATE_INTERVAL);
  for (const [name, values] of Object.entries(vars)) out = out.replace(new RegExp(`\\$\\{${name}\\}|\\$${name}\\b`, 'g'), fmt(values));
  return out;
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mlp-obs-'));
  await writeRandomModel({ arch: 'B_1-Wi_32', out: join(dir, 'models', MODEL), name: MODEL, size: 16, channels: 3, classes: 10 });

  // The image's start: the Dockerfile's CMD in its WORKDIR, with the ConfigMap as environment.
  app = prepareAppDir('Dockerfile');
  const port = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !CONFIG_ENV_VARS.includes(k)));
  // As in the pod: the image's ENV, overridden by the ConfigMap; then what a local run must change.
  const env = {
    ...inherited,
    ...app.env,
    ...configMap.data,
    PORT: String(port),
    GRPC_PORT: String(await freePort()),
    HOST: '127.0.0.1',
    MODELS_DIR: join(dir, 'models'),
    QUEUE_MAX: String(QUEUE_MAX),
  };
  // Its own process group, so that cleanup after a failure ends the server and its workers together.
  server = spawn(app.cmd[0] === 'node' ? process.execPath : app.cmd[0]!, app.cmd.slice(1), { cwd: app.dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const keep = (d: Buffer) => (serverLog = (serverLog + d.toString()).slice(-20_000));
  server.stdout!.on('data', keep);
  server.stderr!.on('data', keep);
  serverExit = new Promise((r) => server.once('exit', (code) => r(code)));
  base = `http://127.0.0.1:${port}`;
  const readyPath = container.readinessProbe.httpGet.path as string;
  const ready = await waitFor(() => fetch(`${base}${readyPath}`).then((r) => r.ok), 40_000, 200);
  if (!ready) throw new Error(`service not ready:\n${serverLog}`);

  const endpoint = serviceMonitor.spec.endpoints[0];
  const common = { namespace: 'mlp-serve', service: 'mlp-serve' };
  prom = await Prometheus.start({
    dir,
    jobName: 'mlp-serve', // the ServiceMonitor's job label: the Service name
    metricsPath: endpoint.path,
    interval: '1s',
    ruleFiles: [RULES_FILE],
    groups: [
      { targets: [`127.0.0.1:${port}`], labels: { ...common, pod: PODS.cpu, accelerator: 'cpu' } },
      { targets: [`127.0.0.1:${port}`], labels: { ...common, pod: PODS.gpu, accelerator: 'gpu' } },
    ],
  });
  expect(await waitFor(async () => (await prom.targets()).filter((t) => t.health === 'up').length === 2, 10_000)).toBe(true);

  trafficStart = Date.now() / 1000;
  await traffic();
  // Let the last increments be scraped and the rules evaluate them.
  await sleep(2500);
}, 240_000);

afterAll(async () => {
  // Normally empty by now (the shutdown test drains the server); after a failure it ends whatever is left of the
  // server. The group is the one spawn() created for it.
  if (server?.pid) {
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // ESRCH: nothing left in the group
    }
  }
  await prom?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await app?.remove();
}, 60_000);

describe('observability against a real Prometheus', () => {
  it('the traffic got every kind of answer: 200, 400, 404 and 503 load shedding', () => {
    expect(statuses.get(200)).toBeGreaterThan(200);
    expect(statuses.get(400)).toBeGreaterThan(0);
    expect(statuses.get(404)).toBeGreaterThan(0);
    expect(statuses.get(503)).toBe(100);
  });

  it('every dashboard variable query and panel query parses and returns data', async () => {
    const vars: Record<string, string[]> = {};
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(substitute(q, vars));
      expect(m, `variable ${v.name}: ${q}`).not.toBeNull();
      vars[v.name] = await prom.labelValues(m![1]!, m![2]!);
      expect(vars[v.name]!.length, `variable ${v.name} has values`).toBeGreaterThan(0);
    }
    expect(vars.model).toEqual([MODEL]);

    const end = Date.now() / 1000;
    const failures: string[] = [];
    let queries = 0;
    for (const panel of allPanels(dashboard.panels)) {
      for (const t of panel.targets ?? []) {
        const expr = substitute(t.expr, vars);
        expect(expr, `${panel.title}: every variable substituted`).not.toMatch(/\$/);
        queries++;
        try {
          const result = t.instant ? await prom.query(expr) : await prom.queryRange(expr, trafficStart - 2, end, 1);
          if (!hasFiniteValue(result)) failures.push(`${panel.title} [${t.refId}] returned no data: ${expr}`);
        } catch (e) {
          failures.push(`${panel.title} [${t.refId}] failed: ${(e as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(queries).toBeGreaterThanOrEqual(20);
    // The check can fail: a misspelt metric returns no data, a syntax error is refused.
    expect(hasFiniteValue(await prom.queryRange(`sum(rate(mlp_http_request_duration_second_count[${RATE_INTERVAL}]))`, trafficStart, end, 1))).toBe(false);
    await expect(prom.query('sum by (le (rate(mlp_batch_size_bucket[5s]))')).rejects.toThrow(/bad_data/);
  });

  it('the provider panel shows the provider the service really runs', async () => {
    const table = allPanels(dashboard.panels).find((p) => p.type === 'table')!;
    const rows = await prom.query(substitute(table.targets![0]!.expr, { model: [MODEL], instance: [base.slice('http://'.length)] }));
    expect(rows.map((r) => r.metric.provider)).toContain('cpu');
    expect(rows.map((r) => r.metric.model)).toContain(MODEL);
  });

  it('every rule loads and evaluates without error, and every recording rule returns data', async () => {
    let rules: RuleState[] = [];
    const allRecorded = await waitFor(async () => {
      rules = await prom.rules();
      for (const r of rules.filter((x) => x.type === 'recording')) if (!hasFiniteValue(await prom.query(r.name))) return false;
      return rules.length > 0;
    }, 15_000);
    const fileRules = (YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: unknown[] }[] }).groups.flatMap((g) => g.rules);
    expect(rules).toHaveLength(fileRules.length);
    for (const r of rules) {
      expect(r.health, `${r.name}: ${r.lastError}`).toBe('ok');
      expect(r.lastEvaluation.startsWith('0001-')).toBe(false);
    }
    const empty = [];
    for (const r of rules.filter((x) => x.type === 'recording')) if (!hasFiniteValue(await prom.query(r.name))) empty.push(r.name);
    expect(empty, JSON.stringify(rules.map((r) => [r.name, r.health, r.lastError]))).toEqual([]);
    expect(allRecorded).toBe(true);
  }, 30_000);

  it('every alert expression runs; the traffic puts the error, rejection and GPU alerts into pending', async () => {
    const expectPending = ['MlpServeHighErrorRatio', 'MlpServeRejectingRequests', 'MlpServeGpuRequiredButOnCpu'];
    let alerts: RuleState[] = [];
    const pending = await waitFor(async () => {
      alerts = (await prom.rules()).filter((r) => r.type === 'alerting');
      return expectPending.every((n) => alerts.find((a) => a.name === n)?.state === 'pending');
    }, 15_000);
    const state = Object.fromEntries(alerts.map((a) => [a.name, a.state]));
    const signals = Object.fromEntries(await Promise.all(['mlp:http_server_errors:ratio_rate5m', 'mlp:rejections:rate5m'].map(async (q) => [q, await prom.query(q)])));
    expect(pending, JSON.stringify({ state, signals })).toBe(true);
    const gpu = alerts.find((a) => a.name === 'MlpServeGpuRequiredButOnCpu')!.alerts!;
    expect(gpu.map((a) => a.labels)).toEqual([expect.objectContaining({ model: MODEL, provider: 'cpu', namespace: 'mlp-serve' })]);
    const rejecting = alerts.find((a) => a.name === 'MlpServeRejectingRequests')!.alerts!;
    expect(rejecting.map((a) => a.labels.model)).toEqual([MODEL]);
    // The service is up and ready: the outage alert stays quiet (it is provoked by the shutdown test below).
    expect(state.MlpServeNoReadyReplicas).toBe('inactive');

    // The alerts that this traffic cannot breach (p99 > 500 ms, queue > 192 images): their signal, the expression
    // without its threshold, returns data from the service's real series.
    for (const a of alerts.filter((x) => !expectPending.includes(x.name) && x.name !== 'MlpServeNoReadyReplicas')) {
      const signal = a.query.replace(/\s*>\s*[\d.]+\s*$/, '');
      expect(signal, a.name).not.toBe(a.query);
      expect(hasFiniteValue(await prom.query(signal)), `${a.name}: ${signal}`).toBe(true);
    }
    for (const a of alerts) await prom.query(a.query); // each one parses and runs on its own
  }, 30_000);

  it('the prometheus-adapter rule finds the series and answers the HPA\'s per-pod query', async () => {
    const adapter = renderKustomization(join(ROOT, 'k8s/prometheus-adapter')).find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
    const [rule] = (YAML.parse(adapter.data['config.yaml']!) as { rules: { seriesQuery: string; metricsQuery: string; name: { as: string } }[] }).rules;
    const series = await prom.series(rule!.seriesQuery);
    expect(new Set(series.map((s) => s.pod))).toEqual(new Set(Object.values(PODS)));
    const query = rule!.metricsQuery
      .replace('<<.Series>>', series[0]!.__name__!)
      .replace('<<.LabelMatchers>>', `namespace="mlp-serve",pod=~"${Object.values(PODS).join('|')}"`)
      .replace('<<.GroupBy>>', 'pod');
    const result = await prom.query(query);
    expect(result.map((r) => r.metric.pod).sort()).toEqual(Object.values(PODS).sort());
    // While Prometheus scrapes, that scrape itself is in flight.
    expect(result.every((r) => Number(r.value![1]) >= 0)).toBe(true);
    const hpa = find('HorizontalPodAutoscaler');
    expect(hpa.spec.metrics.find((m: any) => m.type === 'Pods').pods.metric.name).toBe(rule!.name.as);
  });

  it('every metric the service exposes is in docs/deploy.md, and the dashboard and rules use only exposed ones', async () => {
    const text = await fetch(`${base}/metrics`).then((r) => r.text());
    const families = new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!));
    const doc = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
    for (const f of families) if (f.startsWith('mlp_')) expect(doc, f).toContain(`| \`${f}\` |`);
    const used = new Set<string>();
    const exprs = [
      ...allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      readFileSync(RULES_FILE, 'utf8'),
    ];
    for (const e of exprs) for (const m of e.matchAll(/\b((?:mlp|process|nodejs)_[a-z_]+)\b/g)) used.add(m[1]!.replace(/_(bucket|sum|count)$/, ''));
    for (const u of used) expect(families.has(u), `${u} is exposed by the service`).toBe(true);
    expect(used.size).toBeGreaterThanOrEqual(14);
  });

  it('the probe paths answer 200 and the image\'s HEALTHCHECK command passes', async () => {
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
      expect((await fetch(`${base}${container[probe].httpGet.path}`)).status, probe).toBe(200);
    const hc = app.healthcheck;
    const r = spawnSync(hc[0]!, hc.slice(1), { env: { ...process.env, PORT: base.split(':').at(-1) }, timeout: 10_000 });
    expect(r.status).toBe(0);
  });

  it('SIGTERM to the server (as tini forwards it) drains it, exits 0, and the outage alert goes pending', async () => {
    const inflight = Array.from({ length: 8 }, () =>
      fetch(`${base}/classify`, { method: 'POST', body: new Uint8Array(readFileSync(join(dir, 'models', MODEL, 'model.json'))), headers: { 'content-type': 'image/png' } }).then(
        (r) => r.status,
        // A connection the closing listener never accepted (the compiled server is quick to get there).
        (e: Error & { cause?: { syscall?: string } }) => `not accepted: ${e.cause?.syscall}`,
      ),
    );
    await sleep(20);
    server.kill('SIGTERM'); // the node process only, not its group: tini without -g does the same
    const code = await Promise.race([serverExit, sleep(20_000).then(() => 'timeout')]);
    expect(code, serverLog).toBe(0);
    expect(serverLog).toMatch(/draining/);
    expect(serverLog).toMatch(/drained; exiting/);
    // Accepted requests were answered (400: the body is JSON, not an image; 503 SHUTTING_DOWN once the drain began),
    // none was cut off.
    for (const s of await Promise.all(inflight)) expect([400, 503, 'not accepted: connect']).toContain(s);
    // Nothing is left behind: the port is closed and the HEALTHCHECK now fails.
    expect(await fetch(`${base}/healthz`).then(() => 'open', () => 'closed')).toBe('closed');
    const hc = app.healthcheck;
    expect(spawnSync(hc[0]!, hc.slice(1), { env: { ...process.env, PORT: base.split(':').at(-1) }, timeout: 10_000 }).status).toBe(1);

    let rule: RuleState | undefined;
    const down = await waitFor(async () => {
      rule = (await prom.rules()).find((r) => r.name === 'MlpServeNoReadyReplicas');
      return rule?.state === 'pending';
    }, 15_000);
    expect(down, JSON.stringify({ rule, targets: await prom.targets() })).toBe(true);
  }, 60_000);
});
