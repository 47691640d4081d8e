// The Kubernetes manifests (k8s/), checked without a cluster: every kustomization renders, every object passes its
// schema and has no unknown field, and the cross-references that no schema sees hold (probes, ports, selectors,
// HPA target and custom metric, env vars the service reads, drain timing, GPU settings, monitoring copies in sync).

import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CONFIG_ENV_VARS, loadConfig } from '../../src/config.js';
import { METRIC_NAME_LIST } from '../../src/serve/metrics.js';
import {
  DASHBOARD_FILE,
  DASHBOARD_MANIFEST,
  PROMETHEUS_RULE_MANIFEST,
  RULES_FILE,
  renderDashboardConfigMap,
  renderPrometheusRule,
} from '../../scripts/deploy-sync.js';
import { unknownFields, validateAgainstSchema } from './lib/k8s-schema.js';
import { type K8sObject, podContainers, readManifests, renderKustomization } from './lib/kustomize.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'k8s');
const OVERLAYS = ['cpu', 'gpu'] as const;
const KUSTOMIZATIONS = ['base', 'overlays/cpu', 'overlays/gpu', 'prometheus-adapter'];

const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, renderKustomization(join(K8S, 'overlays', o))])) as Record<
  (typeof OVERLAYS)[number],
  K8sObject[]
>;

function one(objects: K8sObject[], kind: string, name?: string): K8sObject & { spec: any; data?: any } {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `exactly one ${kind}${name ? `/${name}` : ''}`).toHaveLength(1);
  return found[0] as K8sObject & { spec: any };
}

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** Does a label selector's matchLabels select these labels? */
function selects(matchLabels: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);
}

function cpuCores(q: string): number {
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q);
}

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;

