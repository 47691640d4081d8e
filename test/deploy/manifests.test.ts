// The Kubernetes manifests (k8s/), checked without a cluster: every kustomization renders, exactly as `kubectl
// kustomize` renders it (kubectl is required: .ci/install-kubectl puts one on a fresh machine), every object passes
// its schema and has no unknown field, and the cross-references that no schema sees hold (probes, ports, selectors,
// HPA target and custom metric, env vars the service reads, drain timing, GPU settings, auth, network policy,
// Ingress, the laptop overlay's size). The monitoring objects are checked in monitoring-manifests.test.ts.

import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CONFIG_ENV_VARS, loadConfig } from '../../src/config.js';
import { METRIC_NAME_LIST } from '../../src/serve/metrics.js';
import { unknownFields, validateAgainstSchema } from './lib/k8s-schema.js';
import { type K8sObject, podContainers, readManifests, renderKustomization } from './lib/kustomize.js';
import { adapterRules, K8S, type Manifest, one, OVERLAYS, PRODUCTION_OVERLAYS, rendered, ROOT, selects } from './lib/overlays.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** Every kustomization and component directory under k8s/. */
const KUSTOMIZATIONS = readdirSync(K8S, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('kustomization.yaml'))
  .map((f) => f.slice(0, -'/kustomization.yaml'.length))
  .sort();
/** The ones kubectl can build on their own (components only inside a kustomization). */
const BUILDABLE = KUSTOMIZATIONS.filter((k) => !k.startsWith('components/'));

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

function cpuCores(q: string): number {
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q);
}

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });

