"""PyTorch reference for the training benches: images/s of the same B_d-Wi_w training step on CPU.

Same model (linear stem, pre-norm residual blocks with LayerNorm, Linear, exact GELU, Linear; linear head), same
loss (soft-target cross-entropy, mean over the batch) and the same LION update (decoupled weight decay, sign of the
beta1 mix, beta2 momentum) written with in-place tensor ops, as an efficient eager PyTorch user would.

usage: /usr/bin/python3 scripts/bench-train-torch.py --depth 6 --width 512 --input-dim 12288 --classes 10 \
         --batch 128 --steps 10 --threads 1
prints one JSON line: {"threads": .., "images_per_s": .., "step_ms": [..]}
Run with OMP_WAIT_POLICY=PASSIVE: with the default (active) policy two threads are slower than one here.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width: int, expansion: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-5)
        self.expand = nn.Linear(width, expansion * width)
        self.collapse = nn.Linear(expansion * width, width)

    def forward(self, x):
        return x + self.collapse(F.gelu(self.expand(self.norm(x))))


class Mlp(nn.Module):
    def __init__(self, depth: int, width: int, expansion: int, input_dim: int, classes: int):
        super().__init__()
        self.stem = nn.Linear(input_dim, width)
        self.blocks = nn.Sequential(*[Block(width, expansion) for _ in range(depth)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


@torch.no_grad()
def lion_step(params, momenta, lr: float, wd: float, beta1: float, beta2: float):
    for p, m in zip(params, momenta):
        g = p.grad
        p.mul_(1 - lr * wd)
        update = m.mul(beta1).add_(g, alpha=1 - beta1).sign_()
        p.add_(update, alpha=-lr)
        m.mul_(beta2).add_(g, alpha=1 - beta2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--expansion", type=int, default=4)
    ap.add_argument("--input-dim", type=int, required=True)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Mlp(a.depth, a.width, a.expansion, a.input_dim, a.classes)
    params = [p for p in model.parameters()]
    momenta = [torch.zeros_like(p) for p in params]
    x = torch.randn(a.batch, a.input_dim)
    y = F.one_hot(torch.arange(a.batch) % a.classes, a.classes).float() * 0.7 + 0.3 / a.classes

    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        for p in params:
            p.grad = None
        loss = -(y * F.log_softmax(model(x), dim=1)).sum(dim=1).mean()
        loss.backward()
        lion_step(params, momenta, 1e-4, 0.1, 0.9, 0.99)
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    total = sum(times)
    print(json.dumps({
        "threads": a.threads,
        "images_per_s": a.batch * len(times) / total,
        "step_ms": [round(1000 * s, 2) for s in times],
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
