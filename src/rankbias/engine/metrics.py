"""Metrics of R networks at a log point, all members in one batched pass.

``Tracker(spec, loss, wd)(weights, biases, data)`` takes stacked weights
[(R, n_k, n_{k-1})] (one net: R = 1, see ``geometry.stacked``) and returns, per
member, rows ``(layer, name, value)`` (layer -1 for whole-network quantities)
and each layer's singular values.  Spectra come from one ``rankbias.svdvals``
call per group of equally shaped layers across all members.

Per layer k: ``fro``, ``spectral`` and every measure of ``rankbias.MEASURES``
(rank_rel at 1e-2, tail_k with k = K = the output width; numerical_rank at float32
tolerance), plus:
- ``gap_k``: sigma_{K+1} / sigma_1 (Zangrando et al. 2024's distance to rank K);
- ``collapse_bound`` (class labels): wd (sum_{i>K} sigma_i^2)^(1/2) / (||R_k||_F +
  sum_i ||delta_i|| ||h_i - mu_c(i)||), with h_i the layer's input for sample i,
  mu_c its class mean, delta_i = dL/dz_k(i) and R_k = grad_W L + wd W_k.  Since
  wd W_k = R_k - sum_i delta_i h_i^T and sum_i delta_i mu_c(i)^T has rank <= K,
  Eckart-Young and the triangle inequality give <= 1 at every point of training
  (Zangrando et al. 2024, Thm. 3.1's mechanism);
- ``adjacent_alignment`` (pair k, k+1 without a ReLU between them): |v_1(W_{k+1})^T
  u_1(W_k)|, the top singular vectors' alignment (Le & Jegelka 2022: -> 1);
- ``nc1``, ``cdnv``, ``tcv`` of the features after layer k (class labels only);
- ``outside_span`` (layer 0): share of ||W_1||_F outside span(X_train);
- ``drift_diag``, ``drift_same``, ``drift_other`` (pair k, k+1): max |D_k(t) -
  D_k(0)| per entry class of ``geometry.invariance``, relative to
  sigma_1(W_k(0))^2 + sigma_1(W_{k+1}(0))^2 (a bound on D_k's entries); pair
  classes use the activation patterns at time t.
Whole network, with theta the trainable parameters and g = grad L_unregularized:
- ``alignment``    cos(theta, -g)  (Kuzborskij & Abbasi Yadkori 2025: -> 1 at a
                   stationary point of L + wd/2 ||theta||^2, where g = -wd theta)
- ``norm_ratio``   max_k ||W_k||_F / min_k ||W_k||_F  (-> 1 for bias-free nets with wd)
- ``stationarity`` ||g + wd theta|| / ||g||  (0 at a stationary point)
- ``grad_norm``    ||g||
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from rankbias import kernels
from rankbias.engine import geometry
from rankbias.engine.losses import loss_per_sample
from rankbias.linalg.spectral import svdvals


def _host(t: torch.Tensor) -> np.ndarray:
    """A metric's values (R,) as a host array: the only copy back from the device."""
    return t.detach().cpu().numpy()


def layer_spectra(weights: list[torch.Tensor]) -> list[np.ndarray]:
    """Singular values (R, min(n_k, n_{k-1})) float64 of each stacked layer,
    one svdvals call per group of equally shaped layers: the CUDA spectral core
    for weights on a GPU, the CPU core otherwise; only the spectra come back."""
    groups = defaultdict(list)
    for i, w in enumerate(weights):
        groups[tuple(w.shape[1:])].append(i)
    out: list = [None] * len(weights)
    for idx in groups.values():
        stack = torch.cat([weights[i].detach().float() for i in idx])  # (R * len(idx), m, n)
        values = svdvals(stack if stack.device.type == "cuda" else stack.numpy())
        values = _host(values) if isinstance(values, torch.Tensor) else values
        for j, s in zip(idx, np.split(values.astype(np.float64), len(idx))):
            out[j] = s
    return out


