// The container images, checked without a Docker engine: both Dockerfiles pass the dockerfile-utils linter with every
// rule at error level; the runtime stage holds every file the server loads (its TypeScript import graph, the worker,
// package files, models), traced through COPY --from back to the build context and not dropped by .dockerignore;
// and the image runs the compiled server (`node dist/serve/server.js`) as a non-root user under tini, with settings
// the service accepts. test/deploy/production.test.ts runs that layout.

import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CONFIG_ENV_VARS, loadConfig } from '../../src/config.js';
import { parseDockerfile, provenance, type Resolver, type Stage } from './lib/dockerfile.js';

// Its typings declare an ES default export, but the package is CommonJS (module.exports = factory).
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; dependencies: Record<string, string>; engines: { node: string } };
const buildConfig = JSON.parse(read('tsconfig.build.json')) as { extends: string; compilerOptions: { rootDir: string; outDir: string }; files: string[] };

const STRICT: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

// Variables of the runtime, not of the service: Node, npm and the onnxruntime install script.
const RUNTIME_VARS = new Set(['NODE_ENV']);
const BUILD_VARS = new Set(['ONNXRUNTIME_NODE_INSTALL']);
// The Node LTS line of both images; package.json's engines must admit it.
const NODE_IMAGE = 'node:24-bookworm-slim';

/** Every repository source file the server loads: the import graph of src/serve (worker included), by tsc. */
function serverSourceFiles(): string[] {
  const entries = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', 'src/serve'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, f));
  const cfg = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
  const program = ts.createProgram(entries, { ...cfg.options, noEmit: true });
  return program
    .getSourceFiles()
    .map((f) => f.fileName)
    .filter((f) => f.startsWith(ROOT) && !f.includes('/node_modules/'))
    .map((f) => relative(ROOT, f));
}

