// Probe jobs: teaching a served model new classes from labelled images (POST /admin/models/{base}/probe). A job
// embeds the images through the base model's own batcher (a chunk at a time, so serving traffic is never queued
// behind thousands of images), fits the head on a worker thread (src/probe/fit-thread.ts), writes the model into
// a hidden staging directory of MODELS_DIR and renames it into place (nothing half-written is ever scanned), then
// hot-reloads. One job at a time per base model; up to PROBE_QUEUE_MAX wait behind it. Shutdown aborts them all.

import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { writeProbeModel } from '../probe/export-probe.js';
import { fitProbeOffThread } from '../probe/fit-thread.js';
import { QueueFullError } from './batcher.js';
import { Errors } from './errors.js';
import { preprocessAll } from './inference.js';
import type { Metrics } from './metrics.js';
import type { ManagerLog, ModelRegistry } from './model-types.js';

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

/** What GET /admin/jobs/{id} answers. */
export interface JobView {
  job: string;
  status: JobStatus;
  base: string;
  model: string;
  version?: string;
  valAccuracy?: number;
  lambda?: number;
  images: number;
  labels: string[];
  error?: string;
  /** Seconds from start to done: embedding, fit, write and reload. */
  seconds?: number;
  fitSeconds?: number;
}

/** A validated teaching request (the route has decoded every image once and counted the labels). */
export interface TeachRequest {
  base: string;
  name: string;
  labels: string[];
  images: Buffer[];
  /** Label index of each image. */
  labelOf: Int32Array;
  seed: number;
}

interface Job {
  view: JobView;
  req: TeachRequest | undefined;
  abort: AbortController;
}

const STAGING_PREFIX = '.probe-';
const KEEP_FINISHED = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The next numeric version under MODELS_DIR/NAME ("1" for a new name). */
async function nextVersion(nameDir: string): Promise<string> {
  const entries = await readdir(nameDir).catch(() => [] as string[]);
  const nums = entries.filter((v) => /^\d+$/.test(v)).map(Number);
  return String(nums.length ? Math.max(...nums) + 1 : 1);
}

