"""Metrics of R modules of any architecture at a log point (``functional.Stacked``).

``ModuleTracker(loss, wd)(stacked, data)`` returns, per member, rows
``(layer, name, value)`` and one spectrum per measured matrix, as
``metrics.Tracker`` does for the written-out MLPs (whose metrics stay theirs).
The layers are the model's measured matrices (``models``: conv kernels reshaped
to (out, in k [k]), per-head W_Q W_K^T and W_V W_O, factors and their product)
followed by any feature layer that is not a matrix (the attention readout);
``layers(stacked)`` names them in that order.

Per matrix: ``fro``, ``spectral`` and every rank measure of ``metrics._rank_values``
(rank_rel at 1e-2, tail_k and gap_k with k = the data's outputs).  Per feature
layer (the outputs of ReLU layers, or of the attention layer, over the training set,
in eval mode; a conv block's output averaged over its positions first):

- ``feature_rank``: the fewest principal components holding 99% of the features'
  variance, k = min{k : sum_{i<=k} lambda_i >= 0.99 sum_i lambda_i}, lambda the
  eigenvalues of their covariance (Andriushchenko et al. 2023's feature rank);
- ``active_share``: the share of ReLU units (conv: channel x position) positive on
  at least one training input.

Per attention head h (at the layer of ``qk<h>``): ``imbalance`` ||W_Q^T W_Q - W_K^T W_K||_F
(Kobayashi et al. 2024: conserved by gradient flow at wd = 0).  Whole network
(layer -1), with theta the trainable parameters and g = grad L(theta) over the
training set (eval mode): ``alignment`` cos(theta, -g), ``stationarity``
||g + wd theta|| / ||g||, ``grad_norm`` ||g||, ``norm_ratio`` max / min Frobenius
norm over the weight tensors (ndim >= 2), ``max_abs`` max_i |theta_i|, and from the
second log point on ``moved`` ||theta - theta_prev|| / ||theta||, theta_prev the
parameters at the previous log point (with evenly spaced log points, the share a run
still moves over its last interval).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, vmap

from rankbias.engine.dynamics import as_float64
from rankbias.engine.functional import Stacked
from rankbias.engine.metrics import _host, _rank_values, layer_spectra
from rankbias.engine.models import build_model
from rankbias.linalg.weights import split_heads

CHUNK = 256  # training samples per batched pass


def layers(stacked: Stacked, features: list[str] | None = None) -> list[str]:
    """The layer names of a run, in index order: its matrices, then feature-only layers."""
    names = [name for name, _ in stacked.matrices()]
    return names + [f for f in (features or []) if f not in names]


def layer_names(spec, data) -> list[str]:
    """The layer names of runs of ``NetSpec`` ``spec`` on ``data``, from one model's matrices and
    features on one training input."""
    stacked = Stacked([build_model(spec, 0, data.shape).to(data.x_train.dtype).to(data.x_train.device)], spec,
                      data.shape)
    features = stacked.forward(data.x_train[:1][None], features=True)[1]
    return layers(stacked, list(features))


def feature_rank(h: torch.Tensor, share: float = 0.99) -> np.ndarray:
    """Features h (R, N, m) -> (R,) float64: the fewest principal components holding ``share``
    of their variance (module docstring); 0 for constant features."""
    h = h.double()
    centered = h - h.mean(1, keepdim=True)  # (R, N, m)
    lam = torch.linalg.eigvalsh(centered.transpose(1, 2) @ centered).flip(-1).clamp_min(0)  # (R, m), descending
    total = lam.sum(-1, keepdim=True)
    held = (lam.cumsum(-1) < share * total).sum(-1) + 1  # first k whose cumulative share reaches it
    return _host(torch.where(total[:, 0] > 0, held, 0)).astype(np.float64)


def _pooled(h: torch.Tensor) -> torch.Tensor:
    """(R, N, C, *positions) -> (R, N, C) averaged over positions; (R, N, m) unchanged."""
    return h.flatten(3).mean(-1) if h.dim() > 3 else h


def _stationarity(g: torch.Tensor, theta: torch.Tensor, wd: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """||g + wd theta|| / ||g|| per member (R,) (NaN where g = 0), or ``absolute`` ||g + wd theta||."""
    objective = (g + wd[:, None] * theta).norm(dim=1)
    if absolute:
        return objective
    gnorm = g.norm(dim=1)
    return torch.where(gnorm > 0, objective / gnorm, torch.nan)


class ModuleTracker:
    """Measures R modules at each log point; ``wd`` (R,) is each member's weight decay."""

    def __init__(self, loss: str, wd):
        self.loss = loss
        self.wd = torch.as_tensor(wd, dtype=torch.float64).reshape(-1)
        self.previous: torch.Tensor | None = None  # theta (R, P) at the last log point, for ``moved``

    def __call__(self, stacked: Stacked, data, alive: list[int] | None = None) -> list[tuple[list, list]]:
        """Rows [(layer, name, value)] and spectra [(min(m, n),) float64 per matrix] of each member;
        members not in ``alive`` (default: all alive) are measured as zeros (their rows are dropped
        by the caller)."""
        R = stacked.size
        dead = torch.ones(R, dtype=torch.bool)
        dead[alive if alive is not None else list(range(R))] = False
        if bool(dead.any()):  # a diverged member's tensors may be huge or NaN: measure zeros instead
            stacked = stacked.masked(dead)
        if next(iter(stacked.params.values())).dtype == torch.float64:  # a gradient-flow run's
            data = as_float64(data)
        mats = stacked.matrices()
        spectra = layer_spectra([m for _, m in mats])
        values: dict[tuple[int, str], np.ndarray] = {}
        for k, ((_, m), s) in enumerate(zip(mats, spectra)):
            for name, v in _rank_values(s, m.shape[1], m.shape[2], data.outputs).items():
                values[(k, name)] = v
        names = [n for n, _ in mats]
        for f, (rank, active) in self._features(stacked, data).items():
            if f not in names:
                names.append(f)
            values[(names.index(f), "feature_rank")] = rank
            if active is not None:
                values[(names.index(f), "active_share")] = active
        if hasattr(stacked.base, "imbalance"):
            for h, v in enumerate(stacked.base.imbalance(stacked.params).T):  # (H, R)
                values[(names.index(f"qk{h}"), "imbalance")] = _host(v.double())
        values.update(self._network(stacked, data))
        return [([(layer, name, float(v[r])) for (layer, name), v in values.items()], [s[r] for s in spectra])
                for r in range(R)]

    def _features(self, stacked: Stacked, data) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """{feature layer: (feature_rank (R,), active_share (R,) or None for attention)}."""
        x, R = data.x_train, stacked.size
        chunks = [stacked.forward(x[i : i + CHUNK].expand(R, *x[i : i + CHUNK].shape), features=True)[1]
                  for i in range(0, len(x), CHUNK)]
        out = {}
        for name in chunks[0] if chunks else ():
            h = torch.cat([c[name] for c in chunks], 1)  # (R, N, ...)
            active = None if name == "attention" else _host((h > 0).any(1).flatten(1).double().mean(1))
            out[name] = (feature_rank(_pooled(h)), active)
        return out

    def _network(self, stacked: Stacked, data) -> dict[tuple[int, str], np.ndarray]:
        """alignment, stationarity, grad_norm, norm_ratio and max_abs (module docstring)."""
        g = self.gradient(stacked, data)  # (R, P) float64
        theta = torch.cat([p.flatten(1) for p in stacked.params.values()], 1).double()
        wd = self.wd.to(theta.device)
        gnorm, tnorm = g.norm(dim=1), theta.norm(dim=1)
        fros = torch.stack([p.flatten(1).norm(dim=1) for p in stacked.params.values() if p.dim() > 2]).double()
        return {
            (-1, "alignment"): _host(torch.where(gnorm * tnorm > 0, -(g * theta).sum(1) / (gnorm * tnorm), torch.nan)),
            (-1, "stationarity"): _host(_stationarity(g, theta, wd)),
            (-1, "grad_norm"): _host(gnorm),
            (-1, "norm_ratio"): _host(fros.amax(0) / fros.amin(0)),
            (-1, "max_abs"): _host(theta.abs().amax(1)),
            **self._moved(theta, tnorm),
        }

    def _moved(self, theta: torch.Tensor, tnorm: torch.Tensor) -> dict[tuple[int, str], np.ndarray]:
        """``moved`` ||theta - theta_prev|| / ||theta||, theta_prev the parameters at the last
        call (the previous log point); nothing at the first call."""
        previous, self.previous = self.previous, theta.clone()
        if previous is None:
            return {}
        return {(-1, "moved"): _host(torch.where(tnorm > 0, (theta - previous).norm(dim=1) / tnorm, torch.nan))}

    def stationarity(self, stacked: Stacked, data, absolute: bool = False) -> np.ndarray:
        """||g + wd theta|| / ||g|| per member (R,), or ``absolute`` ||g + wd theta||: the
        stopping rule of gated runs (``DynamicsSpec.gate_measure``)."""
        g = self.gradient(stacked, data)
        theta = torch.cat([p.flatten(1) for p in stacked.params.values()], 1).double()
        return _host(_stationarity(g, theta, self.wd.to(theta.device), absolute))

    def gradient(self, stacked: Stacked, data) -> torch.Tensor:
        """grad L(theta) over the training set, eval mode, (R, P) float64, summed over chunks of
        ``CHUNK`` samples (L is a mean: each chunk weighs its share of the samples)."""
        stacked.base.eval()
        member, x, y, R = stacked.loss_fn(self.loss), data.x_train, data.y_train, stacked.size
        total = None
        for i in range(0, len(x), CHUNK):
            xc, yc = x[i : i + CHUNK], y[i : i + CHUNK]
            g = vmap(grad(member), in_dims=(0, 0, 0, None, None))(stacked.params, stacked.fixed, stacked.buffers, xc,
                                                                  yc)
            flat = torch.cat([t.flatten(1) for t in g.values()], 1).double() * (len(xc) / len(x))  # (R, P)
            total = flat if total is None else total + flat
        return total


def module_matrices(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The matrices of any module, by parameter name, each (m, n), detached: every parameter
    of 2+ dimensions as (shape[0], prod(shape[1:])) (a conv kernel as (out, in k [k])), and
    each ``nn.MultiheadAttention``'s projections as its per-head products
    (``linalg.weights.split_heads``, the head count read from the module)."""
    matrices = {n: p.detach().reshape(p.shape[0], -1) for n, p in model.named_parameters() if p.dim() >= 2}
    for prefix, module in model.named_modules():
        if isinstance(module, torch.nn.MultiheadAttention) and module._qkv_same_embed_dim:
            p = f"{prefix}." if prefix else ""
            part = {n: w for n, w in matrices.items() if n in (p + "in_proj_weight", p + "out_proj.weight")}
            split = split_heads(part, module.num_heads)
            matrices = {**{n: w for n, w in matrices.items() if n not in part}, **split}
    return list(matrices.items())


def relu_features(model: torch.nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs (N, ...) of every ``nn.ReLU`` module of ``model`` on ``inputs``, by module
    name, in eval mode, caught by forward hooks (a ReLU called as a function is not seen)."""
    caught, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ReLU):
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: caught.__setitem__(name, out.detach())))
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    return caught
