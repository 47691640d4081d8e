// Reads a PyTorch `torch.save(state_dict)` file without Python: the zip container (zip.ts), the pickle subset that
// describes the tensors (pickle.ts, with its allow-list), and views of the raw storages (read by tensors.ts).

import { TorchCheckpointError } from './binary.js';
import { unpickle, type TorchTensorRef } from './pickle.js';
import { zipEntries, zipRead, type ZipEntry } from './zip.js';

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
