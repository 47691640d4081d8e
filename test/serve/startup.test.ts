// Start-up and readiness: bad model directories fail start-up naming the file and the field, the default model is
// chosen as documented, /readyz is 503 while loading, after a failed start (REQUIRE_GPU) and while draining.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/serve/app.js';
import { openSession } from '../../src/serve/session.js';
import { encodePattern, makeModels, postImage, startApp, type TempModels } from './helpers.js';

let src: TempModels;
const scratch: string[] = [];

beforeAll(async () => {
  src = await makeModels([{ name: 'tiny', arch: 'B_1-Wi_16', channels: 1, size: 8, classes: 3, seed: 7 }]);
}, 60_000);

afterAll(async () => {
  await src?.cleanup();
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

/** A MODELS_DIR with copies of the tiny model under the given names, each card edited by `edit`. */
async function modelsDir(names: string[], edit: (card: any, name: string) => void = () => undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mlp-serve-startup-'));
  scratch.push(dir);
  for (const name of names) {
    await cp(join(src.dir, 'tiny'), join(dir, name), { recursive: true });
    const file = join(dir, name, 'model.json');
    const card = JSON.parse(await readFile(file, 'utf8'));
    card.name = name;
    edit(card, name);
    await writeFile(file, JSON.stringify(card));
  }
  return dir;
}

async function startupError(env: Record<string, string>): Promise<string> {
  const config = loadConfig({ EXECUTION_PROVIDERS: 'cpu', ...env });
  const err = await buildApp(config, { logger: false }).then(
    async (app) => {
      await app.close();
      return undefined;
    },
    (e: Error) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err!.message;
}

describe('a bad model directory fails start-up naming the file and the field', () => {
  it('EXPECTED FAILURE - a card without labels', async () => {
    const dir = await modelsDir(['a'], (c) => (c.labels = []));
    expect(await startupError({ MODELS_DIR: dir })).toBe(`${join(dir, 'a', 'model.json')}: field "labels" expected array length to be greater or equal to 1`);
  });

  it('EXPECTED FAILURE - a card whose embeddingDim disagrees with its arch', async () => {
    const dir = await modelsDir(['a'], (c) => (c.embeddingDim = 99));
    expect(await startupError({ MODELS_DIR: dir })).toMatch(new RegExp(`^${join(dir, 'a', 'model.json')}: field "embeddingDim" must equal arch.width`));
  });

  it('EXPECTED FAILURE - a card that is not JSON', async () => {
    const dir = await modelsDir(['a']);
    await writeFile(join(dir, 'a', 'model.json'), '{ "name": ');
    expect(await startupError({ MODELS_DIR: dir })).toMatch(/model\.json: field "\(root\)" is not valid JSON/);
  });

  it('EXPECTED FAILURE - a card whose name is not its directory name', async () => {
    const dir = await modelsDir(['a'], (c) => (c.name = 'b'));
    expect(await startupError({ MODELS_DIR: dir })).toMatch(/a\/model\.json: field "name" is "b" but must equal its directory name "a"/);
  });

  it('EXPECTED FAILURE - a bare model.onnx without a card: one error listing every field the card needs', async () => {
    const dir = await modelsDir(['a']);
    await rm(join(dir, 'a', 'model.json'));
    expect(await startupError({ MODELS_DIR: dir })).toBe(
      `${join(dir, 'a', 'model.json')}: missing; every model needs this card beside model.onnx (see docs/models.md), with the fields ` +
        'name, version, arch, labels, input, normalization, embeddingDim, params, flopsPerImage, provenance, metrics',
    );
  });

  it('EXPECTED FAILURE - a directory without model.onnx', async () => {
    const dir = await modelsDir(['a']);
    await rm(join(dir, 'a', 'model.onnx'));
    expect(await startupError({ MODELS_DIR: dir })).toMatch(/a\/model\.onnx: missing/);
  });

  it('EXPECTED FAILURE - an empty or missing MODELS_DIR, an unknown DEFAULT_MODEL', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'mlp-serve-empty-'));
    scratch.push(empty);
    expect(await startupError({ MODELS_DIR: empty })).toMatch(/holds no model/);
    expect(await startupError({ MODELS_DIR: join(empty, 'nope') })).toMatch(/MODELS_DIR .* cannot be read: ENOENT/);
    const dir = await modelsDir(['a']);
    expect(await startupError({ MODELS_DIR: dir, DEFAULT_MODEL: 'zeta' })).toBe(`DEFAULT_MODEL "zeta" is not among the models in ${dir} (a)`);
  });
});

