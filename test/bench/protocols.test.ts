// The protocol phase of bench:serve, small: the bundled model through /classify, /v2 (JSON and binary) and gRPC on a
// real server process, each driven by its outside generator (hey; Python grpcio) for one second at 4 in flight.
// Every row must have served images and failed none (a body, header or address mistake shows as failures or 0).

import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { ensureHey } from '../../src/bench/hey.js';
import { fashionMnistImage, png28 } from '../../src/bench/images.js';
import { protocolsTable, runProtocols } from '../../src/bench/protocols.js';

const MODEL = fileURLToPath(new URL('../../models/fashion-mlp', import.meta.url));

describe('bench:serve --protocols', () => {
  it('every protocol serves the same model with no failure, each from its own load generator', async () => {
    const rows = await runProtocols({
      modelDir: MODEL,
      upload: await png28(await fashionMnistImage(0)),
      concurrency: 4,
      seconds: 1,
      warmupSeconds: 1,
      hey: ensureHey(),
      env: { ORT_INTRA_OP_THREADS: '1' },
      log: () => undefined,
    });
    expect(rows.map((r) => [r.protocol, r.driver.split(' ')[0]])).toEqual([
      ['classify', 'hey'],
      ['v2-json', 'hey'],
      ['v2-binary', 'hey'],
      ['grpc', 'python'],
    ]);
    for (const r of rows) {
      expect(r.failed, r.protocol).toBe(0);
      expect(r.imagesPerSecond, r.protocol).toBeGreaterThan(0);
      expect(r.driverCores, r.protocol).toBeGreaterThan(0);
    }
    expect(protocolsTable(rows, 4)).toMatch(/grpc .* python grpcio/);
  }, 180_000);
});
