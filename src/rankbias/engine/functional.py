"""An ensemble of R runs of any module, trained as one batched model with torch.func.

The members' parameters and buffers are stacked, (R, ...)
(``torch.func.stack_module_state``), and one step is

    L_r(p_r) = mean_b loss(f(p_r; x[idx_r]), y[idx_r])      # member r's own mini-batch
    g, L = vmap(grad_and_value(L_r))(p, buffers, x, y)      # g {name: (R, ...)}, L (R,)
    [SAM]  g = vmap(grad(L_r))(p + r g / ||g||, ...)         # ||g|| over each member's parameters
    p <- optimizer(p, g)                                     # rankbias.engine.optim, per-member lr, wd, ...

(a model with a ``wide(state, x)`` pass, as every built-in arch has, gets g by autograd
of sum_r L_r through it instead: the members are independent, so d(sum)/dp_r = dL_r/dp_r,
without vmap's cost around BatchNorm, nor its per-step pytree handling, which made up
most of a small net's step: the claims' AdamW, SAM and factorized groups trained 2.3x
faster through ``wide``, their losses and gradients bit for bit vmap's), with f =
``torch.func.functional_call`` of one stateless copy of the module
(on the meta device): the module's own forward, so a member is exactly its
``nn.Module`` trained alone (the tests compare each member with a per-run
``torch.optim`` loop).  BatchNorm trains on batch statistics and updates each
member's running statistics in place; SAM's pass at the perturbed point updates a
throwaway copy of them, so they follow the passes at the iterates only.  Evaluation and every
measurement use the module in eval mode (BatchNorm on its running statistics).

A member whose loss is not finite gets a zero gradient (it is frozen and
reported as diverged by ``ensemble.train_ensemble``, whose loop drives this
class as it drives the written-out MLP ``ensemble.Ensemble``).
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from rankbias.engine.data import Dataset
from rankbias.engine.losses import evaluate_members, loss_per_sample
from rankbias.engine.models import build_model
from rankbias.engine.optim import Optimizer, schedule_factor


class Stacked:
    """R modules of one architecture as stacked state: trainable ``params``, ``fixed``
    (frozen) parameters and ``buffers``, {name: (R, ...)}, and one stateless copy ``base``
    (meta device) that ``functional_call`` runs on each member's slice."""

    def __init__(self, models: list[torch.nn.Module], spec=None, shape=None):
        device = next(models[0].parameters()).device
        params, buffers = stack_module_state(models)
        frozen = {n for n, p in models[0].named_parameters() if not p.requires_grad}  # e.g. a fixed outer layer
        self.params = {n: p.detach().to(device) for n, p in params.items() if n not in frozen}
        self.fixed = {n: p.detach().to(device) for n, p in params.items() if n in frozen}
        self.buffers = {n: b.detach().to(device) for n, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.spec, self.shape, self.size = spec, shape, len(models)

    @property
    def state(self) -> dict[str, torch.Tensor]:
        """Every stacked tensor by name: parameters, fixed parameters, buffers."""
        return {**self.params, **self.fixed, **self.buffers}

    def masked(self, dead: torch.Tensor) -> Stacked:
        """A view of these members with every tensor of the members ``dead`` (R,) bool set to
        0, so that batched measurements of the others go on past a diverged member's NaNs."""
        view = copy.copy(self)

        def zero(tensors):
            return {n: torch.where(_b(dead.to(t.device), t), torch.zeros((), dtype=t.dtype, device=t.device), t)
                    for n, t in tensors.items()}

        view.params, view.fixed, view.buffers = zero(self.params), zero(self.fixed), zero(self.buffers)
        return view

    def evaluate(self, data: Dataset, loss: str) -> list[dict]:
        """Every member's train (and test) loss and accuracy, in eval mode (``losses.evaluate_members``),
        ``chunk`` samples at a time."""
        return evaluate_members(self.forward, self.size, data, loss, self.chunk(data))

    def chunk(self, data: Dataset) -> int:
        """Samples per batched pass: as many as keep the widest activation of all members within
        2^21 floats (8 MB), in [8, 256]; past that, elementwise passes leave the cache (measured:
        a digits CNN's forward ran 3x slower at 256 samples x 64 members than member by member)."""
        if not hasattr(self, "_chunk"):
            _, features = self.forward(data.x_train[:1][None].expand(self.size, 1, *data.x_train.shape[1:]),
                                       features=True)
            widest = max([f[0, 0].numel() for f in features.values()] + [1])
            self._chunk = int(min(256, max(8, 2**21 // (self.size * widest))))
        return self._chunk

    def forward(self, x: torch.Tensor, features: bool = False):
        """Every member in eval mode on its inputs x (R, n, ...) -> outputs (R, n, k)
        (and, with ``features``, {name: (R, n, ...)})."""
        self.base.eval()

        def member(p, fixed, buffers, xs):
            return functional_call(self.base, (p, fixed, buffers), (xs,), {"features": features})

        with torch.no_grad():
            if not features and hasattr(self.base, "wide"):  # the model's own all-members pass
                return self.base.wide(self.state, x)
            return vmap(member)(self.params, self.fixed, self.buffers, x)

    def matrices(self) -> list[tuple[str, torch.Tensor]]:
        """The measured matrices of every member, [(name, (R, m, n))] (``models``)."""
        with torch.no_grad():
            return self.base.matrices(self.state)

    def member(self, r: int) -> torch.nn.Module:
        """Member r as a standalone module (a copy of its current state) on the ensemble's device."""
        like = next(iter(self.params.values()))
        model = build_model(self.spec, 0, self.shape).to(like.dtype).to(like.device)
        model.load_state_dict({n: t[r] for n, t in self.state.items()})
        return model

    def loss_fn(self, loss: str):
        """Member r's mean loss on (x, y) as a function of its parameters (the first argument)."""
        def member(p, fixed, buffers, x, y):
            out = functional_call(self.base, (p, fixed, buffers), (x,))
            return loss_per_sample(loss, out, y).mean()
        return member


class FuncEnsemble(Stacked):
    """R members of one ``NetSpec`` and optimizer, trained together (module docstring)."""

    def __init__(self, spec, members: list, data: Dataset, total: int):
        dtype, device = data.x_train.dtype, data.x_train.device
        super().__init__([build_model(spec, m.seed, data.shape).to(dtype).to(device) for m in members], spec,
                         data.shape)
        self.members, self.total = members, total
        self.optimizer = Optimizer(members, self.params)
        self.radius = torch.tensor([m.sam or 0.0 for m in members], dtype=dtype, device=device)  # (R,)
        self.sam = any(m.sam is not None for m in members)
        self.t = 0

    def step(self, loss: str, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor,
             smallest_decay: float = 1.0) -> torch.Tensor:
        """One optimizer step of every member on its batch x (R, B, ...), y (R, B[, k]); returns
        the losses (R,) at the current parameters.  lr (R,) is the members' base rate (0 for a
        member that stopped), scaled by the schedule; wd is the optimizer's, set at init (the
        argument, and ``smallest_decay``, are the written-out ensemble's)."""
        first = self.members[0]
        factor = schedule_factor(first.schedule, self.t, self.total, first.step_every, first.gamma)
        self.base.train()
        grads, losses = self._gradients(loss, self.params, self.buffers, x, y)
        finite = torch.isfinite(losses)  # (R,)
        if self.sam:
            norm = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))  # (R,)
            step = torch.where(finite & (norm > 0), self.radius / norm, 0.0)
            ascent = {n: p + _b(step, p) * grads[n] for n, p in self.params.items()}
            scratch = {n: b.clone() for n, b in self.buffers.items()}  # the perturbed pass's statistics are dropped
            grads, _ = self._gradients(loss, ascent, scratch, x, y)
        grads = {n: torch.where(_b(finite, g), g, 0.0) for n, g in grads.items()}
        self.optimizer.update(self.params, grads, (lr * factor).to(losses.dtype))
        self.t += 1
        return losses


    def _gradients(self, loss: str, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor):
        """Every member's gradient {name: (R, ...)} and loss (R,) at ``params`` on its batch: by
        autograd of sum_r L_r through the model's ``wide`` pass where it has one (the members
        are independent, so d(sum)/dp_r = dL_r/dp_r), else by vmap(grad_and_value)."""
        if not hasattr(self.base, "wide"):
            return vmap(grad_and_value(self.loss_fn(loss)))(params, self.fixed, buffers, x, y)
        with torch.enable_grad():
            leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
            losses = loss_per_sample(loss, self.base.wide({**leaves, **self.fixed, **buffers}, x), y).mean(1)  # (R,)
            grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        return dict(zip(leaves, grads)), losses.detach()


def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-member value (R,) shaped to broadcast against ``like`` (R, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1)))