describe('default model', () => {
  it('is the first alphabetically, unless DEFAULT_MODEL names another', async () => {
    const dir = await modelsDir(['zebra', 'alpha', 'mid']);
    for (const [env, expected] of [[{}, 'alpha'], [{ DEFAULT_MODEL: 'mid' }, 'mid']] as const) {
      const srv = await startApp({ MODELS_DIR: dir, ...env });
      try {
        const body = (await (await fetch(`${srv.base}/models`)).json()) as any;
        expect(body.models.map((m: any) => m.name)).toEqual(['alpha', 'mid', 'zebra']);
        expect(body.models.filter((m: any) => m.default).map((m: any) => m.name)).toEqual([expected]);
        const png = await encodePattern(8, 8, (s) => s.png());
        expect((await postImage(srv.base, '/classify', png)).json.model).toBe(expected);
      } finally {
        await srv.close();
      }
    }
  }, 30_000);
});

describe('readiness', () => {
  it('/readyz is 503 "loading" until warm-up is done, /healthz 200 throughout, requests get 503 NOT_READY', async () => {
    const dir = await modelsDir(['a']);
    const srv = await startApp({ MODELS_DIR: dir }, { holdLoading: true });
    try {
      const [ready, health, classify] = await Promise.all([
        fetch(`${srv.base}/readyz`),
        fetch(`${srv.base}/healthz`),
        postImage(srv.base, '/classify', await encodePattern(8, 8, (s) => s.png())),
      ]);
      // Loading is held until these answers are in, whatever the speed of worker start-up.
      expect(srv.app.models.state).toBe('loading');
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as any).status).toBe('loading');
      expect(health.status).toBe(200);
      expect(classify.status).toBe(503);
      expect(classify.json.error.code).toBe('NOT_READY');
      expect(classify.headers.get('retry-after')).toBe('1');
      srv.releaseLoading();
      await srv.app.models.whenReady();
      expect((await fetch(`${srv.base}/readyz`)).status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it('EXPECTED FAILURE - REQUIRE_GPU=1 without a GPU: start-up fails clearly and /readyz stays 503 "failed"', async () => {
    const tiny = join(src.dir, 'tiny', 'model.onnx');
    const probe = await openSession(tiny, { providers: ['cuda'], requireGpu: false, intraOpThreads: 1, interOpThreads: 1 }).catch(() => undefined);
    if (probe) {
      await probe.session.release();
      return; // a working GPU: nothing to refuse
    }
    const dir = await modelsDir(['a']);
    const srv = await startApp({ MODELS_DIR: dir, EXECUTION_PROVIDERS: 'cuda,cpu', REQUIRE_GPU: '1' }, { waitReady: false });
    try {
      await expect(srv.app.models.whenReady()).rejects.toThrow(/^REQUIRE_GPU=1 but no GPU execution provider could start \(cuda: /);
      const ready = await fetch(`${srv.base}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as any).status).toBe('failed');
    } finally {
      await srv.close();
    }
  });

  it('while draining: /readyz 503 "draining", /healthz 200, new inference requests 503 SHUTTING_DOWN', async () => {
    const dir = await modelsDir(['a']);
    const srv = await startApp({ MODELS_DIR: dir });
    try {
      srv.app.serving.draining = true;
      const ready = await fetch(`${srv.base}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as any).status).toBe('draining');
      expect((await fetch(`${srv.base}/healthz`)).status).toBe(200);
      const res = await postImage(srv.base, '/classify', await encodePattern(8, 8, (s) => s.png()));
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('SHUTTING_DOWN');
    } finally {
      await srv.close();
    }
  });
});
