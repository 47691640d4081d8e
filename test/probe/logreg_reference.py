# PyTorch reference for the linear probe: the same L2-regularised multinomial logistic regression, in float64,
# minimised with torch.optim.LBFGS (strong-Wolfe line search) to a tight tolerance.
# Usage: logreg_reference.py IN.json OUT.json, IN = {rows, cols, classes, lambda, x: [...], y: [...]}.
import json
import sys

import torch

torch.set_default_dtype(torch.float64)
spec = json.load(open(sys.argv[1]))
n, d, k, lam = spec["rows"], spec["cols"], spec["classes"], spec["lambda"]
x = torch.tensor(spec["x"]).reshape(n, d)
y = torch.tensor(spec["y"], dtype=torch.long)
W = torch.zeros(k, d, requires_grad=True)
b = torch.zeros(k, requires_grad=True)
opt = torch.optim.LBFGS([W, b], lr=1, max_iter=5000, tolerance_grad=1e-12, tolerance_change=1e-16,
                        history_size=20, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(x @ W.T + b, y) + 0.5 * lam * (W * W).sum()
    loss.backward()
    return loss


opt.step(closure)
with torch.no_grad():
    f = torch.nn.functional.cross_entropy(x @ W.T + b, y) + 0.5 * lam * (W * W).sum()
json.dump({"weight": W.detach().flatten().tolist(), "bias": b.detach().tolist(), "objective": f.item()},
          open(sys.argv[2], "w"))
