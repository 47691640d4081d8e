// LION (Chen et al., 2023), the paper's optimiser, as the plain reference update every engine must match:
//   p ← p·(1 − lr·wd)                       decoupled weight decay
//   p ← p − lr·sign(β1·m + (1 − β1)·g)      the update is a sign: every coordinate moves by exactly lr
//   m ← β2·m + (1 − β2)·g                   momentum is updated after, with the slower β2
// The tfjs engine runs this very function on its gradients.

export interface LionHyper {
  lr: number;
  beta1: number;
  beta2: number;
  /** Decoupled weight decay (multiplied by lr, as in the paper's reference). */
  weightDecay: number;
}

/** The paper's betas. */
export const LION_BETAS = { beta1: 0.9, beta2: 0.99 } as const;

/** One LION step on one tensor, in place on `param` and `momentum`. */
export function lionUpdate(param: Float32Array, grad: Float32Array, momentum: Float32Array, h: LionHyper): void {
  const n = param.length;
  if (grad.length !== n || momentum.length !== n)
    throw new RangeError(`lionUpdate: param has ${n} values, grad ${grad.length}, momentum ${momentum.length}`);
  const decay = 1 - h.lr * h.weightDecay;
  const { lr, beta1, beta2 } = h;
  const b1 = 1 - beta1;
  const b2 = 1 - beta2;
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const m = momentum[i];
    const c = beta1 * m + b1 * g;
    // Math.sign(0) is 0: a coordinate with no signal is only decayed, as torch.sign does.
    param[i] = param[i] * decay - lr * Math.sign(c);
    momentum[i] = beta2 * m + b2 * g;
  }
}
