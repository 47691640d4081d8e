// The pickle allow-list is a security boundary: a checkpoint whose pickle names any global outside it (os.system,
// builtins.eval, an arbitrary class) must be refused with a TorchCheckpointError naming that global, before anything
// runs. The hostile pickles are made by CPython's own pickle module (Debian's /usr/bin/python3), at every protocol,
// and CPython loading them proves they are live exploits, so a refusal here is a refusal of a real attack.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TorchCheckpointError } from '../../src/import/binary.js';
import { ALLOWED_GLOBALS, unpickle } from '../../src/import/pickle.js';
import { readTorchStateDict } from '../../src/import/torch-checkpoint.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

// Prints {name: [base64 pickle per protocol 0..5]} plus a torch.save-shaped zip whose data.pkl is hostile.
const MAKE = String.raw`
import base64, builtins, collections, io, json, os, pickle, sys, zipfile
sentinel = sys.argv[1]
class System:
    def __reduce__(self): return (os.system, ('touch ' + sentinel,))
class Eval:
    def __reduce__(self): return (builtins.eval, ("open(" + repr(sentinel) + ", 'w').close()",))
class Unknown:
    def __init__(self): self.x = 1
cases = {
    'os.system': System(),
    'builtins.eval': Eval(),
    'unknown class': Unknown(),
    'os.system inside a state_dict': collections.OrderedDict([('weight', System())]),
}
out = {k: [base64.b64encode(pickle.dumps(v, protocol=p)).decode() for p in range(6)] for k, v in cases.items()}
# Globals spelled by hand: an attribute path off an allowed global, and INST (a global read inline by the opcode).
def short(s): return b'\x8c' + bytes([len(s)]) + s.encode()
out['attribute of an allowed global'] = [base64.b64encode(
    b'\x80\x04' + short('torch._utils') + short('_rebuild_tensor_v2.__globals__') + b'\x93.').decode()]
out['INST os.system'] = [base64.b64encode(b'(S"touch x"\nios\nsystem\n.').decode()]
out['plain dict'] = [base64.b64encode(pickle.dumps(collections.OrderedDict([('a', 1), ('b', 'c')]), protocol=2)).decode()]
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps(collections.OrderedDict([('weight', System())]), protocol=2))
    z.writestr('archive/byteorder', 'little')
    z.writestr('archive/version', '3\n')
out['zip'] = [base64.b64encode(buf.getvalue()).decode()]
print(json.dumps(out))
`;

let dir: string;
let sentinel: string;
let pickles: Record<string, Buffer[]>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pickle-'));
  sentinel = join(dir, 'ran');
  const { stdout } = await run(PYTHON, ['-c', MAKE, sentinel]);
  const raw = JSON.parse(stdout) as Record<string, string[]>;
  pickles = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v.map((b) => Buffer.from(b, 'base64'))]));
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The refusal, as the error our reader throws (undefined if it accepted the pickle). */
function refusal(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

describe('the pickle allow-list', () => {
  it('holds only OrderedDict, the two tensor rebuilders and the storage types', () => {
    const others = [...ALLOWED_GLOBALS].filter((g) => !/^torch\.[A-Za-z0-9]+Storage$/.test(g)).sort();
    expect(others).toEqual(['collections.OrderedDict', 'torch._utils._rebuild_parameter', 'torch._utils._rebuild_tensor_v2']);
  });

  it('the hostile fixtures are live: CPython running one of them does run the command', async () => {
    const [p2] = pickles['os.system'].slice(2, 3);
    await run(PYTHON, ['-c', 'import base64,pickle,sys; pickle.loads(base64.b64decode(sys.argv[1]))', p2.toString('base64')]);
    expect(existsSync(sentinel)).toBe(true);
    rmSync(sentinel);
  });

  for (const [name, global] of [
    ['os.system', /refers to (posix|os)\.system\b/],
    ['builtins.eval', /refers to (builtins|__builtin__)\.eval\b/],
    ['unknown class', /refers to (__main__\.Unknown|copy_?reg\._reconstructor)\b/],
    ['os.system inside a state_dict', /refers to (posix|os)\.system\b/],
  ] as const) {
    it(`EXPECTED FAILURE - ${name}: refused at every protocol, naming the global, and nothing runs`, () => {
      const all = pickles[name];
      expect(all).toHaveLength(6);
      all.forEach((bytes, protocol) => {
        const err = refusal(() => unpickle(bytes));
        expect(err, `protocol ${protocol}`).toBeInstanceOf(TorchCheckpointError);
        // Protocol 0's text opcodes (PUT, STRING) are outside the subset: such a pickle may be refused at one of them first.
        if (protocol >= 1) expect(err?.message, `protocol ${protocol}`).toMatch(global);
      });
      expect(existsSync(sentinel)).toBe(false);
    });
  }

  it('EXPECTED FAILURE - an attribute path off an allowed global is another global, refused', () => {
    const err = refusal(() => unpickle(pickles['attribute of an allowed global'][0]));
    expect(err).toBeInstanceOf(TorchCheckpointError);
    expect(err?.message).toMatch(/refers to torch\._utils\._rebuild_tensor_v2\.__globals__/);
  });

  it('EXPECTED FAILURE - INST, which names a global inline, is not an opcode the subset reads', () => {
    const err = refusal(() => unpickle(pickles['INST os.system'][0]));
    expect(err).toBeInstanceOf(TorchCheckpointError);
    expect(err?.message).toMatch(/opcode 0x(53|69) .* is not supported/);
  });

  it('EXPECTED FAILURE - a torch.save-shaped zip with a hostile data.pkl is refused by readTorchStateDict', () => {
    const err = refusal(() => readTorchStateDict(pickles.zip[0]));
    expect(err).toBeInstanceOf(TorchCheckpointError);
    expect(err?.message).toMatch(/refers to (posix|os)\.system\b/);
    expect(existsSync(sentinel)).toBe(false);
  });

  it('an OrderedDict of plain values (allowed globals only) is read', () => {
    const value = unpickle(pickles['plain dict'][0]);
    expect(value).toEqual(new Map<unknown, unknown>([['a', 1], ['b', 'c']]));
  });
});
