// Limits plugin: admission control and client-gone detection for the inference routes.
// - At most MAX_INFLIGHT_REQUESTS inference requests are being read, decoded or queued at once; one more is answered
//   503 OVERLOADED with Retry-After before its body is read. The batch queue (QUEUE_MAX) bounds images waiting for a
//   worker, but not the requests still uploading or decoding ahead of it; this bounds those, hence memory and latency.
// - `clientGone(reply)` is an AbortSignal that fires when the connection closes before the answer was sent, so the
//   inference path can drop that request's work instead of computing it.

import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../../config.js';
import { Errors } from '../errors.js';
import { clientLeft, whenClosed } from '../closed.js';

const SIGNAL = Symbol('mlp.clientGone');
type Tracked = FastifyReply & { [SIGNAL]?: AbortController };

/** Aborts when the client disconnects before its answer is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const r = reply as Tracked;
  let ac = r[SIGNAL];
  if (!ac) {
    const c = new AbortController();
    ac = c;
    r[SIGNAL] = c;
    whenClosed(reply, () => {
      if (clientLeft(reply)) c.abort();
    });
  }
  return ac.signal;
}

async function limitsPlugin(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const max = opts.config.maxInflightRequests;
  let inflight = 0;

  /** Admits one request or throws OVERLOADED; the returned function releases it (once). */
  const enter = (): (() => void) => {
    if (inflight >= max) throw Errors.OVERLOADED();
    inflight++;
    let released = false;
    return () => {
      if (!released) inflight--;
      released = true;
    };
  };

  // After authentication (preParsing hooks run in order), before the body is read.
  app.addHook('preParsing', async (req, reply) => {
    if (!req.routeOptions.config?.inference) return;
    whenClosed(reply, enter());
  });

  app.decorate('admission', {
    get inflight() {
      return inflight;
    },
    max,
    enter,
  });
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Inference requests (HTTP and gRPC) admitted and not yet answered, the limit, and admission itself. */
    admission: { readonly inflight: number; readonly max: number; enter(): () => void };
  }
}

export default fp(limitsPlugin, { name: 'mlp-limits', fastify: '5.x' });