const serverFiles = serverSourceFiles();
const modelFiles = execFileSync('git', ['ls-files', 'models'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
const dockerignore = ignore().add(read('.dockerignore'));

const resolver: Resolver = {
  contextIsDir: (rel) => {
    try {
      return statSync(join(ROOT, rel)).isDirectory();
    } catch {
      return false;
    }
  },
  // npm ci in the stage's WORKDIR makes node_modules; npm run build (tsc with the build config) makes dist/.
  produced: (stage, p) =>
    (p.startsWith(`${stage.workdir}/node_modules`) && stage.runs.some((r) => /\bnpm ci\b/.test(r))) ||
    (`${p}/`.startsWith(`${stage.workdir}/${buildConfig.compilerOptions.outDir}/`) && stage.runs.some((r) => /\bnpm run build\b/.test(r))),
};

for (const file of ['Dockerfile', 'Dockerfile.gpu'] as const) {
  describe(file, () => {
    const content = read(file);
    const stages = parseDockerfile(content);
    const runtime = stages[stages.length - 1]!;

    it('passes the dockerfile-utils linter with every rule at error level', () => {
      expect(validate(content, STRICT)).toEqual([]);
    });

    it('the linter reports a broken variant (the lint is not vacuous)', () => {
      const broken = content.replace('EXPOSE 8080', 'EXPOSE http').replace('CMD ["node", "dist/serve/server.js"]', 'CMD ["node", "dist/serve/server.js"]\nCMD node dist/serve/server.js');
      const messages = validate(broken, STRICT).map((d) => d.message);
      expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/Invalid containerPort: http/), expect.stringMatching(/only be one CMD/)]));
    });

    it('is multi-stage: dependencies and tsc to dist/ in a build stage, production dependencies only at run time', () => {
      const build = stages.find((s) => s.name === 'build')!;
      expect(build.runs.join('\n')).toMatch(/npm ci/);
      expect(build.runs.join('\n')).toMatch(/npm run build/);
      // tsc compiles; the files the server reads beside its modules (the gRPC .proto) are copied next to them.
      expect(pkg.scripts.build).toMatch(/^tsc -p tsconfig\.build\.json && /);
      expect(pkg.scripts.build).toContain('*.proto');
      expect(build.runs.join('\n')).toMatch(/npm prune --omit=dev/);
      expect(runtime.name).toBe('runtime');
      expect(runtime.runs.join('\n')).not.toMatch(/npm (ci|install)/);
      // The build config compiles src/ (rootDir) to dist/ from the server's entry points (the inference and the probe
      // fit workers are loaded by URL, not imported), so dist/serve/server.js is the compiled src/serve/server.ts.
      expect(buildConfig).toMatchObject({ extends: './tsconfig.json', compilerOptions: { rootDir: 'src', outDir: 'dist' } });
      expect(buildConfig.files).toEqual(['src/serve/server.ts', 'src/serve/inference-worker.ts', 'src/probe/fit-worker.ts']);
      // No TypeScript loader at run time: tsx is a development dependency (`npm start` from a clone).
      expect(pkg.dependencies.tsx).toBeUndefined();
      // package-lock.json and .npmrc are in place before npm ci.
      for (const f of ['package.json', 'package-lock.json', '.npmrc'])
        expect(provenance(stages, build, `${build.workdir}/${f}`, resolver), f).toBe(f);
    });

    it('runs the compiled server with node under tini as a non-root user; a clone still starts with npm start', () => {
      expect(runtime.entrypoint).toEqual(['/usr/bin/tini', '--']);
      expect(runtime.runs.join('\n')).toMatch(/apt-get install -y --no-install-recommends tini/);
      // node directly: tini's SIGTERM reaches the server with no npm or shell in between.
      expect(runtime.cmd).toEqual(['node', `${buildConfig.compilerOptions.outDir}/serve/server.js`]);
      expect(runtime.user).toBeDefined();
      expect(['root', '0']).not.toContain(runtime.user);
      const readme = read('README.md');
      expect(readme).toMatch(/^npm ci && npm start\b/m);
    });

    it('compiles every source file the server loads, and copies the result, package.json and models to the runtime', () => {
      expect(serverFiles).toEqual(expect.arrayContaining(['src/serve/server.ts', 'src/serve/app.ts', 'src/serve/inference-worker.ts', 'src/config.ts', 'src/data/preprocess.ts']));
      const build = stages.find((s) => s.name === 'build')!;
      for (const f of [...serverFiles, 'tsconfig.json', 'tsconfig.build.json']) {
        expect(provenance(stages, build, `${build.workdir}/${f}`, resolver), `${f} reaches the build stage`).toBe(f);
        expect(dockerignore.ignores(f), `${f} is excluded by .dockerignore`).toBe(false);
      }
      expect(modelFiles.length).toBeGreaterThan(0);
      for (const f of [...modelFiles, 'package.json']) {
        expect(provenance(stages, runtime, `${runtime.workdir}/${f}`, resolver), `${f} reaches the image`).toBe(f);
        expect(dockerignore.ignores(f), `${f} is excluded by .dockerignore`).toBe(false);
      }
      for (const f of serverFiles.filter((x) => x.startsWith('src/'))) {
        const js = `${buildConfig.compilerOptions.outDir}/${f.slice('src/'.length).replace(/\.ts$/, '.js')}`;
        expect(provenance(stages, runtime, `${runtime.workdir}/${js}`, resolver), `${js} reaches the image`).toBe('produced');
      }
      expect(provenance(stages, runtime, `${runtime.workdir}/node_modules/onnxruntime-node/package.json`, resolver)).toBe('produced');
      // No sources, no TypeScript config at run time.
      expect(provenance(stages, runtime, `${runtime.workdir}/src/serve/server.ts`, resolver)).toBeUndefined();
      // The context stays small: dependencies, history and tests are not sent to the builder.
      for (const f of ['node_modules/x', '.git/HEAD', 'test/deploy/manifests.test.ts', 'runs/x.log', 'models/.checkpoints/step-100.json', 'models/a/.checkpoints/x'])
        expect(dockerignore.ignores(f), f).toBe(true);
      expect(dockerignore.ignores('models/fashion-mlp/model.onnx')).toBe(false);
      // Nor do training checkpoints reach git.
      const ignored = execFileSync('git', ['check-ignore', '--no-index', 'models/.checkpoints/step-100.json', 'models/fashion-mlp/model.onnx'], { cwd: ROOT, encoding: 'utf8' });
      expect(ignored.trim().split('\n')).toEqual(['models/.checkpoints/step-100.json']);
    });

    it('the copy check notices a missing COPY (it is not vacuous)', () => {
      const without = content.replace(/^COPY --from=build \/app\/dist \.\/dist\n/m, '');
      expect(without).not.toBe(content);
      const st = parseDockerfile(without);
      const rt = st[st.length - 1]!;
      expect(provenance(st, rt, `${rt.workdir}/dist/serve/server.js`, resolver)).toBeUndefined();
      expect(provenance(st, rt, `${rt.workdir}/package.json`, resolver)).toBe('package.json');
    });

    it('bakes the models in at MODELS_DIR, as the ConfigMap expects', () => {
      const modelsCopy = runtime.copies.find((c) => c.sources.includes('models'))!;
      expect(modelsCopy.from).toBeUndefined();
      expect(runtime.env.MODELS_DIR).toBe(modelsCopy.dest);
      const cm = YAML.parse(read('k8s/base/configmap.yaml')) as { data: Record<string, string> };
      expect(cm.data.MODELS_DIR).toBe(runtime.env.MODELS_DIR);
    });

    it('sets only variables the service reads (or Node/npm ones), with values it accepts', () => {
      for (const s of stages)
        for (const k of Object.keys(s.env))
          expect(CONFIG_ENV_VARS.includes(k) || RUNTIME_VARS.has(k) || (s !== runtime && BUILD_VARS.has(k)), `${k} in stage ${s.name}`).toBe(true);
      const cfg = loadConfig(runtime.env);
      expect(runtime.expose).toEqual(cfg.grpcPort === 'off' ? [cfg.port] : [cfg.port, cfg.grpcPort]);
      expect(cfg.host).toBe('0.0.0.0');
    });

    it('has a HEALTHCHECK on /readyz at $PORT, with a start period for the warm-up', () => {
      const hc = runtime.healthcheck!;
      expect(hc.cmd[0]).toBe('node');
      expect(hc.cmd.join(' ')).toMatch(/process\.env\.PORT\|\|8080\)\+'\/readyz'/);
      expect(Number.parseInt(hc.flags['start-period']!, 10)).toBeGreaterThanOrEqual(60);
    });

    if (file === 'Dockerfile') {
      it('is the CPU image: Debian slim Node 24 LTS, CPU provider', () => {
        expect(runtime.image).toBe(NODE_IMAGE);
        expect(runtime.env.EXECUTION_PROVIDERS).toBe('cpu');
        // No CUDA download at build time, whichever npm the image has: the variable, and package.json's allowScripts.
        expect(stages.find((s) => s.name === 'build')!.env.ONNXRUNTIME_NODE_INSTALL).toBe('skip');
        expect(JSON.parse(read('package.json')).allowScripts['onnxruntime-node']).toBe(false);
        expect(runtime.user).toBe('node'); // uid 1000 in the official image, as runAsUser in k8s
      });
    } else {
      it('is the CUDA image: CUDA 12 + cuDNN runtime, the onnxruntime CUDA provider installed at build time', () => {
        expect(runtime.image).toMatch(/^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-ubuntu/);
        const build = stages.find((s) => s.name === 'build')!;
        expect(build.env.ONNXRUNTIME_NODE_INSTALL).toBe('cuda12');
        expect(build.runs.join('\n')).toMatch(/onnxruntime-node\/script\/install\.js/);
        const cfg = loadConfig(runtime.env);
        expect(cfg.executionProviders).toEqual(['cuda', 'cpu']);
        expect(cfg.requireGpu).toBe(true);
        // Node comes from the official image: same binary as the CPU image.
        const nodeStage = stages.find((s) => s.name === 'node')!;
        expect(nodeStage.image).toBe(NODE_IMAGE);
        expect(runtime.copies.some((c) => c.from === 'node' && c.sources.includes('/usr/local/bin/node'))).toBe(true);
        const k8sUid = (YAML.parse(read('k8s/base/deployment.yaml')) as any).spec.template.spec.securityContext.runAsUser;
        expect(runtime.runs.join('\n')).toContain(`useradd --uid ${k8sUid} `);
        expect(runtime.user).toBe('node');
      });
    }
  });
}

