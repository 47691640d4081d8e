// Opens an onnxruntime session with explicit options and walks the execution-provider list: a GPU provider that
// cannot start (missing provider library, no device) is reported and skipped for the next one, unless the caller
// requires a GPU, in which case start-up fails with the reason. Reports which provider ended up running the model.

import ort from 'onnxruntime-node';
import type { ExecutionProvider } from '../config.js';

export interface SessionOptions {
  /** Providers to try, in order (e.g. ['cuda', 'cpu']). */
  providers: readonly ExecutionProvider[];
  /** Fail instead of falling back when every GPU provider in the list fails. */
  requireGpu: boolean;
  /** Threads of one operator (matmul); 1..cores. */
  intraOpThreads: number;
  /** Threads across independent operators; only used in 'parallel' mode, our graph is a chain. */
  interOpThreads: number;
  /** How a rejected provider is reported (the worker forwards it to the server log). */
  warn?: (message: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session was created with. */
  provider: ExecutionProvider;
}

const GPU_PROVIDERS: ReadonlySet<ExecutionProvider> = new Set(['cuda', 'tensorrt', 'webgpu']);

/** A GPU was required and none could be used; the message lists why each provider failed. */
export class GpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuUnavailableError';
  }
}

export function isGpuProvider(p: ExecutionProvider): boolean {
  return GPU_PROVIDERS.has(p);
}

/** The options every session of the service uses, spelled out rather than left to onnxruntime's defaults. */
export function sessionOptions(provider: ExecutionProvider, o: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: o.intraOpThreads,
    interOpNumThreads: o.interOpThreads,
    // The arena and memory patterns keep per-batch allocations off the hot path once warm-up has seen each size.
    enableCpuMemArena: true,
    enableMemPattern: true,
    // 3 = errors only: a provider's own "failed to load" noise is replaced by our single warning.
    logSeverityLevel: 3,
    // Idle intra-op threads sleep instead of spinning: a spinning pool takes the cores the main thread needs to
    // parse HTTP and decode images between batches, on the small machines this is sized for.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

/** Creates the session on the first provider that starts; see the module comment for the fallback rules. */
export async function openSession(modelPath: string, o: SessionOptions): Promise<OpenedSession> {
  if (o.providers.length === 0) throw new RangeError('openSession: providers must not be empty');
  // The runtime's own logger prints a multi-line error for every provider library it cannot load; failures reach
  // us as exceptions anyway, and are reported once through `warn`.
  ort.env.logLevel = 'fatal';
  const failures: string[] = [];
  for (const provider of o.providers) {
    if (o.requireGpu && !isGpuProvider(provider)) break;
    try {
      const session = await ort.InferenceSession.create(modelPath, sessionOptions(provider, o));
      return { session, provider };
    } catch (err) {
      const reason = firstLine((err as Error).message);
      failures.push(`${provider}: ${reason}`);
      if (isGpuProvider(provider)) o.warn?.(`execution provider ${provider} unavailable: ${reason}`);
      else throw new Error(`cannot open model with provider ${provider}: ${reason}`);
    }
  }
  if (o.requireGpu)
    throw new GpuUnavailableError(`REQUIRE_GPU=1 but no GPU execution provider could start (${failures.join('; ')})`);
  throw new Error(`no execution provider could open the model (${failures.join('; ')})`);
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
