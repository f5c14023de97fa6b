"""Batched randomized SVD on the CPU.

For each A (m, n) of a batch, with sketch width l = k + p <= min(m, n):

    Y = A Omega                                      # (m, l); HMT Alg. 4.1
    repeat q times:                                  # HMT Alg. 4.4: subspace
        Y = A basis(A^T basis(Y))                    #  iteration, a new basis
                                                     #  after every product
    Q = orth(Y),  B = Q^T A                          # (l, n); HMT Alg. 5.1
    B B^T = W diag(lam) W^T  (float64 eigh)          # (l, l)
    s = sqrt(lam)[:k],  U = Q W[:, :k],  Vt = diag(1/s) W[:, :k]^T B

HMT = Halko, Martinsson & Tropp, "Finding structure with randomness",
SIAM Review 53(2), 2011, arXiv 0909.4061.  ``orth`` is the mixed-precision
shifted CholeskyQR2 of ``qr_cpu`` (Q^T Q = I to working precision); ``basis``
is its single pass, which keeps the span and a bounded condition number: all
the intermediate steps of subspace iteration need.

The eigen-decomposition of the l x l Gram B B^T in float64 replaces the SVD of
B (l, n): it is several times cheaper and, in float64, resolves singular values
down to ~1e-7 sigma_1, below float32 resolution.  Its right vectors lose
accuracy as s_1 / s_k grows (row i of Vt has error ~ u_64 (s_1 / s_i)^2), so a
matrix whose s_k < 1e-4 s_1 takes the SVD of B in float64 instead.

Accuracy: that of the randomized range finder, HMT Thm. 10.6 / 10.8: the
expected spectral error of A - U diag(s) Vt is within a factor
(1 + 9 sqrt(k + p) sqrt(min(m, n)))^(1/(2q+1)) of sigma_{k+1}; singular values
converge fastest for the top of the spectrum.

The batch loop is ``prange``; each matrix runs its GEMMs through BLAS, so a
caller holding many matrices should hold BLAS to one thread (threadpoolctl),
and a caller holding one matrix should let BLAS use every core.
"""

import numpy as np
from numba import njit, prange

from .qr_cpu import basis_one_pass, orthonormalize

# Below this s_k / s_1 the Gram-eig right vectors are not trusted (see above).
EIG_PATH_MIN_RATIO = 1e-4


@njit(cache=True)
def _small_svd(B, Q, k, U, s, Vt):
    """Top-k SVD of B (l, n), lifted by Q (m, l); writes U (m, k), s (k,), Vt (k, n)."""
    B64 = B.astype(np.float64)
    lam, W = np.linalg.eigh(B64 @ B64.T)  # ascending, (l,), (l, l)
    l = lam.shape[0]
    top = lam[l - 1]
    if top > 0.0 and lam[l - k] >= EIG_PATH_MIN_RATIO**2 * top:
        Wk = np.ascontiguousarray(W[:, l - k :][:, ::-1])  # (l, k), descending
        for i in range(k):
            s[i] = np.sqrt(lam[l - 1 - i])
        U[:, :] = Q @ Wk.astype(Q.dtype)  # (m, l) @ (l, k)
        Vt64 = Wk.T @ B64  # (k, n)
        for i in range(k):
            Vt[i, :] = Vt64[i, :] / s[i]
    else:
        Ub, sb, Vtb = np.linalg.svd(B64, full_matrices=False)  # (l, l), (l,), (l, n)
        s[:] = sb[:k]
        U[:, :] = Q @ np.ascontiguousarray(Ub[:, :k]).astype(Q.dtype)
        Vt[:, :] = Vtb[:k, :]


@njit(cache=True)
def rsvd_one(A, Omega, k, power_iters, U, s, Vt):
    """Randomized SVD of one matrix (see module docstring), into U, s, Vt.

    A: (m, n), Omega: (n, l) with k <= l <= min(m, n), both of A's dtype;
    U: (m, k), s: (k,), Vt: (k, n) preallocated in A's dtype.
    """
    Y = A @ Omega  # (m, l)
    for _ in range(power_iters):
        P = basis_one_pass(A.T @ basis_one_pass(Y))  # (n, l)
        Y = A @ P  # (m, l)
    Q = orthonormalize(Y)  # (m, l), Q^T Q = I
    B = Q.T @ A  # (l, n)
    _small_svd(B, Q, k, U, s, Vt)


@njit(cache=True)
def rsvd_serial(A, Omega, k, power_iters, U, s, Vt):
    """As ``rsvd_batched`` with a plain loop over the batch: for batches smaller
    than the thread count, so that BLAS threads are not nested in OpenMP ones."""
    for i in range(A.shape[0]):
        rsvd_one(A[i], Omega[i], k, power_iters, U[i], s[i], Vt[i])


@njit(parallel=True, cache=True)
def rsvd_batched(A, Omega, k, power_iters, U, s, Vt):
    """Batched randomized SVD with a caller-supplied sketch, in place.

    A:     (batch, m, n) float32 or float64, C-contiguous
    Omega: (batch, n, l) same dtype, k <= l <= min(m, n)
    U:     (batch, m, k) out;  s: (batch, k) out, descending;
    Vt:    (batch, k, n) out
    """
    for i in prange(A.shape[0]):
        rsvd_one(A[i], Omega[i], k, power_iters, U[i], s[i], Vt[i])
