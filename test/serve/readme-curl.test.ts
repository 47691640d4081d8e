// The README's curl lines, run as written (real curl, the bundled model, examples/ images) against the app on a real
// socket: only the host and port are changed. A newcomer's first commands must work, and say what the README says.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postImage, startApp, type Running } from './helpers.js';

const run = promisify(execFile);

/** Lines starting with `curl ` inside the ```sh blocks of a markdown file. */
function curlLines(file: string): string[] {
  const blocks = [...readFileSync(file, 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((b) => b.split('\n')).filter((l) => l.startsWith('curl '));
}

let server: Running;
const answers = new Map<string, unknown>();

beforeAll(async () => {
  server = await startApp({ MODELS_DIR: 'models' });
  const port = new URL(server.base).port;
  for (const line of curlLines('README.md')) {
    const { stdout } = await run('sh', ['-c', line.replaceAll('localhost:8080', `127.0.0.1:${port}`)], { cwd: process.cwd() });
    answers.set(line, JSON.parse(stdout));
  }
}, 120_000);

afterAll(async () => server?.close());

function answerTo(pattern: RegExp): any {
  const line = [...answers.keys()].find((l) => pattern.test(l));
  expect(line, `a README curl line matching ${pattern}`).toBeDefined();
  return answers.get(line as string);
}

describe("the README's curl lines", () => {
  it('are at least the classify, embed and models lines, each answering JSON', () => {
    expect(answers.size).toBeGreaterThanOrEqual(3);
  });

  it('classify examples/ankle-boot.png as "Ankle boot" with the top 3, as the README shows', () => {
    const body = answerTo(/\/classify\?top_k=3/);
    expect(body.model).toBe('fashion-mlp');
    expect(body.predictions).toHaveLength(3);
    expect(body.predictions[0]).toMatchObject({ index: 9, label: 'Ankle boot' });
    expect(body.predictions[0].score).toBeGreaterThan(0.5);
  });

  it('embed the PNG and the JPEG of examples/ in one multipart request: two 384-value embeddings', () => {
    const body = answerTo(/\/embed/);
    expect(body).toMatchObject({ model: 'fashion-mlp', dim: 384 });
    expect(body.embeddings).toHaveLength(2);
    for (const e of body.embeddings) expect(e).toHaveLength(384);
    expect(body.embeddings[0]).not.toEqual(body.embeddings[1]);
  });

  it('list the bundled model', () => {
    const body = answerTo(/\/models'?$/);
    expect(body.models.map((m: { name: string }) => m.name)).toContain('fashion-mlp');
  });

  it('examples/trouser.jpg (an upscaled test item as a JPEG) is classified as "Trouser" too', async () => {
    const { stdout } = await run('curl', ['-s', '--data-binary', '@examples/trouser.jpg', '-H', 'content-type: image/jpeg', `${server.base}/classify?top_k=1`]);
    expect(JSON.parse(stdout).predictions[0]).toMatchObject({ index: 1, label: 'Trouser' });
  });

  it('an image unlike the data set (dark item on white, as product photos are) still gets ten scores summing to 1', async () => {
    const inverted = await sharp('examples/ankle-boot.png').negate().resize(200, 200).jpeg().toBuffer();
    const { status, json } = await postImage(server.base, '/classify?top_k=10', inverted, 'image/jpeg');
    expect(status).toBe(200);
    expect(json.predictions).toHaveLength(10);
    expect(json.predictions.reduce((a: number, p: { score: number }) => a + p.score, 0)).toBeCloseTo(1, 5);
  });
});