export class ProbeJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly lanes = new Map<string, { running: boolean; waiting: Job[] }>();
  private readonly runs = new Set<Promise<void>>();
  private closing = false;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly models: ModelRegistry,
    private readonly metrics: Metrics,
    private readonly log: ManagerLog,
  ) {}

  /** Staging directories a killed process left behind: never served (hidden), removed at start. */
  static async clearStaging(modelsDir: string): Promise<void> {
    const entries = await readdir(modelsDir).catch(() => [] as string[]);
    await Promise.all(entries.filter((e) => e.startsWith(STAGING_PREFIX)).map((e) => rm(join(modelsDir, e), { recursive: true, force: true })));
  }

  /** Queues a job; throws PROBE_QUEUE_FULL when its base model already has PROBE_QUEUE_MAX waiting. */
  submit(req: TeachRequest): JobView {
    if (this.closing) throw Errors.SHUTTING_DOWN();
    const lane = this.lanes.get(req.base) ?? { running: false, waiting: [] };
    if (lane.waiting.length >= this.config.probeQueueMax) throw Errors.PROBE_QUEUE_FULL(req.base, lane.waiting.length);
    this.lanes.set(req.base, lane);
    const id = randomUUID();
    const job: Job = {
      view: { job: id, status: 'queued', base: req.base, model: req.name, images: req.images.length, labels: req.labels },
      req,
      abort: new AbortController(),
    };
    this.jobs.set(id, job);
    this.forgetOld();
    lane.waiting.push(job);
    this.pump(req.base);
    return { ...job.view };
  }

  get(id: string): JobView {
    const job = this.jobs.get(id);
    if (!job) throw Errors.UNKNOWN_JOB(id);
    return { ...job.view };
  }

  /** Aborts the running jobs (their staging directories are removed) and fails the waiting ones. */
  async close(): Promise<void> {
    this.closing = true;
    for (const lane of this.lanes.values())
      for (const job of lane.waiting.splice(0)) this.fail(job, 'the server shut down before the job started');
    for (const job of this.jobs.values()) job.abort.abort();
    await Promise.all([...this.runs]);
  }

  private forgetOld(): void {
    const finished = [...this.jobs.values()].filter((j) => j.view.status === 'done' || j.view.status === 'failed');
    for (const j of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.jobs.delete(j.view.job);
  }

  private pump(base: string): void {
    const lane = this.lanes.get(base)!;
    if (lane.running || this.closing) return;
    const job = lane.waiting.shift();
    if (!job) return;
    lane.running = true;
    const run = this.run(job).finally(() => {
      lane.running = false;
      this.runs.delete(run);
      this.pump(base);
    });
    this.runs.add(run);
  }

  private fail(job: Job, message: string): void {
    job.view.status = 'failed';
    job.view.error = message;
    job.req = undefined;
  }

  private async run(job: Job): Promise<void> {
    const req = job.req!;
    const t0 = performance.now();
    job.view.status = 'running';
    this.metrics.probeJobs.inc({ base: req.base, event: 'started' });
    try {
      const { version, valAccuracy, lambda, fitSeconds } = await this.teach(req, job.abort.signal);
      Object.assign(job.view, { status: 'done', version, valAccuracy, lambda, fitSeconds, seconds: (performance.now() - t0) / 1000 });
      job.req = undefined;
      this.metrics.probeJobs.inc({ base: req.base, event: 'finished' });
      this.log.info({ job: job.view.job, model: req.name, version, valAccuracy, seconds: job.view.seconds }, 'probe job done');
    } catch (err) {
      const message = job.abort.signal.aborted ? 'abandoned: the server shut down' : publicMessage(err, this.config.modelsDir);
      this.fail(job, message);
      this.metrics.probeJobs.inc({ base: req.base, event: 'failed' });
      this.log.warn({ job: job.view.job, model: req.name, error: message }, 'probe job failed');
    }
  }

  private async teach(req: TeachRequest, signal: AbortSignal) {
    const baseVersion = this.models.resolve(req.base).version;
    const x = await this.embed(req, baseVersion, signal);
    const tFit = performance.now();
    const fit = await fitProbeOffThread(x, req.labelOf, req.labels.length, { seed: req.seed }, signal);
    const fitSeconds = (performance.now() - tFit) / 1000;
    this.metrics.probeFitDuration.observe({ base: req.base }, fitSeconds);
    const baseDir = resolve(this.models.find(req.base, baseVersion)!.onnxPath, '..');
    const root = resolve(this.config.modelsDir);
    const nameDir = join(root, req.name);
    const staging = await mkdtemp(join(root, STAGING_PREFIX));
    let version: string;
    let created: string;
    try {
      version = await nextVersion(nameDir);
      const staged = join(staging, req.name, version);
      await writeProbeModel({
        baseDir,
        outDir: staged,
        name: req.name,
        version,
        labels: req.labels,
        fit,
        provenance: {
          data: `upload: ${req.labels.length} labels, ${req.images.length} images`,
          imagesPerLabel: req.labels.map((_, c) => req.labelOf.reduce((n, y) => n + (y === c ? 1 : 0), 0)),
          seed: req.seed,
          command: `POST /admin/models/${req.base}/probe?name=${req.name}&seed=${req.seed}`,
        },
      });
      signal.throwIfAborted();
      // One rename puts the complete model in place: the version directory, or the whole name for a new model.
      if (await exists(nameDir)) {
        created = join(nameDir, version);
        await rename(staged, created);
      } else {
        created = nameDir;
        await rename(join(staging, req.name), nameDir);
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    try {
      await this.reload(req.name, version, signal);
    } catch (err) {
      // Not served, so not kept: a model the service refused to load would break the next start.
      if (!signal.aborted) await rm(created, { recursive: true, force: true });
      throw err;
    }
    const chosen = fit.path.find((p) => p.lambda === fit.lambda)!;
    return { version, valAccuracy: chosen.valAccuracy, lambda: fit.lambda, fitSeconds };
  }

  /** Embeddings of every image from the base model's batcher, a batch at a time; a full queue is waited out. */
  private async embed(req: TeachRequest, version: string, signal: AbortSignal) {
    const chunk = this.config.batchMaxSize;
    let dim = 0;
    let data = new Float32Array(0);
    for (let start = 0; start < req.images.length; start += chunk) {
      signal.throwIfAborted();
      const model = this.models.resolve(req.base, version);
      const opts = {
        maxPixels: this.config.maxPixels,
        maxFrames: this.config.maxFrames,
        allowVector: this.config.allowVectorImages,
        timeoutMs: this.config.requestTimeoutMs,
        remainingMs: () => this.config.requestTimeoutMs,
        metrics: this.metrics,
      };
      const inputs = await preprocessAll(model, req.images.slice(start, start + chunk), opts);
      let outs;
      for (;;) {
        let release: (() => void) | undefined;
        const m = this.models.resolve(req.base, version, (r) => (release = r));
        try {
          outs = await m.batcher.submit(inputs, this.config.requestTimeoutMs, signal);
          break;
        } catch (err) {
          if (!(err instanceof QueueFullError)) throw err;
          await sleep(50);
        } finally {
          release?.();
        }
      }
      if (start === 0) {
        dim = outs[0].embedding.length;
        data = new Float32Array(req.images.length * dim);
      }
      outs.forEach((o, k) => data.set(o.embedding, (start + k) * dim));
    }
    return { data, rows: req.images.length, cols: dim };
  }

  /** Hot reload; waits out a reload already running (someone else's, or another job's). */
  private async reload(name: string, version: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      try {
        await this.models.reload();
      } catch (err) {
        if ((err as { code?: string }).code === 'RELOAD_IN_PROGRESS') {
          await sleep(100);
          continue;
        }
        throw err;
      }
      if (this.models.find(name, version)) return;
      throw new Error(`the reload did not serve ${name}:${version}`);
    }
  }
}

/** A job's error for GET /admin/jobs: the API's own messages as they are; anything else without paths. */
function publicMessage(err: unknown, modelsDir: string): string {
  const e = err as { code?: unknown; message?: unknown };
  const text = typeof e.message === 'string' ? e.message : String(err);
  return (typeof e.code === 'string' && e.code in Errors ? `${e.code}: ` : '') + text.split(resolve(modelsDir) + '/').join('');
}
