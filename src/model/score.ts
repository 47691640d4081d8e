// How a model's logits are scored against labels: top-1 accuracy and mean cross-entropy (natural log), one
// definition shared by the trainer's evaluations and the TTA export's view selection.

export interface Score {
  accuracy: number;
  loss: number;
}

/** Running totals over batches of logits; `score()` gives the means so far. */
export class ScoreTally {
  private correct = 0;
  private lossSum = 0;
  private count = 0;

  constructor(private readonly classes: number) {}

  /** Adds n rows of logits (row-major [n, classes]) with their labels. */
  add(logits: ArrayLike<number>, labels: ArrayLike<number>, n = labels.length): this {
    const C = this.classes;
    for (let k = 0; k < n; k++) {
      let best = 0;
      let max = -Infinity;
      for (let c = 0; c < C; c++) if (logits[k * C + c] > max) [max, best] = [logits[k * C + c], c];
      let z = 0;
      for (let c = 0; c < C; c++) z += Math.exp(logits[k * C + c] - max);
      const label = labels[k];
      this.lossSum += Math.log(z) + max - logits[k * C + label];
      if (best === label) this.correct++;
    }
    this.count += n;
    return this;
  }

  score(): Score {
    return { accuracy: this.correct / this.count, loss: this.lossSum / this.count };
  }
}
