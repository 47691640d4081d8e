// The monitoring manifests: the PrometheusRule and dashboard copies in sync with deploy/, the rules aimed at the
// Service's job, thresholds in step with the ConfigMap, absolute runbook links, the prometheus-adapter rule, and the
// Grafana dashboard's layout and coverage.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig } from '../../src/config.js';
import {
  DASHBOARD_FILE,
  DASHBOARD_MANIFEST,
  PROMETHEUS_RULE_MANIFEST,
  RULES_FILE,
  RUNBOOK_URL_ANNOTATION,
  RUNBOOK_URL_PLACEHOLDER,
  renderDashboardConfigMap,
  renderPrometheusRule,
} from '../../scripts/deploy-sync.js';
import { renderKustomization } from './lib/kustomize.js';
import { adapterRules, K8S, one, OVERLAYS, PRODUCTION_OVERLAYS, rendered, ROOT } from './lib/overlays.js';

describe('monitoring manifests', () => {
  const rules = YAML.parse(readFileSync(join(ROOT, RULES_FILE), 'utf8')) as { groups: { rules: Record<string, any>[] }[] };
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert);

  it('the PrometheusRule and the dashboard ConfigMap are up to date with their sources (npm run deploy:sync)', () => {
    expect(readFileSync(join(ROOT, PROMETHEUS_RULE_MANIFEST), 'utf8')).toBe(renderPrometheusRule(readFileSync(join(ROOT, RULES_FILE), 'utf8')));
    expect(readFileSync(join(ROOT, DASHBOARD_MANIFEST), 'utf8')).toBe(renderDashboardConfigMap(readFileSync(join(ROOT, DASHBOARD_FILE), 'utf8')));
    const cm = one(rendered.cpu, 'ConfigMap', 'mlp-serve-grafana-dashboard');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['mlp-serve.json'])).toEqual(JSON.parse(readFileSync(join(ROOT, DASHBOARD_FILE), 'utf8')));
  });

  it('the rules select the job the ServiceMonitor creates (the Service name)', () => {
    const service = one(rendered.cpu, 'Service');
    const jobs = new Set([...readFileSync(join(ROOT, RULES_FILE), 'utf8').matchAll(/job="([^"]+)"/g)].map((m) => m[1]));
    expect([...jobs]).toEqual([service.metadata.name]);
    const deployments = new Set([...readFileSync(join(ROOT, RULES_FILE), 'utf8').matchAll(/deployment="([^"]+)"/g)].map((m) => m[1]));
    expect([...deployments]).toEqual([one(rendered.cpu, 'Deployment').metadata.name]);
  });

  it('the queue-saturation threshold is 75% of QUEUE_MAX in every overlay', () => {
    const rule = alerts.find((a) => a.alert === 'MlpServeQueueSaturated')!;
    const threshold = Number(/>\s*([\d.]+)\s*$/.exec(rule.expr)![1]);
    for (const o of OVERLAYS) {
      const cfg = loadConfig(one(rendered[o], 'ConfigMap', 'mlp-serve-config').data);
      expect(threshold, o).toBe(0.75 * cfg.queueMax);
    }
  });

  it('every alert has a severity, a summary, a runbook and a runbook_url whose anchor exists in docs/deploy.md', () => {
    const doc = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
    const anchors = new Set([...doc.matchAll(/^#+\s+(.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    expect(alerts.length).toBeGreaterThanOrEqual(6);
    for (const a of alerts) {
      expect(['warning', 'critical'], a.alert).toContain(a.labels.severity);
      expect(a.annotations.summary, a.alert).toBeTruthy();
      expect(a.annotations.runbook, a.alert).toBeTruthy();
      const [file, anchor] = (a.annotations.runbook_url as string).split('#');
      expect(file).toBe('docs/deploy.md');
      expect(anchors.has(anchor!), `${a.alert}: #${anchor} in docs/deploy.md`).toBe(true);
    }
  });

  it('in the cluster every runbook_url is absolute: the overlay\'s published docs URL + the anchor', () => {
    for (const o of PRODUCTION_OVERLAYS) {
      const rule = one(rendered[o], 'PrometheusRule');
      const base = rule.metadata.annotations?.[RUNBOOK_URL_ANNOTATION] as string;
      expect(base, o).toMatch(/^https:\/\/[^#]+$/);
      const urls = (rule.spec.groups as { rules: { alert?: string; annotations?: { runbook_url?: string } }[] }[])
        .flatMap((g) => g.rules)
        .filter((r) => r.alert)
        .map((r) => r.annotations!.runbook_url!);
      expect(urls, o).toEqual(alerts.map((a) => `${base}#${(a.annotations.runbook_url as string).split('#')[1]}`));
    }
    // The replacement follows the annotation: another docs URL in the overlay gives other links.
    const dir = mkdtempSync(join(tmpdir(), 'mlp-runbook-'));
    try {
      const other = 'https://wiki.example.org/ops/mlp-serve.md';
      writeFileSync(join(dir, 'kustomization.yaml'), readFileSync(join(K8S, 'overlays/cpu/kustomization.yaml'), 'utf8')
        .replaceAll('../../', `${relative(dir, K8S)}/`).replace(`value: ${RUNBOOK_URL_PLACEHOLDER}`, `value: ${other}`)
        .replace('- namespace.yaml', `- ${relative(dir, join(K8S, 'overlays/cpu/namespace.yaml'))}`));
      const rule = one(renderKustomization(dir), 'PrometheusRule');
      expect(rule.spec.groups[1].rules[0].annotations.runbook_url).toBe(`${other}#mlpservehighlatencyp99`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the adapter rule maps namespace and pod to resources and aggregates by pod', () => {
    const [rule] = adapterRules();
    expect(rule!.resources.overrides).toEqual({ namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    expect(rule!.seriesQuery).toMatch(/namespace!="",pod!=""/);
    expect(rule!.metricsQuery).toContain('<<.GroupBy>>');
    expect(new RegExp(rule!.name.matches).test(/^([a-z_:]+)/.exec(rule!.seriesQuery)![1]!)).toBe(true);
  });
});


describe('Grafana dashboard', () => {
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    datasource?: { type: string; uid: string };
    targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
  }
  const dash = JSON.parse(readFileSync(join(ROOT, DASHBOARD_FILE), 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: { name: string; type: string }[] };
  };

  it('lays out every panel on the 24-column grid without overlaps, with unique ids', () => {
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
    }
  });

  it('queries the selected data source with unique refIds, and offers model and instance variables', () => {
    expect(dash.templating.list.map((v) => v.name)).toEqual(['datasource', 'model', 'instance']);
    const panels = dash.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      const refs = p.targets!.map((t) => t.refId);
      expect(new Set(refs).size, p.title).toBe(refs.length);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, p.title).toBe('${datasource}');
        expect(t.expr, p.title).toMatch(/instance=~"\$instance"/);
      }
    }
  });

  it('covers what an operator asks first: rate, errors, latency, queue, batching, images/s, provider, memory, lag', () => {
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const needed of [
      /rate\(mlp_http_request_duration_seconds_count/,
      /status=~"5\.\."/,
      /histogram_quantile\(0\.99, sum by \(le\) \(rate\(mlp_http_request_duration_seconds_bucket/,
      /histogram_quantile\(0\.95/,
      /histogram_quantile\(0\.5/,
      /mlp_queue_wait_seconds_bucket/,
      /mlp_batch_size_bucket/,
      /mlp_inference_duration_seconds_bucket/,
      /rate\(mlp_images_total/,
      /mlp_model_info/,
      /process_resident_memory_bytes/,
      /nodejs_eventloop_lag/,
    ])
      expect(exprs).toMatch(needed);
  });
});
