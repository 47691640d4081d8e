// One inference worker thread: opens a session per model, warms each up at the batch sizes it will see, then runs
// batches sent by the main thread. It exists because onnxruntime-node's session.run blocks its calling thread for
// the whole run; here it blocks only this thread while the main thread keeps parsing HTTP and decoding images.

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { GpuUnavailableError, openSession } from './session.js';
import type { ExecutionProvider } from '../config.js';
import type { FromWorker, ToWorker, WarmupTiming, WorkerInit, WorkerModel } from './worker-protocol.js';

if (!parentPort) throw new Error('inference-worker.ts must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

interface Loaded {
  spec: WorkerModel;
  session: ort.InferenceSession;
}

const sessions = new Map<string, Loaded>();

async function run(m: Loaded, input: Float32Array, size: number) {
  const feeds = { input: new ort.Tensor('float32', input, [size, m.spec.inputDim]) };
  const t0 = performance.now();
  const out = await m.session.run(feeds);
  const runMs = performance.now() - t0;
  // Copies: the output tensors' memory belongs to onnxruntime and cannot be transferred to another thread.
  const logits = Float32Array.from(out.logits.data as Float32Array);
  const embedding = Float32Array.from(out.embedding.data as Float32Array);
  for (const t of Object.values(out)) t.dispose();
  if (logits.length !== size * m.spec.classes || embedding.length !== size * m.spec.embeddingDim)
    throw new Error(`model ${m.spec.name} returned logits ${logits.length} / embedding ${embedding.length} values for batch ${size}`);
  return { logits, embedding, runMs };
}

async function start(): Promise<void> {
  const providers: Record<string, ExecutionProvider> = {};
  const timings: Record<string, WarmupTiming[]> = {};
  const t0 = performance.now();
  // A provider that failed for one model fails for all (missing library, no device): try it once per worker.
  let candidates = init.providers;
  for (const spec of init.models) {
    const unavailable: string[] = [];
    const { session, provider } = await openSession(spec.path, {
      providers: candidates,
      requireGpu: init.requireGpu,
      intraOpThreads: init.intraOpThreads,
      interOpThreads: init.interOpThreads,
      warn: (message) => unavailable.push(message),
    });
    // One line per worker: later models start from the provider that worked.
    if (unavailable.length > 0)
      post({ type: 'log', level: init.fallbackLevel, message: `execution provider ${provider} (${unavailable.join('; ')})` });
    for (const name of ['logits', 'embedding'])
      if (!session.outputNames.includes(name))
        throw new Error(`model ${spec.name}: model.onnx has no output "${name}" (outputs: ${session.outputNames.join(', ')})`);
    if (!session.inputNames.includes('input'))
      throw new Error(`model ${spec.name}: model.onnx has no input "input" (inputs: ${session.inputNames.join(', ')})`);
    candidates = candidates.slice(candidates.indexOf(provider));
    const loaded = { spec, session };
    // Each batch size twice: the first run readies the memory arena and kernels before the first real request, the
    // second is timed (the batch policy's prior and the thread split start from these).
    const times: WarmupTiming[] = [];
    for (const size of init.warmupSizes) {
      const x = new Float32Array(size * spec.inputDim);
      await run(loaded, x, size);
      times.push({ size, ms: (await run(loaded, x, size)).runMs });
    }
    timings[spec.name] = times;
    sessions.set(spec.name, loaded);
    providers[spec.name] = provider;
  }
  post({ type: 'ready', providers, warmupMs: performance.now() - t0, timings });
}

port.on('message', (msg: ToWorker | null) => {
  // Anything but a run request breaks the protocol: the worker dies loudly and the pool replaces it (the tests use
  // this to crash a worker at a chosen moment).
  if (msg?.type !== 'run') throw new Error(`inference worker: unexpected message ${String(JSON.stringify(msg)).slice(0, 100)}`);
  const m = sessions.get(msg.model);
  if (!m) {
    post({ type: 'error', id: msg.id, message: `model ${msg.model} is not loaded in this worker` });
    return;
  }
  run(m, msg.input, msg.size).then(
    (r) => post({ type: 'result', id: msg.id, ...r }, [r.logits.buffer as ArrayBuffer, r.embedding.buffer as ArrayBuffer]),
    (err: Error) => post({ type: 'error', id: msg.id, message: err.message }),
  );
});

start().catch((err: Error) => {
  post({ type: 'init-error', message: err.message, kind: err instanceof GpuUnavailableError ? 'gpu-unavailable' : 'other' });
});
