// Shared by the PyTorch checkpoint readers (zip.ts, pickle.ts, tensors.ts): their one error type and a 64-bit read
// that refuses values JavaScript numbers cannot hold exactly.

/** A checkpoint that cannot be read; the message says which part and why. */
export class TorchCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TorchCheckpointError';
  }
}

/** A little-endian unsigned 64-bit integer at `at`, as a number; larger than 2^53 − 1 is refused. */
export function readU64(buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError(`${what}: 64-bit value out of range`);
  return Number(v);
}
