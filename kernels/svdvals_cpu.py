"""Batched exact singular values of NN-sized matrices on the CPU.

For A (m, n) with r = min(m, n), the singular values are the square roots of
the eigenvalues of the r x r Gram matrix, formed and solved in float64:

    G = A^T A  (m >= n)  or  A A^T  (m < n)        # (r, r), float64 GEMM
    lam = eigvalsh(G)                               # LAPACK dsyevd, no vectors
    sigma = sqrt(max(lam, 0)), descending

Accuracy bound: the float64 Gram of float32 or float64 data carries an error
|dG| <= r u ||A||_2^2 (u = 2^-53; a product of two float32 is exact in float64),
and a symmetric eigensolver perturbs each eigenvalue by at most c r u ||G||_2
(Golub & Van Loan, Matrix Computations, 4th ed., Thm. 8.1.5 and §8.3).  So

    |sigma_i - sigma_i^LAPACK| / sigma_i <= c r u (sigma_1 / sigma_i)^2 / 2,

i.e. better than 1e-5 relative for every sigma_i >= 1e-4 sigma_1 when r <= 1024
(c r u 1e8 / 2 ~ 6e-6 for c = 1), and singular values below ~1e-8 sigma_1 are
resolved only in absolute terms (~1e-8 sigma_1).  For float32 inputs this is
far below the input's own rounding; torch.linalg.svdvals in float32 is
accurate only to ~u_32 sigma_1 absolute.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def svdvals_one(A, out):
    """Singular values of A (m, n) into out (min(m, n),), descending, out's dtype."""
    m, n = A.shape
    A64 = A.astype(np.float64)
    G = A64.T @ A64 if m >= n else A64 @ A64.T  # (r, r)
    lam = np.linalg.eigvalsh(G)  # ascending
    r = lam.shape[0]
    for i in range(r):
        out[i] = np.sqrt(max(lam[r - 1 - i], 0.0))


@njit(parallel=True, cache=True)
def svdvals_batched(A, out):
    """Singular values of every A[i]: A (batch, m, n) -> out (batch, min(m, n)).

    Parallel over the batch; hold BLAS to one thread around the call."""
    for i in prange(A.shape[0]):
        svdvals_one(A[i], out[i])


@njit(cache=True)
def svdvals_serial(A, out):
    """As ``svdvals_batched`` in a plain loop, for batches smaller than the
    thread count, where each matrix's GEMM and eigensolver use BLAS threads."""
    for i in range(A.shape[0]):
        svdvals_one(A[i], out[i])
