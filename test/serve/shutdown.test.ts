// `npm start` as a real child process (tsx src/serve/server.ts): SIGTERM while requests wait in the batch queue
// loses none of them, closes the listener, and the process exits 0 within the grace period.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { encodePattern, makeModels, metricsText, postImage, sample, spawnServer, withTimeout, type SpawnedServer, type TempModels } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let models: TempModels;

beforeAll(async () => {
  models = await makeModels([{ name: 'sd', arch: 'B_1-Wi_32', channels: 3, size: 32, seed: 8 }]);
}, 60_000);

afterAll(async () => {
  await models?.cleanup();
});

describe('graceful shutdown', () => {
  let srv: SpawnedServer | undefined;
  afterAll(() => {
    if (srv && srv.child.exitCode === null) srv.child.kill('SIGKILL');
  });

  it('SIGTERM with 12 requests in flight: all 12 answered 200, listener closed, exit 0 within the grace period', async () => {
    srv = await spawnServer({ MODELS_DIR: models.dir, BATCH_MAX_SIZE: '64', BATCH_MAX_DELAY_MS: '500', SHUTDOWN_GRACE_MS: '8000' });
    const png = await encodePattern(32, 32, (s) => s.png());
    const inflight = Array.from({ length: 12 }, (_, i) =>
      postImage(srv!.base, i % 2 ? '/embed' : '/classify', png).catch((e: Error) => ({ status: -1, json: e.message, headers: undefined })),
    );
    // The signal must find all 12 received (a connection whose request has not arrived yet is idle, and the drain
    // rightly closes it): wait until the server has counted each, in flight or answered. Under load that takes
    // longer than any fixed pause.
    const seen = async () => {
      const text = await metricsText(srv!.base);
      const answered = text
        .split('\n')
        .filter((l) => /^mlp_requests_total\{.*route="\/(classify|embed)"/.test(l))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
      return sample(text, 'mlp_inflight_requests') - 1 + answered; // - 1: this scrape
    };
    for (let i = 0; i < 400 && (await seen()) < 12; i++) await new Promise((r) => setTimeout(r, 25));
    const t0 = Date.now();
    srv.child.kill('SIGTERM');
    // Once the server says it drains (not after a fixed pause, which a loaded machine can outlast):
    for (let i = 0; i < 400 && !srv.logs.some((l) => /draining: readiness is 503/.test(l)); i++) await new Promise((r) => setTimeout(r, 25));
    // A newcomer is refused: the listener is closed (or, on a kept-alive socket, 503 SHUTTING_DOWN).
    const late = await fetch(`${srv.base}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);

    const results = await Promise.all(inflight);
    expect(results.map((r) => r.status)).toEqual(new Array(12).fill(200));
    for (const [i, r] of results.entries()) expect(Object.keys(r.json)).toContain(i % 2 ? 'embedding' : 'predictions');

    const exit = await withTimeout(srv.exit, 10_000, "server exit");
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - t0).toBeLessThan(8000);
    const log = srv.logs.join('\n');
    expect(log).toMatch(/draining: readiness is 503/);
    expect(log).toMatch(/drained; exiting/);
  }, 60_000);
});
