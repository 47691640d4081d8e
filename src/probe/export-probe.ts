// A fitted linear probe as a servable model: the base model's body, unchanged (so its `embedding` output is too),
// with the probe as the `logits` head. The probe standardises features before its linear map; that affine step is
// folded into the head, so the served graph is the exporter's ordinary one and needs no extra node:
//   logits_c = Σ_j W[c,j]·(h_j − μ_j)/σ_j + b_c  =  Σ_j h_j·(W[c,j]/σ_j) + (b_c − Σ_j W[c,j]·μ_j/σ_j)

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CARD_FILE, ONNX_FILE, type ModelCard } from '../model/card.js';
import type { Linear } from '../model/mlp.js';
import { buildCard, readOnnxWeights, writeModelDir } from '../export/export.js';
import type { ProbeFit } from './logreg.js';

/** What the card records about the probe beyond the base model. */
export interface ProbeProvenance {
  /** The images the head was fitted on, e.g. `fashion-mnist train 200` or `upload: 3 labels, 60 images`. */
  data: string;
  /** Images per label, in label order. */
  imagesPerLabel: number[];
  /** Seed of the train/validation split. */
  seed: number;
  /** The command line or request that made it. */
  command?: string;
}

/** The fitted probe as one [width, classes] MatMul + bias, standardisation folded in (float32, as the graph holds it). */
export function foldedHead(fit: Pick<ProbeFit, 'model' | 'standardizer'>): Linear {
  const { classes: k, cols: d, weight, bias } = fit.model;
  const { mean, std } = fit.standardizer;
  const w = new Float32Array(d * k);
  const b = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let shift = 0;
    for (let j = 0; j < d; j++) {
      const v = weight[c * d + j] / std[j];
      w[j * k + c] = v;
      shift += v * mean[j];
    }
    b[c] = bias[c] - shift;
  }
  return { weight: w, bias: b };
}

/** SHA-256 of the base model's card file: which exact base a probe belongs to. */
export async function cardHash(modelDir: string): Promise<string> {
  return createHash('sha256').update(await readFile(join(modelDir, CARD_FILE))).digest('hex');
}

export interface ProbeModelArgs {
  /** The base model's directory (model.onnx + model.json). */
  baseDir: string;
  /** Where to write the new model (created). */
  outDir: string;
  name: string;
  version?: string;
  /** Class names, in the order of the probe's classes. */
  labels: readonly string[];
  fit: Pick<ProbeFit, 'model' | 'standardizer' | 'lambda' | 'path'>;
  provenance: ProbeProvenance;
}

/** Writes the probe as a model directory; returns its card. */
export async function writeProbeModel(a: ProbeModelArgs): Promise<ModelCard> {
  const { cfg, weights, card: embedded } = readOnnxWeights(new Uint8Array(await readFile(join(a.baseDir, ONNX_FILE))));
  const base = embedded ?? (JSON.parse(await readFile(join(a.baseDir, CARD_FILE), 'utf8')) as ModelCard);
  if (a.fit.model.cols !== cfg.width)
    throw new RangeError(`the probe reads ${a.fit.model.cols} features, ${base.name}'s embedding has ${cfg.width}`);
  if (a.labels.length !== a.fit.model.classes) throw new RangeError(`${a.labels.length} labels for a ${a.fit.model.classes}-class probe`);
  const chosen = a.fit.path.find((p) => p.lambda === a.fit.lambda);
  if (!chosen) throw new RangeError(`λ ${a.fit.lambda} is not on the probe's validation path`);
  const probeCfg = { ...cfg, classes: a.labels.length };
  const card = buildCard({
    name: a.name,
    version: a.version,
    cfg: probeCfg,
    labels: a.labels,
    input: base.input,
    normalization: base.normalization,
    ...(base.tta ? { tta: base.tta } : {}),
    provenance: {
      kind: 'probe',
      ...(a.provenance.command ? { command: a.provenance.command } : {}),
      base: { name: base.name, version: base.version, cardSha256: await cardHash(a.baseDir) },
      data: a.provenance.data,
      imagesPerLabel: a.provenance.imagesPerLabel,
      seed: a.provenance.seed,
      lambda: a.fit.lambda,
      lambdaRule: 'validation accuracy (ties: lower loss) on a held-out 20% of the images, then refitted on all',
    },
    metrics: { valAccuracy: chosen.valAccuracy },
  });
  await writeModelDir(a.outDir, probeCfg, { ...weights, head: foldedHead(a.fit) }, card);
  return card;
}
