"""Feature and weight geometry: collapse statistics, data span, invariances, merging.

Small pure functions over tensors, each with its shapes and reference:

- ``trace(net, x)``: every layer's pre-activation and output h_k (N, n_k).
- ``collapse(h, y, classes)``: within-class variability of features
  (Papyan, Han & Donoho 2020, "Prevalence of neural collapse", PNAS: NC1;
  Galanti, Gyorgy & Hutter 2022: CDNV; Zangrando et al. 2024: TCV).
- ``outside_span(W1, x)``: share of ||W_1||_F outside span of the training inputs
  (Kuzborskij & Abbasi Yadkori 2025: -> 0 at a stationary point with wd > 0).
- ``invariance(W_k, W_k1, active)``: D_k = W_{k+1}^T W_{k+1} - W_k W_k^T and the
  entry classes Le & Jegelka 2022 distinguish (diagonal; pairs of neurons with
  the same activation pattern on all inputs; other pairs).
- ``merged(net_a, net_b)``: the net whose weights are W_A + W_B.
"""

from __future__ import annotations

import copy

import torch


def trace(net, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One forward pass: each layer's pre-activation W_k h_{k-1} and its output h_k
    after the activation (residual sum included), both (N, n_k)."""
    pre, post, h = [], [], x
    for i, layer in enumerate(net.layers):
        z = layer(h)
        if not net.spec.relu_after(i):
            h = z
        elif net.spec.arch == "residual_relu" and layer.in_features == layer.out_features:
            h = h + torch.relu(z)
        else:
            h = torch.relu(z)
        pre.append(z)
        post.append(h)
    return pre, post


def features(net, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's output after its activation: (N, n_k)."""
    return trace(net, x)[1]


def collapse(h: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, float]:
    """NC1, CDNV and TCV of features h (N, n) with int labels y (N,).

    TCV  = (1/N) sum_i ||h_i - mu_{y_i}||^2                        (total within-class variability)
    NC1  = tr(Sigma_W Sigma_B^+) / K                              (Papyan et al. 2020)
    CDNV = mean_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2),   V_c = E_{i in c} ||h_i - mu_c||^2
    Sigma_W is the within-class covariance, Sigma_B the covariance of the class
    means around the global mean; classes without samples are skipped.
    Sigma_B^+ comes from the thin SVD of the (K, n) between-class matrix, with
    torch.linalg.pinv's default cutoff (s > s_max max(K, n) eps)."""
    h = h.double()
    onehot = torch.nn.functional.one_hot(y, classes).double()  # (N, K)
    counts = onehot.sum(0)
    onehot = onehot[:, counts > 0]
    counts = counts[counts > 0]
    k = len(counts)
    mu = (onehot.T @ h) / counts[:, None]  # (K, n) class means
    centered = h - onehot @ mu  # (N, n)
    sq = (centered**2).sum(1)  # (N,)
    tcv = float(sq.mean())
    var = (onehot.T @ sq) / counts  # (K,) V_c
    between = (mu - mu.mean(0)) / k**0.5  # Sigma_B = between^T between
    _, sv, vt = torch.linalg.svd(between, full_matrices=False)
    keep = sv > sv.max() * max(between.shape) * torch.finfo(torch.float64).eps
    proj = centered @ vt[keep].T  # (N, r): centered features along Sigma_B's range
    nc1 = float(((proj**2).sum(0) / len(h) / sv[keep] ** 2).sum()) / k
    dist2 = torch.cdist(mu, mu) ** 2  # (K, K)
    off = ~torch.eye(k, dtype=torch.bool)
    cdnv = float(((var[:, None] + var[None, :]) / (2 * dist2))[off].mean()) if k > 1 else float("nan")
    return {"tcv": tcv, "nc1": nc1, "cdnv": cdnv}


def span_basis(x: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Orthonormal rows (r, d) spanning the rows of x (N, d), float64; the rank r
    counts singular values above rtol * sigma_1."""
    _, s, vt = torch.linalg.svd(x.double(), full_matrices=False)
    return vt[s > rtol * s[0]]


def outside_span(w1: torch.Tensor, basis: torch.Tensor) -> float:
    """||W_1 (I - P)||_F / ||W_1||_F, P the projector onto the rows of ``basis``
    (from ``span_basis`` of the training inputs)."""
    w1 = w1.double()
    outside = w1 - (w1 @ basis.T) @ basis
    norm = float(w1.norm())
    return float(outside.norm()) / norm if norm > 0 else 0.0


def activation_classes(pre: torch.Tensor, relu: bool) -> torch.Tensor:
    """(n, n) int8 class of each neuron pair of a layer with pre-activations pre (N, n):
    0 diagonal, 1 same activation pattern on every input (a linear layer's pairs
    all count as such), 2 other pairs."""
    n = pre.shape[1]
    if relu:
        pattern = (pre > 0).T.float()  # (n, N)
        same = (pattern @ pattern.T + (1 - pattern) @ (1 - pattern).T) == pre.shape[0]
    else:
        same = torch.ones(n, n, dtype=torch.bool)
    classes = torch.where(same, 1, 2).to(torch.int8)
    classes.fill_diagonal_(0)
    return classes


def invariance(w_k: torch.Tensor, w_next: torch.Tensor) -> torch.Tensor:
    """D_k = W_{k+1}^T W_{k+1} - W_k W_k^T, (n_k, n_k), float64."""
    w_k, w_next = w_k.double(), w_next.double()
    return w_next.T @ w_next - w_k @ w_k.T


def drift_by_class(d0: torch.Tensor, d1: torch.Tensor, classes: torch.Tensor, scale: float) -> dict[str, float]:
    """max |D_k(t) - D_k(0)| / scale over each entry class (NaN for an empty class)."""
    delta = (d1 - d0).abs()
    out = {}
    for code, name in ((0, "drift_diag"), (1, "drift_same"), (2, "drift_other")):
        mask = classes == code
        out[name] = float(delta[mask].max()) / scale if bool(mask.any()) else float("nan")
    return out


def merged(net_a, net_b):
    """A copy of ``net_a`` whose every parameter is the sum of the two nets'."""
    net = copy.deepcopy(net_a)
    with torch.no_grad():
        for p, pa, pb in zip(net.parameters(), net_a.parameters(), net_b.parameters()):
            p.copy_(pa + pb)
    return net
