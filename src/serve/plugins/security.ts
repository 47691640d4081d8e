// Security plugin: the headers every answer carries (@fastify/helmet), CORS only for the origins configured
// (@fastify/cors, off by default), per-client rate limiting (@fastify/rate-limit, off by default) and API keys.
// Access is decided per route from `config.access`: 'open' (probes, metrics, the API document), 'admin' (/admin),
// and, for every other route, 'inference', so a route added later is protected unless it says otherwise.
// Order of checks on a request: rate limit (onRequest, so that guessing keys is rate limited too), then the key
// (preParsing: before any byte of the body is read).

import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import helmet from '@fastify/helmet';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../config.js';
import { Errors } from '../errors.js';

export type Access = 'open' | 'inference' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; default 'inference' (an API key when API_KEYS is set). */
    access?: Access;
  }
}

/** SHA-256 digests: every key compares in constant time and at the same length, whatever was sent. */
function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/**
 * Whether `presented` is one of `keys`, in time independent of where (or whether) it matches: every key is compared,
 * each with timingSafeEqual over equal-length digests.
 */
export function keyMatches(presented: string | undefined, keys: readonly Buffer[]): boolean {
  const d = digest(presented ?? '');
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(d, k) || ok;
  return presented !== undefined && presented !== '' && ok;
}

/** The key a request presents: `Authorization: Bearer KEY` or `X-API-Key: KEY`. */
export function presentedKey(req: Pick<FastifyRequest, 'headers'>): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && x !== '' ? x : undefined;
}

/** Whether a presented key may call inference routes (always, when API_KEYS is empty): HTTP's rule, for gRPC too. */
export function inferenceKeyCheck(config: Pick<Config, 'apiKeys' | 'adminApiKeys'>): (presented: string | undefined) => boolean {
  const keys = [...config.apiKeys, ...config.adminApiKeys].map(digest);
  const open = config.apiKeys.length === 0;
  return (presented) => open || keyMatches(presented, keys);
}

async function securityPlugin(app: FastifyInstance, opts: { config: Readonly<Config> }): Promise<void> {
  const { config } = opts;

  // Headers for a JSON API: no sniffing, no framing, no referrer, a CSP that loads nothing.
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  });

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : [...config.corsOrigins],
      methods: ['GET', 'POST'],
      allowedHeaders: ['content-type', 'content-encoding', 'authorization', 'x-api-key', 'inference-header-content-length'],
      exposedHeaders: ['retry-after', 'inference-header-content-length', 'x-model-version'],
      maxAge: 600,
    });
  }

  if (config.rateLimitMax > 0) {
    await app.register(rateLimit, {
      global: true,
      max: config.rateLimitMax,
      timeWindow: config.rateLimitWindowMs,
      // Probes and scrapes must never be throttled: a throttled readiness probe takes the pod out of service.
      allowList: (req) => req.routeOptions.config?.access === 'open',
      errorResponseBuilder: (_req, ctx) => Errors.RATE_LIMITED(Math.max(1, Math.ceil(ctx.ttl / 1000))),
    });
  }

  const inferenceAllowed = inferenceKeyCheck(config);
  const adminKeys = config.adminApiKeys.map(digest);

  app.addHook('preParsing', async (req, reply) => {
    const access = req.routeOptions.config?.access ?? 'inference';
    // CORS preflights carry no credentials by design; @fastify/cors answers them.
    if (access === 'open' || req.method === 'OPTIONS') return;
    if (access === 'admin') {
      if (adminKeys.length === 0) throw Errors.FORBIDDEN('admin routes are disabled: set ADMIN_API_KEYS to enable them');
      if (keyMatches(presentedKey(req), adminKeys)) return;
    } else if (inferenceAllowed(presentedKey(req))) return;
    reply.header('www-authenticate', 'Bearer realm="mlp-serve"');
    throw Errors.UNAUTHORIZED();
  });
}

export default fp(securityPlugin, { name: 'mlp-security', fastify: '5.x' });
