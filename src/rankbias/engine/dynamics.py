"""Training dynamics with weight decay: GD, SGD and gradient flow.

Weight decay follows PyTorch: the update uses grad L + wd W (a paper's
regularizer lambda ||W||_F^2 is wd = 2 lambda).  The horizon lr * wd * T
(gradient flow: wd * t) is recorded with every run.

- ``gd``:  full-batch steps  W <- W - lr (grad L(W) + wd W),  T = ``steps``.
- ``sgd``: mini-batches of ``batch`` drawn without replacement, a fresh seeded
  permutation each epoch (the last N mod B samples of an epoch are left out,
  so every step sees exactly B); the budget is ``epochs`` (T = epochs floor(N/B))
  or ``steps``, exactly one of them.
  ``tail_logs`` adds a log point at each of the last ``tail_logs`` steps, for
  quantities averaged over the end of a run (e.g. the SGD iterate's rank).
- ``gf``:  the ODE d theta/dt = -(grad L(theta) + wd theta), integrated by
  torchdiffeq's adaptive ``method`` (default dopri5) up to ``flow_time`` with
  tolerances ``rtol``, ``atol``; the solver's evaluations are counted.

Running to a stationary point (gd and gf; sgd ignores these fields): with
``gate`` set, a run checks ||grad L + wd theta|| / ||grad L|| (the stationarity
of L + wd/2 ||theta||^2, relative) every 1/``GATE_CHECKS`` of its budget, and
after its budget (``steps``, ``flow_time``) goes on until a check finds it
<= ``gate``, up to ``max_steps`` / ``max_flow_time``; the first step (or flow
time) where a check found it <= ``gate`` is kept as ``RunResult.gate_step``.

Losses, averaged over the samples: ``ce`` (cross-entropy on logits, int
labels), ``logistic`` (log(1 + exp(-y f)) with y = +-1), ``mse``
(||f - y||^2 / 2).  A run whose loss turns non-finite stops and is reported as
diverged with its step; the caller goes on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchdiffeq import odeint

from rankbias.engine.data import Dataset

KINDS = ("gd", "sgd", "gf")
GATE_CHECKS = 200  # gate checks per budget: every 100 steps of a 20k-step run
LOSSES = ("ce", "logistic", "mse")


@dataclass(frozen=True)
class DynamicsSpec:
    kind: str
    loss: str
    wd: float = 0.0
    lr: float | None = None
    steps: int | None = None
    epochs: int | None = None
    batch: int | None = None
    flow_time: float | None = None
    method: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-8
    log_points: int = 20
    tail_logs: int | None = None
    gate: float | None = None
    max_steps: int | None = None
    max_flow_time: float | None = None
    seed: int = 0

    def __post_init__(self):
        p = []
        if self.kind not in KINDS:
            p.append(f"'kind' must be one of {list(KINDS)}; got {self.kind!r}")
        if self.loss not in LOSSES:
            p.append(f"'loss' must be one of {list(LOSSES)}; got {self.loss!r}")
        if not (math.isfinite(self.wd) and self.wd >= 0):
            p.append(f"'wd' must be a finite float >= 0; got {self.wd!r}")
        if self.kind in ("gd", "sgd") and not (self.lr is not None and math.isfinite(self.lr) and self.lr > 0):
            p.append(f"'lr' must be a finite float > 0 for {self.kind}; got {self.lr!r}")
        if self.kind == "gd" and not (self.steps and self.steps > 0):
            p.append(f"'steps' must be an int > 0 for gd; got {self.steps!r}")
        if self.kind == "sgd":
            if not (self.batch and self.batch > 0):
                p.append(f"'batch' must be an int > 0 for sgd; got {self.batch!r}")
            if (self.steps is None) == (self.epochs is None):
                p.append(f"sgd needs exactly one of 'steps' and 'epochs'; got steps={self.steps}, epochs={self.epochs}")
            elif (self.steps or self.epochs) <= 0:
                p.append(f"sgd's budget must be > 0; got steps={self.steps}, epochs={self.epochs}")
        if self.kind == "gf" and not (self.flow_time and self.flow_time > 0):
            p.append(f"'flow_time' must be a float > 0 for gf; got {self.flow_time!r}")
        if self.log_points < 2:
            p.append(f"'log_points' must be >= 2; got {self.log_points}")
        if self.tail_logs is not None and (self.kind == "gf" or self.tail_logs < 1):
            p.append(f"'tail_logs' must be an int >= 1, for gd or sgd only; got {self.tail_logs!r} for {self.kind}")
        if self.kind != "sgd":
            p.extend(self._gate_problems())
        if p:
            raise ValueError("Invalid DynamicsSpec: " + "; ".join(p) + ". Fix these fields of the dynamics spec.")

    def _gate_problems(self) -> list[str]:
        """A gate needs its cap (max_steps for gd, max_flow_time for gf) at or past the budget, and vice versa."""
        cap_name, budget = ("max_steps", self.steps) if self.kind == "gd" else ("max_flow_time", self.flow_time)
        cap = getattr(self, cap_name)
        if self.gate is None and cap is None:
            return []
        if self.gate is None or not (math.isfinite(self.gate) and self.gate > 0):
            return [f"'gate' must be a finite float > 0 when '{cap_name}' is set; got {self.gate!r}"]
        if cap is None or budget is None or not cap >= budget:
            return [f"'{cap_name}' must be set and >= the budget {budget!r} when 'gate' is; got {cap!r}"]
        return []

    @property
    def gated(self) -> bool:
        """Whether the run goes on past its budget to the stationarity gate (gd and gf only)."""
        return self.gate is not None and self.kind != "sgd"

    def identity(self) -> dict:
        """The fields this kind of dynamics uses (solver settings only for gf,
        lr and budgets only for gd/sgd): what names a run."""
        unused = {"gd": ("epochs", "batch", "flow_time", "method", "rtol", "atol", "max_flow_time"),
                  "sgd": ("flow_time", "method", "rtol", "atol", "gate", "max_steps", "max_flow_time"),
                  "gf": ("lr", "steps", "epochs", "batch", "max_steps")}[self.kind]
        return {k: v for k, v in asdict(self).items() if k not in unused and v is not None}


@dataclass
class RunResult:
    """What a training run produced: status ("done" | "diverged"), how far it got,
    its horizon, and one row per log point (step or flow time, losses, accuracies)."""

    status: str
    steps: int | float
    horizon: float
    log: list[dict] = field(default_factory=list)
    diverged_at: int | float | None = None
    solver: dict = field(default_factory=dict)
    gate_step: int | float | None = None  # first gate check that passed (gated runs)

    def to_dict(self) -> dict:
        return asdict(self)


def loss_per_sample(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss of each sample: outputs out (..., k), targets y (...) or (..., k) -> (...)."""
    if name == "ce":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)
    if name == "logistic":
        return F.softplus(-y * out.squeeze(-1))
    return 0.5 * ((out - y) ** 2).sum(-1)


