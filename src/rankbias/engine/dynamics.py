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

GD and SGD train as ensembles (``ensemble.train_ensemble``, the engine's one
trainer: a run alone is an ensemble of one); gradient flow trains here
(``flow``).  Losses are ``losses.LOSSES``.  A run whose loss turns non-finite
stops and is reported as diverged with its step; the caller goes on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torchdiffeq import odeint

from rankbias.engine.data import Dataset
from rankbias.engine.losses import LOSSES, accuracy, loss_value
from rankbias.engine.optim import DEFAULTS, HYPER, OPTIMIZERS, SCHEDULES

KINDS = ("gd", "sgd", "gf")
GATE_CHECKS = 200  # gate checks per budget: every 100 steps of a 20k-step run
GATE_MEASURES = ("relative", "absolute")
LOG_SPACINGS = ("geometric", "linear")


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
    # the optimizer (gd and sgd; rankbias.engine.optim): unset means plain SGD, torch.optim.SGD without momentum
    optimizer: str | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    alpha: float | None = None
    sam: float | None = None  # SAM's radius r, wrapping the optimizer
    schedule: str | None = None  # "cosine" | "step", of the learning rate over the budget
    step_every: int | None = None  # step schedule: steps between decays
    gamma: float | None = None  # step schedule: the factor per decay
    gate_measure: str | None = None  # "absolute": the gate reads ||grad L + wd theta||, not its ratio to ||grad L||
    dtype: str | None = None  # "float64": gd / sgd in double precision (float32 when unset; gf is float64)
    log_spacing: str | None = None  # "linear": log points evenly spaced (geometric when unset)

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
        if self.gate_measure is not None and (self.gate_measure not in GATE_MEASURES or self.gate is None):
            p.append(f"'gate_measure' must be one of {list(GATE_MEASURES)}, with 'gate' set; got "
                     f"{self.gate_measure!r} (gate={self.gate!r})")
        if self.dtype is not None and (self.dtype != "float64" or self.kind == "gf"):
            p.append(f"'dtype' must be \"float64\" for gd or sgd (float32 is the default: leave it unset; gf runs "
                     f"in float64); got {self.dtype!r} for {self.kind}")
        if self.log_spacing is not None and self.log_spacing not in LOG_SPACINGS:
            p.append(f"'log_spacing' must be one of {list(LOG_SPACINGS)}; got {self.log_spacing!r}")
        p.extend(self._optimizer_problems())
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

    def _optimizer_problems(self) -> list[str]:
        """The optimizer's name, its hyper-parameters' ranges (torch.optim's rules) and the schedule's."""
        fields = ("optimizer", "sam", "schedule", "nesterov", *HYPER)
        if self.kind == "gf":
            set_ = [f for f in fields if getattr(self, f) is not None]
            return [f"gradient flow takes no optimizer fields; got {set_}"] if set_ else []
        name, p = self.optimizer or "sgd", []
        if name not in OPTIMIZERS:
            return [f"'optimizer' must be one of {list(OPTIMIZERS)}; got {self.optimizer!r}"]
        own = set(DEFAULTS[name]) | ({"nesterov"} if name == "sgd" else set())
        foreign = [f for f in (*HYPER, "nesterov") if getattr(self, f) is not None and f not in own]
        if foreign:
            p.append(f"optimizer {name!r} takes {sorted(own)}; got {foreign}")
        for field, low, high in (("beta1", 0, 1), ("beta2", 0, 1), ("alpha", 0, 1), ("momentum", 0, 1)):
            value = getattr(self, field)
            if value is not None and not (math.isfinite(value) and low <= value < high):
                p.append(f"'{field}' must be in [{low}, {high}); got {value!r}")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps > 0):
            p.append(f"'eps' must be a finite float > 0; got {self.eps!r}")
        if self.nesterov and not (self.momentum or 0) > 0:
            p.append(f"'nesterov' needs 'momentum' > 0 (torch.optim.SGD's rule); got momentum={self.momentum!r}")
        if self.sam is not None and not (math.isfinite(self.sam) and self.sam >= 0):
            p.append(f"'sam' (SAM's radius) must be a finite float >= 0; got {self.sam!r}")
        return p + self._schedule_problems()

    def _schedule_problems(self) -> list[str]:
        if self.schedule is None:
            set_ = [f for f in ("step_every", "gamma") if getattr(self, f) is not None]
            return [f"{set_} belong to schedule = \"step\"; set it or remove them"] if set_ else []
        if self.schedule not in SCHEDULES:
            return [f"'schedule' must be one of {list(SCHEDULES)}; got {self.schedule!r}"]
        if self.schedule == "cosine":
            set_ = [f for f in ("step_every", "gamma") if getattr(self, f) is not None]
            return [f"the cosine schedule takes no {set_}"] if set_ else []
        p = []
        if not (isinstance(self.step_every, int) and self.step_every >= 1):
            p.append(f"'step_every' must be an int >= 1 for the step schedule; got {self.step_every!r}")
        if not (self.gamma is not None and math.isfinite(self.gamma) and 0 < self.gamma <= 1):
            p.append(f"'gamma' must be in (0, 1] for the step schedule; got {self.gamma!r}")
        return p

    @property
    def plain(self) -> bool:
        """Plain GD / SGD in float32 with the relative gate (no momentum, Adam, SAM or schedule):
        the written-out MLP trainer's case."""
        return (self.optimizer in (None, "sgd") and not self.momentum and self.sam is None
                and self.schedule is None and self.dtype is None and self.gate_measure is None)

    @property
    def gated(self) -> bool:
        """Whether the run goes on past its budget to the stationarity gate (gd and gf only)."""
        return self.gate is not None and self.kind != "sgd"

    def identity(self) -> dict:
        """The fields this kind of dynamics uses (solver settings only for gf,
        lr and budgets only for gd/sgd): what names a run."""
        unused = {"gd": ("epochs", "batch", "flow_time", "method", "rtol", "atol", "max_flow_time"),
                  "sgd": ("flow_time", "method", "rtol", "atol", "gate", "max_steps", "max_flow_time", "gate_measure"),
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


def log_steps(total: int, points: int, tail: int | None = None, spacing: str | None = None) -> list[int]:
    """Geometrically spaced log steps in [1, total] (``spacing`` "linear": ``points`` evenly
    spaced in [0, total]), plus 0 and total, plus every one of the last ``tail`` steps (for
    averages over the end of a run), sorted, unique."""
    if spacing == "linear":
        grid = np.unique(np.round(np.linspace(0, total, points)).astype(int))
    else:
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


def budget(spec: DynamicsSpec, n: int) -> tuple[int, int]:
    """(batch size, total steps T) of a gd/sgd spec on n training samples."""
    if spec.kind == "sgd" and spec.batch > n:
        raise ValueError(
            f"Invalid DynamicsSpec: 'batch' must be <= the {n} training samples; got {spec.batch}. "
            f"Use a smaller batch or more data."
        )
    batch = n if spec.kind == "gd" else spec.batch
    return batch, spec.steps if spec.steps is not None else spec.epochs * (n // batch)


def _diverged(result: RunResult, rate: float, at) -> RunResult:
    result.status, result.diverged_at = "diverged", at
    result.horizon = rate * at
    return result


class _Diverged(Exception):
    pass


class _FlatNet:
    """A net's trainable parameters as one flat float64 vector theta (the net is cast to
    float64: the solver's tolerances are finer than float32), and the vector field
    d theta / dt = -(grad L(theta) + wd theta) of the unregularized training loss L."""

    def __init__(self, net, data: Dataset, spec: DynamicsSpec):
        self.net, self.spec = net, spec
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        net.double()
        self.theta = torch.cat([p.detach().reshape(-1) for p in self.params])  # (P,) float64
        self.x = data.x_train.to(torch.float64)
        self.y = data.y_train if data.task == "classes" else data.y_train.to(torch.float64)
        self.nfe = 0  # the solver's evaluations of the field

    def assign(self, theta: torch.Tensor) -> None:
        for p, chunk, shape in zip(self.params, torch.split(theta, self.sizes), self.shapes):
            p.data = chunk.view(shape)

    def gradient(self, theta: torch.Tensor) -> torch.Tensor:
        """grad L(theta) (P,), the unregularized loss's; raises _Diverged if L is not finite."""
        self.assign(theta)
        with torch.enable_grad():
            value = loss_value(self.spec.loss, self.net(self.x), self.y)
            grads = torch.autograd.grad(value, self.params)
        if not torch.isfinite(value):
            raise _Diverged()
        return torch.cat([g.reshape(-1) for g in grads])

    def field(self, t, theta: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        try:
            return -(self.gradient(theta) + self.spec.wd * theta)
        except _Diverged:
            raise _Diverged(float(t)) from None


def _flow_times(spec: DynamicsSpec) -> tuple[np.ndarray, np.ndarray]:
    """(log times: 0 and ``log_points - 1`` geometric ones up to the cap, gate-check times:
    every flow_time / GATE_CHECKS up to the cap for a gated run, else none)."""
    cap = spec.max_flow_time if spec.gated else spec.flow_time
    logs = np.unique(np.concatenate([[0.0], np.geomspace(cap / 1e3, cap, spec.log_points - 1)]))
    checks = np.linspace(0.0, cap, int(round(GATE_CHECKS * cap / spec.flow_time)) + 1) if spec.gated else np.array([])
    return logs, checks


def flow(net, data: Dataset, spec: DynamicsSpec, on_log: Callable | None = None) -> RunResult:
    """Train ``net`` in place by gradient flow (``spec.kind == "gf"``): torchdiffeq's
    adaptive ``spec.method`` over the flat float64 parameter vector, logged at geometric
    times, calling ``on_log(t, net)`` at each after recording losses; a gated run checks
    the gate every flow_time / GATE_CHECKS and stops at the first pass past flow_time."""
    flat, (logs, checks) = _FlatNet(net, data, spec), _flow_times(spec)
    theta, cap = flat.theta, spec.max_flow_time if spec.gated else spec.flow_time
    times = np.unique(np.concatenate([logs, checks]))
    result, data64, now, stopped = RunResult("done", cap, spec.wd * cap), as_float64(data), 0.0, False
    # one solver call per chunk of output times: a gated run stops within a chunk of its gate
    for chunk in np.array_split(times, max(1, len(times) // 50)):
        grid = np.unique(np.concatenate([[now], chunk]))
        try:
            path = odeint(flat.field, theta, torch.tensor(grid, device=theta.device), rtol=spec.rtol,
                          atol=spec.atol, method=spec.method)
        except _Diverged as err:
            net.float()
            return _diverged(result, spec.wd, err.args[0])
        for t, state in zip(grid, path):
            if t < now or (t == now and t > 0):  # the chunk's start, processed with the chunk before
                continue
            now, theta = float(t), state.clone()
            if spec.gated and t in checks and _passes(flat.gradient(theta), theta, spec):
                result.gate_step = now if result.gate_step is None else result.gate_step
                stopped = now >= spec.flow_time
            if t in logs or stopped:
                flat.assign(theta)
                result.log.append(_evaluate(net, data64, spec.loss, now))
                if on_log is not None:
                    on_log(now, net)
            if stopped:
                result.steps, result.horizon = now, spec.wd * now
                break
        if stopped:
            break
    result.solver = {"method": spec.method, "rtol": spec.rtol, "atol": spec.atol, "nfe": flat.nfe}
    flat.assign(theta)
    net.float()
    return result


def _passes(g: torch.Tensor, theta: torch.Tensor, spec: DynamicsSpec) -> bool:
    """||g + wd theta|| <= gate ||g||: the stationarity gate, g = grad L at theta."""
    return float((g + spec.wd * theta).norm()) <= spec.gate * float(g.norm())


def as_float64(data: Dataset) -> Dataset:
    """``data`` with float64 inputs (and float targets): what float64 nets are measured on."""
    cast = (lambda a: a.to(torch.float64)) if data.task != "classes" else (lambda a: a)
    return Dataset(data.spec, data.task, data.x_train.double(), cast(data.y_train), data.x_test.double(), cast(data.y_test), data.extras)
