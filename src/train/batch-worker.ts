// The batch worker thread: opens the training split's cache itself and builds the batch of each step it is asked
// for into the buffers it is handed (transferred both ways, never copied), with the train loop's own batchMaker.

import { parentPort, workerData } from 'node:worker_threads';
import { openCache } from '../data/cache.js';
import { subsetSplit } from '../data/holdout.js';
import { allocBatchBuffers, batchMaker } from './batches.js';
import type { BatchWorkerData, FromBatchWorker, ToBatchWorker } from './batch-source.js';

const port = parentPort!;
const init = workerData as BatchWorkerData;
try {
  const cache = await openCache(init.dir, init.examples);
  const data = init.select ? subsetSplit(cache, init.select) : cache;
  const make = batchMaker(init.spec, data);
  port.on('message', (m: ToBatchWorker) => {
    try {
      const buf = allocBatchBuffers(init.spec, m.x, m.y);
      const { size } = make(m.step, buf);
      const reply: FromBatchWorker = { kind: 'batch', step: m.step, x: m.x, y: m.y, size };
      port.postMessage(reply, [m.x, m.y]);
    } catch (err) {
      port.postMessage({ kind: 'error', message: `batch of step ${m.step}: ${(err as Error).message}` } satisfies FromBatchWorker);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies FromBatchWorker);
} catch (err) {
  port.postMessage({ kind: 'error', message: `opening ${init.dir}: ${(err as Error).message}` } satisfies FromBatchWorker);
}
