"""Adaptive eps-rank of large matrices without a full SVD.

The eps-rank #{i : sigma_i > eps sigma_1} of A (m, n) is found by growing an
orthonormal basis Q (m, k) of A's dominant range block by block, with
B = Q^T A (k, n), until the answer is settled:

    repeat:
        Omega ~ N(0, 1) (n, b);  Y = (A A^T)^q A Omega      # re-orthonormalized
        Y <- (I - Q Q^T) Y, twice;  Q_new = orth(Y)          # block Gram-Schmidt
        Q = [Q, Q_new];  B = [B; Q_new^T A];  k += b
        sigma(B) from eigvalsh(B B^T) in float64
        tail = sqrt(||A||_F^2 - ||B||_F^2)                    # = ||A - Q Q^T A||_F
    until #{sigma_i(B) > eps sigma_1(B)} <= k - b   (the newest block is all
          below the threshold: the count has b columns of oversampling),
       or tail <= eps sigma_1(B),  or k = min(m, n)

This is the blocked randomized QB with the error indicator
||A - QB||_F^2 = ||A||_F^2 - ||B||_F^2 of Yu, Gu & Li, "Efficient randomized
algorithms for the fixed-precision low-rank matrix approximation", SIAM J.
Matrix Anal. Appl. 39(3), 2018 (arXiv 1606.09402), Alg. 2 (randQB_EI), with
HMT Alg. 4.4 power iterations (Halko, Martinsson & Tropp, arXiv 0909.4061).

Stopping as soon as sigma_k(B) <= eps sigma_1(B) undercounts: the newest
block's values are the least converged (sigma_i(B) <= sigma_i(A)), so a whole
block past the threshold is required, like the oversampling p of a rSVD.

Guarantees: sigma_i(B) <= sigma_i(A) (B is a compression of A), and every
singular value of A outside span(Q) is <= tail, so when the loop stops on
``tail <= eps sigma_1`` the rank count is certified up to the accuracy of the
sigma_i(B) near the threshold.  The indicator cancels: its floor is about
sqrt(k u) ||A||_F in A's dtype (B = Q^T A is rounded to it), ~1e-3 ||A||_F for
float32 at k ~ 100, so below that the count rule, not the tail, stops the loop.
Cost: O(m n k (2q + 2)) for the final k: use it when the rank is far below
min(m, n); otherwise the exact svdvals kernel is cheaper.
"""

import numpy as np
from numba import njit, prange

from .qr_cpu import basis_one_pass, orthonormalize
from .random_cpu import fill_gaussian_block
from .norms_cpu import frobenius


@njit(cache=True)
def _project_out(Y, Q):
    """Y - Q (Q^T Y) for Y (m, b) and an orthonormal Q (m, k): block Gram-Schmidt."""
    if Q.shape[1] == 0:
        return Y
    return Y - Q @ (Q.T @ Y)


@njit(cache=True)
def eps_rank_one(A, eps, block, power_iters, seed, stream):
    """eps-rank of A (m, n), float32 or float64, by the loop of the module docstring.

    Returns (rank, k, tail): the eps-rank estimate, the basis size it took, and
    the final ||A - Q Q^T A||_F estimate (float64)."""
    m, n = A.shape
    kmax = min(m, n)
    Q = np.zeros((m, kmax), dtype=A.dtype)
    B = np.zeros((kmax, n), dtype=A.dtype)
    norm_a2 = frobenius(A) ** 2
    norm_b2 = 0.0
    k = 0
    sig = np.zeros(1)
    tail = np.sqrt(norm_a2)
    while k < kmax and norm_a2 > 0.0:
        b = min(block, kmax - k)
        Omega = np.empty((n, b), dtype=A.dtype)
        fill_gaussian_block(Omega, seed, stream, k * n)
        Qk = np.ascontiguousarray(Q[:, :k])
        Y = _project_out(A @ Omega, Qk)  # (m, b)
        for _ in range(power_iters):
            P = basis_one_pass(A.T @ basis_one_pass(Y))  # (n, b)
            Y = _project_out(A @ P, Qk)
        Qn = orthonormalize(_project_out(Y, Qk))  # (m, b), twice is enough
        Qn = orthonormalize(_project_out(Qn, Qk))
        Bn = Qn.T @ A  # (b, n)
        Q[:, k : k + b] = Qn
        B[k : k + b, :] = Bn
        norm_b2 += frobenius(Bn) ** 2
        k += b
        Bk = B[:k].astype(np.float64)
        lam = np.linalg.eigvalsh(Bk @ Bk.T)[::-1]  # (k,), descending
        sig = np.sqrt(np.maximum(lam, 0.0))
        tail = np.sqrt(max(norm_a2 - norm_b2, 0.0))
        threshold = eps * sig[0]
        if np.sum(sig > threshold) <= k - b or tail <= threshold:
            break
    rank = 0
    if sig[0] > 0.0:
        rank = int(np.sum(sig > eps * sig[0]))
    return rank, k, tail


@njit(parallel=True, cache=True)
def eps_rank_batched(A, eps, block, power_iters, seed, rank, k, tail):
    """eps-rank of every A[i] of A (batch, m, n), matrix i on sketch stream i.

    Writes rank (batch,) int64, k (batch,) int64, tail (batch,) float64.
    Parallel over the batch; hold BLAS to one thread around the call."""
    for i in prange(A.shape[0]):
        rank[i], k[i], tail[i] = eps_rank_one(A[i], eps, block, power_iters, seed, i)


@njit(cache=True)
def eps_rank_serial(A, eps, block, power_iters, seed, rank, k, tail):
    """As ``eps_rank_batched`` in a plain loop, for batches smaller than the
    thread count (BLAS threads then do the parallel work)."""
    for i in range(A.shape[0]):
        rank[i], k[i], tail[i] = eps_rank_one(A[i], eps, block, power_iters, seed, i)
