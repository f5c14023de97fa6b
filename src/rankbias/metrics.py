"""Metrics of a network at a log step: spectra, ranks, norms, alignment, stationarity.

``measure(net, data, loss, wd)`` returns flat rows ``(layer, name, value)``
(layer -1 for whole-network quantities) and each layer's singular values.
Spectra come from one ``rankbias.svdvals`` call per group of equally shaped
layers, rank measures from the same spectra.

Whole-network quantities, with theta the trainable parameters and
g = grad L_unregularized(theta) on the full training set:
- ``alignment``     cos(theta, -g)  (Kuzborskij & Abbasi Yadkori 2025: -> 1 at a
                    stationary point of L + wd/2 ||theta||^2, where g = -wd theta)
- ``norm_ratio``    max_k ||W_k||_F / min_k ||W_k||_F  (-> 1 for bias-free nets with wd)
- ``stationarity``  ||g + wd theta|| / ||g||  (0 at a stationary point)
- ``grad_norm``     ||g||
Per layer: ``fro``, ``spectral`` and every measure of ``rankbias.MEASURES``
(tail_k with k = the net's output width).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from rankbias import kernels
from rankbias.dynamics import loss_value
from rankbias.spectral import svdvals


def layer_spectra(weights: list[torch.Tensor]) -> list[np.ndarray]:
    """Singular values (min(out, in),) float64 of each weight, batched by shape."""
    groups = defaultdict(list)
    for i, w in enumerate(weights):
        groups[tuple(w.shape)].append(i)
    out: list[np.ndarray] = [None] * len(weights)
    for idx in groups.values():
        stack = torch.stack([weights[i].detach().float() for i in idx]).numpy()
        for i, s in zip(idx, svdvals(stack)):
            out[i] = s.astype(np.float64)
    return out


def _layer_rows(layer: int, w: torch.Tensor, s: np.ndarray, tail_k: int) -> list[tuple]:
    m, n = w.shape
    fro = np.array([float(np.sqrt((s**2).sum()))])
    S = s[None, :]
    eps32 = float(np.finfo(np.float32).eps)
    values = {
        "fro": fro[0],
        "spectral": float(s[0]),
        "rank_tol": kernels.rank_tol(S, fro, 1e-3)[0],
        "rank_rel": kernels.rank_rel(S, 1e-2)[0],
        "stable_rank": kernels.stable_rank(S, fro)[0],
        "effective_rank": kernels.effective_rank(S)[0],
        "tail_k": kernels.tail_k(S, fro, min(tail_k, len(s)))[0],
        "gd_rank": kernels.gd_rank(S, m, n)[0],
        "numerical_rank": kernels.numerical_rank(S, m, n, eps32)[0],
    }
    return [(layer, name, float(v)) for name, v in values.items()]


def measure(net, data, loss: str, wd: float) -> tuple[list[tuple], list[np.ndarray]]:
    """Rows (layer, name, value) and per-layer spectra of ``net`` now (see module docstring)."""
    weights = net.weights()
    spectra = layer_spectra(weights)
    tail_k = weights[-1].shape[0]
    rows = [row for i, (w, s) in enumerate(zip(weights, spectra)) for row in _layer_rows(i, w, s, tail_k)]
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.enable_grad():
        value = loss_value(loss, net(data.x_train), data.y_train)
        grads = torch.autograd.grad(value, params)
    theta = torch.cat([p.detach().reshape(-1) for p in params]).double()
    g = torch.cat([x.reshape(-1) for x in grads]).double()
    gnorm, tnorm = float(g.norm()), float(theta.norm())
    fros = [float(w.detach().norm()) for w in weights]
    rows += [
        (-1, "alignment", float(-(g @ theta)) / (gnorm * tnorm) if gnorm * tnorm > 0 else float("nan")),
        (-1, "norm_ratio", max(fros) / min(fros) if min(fros) > 0 else float("inf")),
        (-1, "stationarity", float((g + wd * theta).norm()) / gnorm if gnorm > 0 else float("nan")),
        (-1, "grad_norm", gnorm),
    ]
    return rows, spectra


class Tracker:
    """Measures a run at each log point, remembering what the first one saw.

    Adds to ``measure``'s rows, per layer k:
    - ``nc1``, ``cdnv``, ``tcv`` of the features after layer k (class labels only);
    - ``outside_span`` (layer 0): share of ||W_1||_F outside span(X_train);
    - ``drift_diag``, ``drift_same``, ``drift_other`` (layer k, pair k, k+1):
      max |D_k(t) - D_k(0)| over each entry class of ``geometry.invariance``,
      relative to sigma_1(W_k(0))^2 + sigma_1(W_{k+1}(0))^2 (a bound on |D_k|'s
      entries); the pair classes use the activation patterns at time t.
    """

    def __init__(self, loss: str, wd: float):
        self.loss, self.wd = loss, wd
        self.d0: list[torch.Tensor] | None = None
        self.scale: list[float] = []
        self.span = None  # basis of span(X_train), computed once

    def __call__(self, net, data) -> tuple[list[tuple], list[np.ndarray]]:
        from rankbias import geometry

        rows, spectra = measure(net, data, self.loss, self.wd)
        weights = [w.detach() for w in net.weights()]
        with torch.no_grad():
            pres, feats = geometry.trace(net, data.x_train)
        if data.task == "classes":
            for k, h in enumerate(feats[:-1]):
                rows += [(k, name, v) for name, v in geometry.collapse(h, data.y_train, data.outputs).items()]
        if self.span is None:
            self.span = geometry.span_basis(data.x_train)
        rows.append((0, "outside_span", geometry.outside_span(weights[0], self.span)))
        d_now = [geometry.invariance(a, b) for a, b in zip(weights[:-1], weights[1:])]
        if self.d0 is None:
            self.d0 = d_now
            self.scale = [float(spectra[k][0] ** 2 + spectra[k + 1][0] ** 2) or 1.0 for k in range(len(d_now))]
        for k, (d0, d1) in enumerate(zip(self.d0, d_now)):
            classes = geometry.activation_classes(pres[k], net.spec.relu_after(k))
            rows += [(k, name, v) for name, v in geometry.drift_by_class(d0, d1, classes, self.scale[k]).items()]
        return rows, spectra
