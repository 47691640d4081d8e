"""PyTorch side of `npm run bench:train`: the same B_d-Wi_w training step in eager PyTorch on CPU, at its best.

Same model (linear stem, pre-norm residual blocks with LayerNorm, Linear, exact GELU, Linear; linear head), same
loss (soft-target cross-entropy, mean over the batch), same LION update (decoupled weight decay, sign of the beta1
mix, beta2 momentum) and the same batch as the TypeScript engines (x[i] = sin(i), smoothed one-hot targets).

Knobs, each tried in this one process and all reported (the bench keeps the best):
- threads: 1 and 2 (`torch.set_num_threads`); the caller sets OMP_WAIT_POLICY=PASSIVE, with which two threads are
  not slower than one on a busy 2-core machine.
- LION as `lerp`: one pass per tensor and operation, no allocation (c = lerp(g, m, b1) into a preallocated buffer,
  sign_, p.mul_(decay).sub_(c, alpha=lr), m.lerp_(g, 1 - b2)); or as `foreach`: the same with torch._foreach_* ops
  over all tensors at once (torch 1.13 has no _foreach_sign or _foreach_lerp).
Fixed at their fastest: gradients kept and zeroed in place (`zero_grad(set_to_none=False)`, no reallocation), input
without requires_grad (no stem input gradient, as in the engines), `torch.set_flush_denormal(True)`.

With --gemms "m,k,n;m,k,n;..." it also times torch.mm alone on those products (the step's own shapes, from the
bench) at each thread count: the time of all of them, median over repetitions.

usage: /usr/bin/python3 scripts/bench-train-torch.py --depth 6 --width 512 --input-dim 12288 --classes 10 \
         --batch 128 --steps 10 --warmup 3 [--threads 1,2] [--lion lerp,foreach] [--gemms "128,12288,512;..."]
prints one JSON line: {"torch": .., "runs": [{"threads", "lion", "step_ms", "cpu_ms"}], "gemm": [{"threads", "ms", "cpu_ms"}]}
(cpu_ms: the process's CPU time, all threads: on a busy machine it leaves out the time spent waiting for a core)
"""

import argparse
import json
import math
import statistics
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


class Lion:
    """LION over `params` with preallocated momenta (and, for `lerp`, preallocated direction buffers)."""

    def __init__(self, params, variant: str):
        self.params = params
        self.momenta = [torch.zeros_like(p) for p in params]
        self.buffers = [torch.empty_like(p) for p in params]
        self.variant = variant

    @torch.no_grad()
    def step(self, lr: float, wd: float, beta1: float, beta2: float):
        decay = 1 - lr * wd
        grads = [p.grad for p in self.params]
        if self.variant == "lerp":
            for p, m, g, c in zip(self.params, self.momenta, grads, self.buffers):
                torch.lerp(g, m, beta1, out=c)  # beta1*m + (1-beta1)*g
                c.sign_()
                p.mul_(decay).sub_(c, alpha=lr)
                m.lerp_(g, 1 - beta2)  # beta2*m + (1-beta2)*g
        else:
            c = torch._foreach_mul(self.momenta, beta1)
            torch._foreach_add_(c, grads, alpha=1 - beta1)
            for t in c:
                t.sign_()
            torch._foreach_mul_(self.params, decay)
            torch._foreach_add_(self.params, c, alpha=-lr)
            torch._foreach_mul_(self.momenta, beta2)
            torch._foreach_add_(self.momenta, grads, alpha=1 - beta2)


def batch(n: int, input_dim: int, classes: int):
    x = torch.sin(torch.arange(n * input_dim, dtype=torch.float64)).float().reshape(n, input_dim)
    y = F.one_hot(torch.arange(n) % classes, classes).float() * 0.7 + 0.3 / classes
    return x, y


def time_steps(model, opt, x, y, warmup: int, steps: int):
    """Wall and process CPU time (all threads) of each timed step, ms."""
    times, cpu = [], []
    for i in range(warmup + steps):
        c = time.process_time()
        t = time.perf_counter()
        model.zero_grad(set_to_none=False)
        loss = -(y * F.log_softmax(model(x), dim=1)).sum(dim=1).mean()
        loss.backward()
        opt.step(1e-4, 0.1, 0.9, 0.99)
        if i >= warmup:
            times.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
    if not math.isfinite(loss.item()):
        raise SystemExit("loss is not finite")
    return times, cpu


def time_gemms(shapes, reps: int):
    """Median wall and CPU time of one pass over all the products, ms."""
    mats = [(torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)) for m, k, n in shapes]
    times, cpu = [], []
    for i in range(reps + 2):
        c = time.process_time()
        t = time.perf_counter()
        for a, b, out in mats:
            torch.mm(a, b, out=out)
        if i >= 2:
            times.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
    return statistics.median(times), statistics.median(cpu)


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
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--lion", default="lerp,foreach")
    ap.add_argument("--gemms", default="")
    a = ap.parse_args()

    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    x, y = batch(a.batch, a.input_dim, a.classes)
    runs = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for variant in a.lion.split(","):
            model = Mlp(a.depth, a.width, a.expansion, a.input_dim, a.classes)
            opt = Lion(list(model.parameters()), variant)
            times, cpu = time_steps(model, opt, x, y, a.warmup, a.steps)
            runs.append({"threads": threads, "lion": variant, "step_ms": [round(t, 3) for t in times],
                         "cpu_ms": [round(t, 3) for t in cpu]})
    gemm = []
    if a.gemms:
        shapes = [tuple(int(v) for v in s.split(",")) for s in a.gemms.split(";")]
        for threads in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(threads)
            ms, cpu_ms = time_gemms(shapes, max(a.steps, 5))
            gemm.append({"threads": threads, "ms": round(ms, 3), "cpu_ms": round(cpu_ms, 3)})
    print(json.dumps({"torch": torch.__version__, "runs": runs, "gemm": gemm}))


if __name__ == "__main__":
    main()
