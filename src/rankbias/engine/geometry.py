"""Feature and weight geometry of R networks at once: collapse, data span,
invariances, merging.

Every function takes stacked tensors with a leading member axis R (a single
network is R = 1), so an ensemble is measured in one batched pass:

- ``trace(spec, weights, biases, x)``: each layer's pre-activation and output,
  (R, N, n_k), for weights [(R, n_k, n_{k-1})].
- ``collapse(h, y, classes)``: within-class variability of features
  (Papyan, Han & Donoho 2020, "Prevalence of neural collapse", PNAS: NC1;
  Galanti, Gyorgy & Hutter 2022: CDNV; Zangrando et al. 2024: TCV).
- ``outside_span(W1, basis)``: share of ||W_1||_F outside span of the training
  inputs (Kuzborskij & Abbasi Yadkori 2025: -> 0 at a stationary point, wd > 0).
- ``invariance(W_k, W_k1)`` and ``activation_classes``: D_k = W_{k+1}^T W_{k+1}
  - W_k W_k^T and the entry classes Le & Jegelka 2022 distinguish (diagonal;
  pairs of neurons with the same activation pattern on all inputs; other pairs).
- ``merged(net_a, net_b)``: the net whose weights are W_A + W_B.
"""

from __future__ import annotations

import copy

import torch

from rankbias.engine.nets import activate


def trace(spec, weights: list[torch.Tensor], biases, x: torch.Tensor):
    """Pre-activations z_k and outputs h_k (after the activation, residual sum
    included), both lists of (R, N, n_k), for x (R, N, d_in)."""
    pre, post, h = [], [], x
    for k, w in enumerate(weights):
        z = torch.bmm(h, w.transpose(1, 2))  # (R, N, n_k)
        if biases is not None:
            z = z + biases[k][:, None, :]
        h = activate(spec, k, h, z)
        pre.append(z)
        post.append(h)
    return pre, post


def stacked(net) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """A single net's weights (and biases) as R = 1 stacks."""
    weights = [layer.weight.detach()[None] for layer in net.layers]
    biases = [layer.bias.detach()[None] for layer in net.layers] if net.spec.bias else None
    return weights, biases


def class_centered(h: torch.Tensor, y: torch.Tensor, classes: int):
    """Features h (R, N, n) minus their class means: (mu (R, K, n), centered (R, N, n),
    counts (K,)), in h's dtype; an empty class has mean 0 and count 0.

    Subtracting the means before any product keeps float32 accurate when the
    classes collapse: the error of ||h_i - mu_c|| is ~eps ||h_i||, where the
    Gram-matrix route E||h||^2 - ||mu_c||^2 loses ~eps ||h_i||^2 of a tiny square."""
    onehot = torch.nn.functional.one_hot(y, classes).to(h.dtype)  # (N, K)
    counts = onehot.sum(0)
    mu = torch.matmul(onehot.T, h) / counts.clamp_min(1)[:, None]  # (R, K, n)
    return mu, h - mu[:, y], counts


def collapse(h: torch.Tensor, y: torch.Tensor, classes: int) -> dict[str, torch.Tensor]:
    """NC1, CDNV and TCV of features h (R, N, n) with int labels y (N,) -> each (R,),
    float64, and ``spread`` (R, N) = ||h_i - mu_{y_i}||.

    TCV  = (1/N) sum_i ||h_i - mu_{y_i}||^2 = tr(Sigma_W)           (total within-class variability)
    NC1  = tr(Sigma_W Sigma_B^+) / K                              (Papyan et al. 2020)
    CDNV = mean_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2),   V_c = E_{i in c} ||h_i - mu_c||^2
    Sigma_W = C^T C / N is the within-class covariance of the class-centered
    features C (``class_centered``) and Sigma_B the covariance of the class
    means around the global mean; NC1 needs Sigma_W only along Sigma_B's K - 1
    directions v_i, as ||C v_i||^2 / N.  Classes without samples are skipped.
    Sigma_B^+ comes from the thin SVD of the (K, n) between-class matrix, with
    torch.linalg.pinv's default cutoff (s > s_max max(K, n) eps)."""
    N = h.shape[1]
    mu, centered, counts = class_centered(h, y, classes)
    present = counts > 0
    mu, counts = mu[:, present].double(), counts[present].double()  # (R, K', n), (K',)
    k = len(counts)
    sq = (centered * centered).sum(-1).double()  # (R, N): ||h_i - mu_c||^2
    var = (sq @ torch.nn.functional.one_hot(y, classes)[:, present].double()) / counts  # (R, K'): V_c
    tcv = sq.sum(1) / N
    between = (mu - mu.mean(1, keepdim=True)) / k**0.5  # Sigma_B = between^T between
    _, sv, vt = torch.linalg.svd(between, full_matrices=False)  # (R, m), (R, m, n)
    keep = sv > sv.amax(-1, keepdim=True) * max(between.shape[1:]) * torch.finfo(torch.float64).eps
    along = torch.bmm(centered, vt.mT.to(centered.dtype))  # (R, N, m): C v_i, no n x n Sigma_W needed
    quad = (along.double() ** 2).sum(1) / N  # v_i^T Sigma_W v_i = ||C v_i||^2 / N
    nc1 = torch.where(keep, quad / torch.where(keep, sv, 1.0) ** 2, 0.0).sum(-1) / k
    dist2 = torch.cdist(mu, mu) ** 2  # (R, K, K)
    off = ~torch.eye(k, dtype=torch.bool, device=h.device)
    ratio = (var[:, :, None] + var[:, None, :]) / (2 * dist2)
    cdnv = ratio[:, off].mean(-1) if k > 1 else torch.full((h.shape[0],), float("nan"), dtype=torch.float64, device=h.device)
    return {"tcv": tcv, "nc1": nc1, "cdnv": cdnv, "spread": sq.sqrt()}