def _rank_values(s: np.ndarray, m: int, n: int, tail: int) -> dict[str, np.ndarray]:
    """Norms and rank measures of spectra s (R, r) of m x n layers -> {name: (R,)}."""
    s = np.ascontiguousarray(s)
    fro = np.sqrt((s**2).sum(1))
    return {
        "fro": fro,
        "spectral": s[:, 0],
        "rank_tol": kernels.rank_tol(s, fro, 1e-3),
        "rank_rel": kernels.rank_rel(s, 1e-2),
        "stable_rank": kernels.stable_rank(s, fro),
        "effective_rank": kernels.effective_rank(s),
        "tail_k": kernels.tail_k(s, fro, min(tail, s.shape[1])),
        "gap_k": s[:, tail] / np.where(s[:, 0] > 0, s[:, 0], 1.0) if tail < s.shape[1] else np.zeros(len(s)),
        "gd_rank": kernels.gd_rank(s, m, n),
        "numerical_rank": kernels.numerical_rank(s, m, n, float(np.finfo(np.float32).eps)),
    }


@dataclass
class Gradients:
    """The full-batch gradient of the unregularized loss of R stacked nets: theta and g (R, P)
    float64 over the trainable parameters, each layer's pre-activations z_k and outputs h_k
    (R, N, n_k), deltas dL/dz_k (R, N, n_k) and weight gradients {k: (R, n_k, n_{k-1})}."""

    theta: torch.Tensor
    g: torch.Tensor
    pre: list
    post: list
    deltas: list
    wgrads: dict


def gradients(spec, loss: str, weights: list[torch.Tensor], biases, data) -> Gradients:
    """``Gradients`` of R nets of ``spec`` with stacked weights [(R, n_k, n_{k-1})] on ``data``'s
    training set, by autograd through ``geometry.trace``."""
    R = weights[0].shape[0]
    trainable = [k for k in range(len(weights)) if not (spec.fixed_outer and k == len(weights) - 1)]
    ws = [w.detach().clone().requires_grad_(k in trainable) for k, w in enumerate(weights)]
    bs = [b.detach().clone().requires_grad_(k in trainable) for k, b in enumerate(biases)] if biases else None
    dtype = ws[0].dtype
    x = data.x_train.to(dtype).expand(R, *data.x_train.shape)
    y = data.y_train if data.task == "classes" else data.y_train.to(dtype)
    with torch.enable_grad():
        pre, post = geometry.trace(spec, ws, bs, x)
        losses = loss_per_sample(loss, post[-1], y.expand(R, *y.shape)).mean(1)  # (R,)
        params = [ws[k] for k in trainable] + ([bs[k] for k in trainable] if bs else [])
        grads = torch.autograd.grad(losses.sum(), params + pre)
        grads, deltas = grads[: len(params)], grads[len(params):]  # dL/dz_k (R, N, n_k)
    theta = torch.cat([p.detach().flatten(1) for p in params], 1).double()  # (R, P)
    g = torch.cat([q.flatten(1) for q in grads], 1).double()
    return Gradients(theta, g, [z.detach() for z in pre], [h.detach() for h in post], [d.detach() for d in deltas],
                     {k: q.detach() for k, q in zip(trainable, grads)})


def _stationarity(theta: torch.Tensor, g: torch.Tensor, wd: torch.Tensor) -> np.ndarray:
    """||g + wd theta|| / ||g|| per member (R,): 0 at a stationary point of L + wd/2 ||theta||^2."""
    gnorm = g.norm(dim=1)
    ratio = (g + wd.reshape(-1)[:, None] * theta).norm(dim=1) / gnorm
    return _host(torch.where(gnorm > 0, ratio, torch.nan))


def stationarity(spec, loss: str, weights: list[torch.Tensor], biases, data, wd) -> np.ndarray:
    """The ``stationarity`` metric of R stacked nets, (R,) float64: the stopping rule of gated runs."""
    grads = gradients(spec, loss, weights, biases, data)
    return _stationarity(grads.theta, grads.g, torch.as_tensor(wd, dtype=torch.float64, device=grads.g.device))


