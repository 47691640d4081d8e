// Reads a PyTorch `torch.save(state_dict)` file without Python: the zip container (central directory, stored or
// deflated entries, zip64), the pickle subset PyTorch writes for a state_dict, and the raw tensor storages.
// Nothing in the pickle is executed: only an allow-list of globals (OrderedDict, tensor rebuilders, storage types)
// is understood, anything else is refused, so a checkpoint cannot run code the way torch.load(weights_only=False) can.

import { inflateRawSync } from 'node:zlib';

/** A checkpoint that cannot be read; the message says which part and why. */
export class TorchCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TorchCheckpointError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Zip container

interface ZipEntry {
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

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError('zip: 64-bit offset out of range');
  return Number(v);
}

/** Lists the entries of a zip file from its central directory (the authoritative index, as PyTorch reads it). */
function zipEntries(buf: Buffer): Map<string, ZipEntry> {
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
    const eocd64 = u64(buf, loc + 8);
    if (buf.readUInt32LE(eocd64) !== SIG_EOCD64) throw new TorchCheckpointError('zip: zip64 end record missing');
    count = u64(buf, eocd64 + 32);
    cdOffset = u64(buf, eocd64 + 48);
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
        if (size === 0xffffffff) (size = u64(buf, q)), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = u64(buf, q)), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(buf, q);
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function zipRead(buf: Buffer, e: ZipEntry): Buffer {
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

// ---------------------------------------------------------------------------------------------------------------
// Pickle subset

/** A `module.name` reference from GLOBAL / STACK_GLOBAL; only ever compared, never resolved to code. */
interface PyGlobal {
  readonly kind: 'global';
  readonly ref: string;
}

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  'torch.FloatStorage': 'float32',
  'torch.DoubleStorage': 'float64',
  'torch.HalfStorage': 'float16',
  'torch.BFloat16Storage': 'bfloat16',
  'torch.LongStorage': 'int64',
  'torch.IntStorage': 'int32',
  'torch.ByteStorage': 'uint8',
  'torch.BoolStorage': 'bool',
};

interface StorageRef {
  readonly kind: 'storage';
  readonly key: string;
  readonly dtype: TorchDtype;
}

/** A tensor as the pickle describes it: a view (offset, size, stride, in elements) of a storage. */
export interface TorchTensorRef {
  readonly kind: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

type PyValue = null | boolean | number | string | Uint8Array | PyValue[] | Map<PyValue, PyValue> | PyGlobal | StorageRef | TorchTensorRef | Mark;

class Mark {}
const MARK = new Mark();

const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGE_DTYPES),
]);

function isGlobal(v: PyValue, ref?: string): v is PyGlobal {
  return typeof v === 'object' && v !== null && (v as PyGlobal).kind === 'global' && (ref === undefined || (v as PyGlobal).ref === ref);
}

function intList(v: PyValue, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x)))
    throw new TorchCheckpointError(`pickle: ${what} is not a tuple of integers`);
  return v as number[];
}

/** Applies an allow-listed callable (REDUCE) to its argument tuple. */
function callGlobal(fn: PyGlobal, args: PyValue[]): PyValue {
  switch (fn.ref) {
    case 'collections.OrderedDict':
      return new Map();
    case 'torch._utils._rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const [storage, offset, size, stride] = args;
      if (typeof storage !== 'object' || storage === null || (storage as StorageRef).kind !== 'storage')
        throw new TorchCheckpointError('pickle: _rebuild_tensor_v2 without a storage');
      if (typeof offset !== 'number') throw new TorchCheckpointError('pickle: tensor storage offset is not an integer');
      return {
        kind: 'tensor',
        storage: storage as StorageRef,
        offset,
        shape: intList(size, 'tensor size'),
        stride: intList(stride, 'tensor stride'),
      };
    }
    case 'torch._utils._rebuild_parameter':
      return args[0];
    default:
      throw new TorchCheckpointError(`pickle: ${fn.ref} cannot be called`);
  }
}

