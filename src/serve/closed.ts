// When a response is done with, for good: `whenClosed(reply, fn)` runs `fn` once its connection has closed or its
// answer has been sent. ServerResponse emits 'close' for both, but only once: a listener added after the client has
// already gone would never run, and whatever it was to release (an admission slot, a model generation, a gauge)
// would leak. This checks first.

import type { FastifyReply } from 'fastify';
import type { Hold } from './model-types.js';

export function whenClosed(reply: FastifyReply, fn: () => void): void {
  const res = reply.raw;
  if (res.closed || res.destroyed) queueMicrotask(fn);
  else res.once('close', fn);
}

/** The connection closed before the whole answer was written: the client has gone. */
export function clientLeft(reply: FastifyReply): boolean {
  return !reply.raw.writableFinished;
}

const HOLDING = Symbol('mlp.holdsModelGeneration');

/**
 * A Hold for ModelRegistry.resolve: the resolved model's generation stays alive until this reply is done with.
 * A reply holds one lease however many times it resolves a model.
 */
export function holdUntilClosed(reply: FastifyReply): Hold {
  return (release) => {
    const holder = reply as FastifyReply & { [HOLDING]?: boolean };
    if (holder[HOLDING]) {
      release();
      return;
    }
    holder[HOLDING] = true;
    whenClosed(reply, release);
  };
}
