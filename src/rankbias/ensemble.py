"""Many runs at once: an ensemble of R members trained as one batched model.

Members share the architecture (``NetSpec``), the data set, the loss, the
batch size and the budget; each has its own lr, wd and seed.  Member r's layer
k is stored as W_r = s_r V_r with V stacked pre-transposed, (R, in, out), and a
per-member scalar s_r that carries the weight decay:

    h_0 = x[idx_r]                              # (R, B, d): member r's own mini-batch
    z_k = s_k * (h_{k-1} @ V_k)                 # (R, B, n_k), torch.bmm
    h_k = act(z_k)
    delta_k = dL/dz_k                           # autograd, w.r.t. pre-activations only
    s_k <- (1 - lr wd) s_k                      # W <- (1 - lr wd) W - lr grad_W,
    V_k <- V_k - (lr / s_k) h_{k-1}^T delta_k   #  PyTorch's SGD, in one fused baddbmm_

with L = sum_r mean_b loss (members are independent).  No weight-gradient
buffer is ever formed and the update is one pass over V instead of three.
s_k is folded back into V when it falls below 1e-3.

Member r draws its init from ``nets.build(spec, seed_r)`` and, each epoch, the
permutation ``dynamics.batch_indices`` would draw from a generator seeded by
seed_r, exactly as its run alone would, so its trajectory matches the solo
run's up to floating-point reassociation.  A member whose loss turns
non-finite is frozen and reported as diverged; the others go on.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from rankbias.data import Dataset
from rankbias.dynamics import DynamicsSpec, RunResult, accuracy, budget, log_steps, loss_per_sample
from rankbias.nets import Net, NetSpec, activate, build

SHARED = ("kind", "loss", "steps", "epochs", "batch", "log_points", "tail_logs")


def _check(specs: list[DynamicsSpec]) -> None:
    first = specs[0]
    if first.kind == "gf":
        raise ValueError("Invalid ensemble: 'kind' must be gd or sgd; got 'gf'. Train gradient-flow runs one by one.")
    for field in SHARED:
        values = {getattr(s, field) for s in specs}
        if len(values) > 1:
            raise ValueError(
                f"Invalid ensemble: members must share '{field}'; got {sorted(map(str, values))}. "
                f"Split the members into one ensemble per value."
            )


class Ensemble:
    """R members of one ``NetSpec`` with stacked weights (see the module docstring)."""

    def __init__(self, spec: NetSpec, seeds: list[int]):
        self.spec = spec
        nets = [build(spec, s) for s in seeds]
        R = len(seeds)
        # V requires grad only to put the z_k in the autograd graph: grad() is asked for
        # dL/dz_k alone, and the engine skips the weight-gradient edges nobody asked for
        self.V = [
            torch.stack([net.layers[k].weight.detach().T for net in nets]).contiguous().requires_grad_(True)
            for k in range(spec.depth)
        ]
        self.scale = [torch.ones(R, 1, 1) for _ in range(spec.depth)]  # s_k, (R, 1, 1)
        self.bias = (
            [torch.stack([net.layers[k].bias.detach() for net in nets]) for k in range(spec.depth)] if spec.bias else None
        )
        self.trainable = [k for k in range(spec.depth) if not (spec.fixed_outer and k == spec.depth - 1)]
        self._template = nets[0]

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """x (R, B, d_in) -> (R, B, d_out); appends (h_{k-1}, z_k) of each layer to ``keep``."""
        h = x
        for k, v in enumerate(self.V):
            z = torch.bmm(h, v) * self.scale[k]  # (R, B, n_k)
            if self.bias is not None:
                z = z + self.bias[k][:, None, :]
            if keep is not None:
                keep.append((h, z))
            h = activate(self.spec, k, h, z)
        return h

    def step(self, loss: str, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
        """One SGD step of every member on its batch x (R, B, d), y; returns losses (R,).

        lr, wd: (R,); a member with lr = 0 does not move (frozen)."""
        keep: list = []
        losses = loss_per_sample(loss, self.forward(x, keep), y).mean(1)  # (R,)
        finite = torch.isfinite(losses)
        zs = [keep[k][1] for k in self.trainable]
        deltas = torch.autograd.grad(torch.where(finite, losses, 0.0).sum(), zs)  # dL/dz_k, (R, B, n_k)
        with torch.no_grad():
            decay = (1 - lr * wd)[:, None, None]  # (R, 1, 1)
            for k, delta in zip(self.trainable, deltas):
                h = keep[k][0]
                if self.bias is not None:
                    self.bias[k].mul_(decay[:, :, 0]).sub_(lr[:, None] * delta.sum(1))
                self.scale[k].mul_(decay)
                step = delta * (-lr[:, None, None] / self.scale[k])  # (R, B, n_k), lr folded in
                self.V[k].baddbmm_(h.transpose(1, 2), step)  # V += h^T step: the fused update
                small = self.scale[k] < 1e-3
                if bool(small.any()):
                    self.V[k].mul_(torch.where(small, self.scale[k], 1.0))
                    self.scale[k] = torch.where(small, 1.0, self.scale[k])
        return losses.detach()

    def effective(self) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Every member's weights W = s V^T, [(R, n_k, n_{k-1})], and biases."""
        with torch.no_grad():
            weights = [(v * s).transpose(1, 2).contiguous() for v, s in zip(self.V, self.scale)]
        return weights, self.bias

    def member(self, r: int) -> Net:
        """Member r as a standalone ``Net`` (a copy of its current weights)."""
        net = copy.deepcopy(self._template)
        with torch.no_grad():
            for k, layer in enumerate(net.layers):
                layer.weight.copy_((self.V[k][r] * self.scale[k][r]).T)
                if self.bias is not None:
                    layer.bias.copy_(self.bias[k][r])
        return net

    def evaluate(self, data: Dataset, loss: str) -> list[dict]:
        """Every member's train (and test) loss and accuracy, in one batched pass."""
        R = self.V[0].shape[0]
        rows = [dict() for _ in range(R)]
        with torch.no_grad():
            for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
                if len(x) == 0:
                    continue
                out = self.forward(x.expand(R, *x.shape))  # (R, N, d_out)
                values = loss_per_sample(loss, out, y.expand(R, *y.shape)).mean(1)
                for r in range(R):
                    rows[r][f"{split}_loss"] = float(values[r])
                    rows[r][f"{split}_acc"] = accuracy(data.task, out[r], y)
        return rows


