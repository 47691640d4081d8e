// The browsable API as a browser sees it: Debian's headless Chromium loads /docs (Swagger UI, assets served by the
// app itself), runs its JavaScript, and the rendered DOM lists the routes, the v2 ones included; its screenshot is
// saved and must not be blank (pixel variance read by sharp).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { makeModels, startApp, type Running, type TempModels } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** Where the screenshot of the test run is kept (outside the repository, for a human to look at). */
const SHOT = join(tmpdir(), 'mlp-serve-docs.png');

let models: TempModels;
let srv: Running;
let profile: string;

beforeAll(async () => {
  models = await makeModels([{ name: 'tiny4', arch: 'B_1-Wi_8', channels: 1, size: 4, classes: 3, seed: 21 }]);
  // API keys on: the page and its assets must stay open, as the probes are.
  srv = await startApp({ MODELS_DIR: models.dir, API_KEYS: 'docs-test-key-0123456789' }, { waitReady: false });
  profile = await mkdtemp(join(tmpdir(), 'mlp-chromium-'));
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await models?.cleanup();
  if (profile) await rm(profile, { recursive: true, force: true });
});

function chromium(...args: string[]): Promise<string> {
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    '--window-size=1280,1600',
    // Lets the page's scripts run (fetch /docs/json, render) before the DOM or the screenshot is taken.
    '--virtual-time-budget=15000',
  ];
  return promisify(execFile)(CHROMIUM, [...flags, ...args], { maxBuffer: 1 << 26, timeout: 120_000 }).then((r) => r.stdout);
}

describe('/docs in headless Chromium', () => {
  it('the page, its assets and the document are open even with API keys set', async () => {
    // Every body is read: an unread one keeps its connection busy, and closing the server would wait for it.
    for (const path of ['/docs', '/docs/static/swagger-ui-bundle.js', '/docs/static/index.css', '/docs/json']) {
      const res = await fetch(srv.base + path);
      await res.arrayBuffer();
      expect(res.status, path).toBe(200);
    }
    const page = await fetch(`${srv.base}/docs/static/index.html`);
    await page.arrayBuffer();
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/upgrade-insecure-requests/);
  });

  it('the rendered DOM lists the routes, the v2 ones included', async () => {
    const dom = await chromium('--dump-dom', `${srv.base}/docs`);
    expect(dom).toContain('swagger-ui');
    for (const route of ['/classify', '/embed', '/v2/models/{model}/infer', '/v2/health/ready', '/v2/models/{model}'])
      expect(dom, route).toContain(`data-path="${route}"`);
  }, 150_000);

  it('the screenshot is not blank', async () => {
    await chromium(`--screenshot=${SHOT}`, `${srv.base}/docs`);
    expect((await stat(SHOT)).size).toBeGreaterThan(10_000);
    const { channels } = await sharp(SHOT).stats();
    const { width, height } = await sharp(SHOT).metadata();
    expect([width, height]).toEqual([1280, 1600]);
    // A blank (single-colour) page has a standard deviation of 0 in every channel; rendered text and colour do not.
    expect(Math.max(...channels.map((c) => c.stdev))).toBeGreaterThan(10);
  }, 150_000);
});