def loss_and_grad(name: str, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's loss (...) and its gradient d loss / d out (..., k), in closed form:
    ce: softmax(out) - onehot(y); logistic: -y sigmoid(-y f); mse: out - y."""
    if name == "ce":  # spelled out: torch's softmax over a last axis of ~10 classes is 2x slower
        shifted = out - out.amax(-1, keepdim=True)  # (..., k)
        p = shifted.exp()
        total = p.sum(-1, keepdim=True)  # (..., 1)
        loss = total.log().squeeze(-1) - shifted.gather(-1, y[..., None]).squeeze(-1)
        return loss, p.div_(total).scatter_add_(-1, y[..., None], torch.full_like(total, -1.0))
    if name == "logistic":
        margin = -y * out.squeeze(-1)  # (...)
        return F.softplus(margin), (-y * torch.sigmoid(margin))[..., None]
    diff = out - y
    return 0.5 * (diff**2).sum(-1), diff


def loss_value(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss of outputs out (N, k) against targets y; see the module docstring."""
    return loss_per_sample(name, out, y).mean()


def accuracy(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction correct over the sample axis: outputs out (..., N, k), targets y (..., N)
    -> (...); argmax for classes, sign for binary, NaN for regression."""
    if task == "classes":
        return (out.argmax(-1) == y).float().mean(-1)
    if task == "binary":
        return (torch.sign(out.squeeze(-1)) == y).float().mean(-1)
    return torch.full(out.shape[:-2], float("nan"), device=out.device)


def log_steps(total: int, points: int, tail: int | None = None) -> list[int]:
    """Geometrically spaced log steps in [1, total], plus 0 and total, plus every
    one of the last ``tail`` steps (for averages over the end of a run), sorted, unique."""
    grid = np.unique(np.round(np.geomspace(1, max(total, 1), points)).astype(int))
    dense = range(max(total - tail + 1, 0), total + 1) if tail else ()
    return sorted({0, total, *grid.tolist(), *dense})


def _evaluate(net, data: Dataset, loss: str, at) -> dict:
    with torch.no_grad():
        out_train, out_test = net(data.x_train), net(data.x_test) if len(data.x_test) else None
        row = {
            "at": at,
            "train_loss": float(loss_value(loss, out_train, data.y_train)),
            "train_acc": float(accuracy(data.task, out_train, data.y_train)),
        }
        if out_test is not None:
            row["test_loss"] = float(loss_value(loss, out_test, data.y_test))
            row["test_acc"] = float(accuracy(data.task, out_test, data.y_test))
    return row


def train(net: torch.nn.Module, data: Dataset, spec: DynamicsSpec, on_log: Callable | None = None) -> RunResult:
    """Train ``net`` in place on ``data`` by ``spec``; call ``on_log(at, net)`` at
    every log point (step for gd/sgd, flow time for gf) after recording losses."""
    if spec.kind == "gf":
        return _flow(net, data, spec, on_log)
    if spec.gated:
        raise ValueError("Invalid run: a gated gd run trains as an ensemble (rankbias.engine.ensemble.train_ensemble), "
                         "which checks the gate; got one for the per-run loop. Use rankbias.experiments.run.run_one.")
    n = len(data.x_train)
    batch, total = budget(spec, n)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.wd)
    gen = torch.Generator().manual_seed(spec.seed)
    logs, result = set(log_steps(total, spec.log_points, spec.tail_logs)), RunResult("done", 0, 0.0)
    batches = batch_indices(n, batch, gen)
    for step in range(total + 1):
        if step in logs:
            row = _evaluate(net, data, spec.loss, step)
            if not math.isfinite(row["train_loss"]):
                return _diverged(result, spec.lr * spec.wd, step)
            result.log.append(row)
            if on_log is not None:
                on_log(step, net)
        if step == total:
            break
        idx = slice(None) if batch == n else next(batches)
        opt.zero_grad(set_to_none=True)
        value = loss_value(spec.loss, net(data.x_train[idx]), data.y_train[idx])
        if not torch.isfinite(value):
            return _diverged(result, spec.lr * spec.wd, step)
        value.backward()
        opt.step()
        result.steps = step + 1
    result.horizon = spec.lr * spec.wd * total
    return result


def budget(spec: DynamicsSpec, n: int) -> tuple[int, int]:
    """(batch size, total steps T) of a gd/sgd spec on n training samples."""
    if spec.kind == "sgd" and spec.batch > n:
        raise ValueError(
            f"Invalid DynamicsSpec: 'batch' must be <= the {n} training samples; got {spec.batch}. "
            f"Use a smaller batch or more data."
        )
    batch = n if spec.kind == "gd" else spec.batch
    return batch, spec.steps if spec.steps is not None else spec.epochs * (n // batch)


def batch_indices(n: int, batch: int, generator: torch.Generator):
    """Endless mini-batches (batch,) int64: each epoch a fresh permutation of range(n)
    cut into floor(n / batch) batches; the remaining n mod batch are left out."""
    while True:
        order = torch.randperm(n, generator=generator, device="cpu")
        for start in range(0, n - batch + 1, batch):
            yield order[start : start + batch]


def _diverged(result: RunResult, rate: float, at) -> RunResult:
    result.status, result.diverged_at = "diverged", at
    result.horizon = rate * at
    return result


class _Diverged(Exception):
    pass


def _flow(net, data: Dataset, spec: DynamicsSpec, on_log) -> RunResult:
    """Gradient flow by an adaptive ODE solver over the flat parameter vector, logged at
    geometric times; a gated run checks the gate every flow_time / GATE_CHECKS."""
    params = [p for p in net.parameters() if p.requires_grad]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    net.double()  # integrate in float64: the solver's tolerances are finer than float32
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    x, y = data.x_train.to(torch.float64), data.y_train if data.task == "classes" else data.y_train.to(torch.float64)
    calls = {"nfe": 0}

    def assign(theta):
        for p, chunk, shape in zip(params, torch.split(theta, sizes), shapes):
            p.data = chunk.view(shape)

    def gradient(theta) -> torch.Tensor:
        """grad L(theta), the unregularized loss's."""
        assign(theta)
        with torch.enable_grad():
            value = loss_value(spec.loss, net(x), y)
            grads = torch.autograd.grad(value, params)
        if not torch.isfinite(value):
            raise _Diverged()
        return torch.cat([g.reshape(-1) for g in grads])

    def field(t, theta):
        calls["nfe"] += 1
        try:
            return -(gradient(theta) + spec.wd * theta)
        except _Diverged:
            raise _Diverged(float(t)) from None

    cap = spec.max_flow_time if spec.gated else spec.flow_time
    logs = np.unique(np.concatenate([[0.0], np.geomspace(cap / 1e3, cap, spec.log_points - 1)]))
    checks = np.linspace(0.0, cap, int(round(GATE_CHECKS * cap / spec.flow_time)) + 1) if spec.gated else []
    times = np.unique(np.concatenate([logs, checks]))
    result, data64, now, stopped = RunResult("done", cap, spec.wd * cap), _as64(data), 0.0, False
    # one solver call per chunk of output times: a gated run stops within a chunk of its gate
    for chunk in np.array_split(times, max(1, len(times) // 50)):
        grid = np.unique(np.concatenate([[now], chunk]))
        try:
            path = odeint(field, theta, torch.tensor(grid, device=theta.device), rtol=spec.rtol, atol=spec.atol, method=spec.method)
        except _Diverged as err:
            net.float()
            return _diverged(result, spec.wd, err.args[0])
        for t, state in zip(grid, path):
            if t < now or (t == now and t > 0):  # the chunk's start, processed with the chunk before
                continue
            now, theta = float(t), state.clone()
            if spec.gated and t in checks and _passes(gradient(theta), theta, spec):
                result.gate_step = now if result.gate_step is None else result.gate_step
                stopped = now >= spec.flow_time
            if t in logs or stopped:
                assign(theta)
                result.log.append(_evaluate(net, data64, spec.loss, now))
                if on_log is not None:
                    on_log(now, net)
            if stopped:
                result.steps, result.horizon = now, spec.wd * now
                break
        if stopped:
            break
    result.solver = {"method": spec.method, "rtol": spec.rtol, "atol": spec.atol, "nfe": calls["nfe"]}
    assign(theta)
    net.float()
    return result


def _passes(g: torch.Tensor, theta: torch.Tensor, spec: DynamicsSpec) -> bool:
    """||g + wd theta|| <= gate ||g||: the stationarity gate, g = grad L at theta."""
    return float((g + spec.wd * theta).norm()) <= spec.gate * float(g.norm())


def _as64(data: Dataset) -> Dataset:
    cast = (lambda a: a.to(torch.float64)) if data.task != "classes" else (lambda a: a)
    return Dataset(data.spec, data.task, data.x_train.double(), cast(data.y_train), data.x_test.double(), cast(data.y_test), data.extras)