describe('k8s manifests', () => {
  it('every YAML file under k8s/ parses and is used by a kustomization or component', () => {
    expect(KUSTOMIZATIONS).toEqual(expect.arrayContaining(['base', 'overlays/minimal', 'overlays/cpu', 'overlays/gpu', 'components/monitoring', 'examples/own-models']));
    const used = new Set<string>();
    for (const k of KUSTOMIZATIONS) {
      const doc = YAML.parse(readFileSync(join(K8S, k, 'kustomization.yaml'), 'utf8')) as { resources?: string[] };
      used.add(join(K8S, k, 'kustomization.yaml'));
      for (const r of doc.resources ?? []) used.add(join(K8S, k, r));
    }
    for (const file of yamlFilesUnder(K8S)) {
      expect(() => readManifests(file), relative(ROOT, file)).not.toThrow();
      expect(used.has(file), `${relative(ROOT, file)} is referenced by a kustomization`).toBe(true);
    }
  });

  it('kubectl is installed (a missing kubectl fails here instead of skipping the comparison below)', () => {
    expect(kubectl.status, `kubectl version --client: ${kubectl.error?.message ?? kubectl.stderr}; run .ci/install-kubectl`).toBe(0);
    expect(kubectl.stdout).toMatch(/Kustomize Version: v5\./);
  });

  it('renders exactly like kubectl kustomize', () => {
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const byKey = (list: K8sObject[]) => Object.fromEntries(list.map((o) => [key(o), o]));
    expect(BUILDABLE.length).toBeGreaterThanOrEqual(6);
    for (const dir of BUILDABLE) {
      const out = execFileSync('kubectl', ['kustomize', join(K8S, dir)], { encoding: 'utf8' });
      const theirs = YAML.parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
      expect(byKey(renderKustomization(join(K8S, dir))), dir).toEqual(byKey(theirs));
    }
  }, 60_000);

  it('every rendered object passes its Kubernetes or CRD schema (kubernetes-models)', async () => {
    const all = BUILDABLE.flatMap((k) => renderKustomization(join(K8S, k)));
    expect(all.map((o) => o.kind).sort()).toEqual(expect.arrayContaining(['Deployment', 'Service', 'ConfigMap', 'HorizontalPodAutoscaler',
      'PodDisruptionBudget', 'ServiceMonitor', 'PrometheusRule', 'Namespace', 'NetworkPolicy', 'Ingress']));
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
    for (const o of BUILDABLE.flatMap((k) => renderKustomization(join(K8S, k)))) {
      const unknown = unknownFields(o);
      if (unknown === undefined) {
        expect(o.apiVersion, `${o.kind} without a field map must be a CRD`).toMatch(/^monitoring\.coreos\.com\//);
        continue;
      }
      checked++;
      expect(unknown, `${o.kind}/${o.metadata.name}`).toEqual([]);
    }
    expect(checked).toBeGreaterThanOrEqual(20);
    const typo = structuredClone(one(rendered.cpu, 'Deployment'));
    typo.spec.template.spec.containers[0].readinessprobe = {};
    expect(unknownFields(typo)).toEqual(['spec.template.spec.containers[0].readinessprobe']);
  });

  it('the minimal overlay needs no CRD and fits a 2-CPU laptop cluster, even mid-rollout at its maximum', () => {
    const objs = rendered.minimal;
    expect(objs.filter((o) => !/^(v1|apps\/v1|autoscaling\/v2|policy\/v1|networking\.k8s\.io\/v1)$/.test(o.apiVersion))).toEqual([]);
    const deploy = one(objs, 'Deployment');
    const hpa = one(objs, 'HorizontalPodAutoscaler');
    expect(deploy.spec.replicas).toBe(1);
    expect(hpa.spec.minReplicas).toBe(1);
    expect(hpa.spec.metrics.map((m: { type: string }) => m.type)).toEqual(['Resource']);
    const pods = Math.max(hpa.spec.maxReplicas, deploy.spec.replicas) + deploy.spec.strategy.rollingUpdate.maxSurge;
    const request = podContainers(deploy).reduce((s, c: any) => s + cpuCores(c.resources.requests.cpu), 0);
    expect(pods * request).toBeLessThanOrEqual(2);
    // Open on a laptop: no API keys, no Ingress.
    expect(podContainers(deploy)[0]!.env).toBeUndefined();
    expect(objs.find((o) => o.kind === 'Ingress')).toBeUndefined();
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, () => {
      const objs = rendered[overlay];
      const production = PRODUCTION_OVERLAYS.includes(overlay);
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

      it(production ? 'takes API_KEYS from a Secret that is not in git (auth on)' : 'runs without API keys', () => {
        expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
        const env = (container.env ?? []) as { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[];
        if (!production) return expect(env).toEqual([]);
        const apiKeys = env.find((e) => e.name === 'API_KEYS')!.valueFrom!.secretKeyRef!;
        // Not optional: without the Secret the pod does not start, rather than serving without auth.
        expect(apiKeys).toEqual({ name: 'mlp-serve-api-keys', key: 'API_KEYS' });
        expect(env.find((e) => e.name === 'ADMIN_API_KEYS')!.valueFrom!.secretKeyRef).toEqual({ name: 'mlp-serve-api-keys', key: 'ADMIN_API_KEYS', optional: true });
      });

      it('runs an immutable image tag: the package version, never latest', () => {
        const suffix = overlay === 'gpu' ? '-gpu' : '';
        expect(container.image).toMatch(new RegExp(`:${pkg.version.replace(/\./g, '\\.')}${suffix}$`));
        expect(container.image).not.toMatch(/:latest/);
        expect(container.imagePullPolicy).toBe('IfNotPresent');
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

      it('the NetworkPolicy covers the pods and admits this namespace (and the ingress and Prometheus namespaces)', () => {
        const np = one(objs, 'NetworkPolicy');
        expect(selects(np.spec.podSelector.matchLabels, pod.metadata.labels)).toBe(true);
        expect(np.spec.policyTypes).toEqual(['Ingress']);
        const from = np.spec.ingress.flatMap((r: { from: unknown[] }) => r.from);
        expect(from).toContainEqual({ podSelector: {} });
        const namespaces = from.map((f: any) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name']).filter(Boolean);
        expect(namespaces.sort()).toEqual(production ? ['ingress-nginx', 'monitoring'] : []);
      });

      if (production) {
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

        it('the Ingress serves the Service over TLS and lets uploads up to MAX_BODY_BYTES through', () => {
          const ing = one(objs, 'Ingress');
          const hosts = ing.spec.rules.map((r: { host: string }) => r.host);
          expect(ing.spec.tls).toEqual([{ hosts, secretName: 'mlp-serve-tls' }]);
          const backend = ing.spec.rules[0].http.paths[0].backend.service;
          expect(backend).toEqual({ name: service.metadata.name, port: { name: 'http' } });
          expect(service.spec.ports.map((p: any) => p.name)).toContain(backend.port.name);
          const size = /^(\d+)m$/.exec(ing.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-body-size'] as string)!;
          expect(Number(size[1]) * 2 ** 20).toBeGreaterThanOrEqual(loadConfig(configMap.data).maxBodyBytes);
          expect(ing.metadata.annotations?.['cert-manager.io/cluster-issuer']).toBeTruthy();
        });
      } else {
        it('has no Prometheus Operator object', () => {
          expect(objs.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
        });
      }

      it('the HPA scales the Deployment on CPU, and on the adapter-served in-flight metric where monitoring is on', () => {
        const hpa = one(objs, 'HorizontalPodAutoscaler');
        expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name });
        const cpu = hpa.spec.metrics.find((m: any) => m.type === 'Resource');
        expect(cpu.resource.name).toBe('cpu');
        expect(container.resources.requests.cpu).toBeDefined(); // Utilization is relative to the request
        expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
        const pods = hpa.spec.metrics.find((m: any) => m.type === 'Pods');
        if (!production) return expect(pods).toBeUndefined();
        const rule = adapterRules().find((r) => r.name.as === pods.pods.metric.name);
        expect(rule, `prometheus-adapter exposes ${pods.pods.metric.name}`).toBeDefined();
        const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(rule!.seriesQuery)![1]!;
        expect(METRIC_NAME_LIST).toContain(series);
      });

      it('the PDB covers the pods; with more than one replica it always leaves one running', () => {
        const pdb = one(objs, 'PodDisruptionBudget');
        const hpa = one(objs, 'HorizontalPodAutoscaler');
        expect(selects(pdb.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
        expect(pdb.spec.maxUnavailable).toBeGreaterThanOrEqual(1); // a node drain is never blocked
        if (production) {
          expect(hpa.spec.minReplicas).toBeGreaterThan(pdb.spec.maxUnavailable);
          expect(deploy.spec.replicas).toBeGreaterThan(pdb.spec.maxUnavailable);
        }
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
        } else {
          expect(cfg.executionProviders).toEqual(['cpu']);
          expect(cfg.requireGpu).toBe(false);
          expect(container.resources.limits['nvidia.com/gpu']).toBeUndefined();
          expect(pod.spec.tolerations).toBeUndefined();
        }
      });
    });
  }
});

describe('own models (k8s/examples/own-models)', () => {
  const objs = renderKustomization(join(K8S, 'examples/own-models'));
  const deploy: Manifest = one(objs, 'Deployment');
  const spec = deploy.spec.template.spec;

  it('an init container fills an emptyDir that the server reads read-only at MODELS_DIR', () => {
    const init = spec.initContainers[0];
    const main = spec.containers[0];
    const modelsDir = loadConfig(one(objs, 'ConfigMap', 'mlp-serve-config').data).modelsDir;
    const mount = main.volumeMounts.find((m: any) => m.mountPath === modelsDir);
    expect(mount).toMatchObject({ name: 'models', readOnly: true });
    expect(spec.volumes.find((v: any) => v.name === 'models').emptyDir).toBeDefined();
    expect(init.volumeMounts.find((m: any) => m.name === 'models').mountPath).toBe('/models');
    expect(init.envFrom).toEqual([{ configMapRef: { name: 'mlp-serve-models' } }]);
    expect(init.image).toMatch(/:\d+\.\d+\.\d+$/);
    const source = one(objs, 'ConfigMap', 'mlp-serve-models').data;
    expect(source.MODELS_URL).toMatch(/^https:\/\//);
    expect(source.MODELS_SHA256).toMatch(/^[0-9a-f]{64}$/);
  });
});