/** Does `version` (x.y.z) satisfy an engines range of `>=a.b.c`, `^a.b.c` or bare-major `a` alternatives joined by `||`? */
function satisfies(version: string, range: string): boolean {
  const v = version.split('.').map(Number);
  const cmp = (a: number[], b: number[]) => a[0]! - b[0]! || (a[1] ?? 0) - (b[1] ?? 0) || (a[2] ?? 0) - (b[2] ?? 0);
  return range.split('||').some((alt) => {
    const m = /^\s*(>=|\^)?\s*(\d+(?:\.\d+){0,2})\s*$/.exec(alt);
    if (!m || (m[1] === undefined && m[2]!.includes('.'))) throw new Error(`engines range part "${alt}" is not >=, ^ or a major`);
    const min = m[2]!.split('.').map(Number);
    return cmp(v, min) >= 0 && (m[1] === '>=' || v[0] === min[0]);
  });
}

describe('Node version', () => {
  it('package.json engines admits the images\' Node line and states what the dependency tree declares', () => {
    const major = /^node:(\d+)-/.exec(NODE_IMAGE)![1]!;
    expect(satisfies(`${major}.0.0`, pkg.engines.node) || satisfies(`${major}.99.0`, pkg.engines.node)).toBe(true);
    // The strictest engines declarations in the locked tree: undici 8 (under @kubernetes/client-node) asks >=22.19,
    // vitest 4 leaves out the odd line 23, cookie 2 (fastify's light-my-request, at run time) and kubernetes-models >=22.
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { engines?: { node?: string }; optional?: boolean }> };
    for (const [name, p] of Object.entries(lock.packages)) {
      const range = p.engines?.node;
      if (!name || !range || p.optional || !/^[\s\d.>=^|]+$/.test(range)) continue;
      // The lowest version of each alternative engines admits, and a later major.
      const probes = [...pkg.engines.node.matchAll(/(\d+(?:\.\d+){0,2})/g)].map((m) => m[1]!).concat('26.0.0');
      for (const probe of probes)
        if (satisfies(probe, pkg.engines.node)) expect(satisfies(probe, range), `${name} (${range}) on Node ${probe}`).toBe(true);
    }
    // CI's second run is on the images' Node line.
    const ciNode = /^NODE_LTS=(\d+)\.\d+\.\d+$/m.exec(read('.ci/run'))![1];
    expect(ciNode).toBe(major);
    expect(satisfies('20.20.0', pkg.engines.node)).toBe(false);
    expect(satisfies('23.5.0', pkg.engines.node)).toBe(false);
  });
});

describe('.dockerignore', () => {
  it('is honoured with Docker\'s semantics (a negation re-includes)', () => {
    const ig = ignore().add('src\n!src/keep.ts\n');
    expect(ig.ignores('src/x.ts')).toBe(true);
    expect(ig.ignores('src/keep.ts')).toBe(false);
  });

  it('keeps the stages in sync: Dockerfile and Dockerfile.gpu copy the same application files', () => {
    const app = (s: Stage) => s.copies.filter((c) => c.dest.startsWith('/app')).map((c) => `${c.from ?? 'context'}:${c.sources.join(',')}->${c.dest}`);
    const [cpu, gpu] = ['Dockerfile', 'Dockerfile.gpu'].map((f) => parseDockerfile(read(f)));
    expect(app(gpu![gpu!.length - 1]!)).toEqual(app(cpu![cpu!.length - 1]!));
  });
});