class Tracker:
    """Measures R networks of one ``NetSpec`` at each log point of their training,
    remembering D_k(0), span(X_train) and the inputs' class spread from the first call."""

    def __init__(self, spec, loss: str, wd):
        self.spec, self.loss = spec, loss
        self.wd = torch.as_tensor(wd, dtype=torch.float64, device="cpu").reshape(-1)  # (R,) or (1,), moved per call
        self.d0: list[torch.Tensor] | None = None
        self.scale: list[torch.Tensor] = []
        self.span = None
        self.input_spread = None

    def __call__(self, weights: list[torch.Tensor], biases, data) -> list[tuple[list[tuple], list[np.ndarray]]]:
        R = weights[0].shape[0]
        values: dict[tuple[int, str], np.ndarray] = {}
        self.wd = self.wd.to(weights[0].device)
        spectra = layer_spectra(weights)
        tail = weights[-1].shape[1]
        for k, (w, s) in enumerate(zip(weights, spectra)):
            for name, v in _rank_values(s, w.shape[1], w.shape[2], tail).items():
                values[(k, name)] = v
        self._network(weights, biases, data, values, R)
        self._geometry(weights, spectra, data, values)
        keys, columns = list(values), [np.asarray(v, dtype=np.float64).tolist() for v in values.values()]
        return [([(layer, name, column[r]) for (layer, name), column in zip(keys, columns)], [s[r] for s in spectra])
                for r in range(R)]

    def _network(self, weights, biases, data, values, R):
        """alignment, norm_ratio, stationarity, grad_norm; keeps the traced features."""
        grads = gradients(self.spec, self.loss, weights, biases, data)
        theta, g = grads.theta, grads.g
        gnorm, tnorm = g.norm(dim=1), theta.norm(dim=1)
        fros = torch.stack([w.detach().flatten(1).norm(dim=1) for w in weights]).double()  # (L, R)
        values[(-1, "alignment")] = _host(torch.where(gnorm * tnorm > 0, -(g * theta).sum(1) / (gnorm * tnorm),
                                                      torch.nan))
        values[(-1, "norm_ratio")] = _host(fros.amax(0) / fros.amin(0))
        values[(-1, "stationarity")] = _stationarity(theta, g, self.wd)
        values[(-1, "grad_norm")] = _host(gnorm)
        self._pre, self._post, self._deltas, self._wgrads = grads.pre, grads.post, grads.deltas, grads.wgrads

    def _geometry(self, weights, spectra, data, values):
        """Collapse, data span and invariance drift, from the traced features."""
        if data.task == "classes":
            if self.input_spread is None:  # of the training inputs, shared by all members: (1, N)
                self.input_spread = geometry.collapse(data.x_train[None], data.y_train, data.outputs)["spread"]
            spreads = [self.input_spread]
            for k, h in enumerate(self._post[:-1]):
                out = geometry.collapse(h, data.y_train, data.outputs)
                spreads.append(out.pop("spread"))  # of layer k + 1's input
                for name, v in out.items():
                    values[(k, name)] = _host(v)
            for k in self._wgrads:
                values[(k, "collapse_bound")] = self._collapse_bound(k, weights[k], spectra[k], spreads[k], data)
        for k in range(len(weights) - 1):
            if not self.spec.relu_after(k):
                values[(k, "adjacent_alignment")] = _host(geometry.top_alignment(weights[k], weights[k + 1]))
        if self.span is None:
            self.span = geometry.span_basis(data.x_train)
        values[(0, "outside_span")] = _host(geometry.outside_span(weights[0].detach(), self.span))
        d_now = [geometry.invariance(a.detach(), b.detach()) for a, b in zip(weights[:-1], weights[1:])]
        if self.d0 is None:
            self.d0 = d_now
            self.scale = [torch.as_tensor(spectra[k][:, 0] ** 2 + spectra[k + 1][:, 0] ** 2, device=d_now[k].device)
                          .clamp_min(1e-300)
                          for k in range(len(d_now))]
        for k, (d0, d1) in enumerate(zip(self.d0, d_now)):
            classes = geometry.activation_classes(self._pre[k], self.spec.relu_after(k))
            for name, v in geometry.drift_by_class(d0, d1, classes, self.scale[k]).items():
                values[(k, name)] = _host(v)

    def _collapse_bound(self, k: int, w: torch.Tensor, s: np.ndarray, spread: torch.Tensor, data) -> np.ndarray:
        """``collapse_bound`` of layer k for every member -> (R,), with spread (R or 1, N) =
        ||h_i - mu_c(i)|| of the layer's inputs; see the module docstring."""
        K = data.outputs
        residual = (self._wgrads[k].double() + self.wd[:, None, None] * w.double()).flatten(1).norm(dim=1)
        rhs = residual + (self._deltas[k].norm(dim=-1).double() * spread).sum(1)  # (R,)
        tail = torch.as_tensor(np.sqrt((s[:, K:] ** 2).sum(1)), device=w.device)  # distance of W_k to rank K
        lhs = self.wd * tail
        return _host(torch.where(rhs > 0, lhs / torch.where(rhs > 0, rhs, 1.0), torch.where(lhs > 0, torch.inf, 0.0)))
