// A client of the teaching route (POST /admin/models/{base}/probe): uploads a data set's first N training images,
// their class names as the field names, follows the job to its end and times it from outside the server.

import { openDataSource } from '../data/resolve.js';
import { toUploadBytes } from './embeddings.js';

export interface TeachRunOptions {
  url: string;
  adminKey: string;
  base: string;
  name: string;
  /** `--data` spec (fashion-mnist, mnist, …). */
  data: string;
  n: number;
  seed?: number;
}

export interface TeachRunReport {
  images: number;
  /** Upload answered (202), seconds. */
  acceptSeconds: number;
  /** Upload to job done, seconds. */
  totalSeconds: number;
  job: Record<string, unknown>;
}

export async function runTeach(o: TeachRunOptions): Promise<TeachRunReport> {
  const source = await openDataSource(o.data);
  const ds = source.train;
  if (o.n > ds.size) throw new RangeError(`${source.name} train has ${ds.size} images, ${o.n} were asked for`);
  const form = new FormData();
  for (let i = 0; i < o.n; i++)
    form.append(ds.classes[ds.label(i)], new Blob([new Uint8Array(await toUploadBytes(await ds.image(i)))], { type: 'image/png' }), `${i}.png`);
  const headers = { authorization: `Bearer ${o.adminKey}` };
  const t0 = performance.now();
  const res = await fetch(new URL(`/admin/models/${o.base}/probe?name=${o.name}&seed=${o.seed ?? 0}`, o.url), { method: 'POST', body: form, headers });
  const body = (await res.json()) as { job?: string; error?: { code: string; message: string } };
  if (res.status !== 202 || !body.job) throw new Error(`POST probe: ${res.status} ${body.error?.code}: ${body.error?.message}`);
  const acceptSeconds = (performance.now() - t0) / 1000;
  for (;;) {
    const job = (await (await fetch(new URL(`/admin/jobs/${body.job}`, o.url), { headers })).json()) as Record<string, unknown>;
    if (job.status === 'done' || job.status === 'failed') return { images: o.n, acceptSeconds, totalSeconds: (performance.now() - t0) / 1000, job };
    await new Promise((r) => setTimeout(r, 100));
  }
}
