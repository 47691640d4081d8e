// The protocol phase of the serving bench (`npm run bench:serve -- --protocols`): one model and one image through
// every way in, at the same concurrency, against one server, in one run:
//   classify   POST /classify, the 28×28 PNG (the server decodes and normalises it)              load: hey
//   v2-json    POST /v2/models/M/infer, the preprocessed tensor as JSON data                      load: hey
//   v2-binary  the same tensor with the binary tensor data extension, binary logits back         load: hey
//   grpc       ModelInfer with raw_input_contents, raw logits back                              load: Python grpcio
// One image per request in every case. gRPC's load generator is gRPC's C-core driven from Python threads
// (scripts/grpc-client.py `load`), as ghz is not packaged; each generator's own CPU is reported beside its figure.

import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { decodeToChw, normalizeChw } from '../data/preprocess.js';
import { inputDim, readCard } from '../model/card.js';
import { PROTO_PATH } from '../serve/grpc/server.js';
import { runHey, type HeyResult } from './hey.js';
import type { Upload } from './load.js';
import { f0, f1, f2, table } from './report.js';
import { startServer } from './server-process.js';

const GRPC_CLIENT = fileURLToPath(new URL('../../scripts/grpc-client.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

export interface ProtocolSettings {
  /** A model directory (model.onnx + model.json). */
  modelDir: string;
  upload: Upload;
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  hey: string;
  env: Record<string, string>;
  log: (msg: string) => void;
}

export interface ProtocolRow {
  protocol: 'classify' | 'v2-json' | 'v2-binary' | 'grpc';
  driver: string;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  /** CPU the load generator itself used, in cores. */
  driverCores: number;
  /** Server process CPU over the window, in cores. */
  serverCores: number;
}

interface GrpcLoad {
  requests: number;
  errors: number;
  seconds: number;
  images_per_s: number;
  p50_ms: number;
  p99_ms: number;
  client_cores: number;
}

function heyRow(protocol: ProtocolRow['protocol'], h: HeyResult, serverCores: number): ProtocolRow {
  const failed = Object.values(h.failed).reduce((a, b) => a + b, 0);
  return { protocol, driver: 'hey', imagesPerSecond: h.okPerSecond, p50Ms: h.p50Ms, p99Ms: h.p99Ms, failed, driverCores: h.cores, serverCores };
}

/** Runs the four windows on one server; returns a row per protocol. */
export async function runProtocols(s: ProtocolSettings): Promise<ProtocolRow[]> {
  const card = await readCard(s.modelDir);
  const dim = inputDim(card);
  const x = normalizeChw(await decodeToChw(s.upload.bytes, card.input), card.input, card.normalization);
  const work = await mkdtemp(join(tmpdir(), 'mlp-bench-protocols-'));
  const modelsDir = join(work, 'models');
  await cp(s.modelDir, join(modelsDir, basename(s.modelDir)), { recursive: true });
  const files = {
    png: join(work, 'image'),
    json: join(work, 'v2.json'),
    binary: join(work, 'v2.bin'),
  };
  await writeFile(files.png, s.upload.bytes);
  await writeFile(files.json, JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, dim], data: Array.from(x) }], outputs: [{ name: 'logits' }] }));
  const head = Buffer.from(
    JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, dim], parameters: { binary_data_size: dim * 4 } }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }),
  );
  await writeFile(files.binary, Buffer.concat([head, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]));

  const server = await startServer(modelsDir, s.env);
  try {
    if (!server.grpc) throw new Error('the server logged no gRPC address (GRPC_PORT=off in the environment?)');
    const infer = `${server.base}/v2/models/${card.name}/infer`;
    const cpu = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
      const before = (await server.scrape()).get('process_cpu_seconds_total') ?? 0;
      const t0 = performance.now();
      const r = await run();
      const after = (await server.scrape()).get('process_cpu_seconds_total') ?? 0;
      return [r, (after - before) / ((performance.now() - t0) / 1000)];
    };
    const hey = async (protocol: ProtocolRow['protocol'], url: string, bodyFile: string, contentType: string, headers?: Record<string, string>) => {
      s.log(`protocols: ${protocol}`);
      const o = { url, bodyFile, contentType, headers, concurrency: s.concurrency };
      await runHey(s.hey, { ...o, seconds: s.warmupSeconds });
      const [h, serverCores] = await cpu(() => runHey(s.hey, { ...o, seconds: s.seconds }));
      return heyRow(protocol, h, serverCores);
    };
    const grpc = (seconds: number) =>
      promisify(execFile)(PYTHON, [GRPC_CLIENT, PROTO_PATH, server.grpc!, card.name, String(dim), 'load', String(s.concurrency), String(seconds), '1'], {
        maxBuffer: 1 << 24,
        timeout: (seconds + 60) * 1000,
      }).then((r) => JSON.parse(r.stdout) as GrpcLoad);

    const rows: ProtocolRow[] = [];
    rows.push(await hey('classify', `${server.base}/classify`, files.png, s.upload.contentType));
    rows.push(await hey('v2-json', infer, files.json, 'application/json'));
    rows.push(await hey('v2-binary', infer, files.binary, 'application/octet-stream', { 'Inference-Header-Content-Length': String(head.length) }));
    s.log('protocols: grpc');
    await grpc(s.warmupSeconds);
    const [g, serverCores] = await cpu(() => grpc(s.seconds));
    rows.push({ protocol: 'grpc', driver: 'python grpcio (C-core), threads', imagesPerSecond: g.images_per_s, p50Ms: g.p50_ms, p99Ms: g.p99_ms, failed: g.errors, driverCores: g.client_cores, serverCores });
    return rows;
  } finally {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The server's CPU per image served: what each protocol costs the service, comparable even when other processes
 * take most of the machine (then images/s measures the share the server got more than the protocol).
 */
export function serverMsPerImage(r: Pick<ProtocolRow, 'serverCores' | 'imagesPerSecond'>): number {
  return (r.serverCores / r.imagesPerSecond) * 1000;
}

export function protocolsTable(rows: readonly ProtocolRow[], concurrency: number): string {
  const base = rows.find((r) => r.protocol === 'classify')?.imagesPerSecond ?? NaN;
  return table(
    `Protocols: one image per request, ${concurrency} in flight, same model and server`,
    ['protocol', 'images/s', '× classify', 'p50 ms', 'p99 ms', 'failed', 'server cores', 'server CPU ms/image', 'generator cores', 'generator'],
    rows.map((r) => [
      r.protocol,
      f0(r.imagesPerSecond),
      f2(r.imagesPerSecond / base),
      f1(r.p50Ms),
      f1(r.p99Ms),
      r.failed,
      f2(r.serverCores),
      f2(serverMsPerImage(r)),
      f2(r.driverCores),
      r.driver,
    ]),
  );
}
