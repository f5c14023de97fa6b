"""Feature and weight geometry: collapse statistics, data span, invariances, merging.

Small pure functions over tensors, each with its shapes and reference:

- ``features(net, x)``: every layer's output h_k (N, n_k) after its activation.
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


def features(net, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's output after its activation (residual sum included): (N, n_k)."""
    out, h = [], x
    for i, layer in enumerate(net.layers):
        z = layer(h)
        if not net.spec.relu_after(i):
            h = z
        elif net.spec.arch == "residual_relu" and layer.in_features == layer.out_features:
            h = h + torch.relu(z)
        else:
            h = torch.relu(z)
        out.append(h)
    return out


def preactivations(net, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's pre-activation W_k h_{k-1}: (N, n_k)."""
    hs = [x, *features(net, x)[:-1]]
    return [layer(h) for layer, h in zip(net.layers, hs)]


def collapse(h: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, float]:
    """NC1, CDNV and TCV of features h (N, n) with int labels y (N,).

    TCV  = (1/N) sum_i ||h_i - mu_{y_i}||^2                        (total within-class variability)
    NC1  = tr(Sigma_W Sigma_B^+) / K                              (Papyan et al. 2020)
    CDNV = mean_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2),   V_c = E_{i in c} ||h_i - mu_c||^2
    Sigma_W is the within-class covariance, Sigma_B the covariance of the class
    means around the global mean; classes without samples are skipped."""
    h = h.double()
    present = [c for c in range(classes) if bool((y == c).any())]
    mu = torch.stack([h[y == c].mean(0) for c in present])  # (K, n)
    centered = h - mu[torch.searchsorted(torch.tensor(present), y)]
    tcv = float((centered**2).sum(1).mean())
    sigma_w = centered.T @ centered / len(h)
    between = mu - mu.mean(0)
    sigma_b = between.T @ between / len(present)
    nc1 = float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b))) / len(present)
    var = torch.stack([(centered[y == c] ** 2).sum(1).mean() for c in present])
    ratios = [
        float((var[a] + var[b]) / (2 * ((mu[a] - mu[b]) ** 2).sum()))
        for a in range(len(present))
        for b in range(len(present))
        if a != b
    ]
    return {"tcv": tcv, "nc1": nc1, "cdnv": sum(ratios) / len(ratios) if ratios else float("nan")}


def outside_span(w1: torch.Tensor, x: torch.Tensor, rtol: float = 1e-6) -> float:
    """||W_1 (I - P)||_F / ||W_1||_F, P the projector onto span of the rows of x (N, d);
    the span's rank counts singular values of x above rtol * sigma_1."""
    w1, x = w1.double(), x.double()
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    basis = vt[s > rtol * s[0]]  # (r, d)
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