/** Unpickles `data`; persistent ids are PyTorch storage references ('storage', type, key, location, numel). */
export function unpickle(data: Uint8Array): PyValue {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const stack: PyValue[] = [];
  const memo = new Map<number, PyValue>();
  let p = 0;
  const pop = (): PyValue => {
    if (stack.length === 0) throw new TorchCheckpointError('pickle: stack underflow');
    return stack.pop() as PyValue;
  };
  const popMark = (): PyValue[] => {
    for (let i = stack.length - 1; i >= 0; i--) {
      if (stack[i] === MARK) {
        const items = stack.slice(i + 1);
        stack.length = i;
        return items;
      }
    }
    throw new TorchCheckpointError('pickle: MARK not found');
  };
  const top = (): PyValue => stack[stack.length - 1];
  const need = (n: number) => {
    if (p + n > buf.length) throw new TorchCheckpointError('pickle: truncated');
  };
  const readLine = (): string => {
    const end = buf.indexOf(0x0a, p);
    if (end < 0) throw new TorchCheckpointError('pickle: truncated');
    const s = buf.toString('utf8', p, end);
    p = end + 1;
    return s;
  };
  const global = (module: string, name: string): PyGlobal => {
    const ref = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(ref))
      throw new TorchCheckpointError(`pickle: refers to ${ref}, which a plain float state_dict does not contain`);
    return { kind: 'global', ref };
  };
  const asMap = (v: PyValue): Map<PyValue, PyValue> => {
    if (!(v instanceof Map)) throw new TorchCheckpointError('pickle: SETITEM on something that is not a dict');
    return v;
  };
  const asList = (v: PyValue): PyValue[] => {
    if (!Array.isArray(v)) throw new TorchCheckpointError('pickle: APPEND on something that is not a list');
    return v;
  };
  const str = (n: number): string => {
    need(n);
    const s = buf.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = new Uint8Array(buf.subarray(p, p + n));
    p += n;
    return b;
  };

  for (;;) {
    need(1);
    const op = buf[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (buf[p] > 5) throw new TorchCheckpointError(`pickle: protocol ${buf[p]} is not supported`);
        p += 1;
        break;
      case 0x95: // FRAME: a length hint only
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) throw new TorchCheckpointError('pickle: malformed (stack at STOP)');
        return stack[0];
      case 0x63: {
        // GLOBAL
        const module = readLine();
        stack.push(global(module, readLine()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new TorchCheckpointError('pickle: bad STACK_GLOBAL');
        stack.push(global(module, name));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(buf[p++], top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(buf.readUInt32LE(p), top());
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const long = op === 0x6a;
        need(long ? 4 : 1);
        const idx = long ? buf.readUInt32LE(p) : buf[p];
        p += long ? 4 : 1;
        if (!memo.has(idx)) throw new TorchCheckpointError(`pickle: memo ${idx} undefined`);
        stack.push(memo.get(idx) as PyValue);
        break;
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        asList(top()).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        asList(top()).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        asMap(top()).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const m = asMap(top());
        for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!isGlobal(fn) || !Array.isArray(args)) throw new TorchCheckpointError('pickle: REDUCE of a non-callable');
        stack.push(callGlobal(fn, args));
        break;
      }
      case 0x62: {
        // BUILD: PyTorch sets the state_dict's `_metadata` (module versions) this way; it carries no weights.
        const state = pop();
        if (!(top() instanceof Map) || !(state instanceof Map))
          throw new TorchCheckpointError('pickle: BUILD of an object other than an OrderedDict');
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', <storage type>, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !isGlobal(pid[1]) || typeof pid[2] !== 'string')
          throw new TorchCheckpointError('pickle: unknown persistent id');
        const dtype = STORAGE_DTYPES[pid[1].ref];
        if (!dtype) throw new TorchCheckpointError(`pickle: ${pid[1].ref} is not a storage type`);
        stack.push({ kind: 'storage', key: pid[2], dtype });
        break;
      }
      case 0x4b: // BININT1
        need(1);
        stack.push(buf[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(buf.readUInt16LE(p));
        p += 2;
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(buf.readInt32LE(p));
        p += 4;
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes (storage sizes over 2^31)
        need(1);
        const n = buf[p++];
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[p + i]);
        if (n > 0 && buf[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER))
          throw new TorchCheckpointError('pickle: integer out of range');
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(buf.readDoubleBE(p));
        p += 8;
        break;
      case 0x58: // BINUNICODE
        need(4);
        p += 4;
        stack.push(str(buf.readUInt32LE(p - 4)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        stack.push(str(buf[p++]));
        break;
      case 0x8d: // BINUNICODE8
        need(8);
        p += 8;
        stack.push(str(u64(buf, p - 8)));
        break;
      case 0x55: // SHORT_BINSTRING
        need(1);
        stack.push(str(buf[p++]));
        break;
      case 0x54: // BINSTRING
        need(4);
        p += 4;
        stack.push(str(buf.readUInt32LE(p - 4)));
        break;
      case 0x43: // SHORT_BINBYTES
        need(1);
        stack.push(bytes(buf[p++]));
        break;
      case 0x42: // BINBYTES
        need(4);
        p += 4;
        stack.push(bytes(buf.readUInt32LE(p - 4)));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      default:
        throw new TorchCheckpointError(`pickle: opcode 0x${op.toString(16)} at byte ${p - 1} is not supported`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// State dict

/** A checkpoint's tensors by name, in file order; data is read lazily by `tensorToFloat32`. */
export interface TorchStateDict {
  tensors: Map<string, TorchTensorRef>;
  /** Storage bytes by storage key (views into the file). */
  storages: Map<string, Uint8Array>;
}

/** Reads a `torch.save(state_dict)` zip file (PyTorch ≥ 1.6 format). */
export function readTorchStateDict(file: Uint8Array): TorchStateDict {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length >= 2 && buf[0] === 0x80)
    throw new TorchCheckpointError(
      'legacy (pre-1.6, non-zip) torch.save format; re-save it with torch.save(torch.load(f), f) in PyTorch ≥ 1.6',
    );
  const entries = zipEntries(buf);
  const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new TorchCheckpointError('zip has no <archive>/data.pkl: not a torch.save file');
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const order = entries.get(`${prefix}byteorder`);
  if (order && zipRead(buf, order).toString('ascii').trim() !== 'little')
    throw new TorchCheckpointError('big-endian checkpoints are not supported');

  const root = unpickle(zipRead(buf, entries.get(pkl) as ZipEntry));
  if (!(root instanceof Map)) throw new TorchCheckpointError('the pickle is not a dict: not a state_dict');
  const tensors = new Map<string, TorchTensorRef>();
  const storages = new Map<string, Uint8Array>();
  for (const [k, v] of root) {
    if (typeof k !== 'string') throw new TorchCheckpointError('state_dict has a non-string key');
    if (typeof v !== 'object' || v === null || (v as TorchTensorRef).kind !== 'tensor')
      throw new TorchCheckpointError(`state_dict entry "${k}" is not a tensor`);
    const t = v as TorchTensorRef;
    tensors.set(k, t);
    if (!storages.has(t.storage.key)) {
      const e = entries.get(`${prefix}data/${t.storage.key}`);
      if (!e) throw new TorchCheckpointError(`storage ${t.storage.key} of "${k}" is missing from the zip`);
      storages.set(t.storage.key, zipRead(buf, e));
    }
  }
  return { tensors, storages };
}

const BYTES_PER: Record<TorchDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Materialises a floating-point tensor as contiguous row-major float32 (honouring offset and strides). */
export function tensorToFloat32(sd: TorchStateDict, name: string): Float32Array {
  const t = sd.tensors.get(name);
  if (!t) throw new TorchCheckpointError(`no tensor "${name}"`);
  const raw = sd.storages.get(t.storage.key) as Uint8Array;
  const { dtype } = t.storage;
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'float16' && dtype !== 'bfloat16')
    throw new TorchCheckpointError(`tensor "${name}" is ${dtype}, not floating point`);
  const size = BYTES_PER[dtype];
  const n = raw.byteLength / size;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const read = (i: number): number => {
    if (dtype === 'float32') return view.getFloat32(4 * i, true);
    if (dtype === 'float64') return view.getFloat64(8 * i, true);
    if (dtype === 'float16') return halfToFloat(view.getUint16(2 * i, true));
    const f = new DataView(new ArrayBuffer(4)); // bfloat16: the top half of a float32
    f.setUint32(0, view.getUint16(2 * i, true) << 16);
    return f.getFloat32(0);
  };
  const count = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  // Highest element index the view touches must lie inside the storage.
  const last = t.offset + t.shape.reduce((a, d, i) => a + (d > 0 ? (d - 1) * t.stride[i] : 0), 0);
  if (count > 0 && (t.offset < 0 || last >= n))
    throw new TorchCheckpointError(`tensor "${name}" reaches outside its storage (${n} elements)`);

  let contiguous = true;
  for (let i = t.shape.length - 1, expect = 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) contiguous = false;
    expect *= t.shape[i];
  }
  if (contiguous && dtype === 'float32') {
    // Fast path (every tensor of a saved state_dict): one copy of the bytes.
    new Uint8Array(out.buffer).set(raw.subarray(4 * t.offset, 4 * (t.offset + count)));
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) for (let i = 0; i < count; i++) out[i] = read(t.offset + i);
    return out;
  }
  const idx = new Array<number>(t.shape.length).fill(0);
  for (let k = 0; k < count; k++) {
    let src = t.offset;
    for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
    out[k] = read(src);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}
