// The zip container of a torch.save file: the central directory (as PyTorch reads it), stored or deflated
// entries, zip64 sizes and offsets. Only what torch.save writes; no encryption, no multi-disk archives.

import { inflateRawSync } from 'node:zlib';
import { TorchCheckpointError, readU64 } from './binary.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

/** Lists the entries of a zip file from its central directory (the authoritative index, as PyTorch reads it). */
export function zipEntries(buf: Buffer): Map<string, ZipEntry> {
  // End of central directory: 22 bytes plus a comment of at most 65535, at the end of the file.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new TorchCheckpointError('not a zip file (no end-of-central-directory record)');
  let count = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== SIG_EOCD64_LOCATOR) throw new TorchCheckpointError('zip: zip64 locator missing');
    const eocd64 = readU64(buf, loc + 8, 'zip');
    if (buf.readUInt32LE(eocd64) !== SIG_EOCD64) throw new TorchCheckpointError('zip: zip64 end record missing');
    count = readU64(buf, eocd64 + 32, 'zip');
    cdOffset = readU64(buf, eocd64 + 48, 'zip');
  }
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== SIG_CENTRAL) throw new TorchCheckpointError('zip: corrupt central directory');
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localHeaderOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // Zip64 extra field (id 1) holds, in this order, whichever of the three fields overflowed 32 bits.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) (size = readU64(buf, q, 'zip')), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = readU64(buf, q, 'zip')), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = readU64(buf, q, 'zip');
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

export function zipRead(buf: Buffer, e: ZipEntry): Buffer {
  const h = e.localHeaderOffset;
  if (buf.readUInt32LE(h) !== SIG_LOCAL) throw new TorchCheckpointError(`zip: bad local header for ${e.name}`);
  // The local header's extra field may differ from the central one (PyTorch pads it to align tensor data).
  const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
  const end = start + e.compressedSize;
  if (end > buf.length) throw new TorchCheckpointError(`zip: entry ${e.name} is truncated`);
  const raw = buf.subarray(start, end);
  if (e.method === 0) return raw;
  if (e.method === 8) return inflateRawSync(raw);
  throw new TorchCheckpointError(`zip: entry ${e.name} uses unsupported compression method ${e.method}`);
}
