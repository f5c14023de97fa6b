"""Many runs at once: an ensemble of R members trained as one batched model.

Members share the architecture (``NetSpec``), the data set, the loss, the
batch size and the budget; each has its own lr, wd and seed.  Member r's layer
k is stored as W_r = s_r V_r with V stacked pre-transposed, (R, in, out), and a
per-member scalar s_r that carries the weight decay:

    h_0 = x[idx_r]                              # (R, B, d): member r's own mini-batch
    z_k = s_k * (h_{k-1} @ V_k)                 # (R, B, n_k), torch.bmm
    h_k = act(z_k)                              # z, relu(z), or h_{k-1} + relu(z)
    s_k' = (1 - lr wd) s_k                      # W <- (1 - lr wd) W - lr grad_W: PyTorch's SGD
    g_k = -(lr / s_k') dL/dh_k                  # the backward pass in units of V_k's update
    e_k = g_k * [z_k > 0 if ReLU]               #   = -(lr / s_k') dL/dz_k
    g_{k-1} = (s_k' / s_{k-1}') (s_k e_k @ V_k^T [+ g_k if residual])
    V_k <- V_k + h_{k-1}^T e_k                  # the whole update, V rounded once (below)

with L = sum_r mean_b loss (members are independent) and dL/dh_L in closed
form (``losses.loss_and_grad``).  The backward pass is written out instead
of asked of autograd: it needs only the e_k, builds no graph, and measured 25%
faster per step; carrying it in units of the update saves a pass per layer.
The update is one pass over V instead of three, and V is rounded once per step.
The fused ``V.baddbmm_(h^T, e)`` does that in one pass where the BLAS adds the whole
product to V at once, but MKL rounds V several times per step for a narrow layer
(<= 10 outputs, per sample) and for a large batch (>= 400 samples, per block of
them); a one-column layer lost about 1% of each small update to that biased
rounding (Le & Jegelka's conserved quantity drifted 50x too far in 40k float32
steps; tests/test_ensemble.py holds the member to its solo run).  So each layer's
update takes the fused call only where it is bitwise the product added once, as
measured on a random probe of that layer's shapes when a batch size is first seen
(``_rounds_once``), and ``torch.bmm`` then ``add_`` elsewhere (the fused call saved
10% of a 64-member, B = 16 SGD benchmark; measured).
s_k is folded back into V when it falls below 1e-3.
A member that stops early (at a gate, or diverged) is retired from the stacks that
step (``Ensemble.retire``): its V, s and bias are kept as they stopped, and the
steps go on over the others only (a gated group whose members pass the gate at
45k and 100k steps did half its arithmetic after the first ones stopped).

Member r draws its init from ``nets.init_params(spec, seed_r)``, as
``nets.build`` does, and, each epoch, the permutation ``torch.randperm(n)`` that a
CPU generator seeded by seed_r draws (``_Batches``), exactly as its run alone would,
so its trajectory matches the solo run's up to floating-point reassociation
(over long unstable runs, e.g. B = 1 at lr 0.1, that difference can grow until
the two runs end differently).  A member whose loss turns non-finite is frozen
and reported as diverged at that step; the others go on.

Devices: the ensemble lives on the device of the data it is given (CPU or
GPU); the init and every epoch's permutations are drawn on the CPU from the
members' seeded generators and copied over, so a seed means the same run on
every device.  A step never waits for the device: the weight-decay bookkeeping
is done on the host, and each member's first non-finite step is kept on the
device and read at log points, gate checks and every ``CHECK_EVERY`` steps.
This is the engine's one GD / SGD trainer: a single run is an ensemble of one
(``rankbias.experiments.execute``); the tests' reference is a per-run ``torch.optim.SGD``
loop (tests/reference.py).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from rankbias.engine.allocator import retain_freed_memory
from rankbias.engine.data import Dataset
from rankbias.engine.dynamics import GATE_CHECKS, DynamicsSpec, RunResult, budget, log_steps
from rankbias.engine.losses import evaluate_members, loss_and_grad
from rankbias.engine.members import CHECK_EVERY, Members
from rankbias.engine.functional import FuncEnsemble
from rankbias.engine.nets import MLP_ARCHS, Net, NetSpec, activate, build, init_params

SHARED = ("kind", "loss", "steps", "epochs", "batch", "log_points", "tail_logs", "gate", "max_steps", "optimizer",
          "nesterov", "schedule", "step_every", "gamma", "gate_measure", "dtype", "log_spacing")


def _check(specs: list[DynamicsSpec]) -> None:
    first = specs[0]
    if first.kind == "gf":
        raise ValueError("Invalid ensemble: 'kind' must be gd or sgd; got 'gf'. Train gradient-flow runs one by one.")
    for field in SHARED:  # as each kind reads them: an SGD run ignores the gate, so its value does not matter
        values = {s.identity().get(field) for s in specs}
        if len(values) > 1:
            raise ValueError(
                f"Invalid ensemble: members must share '{field}'; got {sorted(map(str, values))}. "
                f"Split the members into one ensemble per value."
            )


class Ensemble:
    """R members of one ``NetSpec`` with stacked weights (see the module docstring)."""

    def __init__(self, spec: NetSpec, seeds: list[int], device="cpu"):
        self.spec = spec
        params = [init_params(spec, s) for s in seeds]  # what build(spec, s) starts from, drawn on the CPU
        R = len(seeds)
        self.V = [torch.stack([p[k][0].T for p in params]).contiguous().to(device)
                  for k in range(spec.depth)]  # (R, in, out)
        self.scale = [torch.ones(R, 1, 1, device=device) for _ in range(spec.depth)]  # s_k, (R, 1, 1)
        self._floor = 1.0  # a lower bound of every |s_k|, kept on the host: no device sync per step
        self.bias = [torch.stack([p[k][1] for p in params]).to(device) for k in range(spec.depth)] if spec.bias else None
        self.trainable = [k for k in range(spec.depth) if not (spec.fixed_outer and k == spec.depth - 1)]
        self._delta: dict[int, torch.Tensor] = {}  # h^T e_k, rounded once into V_k where baddbmm_ would not be
        self._once: dict[tuple[int, int, int], bool] = {}  # (layer, batch, R) -> whether baddbmm_ rounds V_k once
        self.live = list(range(R))  # the members that step, in the order of the stacks' rows
        self._all: tuple | None = None  # (V, scale, bias) of every member once some are retired

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """x (R, B, d_in) -> (R, B, d_out) for the members that step (``live``); appends (h_{k-1}, z_k)
        of each layer to ``keep``."""
        return self._forward(x, self.V, self.scale, self.bias, keep)

    def _forward(self, x: torch.Tensor, V: list, scale: list, bias: list | None, keep: list | None = None):
        h = x
        for k, v in enumerate(V):
            z = torch.bmm(h, v).mul_(scale[k])  # (R, B, n_k)
            if bias is not None:
                z.add_(bias[k][:, None, :])
            if keep is not None:
                keep.append((h, z))
            h = activate(self.spec, k, h, z, inplace=keep is None)  # nothing keeps z: overwrite it
        return h

    def retire(self, live: list[int]) -> None:
        """Step only the members ``live`` (a subset of ``self.live``) from now on: the others'
        V, s and bias stay as they are, outside the stacks that step.  Each member's arithmetic
        is its own (a batched product per member), so the ones left step exactly as before."""
        rows = torch.tensor([self.live.index(r) for r in live], device=self.V[0].device)
        self._all = self._stacks()  # the retiring members' state, written back
        self.V = [v.index_select(0, rows) for v in self.V]
        self.scale = [s.index_select(0, rows) for s in self.scale]
        if self.bias is not None:
            self.bias = [b.index_select(0, rows) for b in self.bias]
        self.live, self._delta = list(live), {}

    def _stacks(self) -> tuple[list, list, list | None]:
        """(V, scale, bias) of every member: the live ones' current state, the retired ones' as they stopped."""
        if self._all is None:
            return self.V, self.scale, self.bias
        rows = torch.tensor(self.live, device=self.V[0].device)

        def merged(every, live):
            return [a.index_copy(0, rows, b) for a, b in zip(every, live)]

        bias = merged(self._all[2], self.bias) if self.bias is not None else None
        return merged(self._all[0], self.V), merged(self._all[1], self.scale), bias

    def step(self, loss: str, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor,
             smallest_decay: float) -> torch.Tensor:
        """One SGD step of every member on its batch x (R, B, d), y; returns losses (R,).

        lr, wd: (R,) on the device; ``smallest_decay`` = min_r |1 - lr_r wd_r|, from the
        host's copy of them (no device read).  A member with lr = 0 does not move
        (frozen), nor does one whose loss is not finite (its gradient is zeroed)."""
        with torch.no_grad():
            keep: list = []
            per_sample, g = loss_and_grad(loss, self.forward(x, keep), y)  # (R, B), (R, B, d_out)
            losses = per_sample.mean(1)  # (R,)
            finite = torch.isfinite(losses)[:, None, None]
            decay = (1 - lr * wd)[:, None, None]  # (R, 1, 1)
            self._floor *= smallest_decay
            old = list(self.scale)  # s_k; self.scale becomes s_k'
            for k in self.trainable:
                self.scale[k] = old[k] * decay
            top = self.spec.depth - 1
            g = torch.where(finite, g, 0.0).mul_(-lr[:, None, None] / (self.scale[top] * x.shape[1]))  # g_L
            for k in reversed(range(self.spec.depth)):
                h, z = keep[k]
                e = torch.ops.aten.threshold_backward(g, z, 0.0) if self.spec.relu_after(k) else g  # (R, B, n_k)
                if k > 0:
                    to_below = self.scale[k] / self.scale[k - 1]  # s_k' / s_{k-1}'
                    back = torch.bmm(e, self.V[k].transpose(1, 2))  # (R, B, n_{k-1})
                    g = back.mul_(old[k]).add_(g).mul_(to_below) if self.spec.residual_at(k) else back.mul_(old[k] * to_below)
                if k in self.trainable:
                    if self.bias is not None:  # b <- (1 - lr wd) b - lr dL/db, and -lr dL/dz_k = s_k' e_k
                        self.bias[k].mul_(decay[:, :, 0]).add_(self.scale[k][:, :, 0] * e.sum(1))
                    if self._rounds_once(k, h.shape[1]):  # V_k += h^T e_k, V_k rounded once
                        self.V[k].baddbmm_(h.transpose(1, 2), e)
                    else:
                        if k not in self._delta:
                            self._delta[k] = torch.empty_like(self.V[k])
                        self.V[k].add_(torch.bmm(h.transpose(1, 2), e, out=self._delta[k]))
            if self._floor < 1e-3:
                self._fold_scales()
        return losses

    def _rounds_once(self, k: int, batch: int) -> bool:
        """Whether ``V_k.baddbmm_(h^T, e)`` for a batch of ``batch`` samples gives, bit for bit,
        ``V_k + (h^T e)`` rounded once (module docstring), on a random probe of these shapes,
        dtype and device, drawn once from a fixed CPU seed (the runs' generators are untouched)."""
        R, n_in, n_out = self.V[k].shape
        if (k, batch, R) not in self._once:
            g = torch.Generator("cpu").manual_seed(k)
            h, e, v = (torch.randn(shape, generator=g, device="cpu").to(self.V[k]) for shape in
                       ((R, batch, n_in), (R, batch, n_out), (R, n_in, n_out)))
            e.mul_(1e-3)  # an update small against V, as a step's is
            fused = v.clone().baddbmm_(h.transpose(1, 2), e)
            self._once[(k, batch, R)] = torch.equal(fused, v.add_(torch.bmm(h.transpose(1, 2), e)))
        return self._once[(k, batch, R)]

    def _fold_scales(self) -> None:
        """Fold every s_k with |s_k| < 1e-3 back into V_k (W = s V is unchanged) before s_k
        underflows; a NaN s_k (a diverged member's) is folded too, so the floor stays a number."""
        for k in self.trainable:
            small = ~(self.scale[k].abs() >= 1e-3)  # (R, 1, 1)
            self.V[k].mul_(torch.where(small, self.scale[k], 1.0))
            self.scale[k] = torch.where(small, 1.0, self.scale[k])
        self._floor = float(torch.stack([self.scale[k].abs().min() for k in self.trainable]).min())  # one read

    def effective(self) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Every member's weights W = s V^T, [(R, n_k, n_{k-1})], and biases."""
        V, scale, bias = self._stacks()
        with torch.no_grad():
            weights = [(v * s).transpose(1, 2).contiguous() for v, s in zip(V, scale)]
        return weights, bias

    def member(self, r: int) -> Net:
        """Member r as a standalone ``Net`` on the ensemble's device (a copy of its current weights)."""
        net = build(self.spec, 0, self.V[0].device)  # the architecture; its weights are overwritten below
        V, scale, bias = self._stacks()
        with torch.no_grad():
            for k, layer in enumerate(net.layers):
                layer.weight.copy_((V[k][r] * scale[k][r]).T)
                if bias is not None:
                    layer.bias.copy_(bias[k][r])
        return net

    def evaluate(self, data: Dataset, loss: str) -> list[dict]:
        """Every member's train (and test) loss and accuracy (``losses.evaluate_members``)."""
        stacks = self._stacks()
        return evaluate_members(lambda x: self._forward(x, *stacks), stacks[0][0].shape[0], data, loss)


def train_ensemble(spec: NetSpec, data: Dataset, members: list[DynamicsSpec], on_log: Callable | None = None,
                   stationarity: Callable | None = None) -> list[RunResult]:
    """Train one member per ``DynamicsSpec`` (seed, lr, wd its own) at once, on the
    device ``data`` lives on.

    Returns one ``RunResult`` per member, as each would train alone; calls
    ``on_log(at, ensemble, alive)`` at each log point, ``alive`` the indices of
    the members still training (``Ensemble.effective`` gives all their weights).
    Gated members (``DynamicsSpec.gated``, see ``rankbias.engine.dynamics``) need
    ``stationarity(ensemble) -> (R,)`` array; a member that passes the gate after
    its budget is logged at that step and stops there."""
    _check(members)
    retain_freed_memory()  # no page faults for the tensors each step frees (engine.allocator)
    first, device = members[0], data.x_train.device
    batch, total = budget(first, len(data.x_train))
    gate = Gate(first, total, stationarity) if first.gated else None
    cap = gate.cap if gate else total
    ens = make_ensemble(spec, members, data, total)
    real = np.float64 if data.x_train.dtype == torch.float64 else np.float32
    rates, decays = (np.array([getattr(m, f) for m in members], dtype=real) for f in ("lr", "wd"))  # host copies
    lr, wd = torch.from_numpy(rates).to(device), torch.from_numpy(decays).to(device)  # (R,)
    run = Members(members, lr, rates, decays, device)
    batches = _Batches(data, members, batch)
    logs = set(log_steps(cap, first.log_points, first.tail_logs, first.log_spacing))
    live, step_lr, step_wd = torch.arange(len(members), device=device), lr, wd  # the members that step

    def log(step: int, who: list[int]) -> None:
        rows = ens.evaluate(data, first.loss)
        for r in who:
            if math.isfinite(rows[r]["train_loss"]):
                run.results[r].log.append({"at": step, **rows[r]})
            else:
                run.freeze(r, step)
        if on_log is not None and run.alive:
            on_log(step, ens, [r for r in who if r in run.alive])

    for step in range(cap + 1):
        if step in logs or step % CHECK_EVERY == 0 or (gate is not None and gate.due(step)):
            run.read_divergence()  # the one device read between log points
        if step in logs:
            log(step, list(run.alive))
        if gate is not None and run.alive and gate.due(step):
            stop = gate.check(step, ens, run.alive, run.results)
            if stop and step not in logs:
                log(step, stop)
            for r in stop:
                if r in run.alive:  # done at the gate: it stops here, its weights frozen (lr = 0)
                    run.stop(r, step)
        if step == cap or not run.alive:
            break
        if len(run.alive) < len(live) and isinstance(ens, Ensemble):  # step only the members still training
            ens.retire(list(run.alive))
            live = torch.tensor(ens.live, device=device)
            step_lr, step_wd = lr[live], wd[live]
        losses = ens.step(first.loss, *batches.at(step, live), step_lr, step_wd, run.smallest_decay)
        run.note_losses(step, losses, live)
    run.read_divergence()
    for r in list(run.alive):  # trained to the end of the budget (gated: to the cap, off the gate)
        run.stop(r, cap)
    return run.results


def written_out(spec: NetSpec, members: list[DynamicsSpec]) -> bool:
    """Whether the written-out MLP ``Ensemble`` trains these members: an MLP arch under plain
    GD / SGD (measured faster than torch.func there); everything else trains as a
    ``functional.FuncEnsemble``."""
    return spec.arch in MLP_ARCHS and all(m.plain for m in members)


def make_ensemble(spec: NetSpec, members: list[DynamicsSpec], data: Dataset, total: int):
    """The ensemble that trains ``members`` on ``data`` (``written_out``), initialized from their seeds."""
    if written_out(spec, members):
        return Ensemble(spec, [m.seed for m in members], data.x_train.device)
    return FuncEnsemble(spec, members, data, total)


class _Batches:
    """Each member's training batch at a step: the whole set for GD; for SGD, each epoch a
    fresh permutation ``torch.randperm(n)`` from the member's own CPU generator, seeded by
    its seed (the same batches on every device), cut into floor(n / B) batches of B (the
    n mod B samples left over are skipped), exactly as its run alone draws them."""

    def __init__(self, data: Dataset, members: list[DynamicsSpec], batch: int):
        self.data, self.batch, self.R, self.n = data, batch, len(members), len(data.x_train)
        self.gens = [torch.Generator().manual_seed(m.seed) for m in members]
        self.per_epoch = self.n // batch

    def at(self, step: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (R', B, d), targets (R', B) or (R', B, k)) of step ``step`` for the members
        ``rows`` (R',); steps come in order."""
        x, y = self.data.x_train, self.data.y_train
        if self.batch == self.n:
            return x.expand(len(rows), -1, -1), y.expand(len(rows), *y.shape)
        if step % self.per_epoch == 0:  # each member's permutation of this epoch, (R, n)
            perms = [torch.randperm(self.n, generator=g, device="cpu") for g in self.gens]
            self.perms = torch.stack(perms).to(x.device)
        start = (step % self.per_epoch) * self.batch
        idx = self.perms[rows, start : start + self.batch] if len(rows) < self.R else self.perms[:, start : start + self.batch]
        return x[idx], y[idx]  # (R', B, ...)


class Gate:
    """The stationarity gate of gated gd members (see ``rankbias.engine.dynamics``): checked
    every ``interval`` steps; a member passing it at or after the budget stops."""

    def __init__(self, spec: DynamicsSpec, total: int, stationarity: Callable | None):
        if stationarity is None:
            raise ValueError("Invalid ensemble: gated members need a stationarity measure. Pass `stationarity`.")
        self.limit, self.total, self.cap, self.measure = spec.gate, total, spec.max_steps, stationarity
        self.interval = max(1, total // GATE_CHECKS)

    def due(self, step: int) -> bool:
        return step % self.interval == 0 or step == self.cap

    def check(self, step: int, ens: "Ensemble", alive: list[int], results: list[RunResult]) -> list[int]:
        """Record first passes among ``alive``; return the members that stop at ``step``."""
        values = self.measure(ens)  # (R,)
        passed = [r for r in alive if values[r] <= self.limit]
        for r in passed:
            if results[r].gate_step is None:
                results[r].gate_step = step
        return passed if step >= self.total else []
