// The security, limits and model-management settings: every variable read, one clear error per bad
// value, and no secret ever echoed in an error message.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { expectConfigError } from './helpers.js';

const KEY = 'k'.repeat(16);

describe('security and model-management configuration', () => {
  it('reads every variable', () => {
    const c = loadConfig({
      API_KEYS: ` ${KEY}, ${'j'.repeat(20)} `,
      ADMIN_API_KEYS: 'a'.repeat(32),
      RATE_LIMIT_MAX: '100',
      RATE_LIMIT_WINDOW_MS: '1000',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000',
      TRUST_PROXY: '1',
      ALLOW_VECTOR_IMAGES: 'true',
      MAX_FRAMES: '50',
      MAX_HEADER_BYTES: '8192',
      MAX_INFLIGHT_REQUESTS: '64',
      MODEL_LOAD_POLICY: 'Skip-Bad',
      MAX_MODEL_VERSIONS: '3',
      MALLOC_MMAP_THRESHOLD_: '131072',
    });
    expect(c).toMatchObject({
      apiKeys: [KEY, 'j'.repeat(20)],
      adminApiKeys: ['a'.repeat(32)],
      rateLimitMax: 100,
      rateLimitWindowMs: 1000,
      corsOrigins: ['https://app.example.com', 'http://localhost:3000'],
      trustProxyHops: 1,
      allowVectorImages: true,
      maxFrames: 50,
      maxHeaderBytes: 8192,
      maxInflightRequests: 64,
      modelLoadPolicy: 'skip-bad',
      maxModelVersions: 3,
      mallocMmapThreshold: 131072,
    });
    expect(Object.isFrozen(c.apiKeys)).toBe(true);
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toEqual(['*']);
  });

  const bad: [Record<string, string>, string, RegExp][] = [
    [{ API_KEYS: 'short-key' }, 'API_KEYS', /key 1 must be 16 to 256 printable characters/],
    [{ API_KEYS: `${KEY},has space in it 123` }, 'API_KEYS', /key 2 must be/],
    [{ ADMIN_API_KEYS: 'x' }, 'ADMIN_API_KEYS', /key 1 must be/],
    [{ RATE_LIMIT_MAX: '-1' }, 'RATE_LIMIT_MAX', /between 0 and/],
    [{ RATE_LIMIT_WINDOW_MS: '0' }, 'RATE_LIMIT_WINDOW_MS', /between 1 and/],
    [{ CORS_ORIGINS: 'app.example.com' }, 'CORS_ORIGINS', /not \* or an origin/],
    [{ CORS_ORIGINS: 'https://a.example/path' }, 'CORS_ORIGINS', /not \* or an origin/],
    [{ TRUST_PROXY: 'yes' }, 'TRUST_PROXY', /integer/],
    [{ ALLOW_VECTOR_IMAGES: 'sometimes' }, 'ALLOW_VECTOR_IMAGES', /1\/0/],
    [{ MAX_FRAMES: '0' }, 'MAX_FRAMES', /between 1 and/],
    [{ MAX_HEADER_BYTES: '100' }, 'MAX_HEADER_BYTES', /between 1024 and/],
    [{ MAX_INFLIGHT_REQUESTS: '0' }, 'MAX_INFLIGHT_REQUESTS', /between 1 and/],
    [{ MODEL_LOAD_POLICY: 'ignore' }, 'MODEL_LOAD_POLICY', /fail or skip-bad/],
    [{ MAX_MODEL_VERSIONS: '0' }, 'MAX_MODEL_VERSIONS', /between 1 and/],
    [{ MALLOC_MMAP_THRESHOLD_: '64M' }, 'MALLOC_MMAP_THRESHOLD_', /integer/],
  ];
  for (const [env, variable, message] of bad) {
    it(`EXPECTED FAILURE - ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} names ${variable}`, () => {
      const err = expectConfigError(env, variable, message);
      // A key is a secret: the message points at it by position, never by value.
      if (variable.endsWith('API_KEYS')) for (const k of env[variable].split(',')) expect(err.message).not.toContain(k.trim());
    });
  }
});
