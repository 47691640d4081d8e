// Copies the monitoring sources into the Kubernetes base: deploy/prometheus/mlp-serve.rules.yml becomes the
// PrometheusRule and deploy/grafana/mlp-serve.json the dashboard ConfigMap. kustomize cannot read files outside
// k8s/, so the manifests hold copies; test/deploy/manifests.test.ts fails when a copy is stale.
// Usage: npm run deploy:sync

import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';

export const RULES_FILE = 'deploy/prometheus/mlp-serve.rules.yml';
export const DASHBOARD_FILE = 'deploy/grafana/mlp-serve.json';
export const PROMETHEUS_RULE_MANIFEST = 'k8s/components/monitoring/prometheusrule.yaml';
export const DASHBOARD_MANIFEST = 'k8s/components/monitoring/grafana-dashboard.yaml';

export const RUNBOOK_URL_ANNOTATION = 'mlp-serve.io/runbook-url';
export const RUNBOOK_URL_PLACEHOLDER = 'https://github.com/your-org/mlp-serve/blob/main/docs/deploy.md';

const HEADER = (source: string): string =>
  `# Generated from ${source} by \`npm run deploy:sync\`; edit the source, not this file.\n`;

/** The PrometheusRule manifest carrying the rule file's groups. */
export function renderPrometheusRule(rulesYaml: string): string {
  const rules = YAML.parse(rulesYaml) as { groups: unknown[] };
  const manifest = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'mlp-serve',
      // kube-prometheus-stack's default ruleSelector; match your Prometheus's.
      labels: { 'app.kubernetes.io/name': 'mlp-serve', release: 'kube-prometheus-stack' },
      // The published docs/deploy.md; the overlays' replacements put it before each runbook_url's #anchor.
      annotations: { [RUNBOOK_URL_ANNOTATION]: RUNBOOK_URL_PLACEHOLDER },
    },
    spec: { groups: rules.groups },
  };
  return HEADER(RULES_FILE) + YAML.stringify(manifest, { lineWidth: 0 });
}

/** The ConfigMap that Grafana's dashboard sidecar (label grafana_dashboard=1) provisions the dashboard from. */
export function renderDashboardConfigMap(dashboardJson: string): string {
  const dashboard = JSON.parse(dashboardJson) as unknown;
  const manifest = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'mlp-serve-grafana-dashboard',
      labels: { 'app.kubernetes.io/name': 'mlp-serve', grafana_dashboard: '1' },
      annotations: { grafana_folder: 'mlp-serve' },
    },
    data: { 'mlp-serve.json': JSON.stringify(dashboard, null, 2) + '\n' },
  };
  return HEADER(DASHBOARD_FILE) + YAML.stringify(manifest, { lineWidth: 0, blockQuote: 'literal' });
}

function main(root: string): void {
  const read = (p: string): string => readFileSync(join(root, p), 'utf8');
  writeFileSync(join(root, PROMETHEUS_RULE_MANIFEST), renderPrometheusRule(read(RULES_FILE)));
  writeFileSync(join(root, DASHBOARD_MANIFEST), renderDashboardConfigMap(read(DASHBOARD_FILE)));
  console.log(`wrote ${PROMETHEUS_RULE_MANIFEST} and ${DASHBOARD_MANIFEST}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.cwd());