describe('k8s manifests', () => {
  it('every YAML file under k8s/ parses and is used by a kustomization', () => {
    const used = new Set<string>();
    for (const k of KUSTOMIZATIONS) {
      const doc = YAML.parse(readFileSync(join(K8S, k, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
      used.add(join(K8S, k, 'kustomization.yaml'));
      for (const r of doc.resources) used.add(join(K8S, k, r));
    }
    for (const file of yamlFilesUnder(K8S)) {
      expect(() => readManifests(file), relative(ROOT, file)).not.toThrow();
      expect(used.has(file), `${relative(ROOT, file)} is referenced by a kustomization`).toBe(true);
    }
    expect(() => renderKustomization(join(K8S, 'prometheus-adapter'))).not.toThrow();
  });

  it('every rendered object passes its Kubernetes or CRD schema (kubernetes-models)', async () => {
    const all = [...rendered.cpu, ...rendered.gpu, ...renderKustomization(join(K8S, 'prometheus-adapter'))];
    expect(all.map((o) => o.kind).sort()).toEqual(expect.arrayContaining(['Deployment', 'Service', 'ConfigMap',
      'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'ServiceMonitor', 'PrometheusRule', 'Namespace']));
    for (const o of all) await validateAgainstSchema(o);
  });

  it('a broken object fails the schema check (the check is not vacuous)', async () => {
    const d = structuredClone(one(rendered.cpu, 'Deployment'));
    d.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    await expect(validateAgainstSchema(d)).rejects.toThrow(/containerPort must be integer/);
    const r = structuredClone(one(rendered.cpu, 'PrometheusRule'));
    r.spec.groups[1].rules[0].for = '10 minutes';
    await expect(validateAgainstSchema(r)).rejects.toThrow(/for must match pattern/);
  });

  it('built-in objects have no field their kind does not define', () => {
    let checked = 0;
    for (const o of [...rendered.cpu, ...rendered.gpu]) {
      const unknown = unknownFields(o);
      if (unknown === undefined) {
        expect(o.apiVersion, `${o.kind} without a field map must be a CRD`).toMatch(/^monitoring\.coreos\.com\//);
        continue;
      }
      checked++;
      expect(unknown, `${o.kind}/${o.metadata.name}`).toEqual([]);
    }
    expect(checked).toBeGreaterThanOrEqual(12);
    const typo = structuredClone(one(rendered.cpu, 'Deployment'));
    typo.spec.template.spec.containers[0].readinessprobe = {};
    expect(unknownFields(typo)).toEqual(['spec.template.spec.containers[0].readinessprobe']);
  });

  it.skipIf(!hasKubectl)('renders exactly like kubectl kustomize (where kubectl is installed)', () => {
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    for (const dir of ['overlays/cpu', 'overlays/gpu', 'prometheus-adapter']) {
      const out = execFileSync('kubectl', ['kustomize', join(K8S, dir)], { encoding: 'utf8' });
      const theirs = YAML.parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
      const ours = renderKustomization(join(K8S, dir));
      const byKey = (list: K8sObject[]) => Object.fromEntries(list.map((o) => [key(o), o]));
      expect(byKey(ours), dir).toEqual(byKey(theirs));
    }
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, () => {
      const objs = rendered[overlay];
      const deploy = one(objs, 'Deployment', 'mlp-serve');
      const pod = deploy.spec.template;
      const container = podContainers(deploy).find((c) => c.name === 'mlp-serve') as any;
      const configMap = one(objs, 'ConfigMap', 'mlp-serve-config');
      const service = one(objs, 'Service', 'mlp-serve');
      const port = container.ports.find((p: any) => p.name === 'http');

      it('puts every namespaced object in one namespace', () => {
        const namespaces = new Set(objs.filter((o) => o.kind !== 'Namespace').map((o) => o.metadata.namespace));
        expect([...namespaces]).toEqual(['mlp-serve']);
        expect(one(objs, 'Namespace').metadata.name).toBe('mlp-serve');
      });

      it('sets only variables the service reads, and the service accepts their values', () => {
        const names = [...Object.keys(configMap.data), ...(container.env ?? []).map((e: any) => e.name)];
        for (const n of names) expect(CONFIG_ENV_VARS, `${n} is read by src/config.ts`).toContain(n);
        // The real validator: the values would start the service (no file system access happens in loadConfig).
        const config = loadConfig(configMap.data);
        expect(config.port).toBe(port.containerPort);
        expect(container.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }]);
      });

      it('probes /readyz (startup, readiness) and /healthz (liveness) on the container port', () => {
        expect(container.startupProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
        expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
        expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
        expect(port.containerPort).toBe(8080);
        // Liveness must not kill a pod that is still warming up: the startup probe gates it.
        expect(container.startupProbe.failureThreshold * container.startupProbe.periodSeconds).toBeGreaterThanOrEqual(60);
      });

      it('the Service selects the pods and targets the container port', () => {
        expect(selects(service.spec.selector, pod.metadata.labels)).toBe(true);
        expect(selects(deploy.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
        const sp = service.spec.ports.find((p: any) => p.name === 'http');
        const target = typeof sp.targetPort === 'string' ? container.ports.find((p: any) => p.name === sp.targetPort) : { containerPort: sp.targetPort };
        expect(target?.containerPort).toBe(port.containerPort);
      });

      it('the ServiceMonitor selects the Service and scrapes /metrics on its port', () => {
        const sm = one(objs, 'ServiceMonitor');
        expect(selects(sm.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
        expect(sm.metadata.namespace).toBe(service.metadata.namespace);
        for (const ep of sm.spec.endpoints) {
          expect(service.spec.ports.map((p: any) => p.name)).toContain(ep.port);
          expect(ep.path).toBe('/metrics');
        }
        // The alert on GPU pods keys on this pod label, copied onto the metrics.
        expect(sm.spec.podTargetLabels).toContain('accelerator');
        expect(pod.metadata.labels.accelerator).toBe(overlay);
      });

      it('the HPA scales the Deployment on CPU and on the adapter-served in-flight metric', () => {
        const hpa = one(objs, 'HorizontalPodAutoscaler');
        expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name });
        const cpu = hpa.spec.metrics.find((m: any) => m.type === 'Resource');
        expect(cpu.resource.name).toBe('cpu');
        expect(container.resources.requests.cpu).toBeDefined(); // Utilization is relative to the request
        const pods = hpa.spec.metrics.find((m: any) => m.type === 'Pods');
        const adapter = adapterRules();
        const rule = adapter.find((r) => r.name.as === pods.pods.metric.name);
        expect(rule, `prometheus-adapter exposes ${pods.pods.metric.name}`).toBeDefined();
        const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(rule!.seriesQuery)![1]!;
        expect(METRIC_NAME_LIST).toContain(series);
        expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
      });

      it('the PDB covers the pods and always leaves one running', () => {
        const pdb = one(objs, 'PodDisruptionBudget');
        const hpa = one(objs, 'HorizontalPodAutoscaler');
        expect(selects(pdb.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
        expect(hpa.spec.minReplicas).toBeGreaterThan(pdb.spec.maxUnavailable);
        expect(deploy.spec.replicas).toBeGreaterThan(pdb.spec.maxUnavailable);
      });

      it('drains within the grace period: preStop pause + SHUTDOWN_GRACE_MS < terminationGracePeriodSeconds', () => {
        const cfg = loadConfig(configMap.data);
        const pause = container.lifecycle.preStop.exec.command;
        expect(pause[0]).toBe('sleep');
        const pauseS = Number(pause[1]);
        expect(pauseS).toBeGreaterThanOrEqual(3); // endpoints and kube-proxy need a few seconds to forget the pod
        expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(pauseS + cfg.shutdownGraceMs / 1000);
        // A request accepted just before SIGTERM meets its deadline before the drain ends.
        expect(cfg.requestTimeoutMs).toBeLessThanOrEqual(cfg.shutdownGraceMs);
      });

      it('runs non-root on a read-only root filesystem with /tmp writable, with requests and limits', () => {
        expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
        expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
        expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        const tmp = container.volumeMounts.find((m: any) => m.mountPath === '/tmp');
        expect(pod.spec.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
        for (const r of ['cpu', 'memory']) {
          expect(container.resources.requests[r]).toBeDefined();
          expect(container.resources.limits[r]).toBeDefined();
        }
        const cfg = loadConfig(configMap.data);
        // onnxruntime threads beyond the CPU limit only get throttled. The split is pinned: measured at start-up, it
        // would count the node's cores, not the container's limit.
        expect(cfg.inferenceWorkers).toBeDefined();
        expect(cfg.ortIntraOpThreads).toBeDefined();
        expect(cfg.ortIntraOpThreads! * cfg.inferenceWorkers!).toBeLessThanOrEqual(cpuCores(container.resources.limits.cpu));
      });

      it(`has the ${overlay} accelerator settings`, () => {
        const cfg = loadConfig(configMap.data);
        if (overlay === 'gpu') {
          expect(cfg.executionProviders).toEqual(['cuda', 'cpu']);
          expect(cfg.requireGpu).toBe(true);
          expect(container.resources.limits['nvidia.com/gpu']).toBe(1);
          expect(pod.spec.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
          expect(pod.spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
          expect(container.image).toBe('mlp-serve:latest-gpu');
        } else {
          expect(cfg.executionProviders).toEqual(['cpu']);
          expect(cfg.requireGpu).toBe(false);
          expect(container.resources.limits['nvidia.com/gpu']).toBeUndefined();
          expect(pod.spec.tolerations).toBeUndefined();
          expect(container.image).toBe('mlp-serve:latest');
        }
      });
    });
  }
});

interface AdapterRule {
  seriesQuery: string;
  resources: { overrides: Record<string, { resource: string }> };
  name: { matches: string; as: string };
  metricsQuery: string;
}

function adapterRules(): AdapterRule[] {
  const cm = one(renderKustomization(join(K8S, 'prometheus-adapter')), 'ConfigMap', 'adapter-config');
  return (YAML.parse(cm.data['config.yaml']) as { rules: AdapterRule[] }).rules;
}

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