def train_ensemble(
    spec: NetSpec, data: Dataset, members: list[DynamicsSpec], on_log: Callable | None = None
) -> list[RunResult]:
    """Train one member per ``DynamicsSpec`` (seed, lr, wd its own) at once.

    Returns one ``RunResult`` per member, as ``dynamics.train`` would; calls
    ``on_log(at, ensemble, alive)`` at each log point, ``alive`` the indices of
    the members still training (``Ensemble.effective`` gives all their weights)."""
    _check(members)
    first = members[0]
    n = len(data.x_train)
    batch, total = budget(first, n)
    R = len(members)
    ens = Ensemble(spec, [m.seed for m in members])
    lr = torch.tensor([m.lr for m in members])  # (R,)
    wd = torch.tensor([m.wd for m in members])
    alive = torch.ones(R, dtype=torch.bool)
    results = [RunResult("done", 0, 0.0) for _ in members]
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    per_epoch = n // batch
    steps_done = torch.zeros(R, dtype=torch.int64)
    logs = set(log_steps(total, first.log_points, first.tail_logs))
    for step in range(total + 1):
        if step in logs:
            for r, row in enumerate(ens.evaluate(data, first.loss)):
                if not bool(alive[r]):
                    continue
                if not torch.isfinite(torch.tensor(row["train_loss"])):
                    _freeze(results[r], alive, r, members[r], step, lr)
                    continue
                results[r].log.append({"at": step, **row})
            if on_log is not None and bool(alive.any()):
                on_log(step, ens, torch.nonzero(alive).flatten().tolist())
        if step == total or not bool(alive.any()):
            break
        if batch == n:
            xb, yb = data.x_train.expand(R, -1, -1), data.y_train.expand(R, *data.y_train.shape)
        else:
            if step % per_epoch == 0:  # each member's permutation, as dynamics.batch_indices draws it
                perms = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (R, n)
            start = (step % per_epoch) * batch
            idx = perms[:, start : start + batch]  # (R, B)
            xb, yb = data.x_train[idx], data.y_train[idx]  # (R, B, d), (R, B[, k])
        losses = ens.step(first.loss, xb, yb, lr, wd)
        if not bool(torch.isfinite(losses).all()):
            for r in torch.nonzero(alive & ~torch.isfinite(losses)).flatten().tolist():
                _freeze(results[r], alive, r, members[r], step, lr)
        steps_done += alive
    for r, m in enumerate(members):
        results[r].steps = int(steps_done[r])
        if results[r].status == "done":
            results[r].horizon = m.lr * m.wd * total
    return results


def _freeze(result: RunResult, alive: torch.Tensor, r: int, member: DynamicsSpec, step: int, lr: torch.Tensor):
    result.status, result.diverged_at = "diverged", step
    result.horizon = member.lr * member.wd * step
    alive[r] = False
    lr[r] = 0.0
