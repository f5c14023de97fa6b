"""Rank measures from singular values, ``(batch, r) -> (batch,)``.

Every kernel takes ``s`` (batch, r), float32 or float64, each row sorted in
descending order, and returns float64 (batch,).  ``fro`` (batch,) is ||W||_F of
the matrix the row came from: with it, measures stay exact when ``s`` holds
only the top singular values (a truncated or randomized SVD), as long as the
measure's count stays below r.  A zero matrix has every rank measure 0.

References:
- rank_tol: Galanti, Siegel, Gupte & Poggio, arXiv 2206.05794: the number of
  singular values of W / ||W||_F above tol (tol = 1e-3 in the paper).
- stable_rank: Rudelson & Vershynin, "Sampling from large matrices", J. ACM
  54(4), 2007: ||W||_F^2 / sigma_1^2.
- effective_rank: Roy & Vetterli, "The effective rank", EUSIPCO 2007:
  exp(H(p)) with p_i = sigma_i / sum_j sigma_j.
- gd_rank: Gavish & Donoho, "The optimal hard threshold for singular values is
  4/sqrt(3)", IEEE Trans. Inf. Theory 60(8), 2014, Eq. (5) for unknown noise:
  tau = omega(beta) * median(sigma), omega(beta) ~ 0.56 b^3 - 0.95 b^2 + 1.82 b
  + 1.43, beta = min(m, n) / max(m, n).  Needs the full spectrum.
- numerical_rank: numpy.linalg.matrix_rank's default,
  #sigma_i > sigma_1 max(m, n) eps(dtype).
"""

import numpy as np
from numba import njit

from . import rank_common


@njit(cache=True)
def _count_above(s, thresholds):
    """#{i : s[b, i] > thresholds[b]} for every row b -> (batch,) float64.

    Strict: with a zero threshold a zero matrix counts 0."""
    out = np.zeros(s.shape[0])
    for b in range(s.shape[0]):
        out[b] = np.sum(s[b] > thresholds[b])
    return out


@njit(cache=True)
def rank_tol(s, fro, tol):
    """#{i : sigma_i / ||W||_F > tol}.  s (batch, r), fro (batch,) -> (batch,)."""
    return _count_above(s, tol * fro)


@njit(cache=True)
def rank_rel(s, eps):
    """#{i : sigma_i > eps sigma_1}.  s (batch, r) -> (batch,)."""
    return _count_above(s, eps * s[:, 0].astype(np.float64))


@njit(cache=True)
def stable_rank(s, fro):
    """||W||_F^2 / sigma_1^2, in [1, r].  s (batch, r), fro (batch,) -> (batch,)."""
    out = np.zeros(s.shape[0])
    for b in range(s.shape[0]):
        if s[b, 0] > 0.0:
            out[b] = (fro[b] / s[b, 0]) ** 2
    return out


@njit(cache=True)
def effective_rank(s):
    """exp(-sum_i p_i log p_i), p_i = sigma_i / sum_j sigma_j (0 log 0 = 0).

    s (batch, r) holding the full spectrum -> (batch,), in [1, r]."""
    out = np.zeros(s.shape[0])
    for b in range(s.shape[0]):
        total = 0.0
        for v in s[b]:
            total += v
        if total > 0.0:
            entropy = 0.0
            for v in s[b]:
                if v > 0.0:
                    p = v / total
                    entropy -= p * np.log(p)
            out[b] = np.exp(entropy)
    return out


@njit(cache=True)
def tail_k(s, fro, k):
    """(sum_{i > k} sigma_i^2)^(1/2) / ||W||_F, the share of W outside its best
    rank-k approximation.  s (batch, r) with r >= k, fro (batch,) -> (batch,)."""
    out = np.zeros(s.shape[0])
    for b in range(s.shape[0]):
        if fro[b] > 0.0:
            head = 0.0
            for i in range(k):
                head += np.float64(s[b, i]) ** 2
            out[b] = np.sqrt(max(fro[b] ** 2 - head, 0.0)) / fro[b]
    return out


gd_omega = njit(cache=True)(rank_common.omega)  # Gavish-Donoho omega(beta), shared with rank_cuda


@njit(cache=True)
def gd_rank(s, m, n):
    """#{i : sigma_i > omega(beta) median(sigma)} of an m x n matrix.

    s (batch, min(m, n)), the full spectrum -> (batch,)."""
    omega = gd_omega(min(m, n) / max(m, n))
    tau = np.empty(s.shape[0])
    for b in range(s.shape[0]):
        tau[b] = omega * np.median(s[b])
    return _count_above(s, tau)


@njit(cache=True)
def numerical_rank(s, m, n, eps):
    """#{i : sigma_i > sigma_1 max(m, n) eps}, numpy.linalg.matrix_rank's
    default; eps is the machine epsilon of the matrix's dtype.  -> (batch,)."""
    return _count_above(s, s[:, 0].astype(np.float64) * (max(m, n) * eps))
