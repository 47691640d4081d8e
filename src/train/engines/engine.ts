// The training engine interface: what the train loop needs from a tensor backend, and nothing more.
// Data, recipe (targets, schedule, augmentation) and export live outside, so a faster engine (the fused
// onnxruntime step) replaces the tfjs one without touching them.

import type { MlpConfig, MlpWeights } from '../../model/mlp.js';

/** One training batch, already augmented and mixed. */
export interface TrainBatch {
  /** Inputs, row-major [size, inputDim], normalised like the served model's input. */
  x: Float32Array;
  /** Soft targets, row-major [size, classes]; rows sum to 1 (label smoothing and MixUp are folded in). */
  y: Float32Array;
  size: number;
}

/** LION hyper-parameters for one step (the schedule sets `lr` every step). */
export interface StepHyper {
  lr: number;
  beta1: number;
  beta2: number;
  /** Decoupled: p ← p·(1 − lr·wd) before the update. */
  weightDecay: number;
  /** Multiplier of lr for everything but the head (fine-tuning uses 0.1). Default 1. */
  bodyLrScale?: number;
}

/** LION's momentum, one buffer per tensor in `namedTensors` order: what a checkpoint needs to resume exactly. */
export type OptimizerState = Float32Array[];

export interface Engine {
  readonly name: string;
  /** Loads weights (and optionally momentum, on resume) into the engine. */
  init(cfg: MlpConfig, weights: MlpWeights, momentum?: OptimizerState): Promise<void>;
  /** One optimiser step on the batch; returns the mean soft-target cross-entropy before the update. */
  step(batch: TrainBatch, hyper: StepHyper): Promise<{ loss: number }>;
  /** Forward pass: logits row-major [n, classes]. */
  predict(x: Float32Array, n: number): Promise<Float32Array>;
  readWeights(): Promise<MlpWeights>;
  readMomentum(): Promise<OptimizerState>;
  dispose(): Promise<void>;
}
