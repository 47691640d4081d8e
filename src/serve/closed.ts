// When a response is done with, for good: `whenClosed(reply, fn)` runs `fn` once its connection has closed or its
// answer has been sent. ServerResponse emits 'close' for both, but only once: a listener added after the client has
// already gone would never run, and whatever it was to release (an admission slot, a model generation, a gauge)
// would leak. This checks first.

import type { FastifyReply } from 'fastify';

export function whenClosed(reply: FastifyReply, fn: () => void): void {
  const res = reply.raw;
  if (res.closed || res.destroyed) queueMicrotask(fn);
  else res.once('close', fn);
}

/** The connection closed before the whole answer was written: the client has gone. */
export function clientLeft(reply: FastifyReply): boolean {
  return !reply.raw.writableFinished;
}
