"""Optimizers of ``torch.optim`` applied to the stacked state of an ensemble.

An ensemble of R runs keeps each parameter stacked over its members, (R, ...),
and each member has its own lr, wd and optimizer hyper-parameters, (R,).  One
``Optimizer.update`` moves every member as ``torch.optim``'s class of the same
name moves a module (PyTorch 2.x, ``foreach`` off, default flags otherwise),
with g the gradient of the unregularized mini-batch loss and t = 1, 2, ... the
step count:

- ``sgd``     (``torch.optim.SGD``): d = g + wd p; b = d at t = 1, else b <- mu b + d;
  d <- d + mu b if ``nesterov`` else b (when mu > 0); p <- p - lr d.
- ``adam``    (``torch.optim.Adam``): g <- g + wd p (coupled); m <- b1 m + (1 - b1) g;
  v <- b2 v + (1 - b2) g^2; p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
- ``adamw``   (``torch.optim.AdamW``, Loshchilov & Hutter 2019): p <- (1 - lr wd) p (decoupled),
  then Adam's step without the coupled decay.
- ``rmsprop`` (``torch.optim.RMSprop``): g <- g + wd p; v <- alpha v + (1 - alpha) g^2;
  a = sqrt(v) + eps; b <- mu b + g / a and p <- p - lr b when mu > 0, else p <- p - lr g / a.

SAM (Foret et al. 2021) wraps any of them (``sam`` = the radius r, per member):
the gradient is taken at the ascent point p + r g / ||g|| (||g|| over all of a
member's parameters, g the mini-batch gradient at p), and the base optimizer
steps from p with it (``functional.FuncEnsemble`` takes the two gradients).

Learning-rate schedules multiply every member's lr at step t (0-based) by
``schedule_factor``: ``cosine`` = (1 + cos(pi t / T)) / 2 (CosineAnnealingLR with
T_max = T, eta_min = 0, in closed form), ``step`` = gamma^floor(t / step_every)
(StepLR counted in optimizer steps).
"""

from __future__ import annotations

import math

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step")
# each optimizer's hyper-parameters and torch.optim's defaults
DEFAULTS = {
    "sgd": {"momentum": 0.0},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0},
}
HYPER = ("momentum", "beta1", "beta2", "eps", "alpha")  # per member, numbers


def hyper_of(spec) -> dict[str, float]:
    """The hyper-parameters of ``spec``'s optimizer (a ``DynamicsSpec``): its own values,
    torch.optim's defaults for those it leaves unset."""
    name = spec.optimizer or "sgd"
    return {k: (getattr(spec, k) if getattr(spec, k) is not None else v) for k, v in DEFAULTS[name].items()}


def schedule_factor(schedule: str | None, step: int, total: int, step_every: int | None = None,
                    gamma: float | None = None) -> float:
    """The lr multiplier at 0-based optimizer step ``step`` of ``total`` (module docstring)."""
    if schedule is None:
        return 1.0
    if schedule == "cosine":
        return (1 + math.cos(math.pi * step / total)) / 2
    return gamma ** (step // step_every)


def _per_member(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


class Optimizer:
    """The state and update of one optimizer over stacked parameters {name: (R, ...)}.

    ``specs`` are the members' ``DynamicsSpec`` (they share ``optimizer`` and ``nesterov``;
    wd and the numeric hyper-parameters are each member's own)."""

    def __init__(self, specs: list, params: dict[str, torch.Tensor]):
        first = specs[0]
        self.name, self.nesterov = first.optimizer or "sgd", bool(first.nesterov)
        like = next(iter(params.values()))
        hypers = [hyper_of(s) for s in specs]
        self.h = {k: _per_member([h[k] for h in hypers], like) for k in hypers[0]}  # (R,)
        self.wd = _per_member([s.wd for s in specs], like)
        self.t = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {name: {} for name in params}

    @staticmethod
    def _b(v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A per-member value (R,) shaped to broadcast against p (R, ...)."""
        return v.view(-1, *([1] * (p.dim() - 1)))

    def update(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: torch.Tensor) -> None:
        """One step of every member, in place: lr (R,) this step's rates (0 freezes a member)."""
        self.t += 1
        step = {"sgd": self._sgd, "adam": self._adam, "adamw": self._adam, "rmsprop": self._rmsprop}[self.name]
        with torch.no_grad():
            for name, p in params.items():
                step(p, grads[name], self.state[name], lr)

    def _sgd(self, p, g, state, lr) -> None:
        b = self._b
        d = g + b(self.wd, p) * p
        mu = self.h["momentum"]
        if bool((mu > 0).any()):
            buf = state.get("momentum")
            buf = d.clone() if buf is None else buf.mul_(b(mu, p)).add_(d)
            state["momentum"] = buf
            d = d + b(mu, p) * buf if self.nesterov else buf  # a member with mu = 0 has buf = d
        p.sub_(b(lr, p) * d)

    def _adam(self, p, g, state, lr) -> None:
        b, h = self._b, self.h
        if self.name == "adamw":
            p.mul_(1 - b(lr * self.wd, p))
        else:
            g = g + b(self.wd, p) * p
        m = state.setdefault("exp_avg", torch.zeros_like(p))
        v = state.setdefault("exp_avg_sq", torch.zeros_like(p))
        m.lerp_(g, 1 - b(h["beta1"], p))  # m <- b1 m + (1 - b1) g, as torch.optim.Adam
        v.mul_(b(h["beta2"], p)).addcmul_(g, g * (1 - b(h["beta2"], p)))
        correction1 = 1 - h["beta1"] ** self.t  # (R,)
        correction2 = (1 - h["beta2"] ** self.t).sqrt()
        denom = (v.sqrt() / b(correction2, p)).add_(b(h["eps"], p))
        p.sub_(b(lr / correction1, p) * m / denom)

    def _rmsprop(self, p, g, state, lr) -> None:
        b, h = self._b, self.h
        g = g + b(self.wd, p) * p
        v = state.setdefault("square_avg", torch.zeros_like(p))
        v.mul_(b(h["alpha"], p)).addcmul_(g, g * (1 - b(h["alpha"], p)))
        avg = v.sqrt().add_(b(h["eps"], p))
        mu = h["momentum"]
        if bool((mu > 0).any()):
            buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
            buf.mul_(b(mu, p)).addcdiv_(g, avg)
            p.sub_(b(lr, p) * buf)  # a member with mu = 0 has buf = g / a
        else:
            p.sub_(b(lr, p) * g / avg)
