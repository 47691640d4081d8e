// A model's embedding output computed in this process: the served model's own preprocessing (decodeToChw +
// normalizeChw, as the server applies them) and onnxruntime on its model.onnx. Used by the batch-embedding CLI and
// by the probe's local features, so both compute what `/embed` answers.

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { ImageList } from '../data/dataset.js';
import { decodeToChw, normalizeChw } from '../data/preprocess.js';
import { EMBEDDING_NAME, INPUT_NAME } from '../export/export.js';
import { ONNX_FILE, inputDim, readCard, type ModelCard } from '../model/card.js';
import { pool } from '../util/pool.js';

export interface EmbedderOptions {
  /** onnxruntime intra-op threads (default: all cores). Results do not depend on it. */
  threads?: number;
  /** Images decoded at once (sharp runs them on libuv's pool; default 8). */
  decodeConcurrency?: number;
}

export interface Embedder {
  readonly card: ModelCard;
  /** Width of one embedding row. */
  readonly dim: number;
  /** Embeddings of images[start .. start+count), row-major [count, dim]. */
  embed(images: ImageList, start: number, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openEmbedder(modelDir: string, o: EmbedderOptions = {}): Promise<Embedder> {
  const card = await readCard(modelDir);
  const session = await ort.InferenceSession.create(join(modelDir, ONNX_FILE), {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads ?? availableParallelism(),
    graphOptimizationLevel: 'all',
  });
  const d = inputDim(card);
  const dim = card.embeddingDim;
  return {
    card,
    dim,
    async embed(images, start, count) {
      const x = new Float32Array(count * d);
      await pool(count, o.decodeConcurrency ?? 8, async (k) => {
        const chw = await decodeToChw(await images.image(start + k), card.input);
        normalizeChw(chw, card.input, card.normalization, x, k * d);
      });
      const out = await session.run({ [INPUT_NAME]: new ort.Tensor('float32', x, [count, d]) }, [EMBEDDING_NAME]);
      return out[EMBEDDING_NAME].data as Float32Array;
    },
    close: () => session.release(),
  };
}
