// The batch Jobs (k8s/jobs) without a cluster: Indexed, one failed index retried alone, non-root on a read-only root
// filesystem, the embed pods told the shard count, the sweep's completions equal to its plan's runs, and the image
// they name built from Dockerfile.jobs with what the CLIs need. (Rendering and schemas: manifests.test.ts.)

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { parseDockerfile } from './lib/dockerfile.js';
import { renderKustomization } from './lib/kustomize.js';
import { K8S, ROOT, one, type Manifest } from './lib/overlays.js';

const ignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;
const jobs = renderKustomization(join(K8S, 'jobs'));
const embed = one(jobs, 'Job', 'mlp-serve-embed');
const sweep = one(jobs, 'Job', 'mlp-serve-sweep');
const container = (j: Manifest) => j.spec.template.spec.containers[0];

describe('k8s/jobs', () => {
  it('both Jobs are Indexed, retry a failed index alone, and run non-root on a read-only root filesystem', () => {
    for (const j of [embed, sweep]) {
      expect(j.spec).toMatchObject({ completionMode: 'Indexed', backoffLimitPerIndex: expect.any(Number) });
      expect(j.spec.template.spec.restartPolicy).toBe('Never');
      expect(j.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(container(j).securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(container(j).resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(container(j).volumeMounts.map((m: { mountPath: string }) => m.mountPath)).toEqual(expect.arrayContaining(['/results', '/tmp']));
      expect(j.spec.template.spec.volumes).toEqual(expect.arrayContaining([{ name: 'results', persistentVolumeClaim: { claimName: 'mlp-serve-results' } }]));
      expect(container(j).image).toMatch(/^[^:]+mlp-serve-jobs:\d+\.\d+\.\d+$/);
    }
    expect(one(jobs, 'PersistentVolumeClaim', 'mlp-serve-results').spec.accessModes).toEqual(['ReadWriteMany']);
  });

  it('the embed pods know the shard count; the sweep runs exactly its plan', () => {
    const env = Object.fromEntries(container(embed).env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(env.JOB_COMPLETIONS).toBe(String(embed.spec.completions));
    expect(embed.spec.completions).toBeGreaterThan(1);
    expect(container(embed).args.slice(0, 1)).toEqual(['scripts/embed.ts']);

    const plan = JSON.parse(one(jobs, 'ConfigMap', 'mlp-serve-sweep-plan').data['sweep-plan.json']);
    expect(plan.format).toBe('mlp-serve-scaling-plan/1');
    expect(sweep.spec.completions).toBe(plan.runs.length);
    expect(plan.runs.map((r: { index: number }) => r.index)).toEqual(plan.runs.map((_: unknown, i: number) => i));
    expect(container(sweep).args).toEqual(expect.arrayContaining(['scripts/scaling.ts', '--plan', '/plan/sweep-plan.json']));
  });

  it('Dockerfile.jobs lints clean and its context holds the CLIs the Jobs run', () => {
    const content = readFileSync(join(ROOT, 'Dockerfile.jobs'), 'utf8');
    expect(validate(content)).toEqual([]);
    const [stage] = parseDockerfile(content);
    expect(stage!.user).toBe('node');
    expect(stage!.entrypoint).toEqual(['node', '--import', 'tsx']);
    const ig = ignore().add(readFileSync(join(ROOT, 'Dockerfile.jobs.dockerignore'), 'utf8'));
    for (const f of ['scripts/embed.ts', 'scripts/scaling.ts', 'src/embed/run.ts', 'models/fashion-mlp/model.onnx', 'package-lock.json'])
      expect(ig.ignores(f), f).toBe(false);
    for (const f of ['node_modules/x', 'test/deploy/jobs.test.ts', 'models/.checkpoints/x']) expect(ig.ignores(f), f).toBe(true);
  });
});
