// Which rows of a data set one shard of an Indexed Job embeds: contiguous, and cut on batch boundaries, so every
// batch holds the same images as in a single run and a sharded run computes exactly what a single run does.

import { UsageError } from '../util/cli.js';

export interface Shard {
  /** 0-based shard index (Kubernetes' JOB_COMPLETION_INDEX). */
  index: number;
  /** Number of shards (the Job's completions). */
  count: number;
}

/** Rows [start, end) of shard `s` over `total` rows processed in batches of `batchSize`. */
export function shardRange(total: number, batchSize: number, s: Shard): { start: number; end: number } {
  const batches = Math.ceil(total / batchSize);
  const first = Math.floor((s.index * batches) / s.count);
  const last = Math.floor(((s.index + 1) * batches) / s.count);
  return { start: Math.min(total, first * batchSize), end: Math.min(total, last * batchSize) };
}

/** Parses `i/n` (the --shard flag). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`--shard must be i/n (e.g. 0/3), got "${text}"`);
  return checkShard(Number(m[1]), Number(m[2]), '--shard');
}

/**
 * The shard named by `--shard` or, inside a Kubernetes Indexed Job, by JOB_COMPLETION_INDEX and JOB_COMPLETIONS;
 * undefined when neither is set (a single run).
 */
export function shardFromEnv(flag: string | undefined, env: NodeJS.ProcessEnv): Shard | undefined {
  if (flag !== undefined) return parseShard(flag);
  const index = env.JOB_COMPLETION_INDEX;
  const count = env.JOB_COMPLETIONS;
  if (index === undefined && count === undefined) return undefined;
  if (index === undefined || count === undefined)
    throw new UsageError('JOB_COMPLETION_INDEX and JOB_COMPLETIONS must be set together (set completions in the Job)');
  if (!/^\d+$/.test(index) || !/^\d+$/.test(count))
    throw new UsageError(`JOB_COMPLETION_INDEX=${index} and JOB_COMPLETIONS=${count} must be whole numbers`);
  return checkShard(Number(index), Number(count), 'JOB_COMPLETION_INDEX');
}

function checkShard(index: number, count: number, what: string): Shard {
  if (count < 1) throw new UsageError(`${what}: the number of shards must be ≥ 1, got ${count}`);
  if (index >= count) throw new UsageError(`${what}: shard index ${index} is out of range 0..${count - 1}`);
  return { index, count };
}

/** Directory of one shard's output under the run's --out. */
export function partDir(s: Shard): string {
  return `part-${s.index}-of-${s.count}`;
}

/** Parses a part directory's name back; undefined for other names. */
export function parsePartDir(name: string): Shard | undefined {
  const m = /^part-(\d+)-of-(\d+)$/.exec(name);
  return m ? { index: Number(m[1]), count: Number(m[2]) } : undefined;
}