def span_basis(x: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Orthonormal rows (r, d) spanning the rows of x (N, d), float64; the rank r
    counts singular values above rtol * sigma_1."""
    _, s, vt = torch.linalg.svd(x.double(), full_matrices=False)
    return vt[s > rtol * s[0]]


def outside_span(w1: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """||W_1 (I - P)||_F / ||W_1||_F for W_1 (R, m, d) -> (R,); P projects onto the
    rows of ``basis`` (from ``span_basis`` of the training inputs)."""
    w1 = w1.double()
    outside = w1 - (w1 @ basis.T) @ basis
    norm = w1.flatten(1).norm(dim=1)
    return torch.where(norm > 0, outside.flatten(1).norm(dim=1) / torch.where(norm > 0, norm, 1.0), 0.0)


def activation_classes(pre: torch.Tensor, relu: bool) -> torch.Tensor:
    """(R, n, n) int8 class of each neuron pair of a layer with pre-activations
    pre (R, N, n): 0 diagonal, 1 same activation pattern on every input (a linear
    layer's pairs all count as such), 2 other pairs."""
    R, N, n = pre.shape
    if relu:
        pattern = (pre > 0).transpose(1, 2).float()  # (R, n, N)
        active = pattern.sum(-1)  # (R, n)
        # inputs where units i, j agree: N - a_i - a_j + 2 (P P^T)_ij, one GEMM (exact in float32 up to 2^24)
        agree = N - active[:, :, None] - active[:, None, :] + 2 * torch.bmm(pattern, pattern.transpose(1, 2))
        same = agree == N
    else:
        same = torch.ones(R, n, n, dtype=torch.bool, device=pre.device)
    classes = torch.where(same, 1, 2).to(torch.int8)
    classes.diagonal(dim1=1, dim2=2).zero_()
    return classes


def invariance(w_k: torch.Tensor, w_next: torch.Tensor) -> torch.Tensor:
    """D_k = W_{k+1}^T W_{k+1} - W_k W_k^T for stacks (R, n_k, .) -> (R, n_k, n_k), float64."""
    w_k, w_next = w_k.double(), w_next.double()
    return torch.bmm(w_next.transpose(1, 2), w_next) - torch.bmm(w_k, w_k.transpose(1, 2))


def drift_by_class(d0: torch.Tensor, d1: torch.Tensor, classes: torch.Tensor, scale: torch.Tensor) -> dict:
    """max |D_k(t) - D_k(0)| / scale over each entry class, each (R,) (NaN where a
    member has no entry of that class)."""
    delta = (d1 - d0).abs()
    out = {}
    for code, name in ((0, "drift_diag"), (1, "drift_same"), (2, "drift_other")):
        peak = torch.where(classes == code, delta, -torch.inf).amax((1, 2))
        out[name] = torch.where(torch.isinf(peak), torch.nan, peak) / scale
    return out


def top_alignment(w_k: torch.Tensor, w_next: torch.Tensor) -> torch.Tensor:
    """|v_1(W_{k+1})^T u_1(W_k)| for stacks W_k (R, n_k, .), W_{k+1} (R, ., n_k) -> (R,),
    u_1 / v_1 the top left / right singular vectors (float64 SVD)."""
    u = torch.linalg.svd(w_k.double(), full_matrices=False)[0][:, :, 0]  # (R, n_k)
    v = torch.linalg.svd(w_next.double(), full_matrices=False)[2][:, 0, :]  # (R, n_k)
    return (u * v).sum(-1).abs()


def merged(net_a, net_b):
    """A copy of ``net_a`` whose every parameter is the sum of the two nets'."""
    net = copy.deepcopy(net_a)
    with torch.no_grad():
        for p, pa, pb in zip(net.parameters(), net_a.parameters(), net_b.parameters()):
            p.copy_(pa + pb)
    return net
