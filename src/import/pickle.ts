// The pickle subset PyTorch writes for a state_dict. Nothing in a pickle is executed: a global (GLOBAL,
// STACK_GLOBAL) is refused the moment it is named unless it is on ALLOWED_GLOBALS (OrderedDict, the tensor
// rebuilders, the storage types), and the allowed ones are interpreted here, never looked up as code. So a
// checkpoint cannot run code the way torch.load(weights_only=False) can; a security boundary (test/import/pickle.test.ts).

import { TorchCheckpointError, readU64 } from './binary.js';

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

/** Every global a state_dict pickle may name; any other is refused where it is named, before it could be called. */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
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
        stack.push(str(readU64(buf, p - 8, 'pickle')));
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
