// The gRPC listener (GRPC_PORT): loads grpc_predict_v2.proto, serves inference.GRPCInferenceService with the
// handlers of service.ts on the app's state, and drains with it: `drain()` refuses new calls and waits for the ones
// in flight (buildApp's preClose hook calls it, so SIGTERM drains HTTP and gRPC alike before the models close).
// Undecodable messages become INVALID_ARGUMENT (grpc-js alone would answer INTERNAL); messages over
// MAX_BODY_BYTES are refused by grpc-js with RESOURCE_EXHAUSTED before they are decoded.

import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { FastifyInstance } from 'fastify';
import { grpcService, Undecodable } from './service.js';

export const PROTO_PATH = fileURLToPath(new URL('./grpc_predict_v2.proto', import.meta.url));

export interface GrpcListener {
  /** The port bound (the one chosen when GRPC_PORT is 0). */
  port: number;
  /** Stops accepting calls and resolves when those in flight are answered. */
  drain(): Promise<void>;
}

/** The service definition with deserializers that never throw. */
function serviceDefinition(): grpc.ServiceDefinition {
  const pkg = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true, objects: false, oneofs: true });
  const def = (grpc.loadPackageDefinition(pkg).inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor;
  return Object.fromEntries(
    Object.entries(def.service).map(([name, m]) => [
      name,
      {
        ...m,
        requestDeserialize: (bytes: Buffer) => {
          try {
            return m.requestDeserialize(bytes);
          } catch (err) {
            return new Undecodable((err as Error).message.slice(0, 200));
          }
        },
      },
    ]),
  );
}

/** Starts the gRPC service on config.host:config.grpcPort; undefined when GRPC_PORT=off. */
export async function startGrpc(app: FastifyInstance): Promise<GrpcListener | undefined> {
  const { grpcPort, host, maxBodyBytes } = app.config;
  if (grpcPort === 'off') return undefined;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBodyBytes, 'grpc.max_send_message_length': -1 });
  server.addService(serviceDefinition(), grpcService(app));
  const bindHost = host.includes(':') ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let draining: Promise<void> | undefined;
  const listener: GrpcListener = {
    port,
    drain: () =>
      (draining ??= new Promise<void>((resolve) =>
        server.tryShutdown((err) => {
          if (err) server.forceShutdown();
          resolve();
        }),
      )),
  };
  app.grpcListener = listener;
  return listener;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The gRPC listener once startGrpc has run; drained by buildApp's preClose hook. */
    grpcListener: GrpcListener | undefined;
  }
}
