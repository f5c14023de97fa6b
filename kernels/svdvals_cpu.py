"""Batched exact singular values of NN-sized matrices on the CPU.

For A (m, n) with r = min(m, n), the singular values are the square roots of
the eigenvalues of the r x r Gram matrix, formed and solved in float64:

    G = A^T A  (m >= n)  or  A A^T  (m < n)   # (r, r), float64 GEMM
    Q^T G Q = T, tridiagonal                  # Householder reduction (below)
    lam = eig(T)                              # LAPACK dsterf, no vectors
    sigma = sqrt(max(lam, 0)), descending

For r <= ``SMALL`` the reduction is ``tridiagonalize``, this module's own;
above it, LAPACK's blocked dsytrd inside ``np.linalg.eigvalsh`` is faster.

Accuracy bound: the float64 Gram of float32 or float64 data carries an error
|dG| <= r u ||A||_2^2 (u = 2^-53; a product of two float32 is exact in float64),
and the Householder reduction and the eigensolver each perturb every
eigenvalue by at most c r u ||G||_2 (Golub & Van Loan, Matrix Computations,
4th ed., Thm. 8.1.5, §8.3.1 and §8.3.5).  So

    |sigma_i - sigma_i^LAPACK| / sigma_i <= c r u (sigma_1 / sigma_i)^2 / 2,

i.e. better than 1e-5 relative for every sigma_i >= 1e-4 sigma_1 when r <= 1024
(c r u 1e8 / 2 ~ 6e-6 for c = 1), and singular values below ~1e-8 sigma_1 are
resolved only in absolute terms (~1e-8 sigma_1).  For float32 inputs this is
far below the input's own rounding; torch.linalg.svdvals in float32 is
accurate only to ~u_32 sigma_1 absolute.
"""

import numpy as np
from numba import njit, prange

from .lapack_cpu import dsterf

SMALL = 256  # largest r reduced by ``tridiagonalize``
LANES = 8  # float64 lanes of an AVX-512 register: rows are padded to a multiple
FAST = {"reassoc", "contract", "nsz", "arcp"}  # reassociation lets the row loops vectorize


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _reflector(row, k, n, v):
    """Householder reflector H = I - tau v v^T with H x = beta e_1 for x = row[k+1:n]
    (LAPACK dlarfg without its underflow rescaling: callers keep ||A||_F in
    [2^-30, 2^30]).  Writes v (npad,): v[k+1] = 1, v[k+2:n] = x[1:] / (x_0 - beta),
    zeros elsewhere; returns (tau, beta).  x[1:] = 0 gives tau = 0, beta = x_0."""
    alpha = row[k + 1]
    x = row[k + 2:n]
    s = 0.0
    for j in range(x.shape[0]):
        s += x[j] * x[j]
    v[:] = 0.0
    if s == 0.0:
        return 0.0, alpha
    beta = -np.copysign(np.sqrt(alpha * alpha + s), alpha)
    scale = 1.0 / (alpha - beta)
    v[k + 1] = 1.0
    tail = v[k + 2:n]
    for j in range(x.shape[0]):
        tail[j] = x[j] * scale
    return (beta - alpha) / beta, beta


@njit(fastmath=FAST, error_model="numpy", cache=True)
def tridiagonalize(T, d, e):
    """Householder reduction of symmetric T to tridiagonal form, in place.

    T (n, npad) float64, npad >= n a multiple of ``LANES``: the symmetric
    matrix in its first n columns (both triangles), zeros after them; it is
    overwritten.  d (n,) receives the diagonal and e (n - 1,) the off-diagonal
    of Q^T T Q.  Step k (Golub & Van Loan, Alg. 8.3.1, full storage): with H =
    I - tau v v^T the reflector of row k below the diagonal, the trailing block
    becomes H T H = T - v w^T - w v^T, where y = tau T v and w = y - (tau / 2)
    (y^T v) v.  Each step is one pass over the trailing rows: row i is
    updated and at once dotted with the next step's v (whose reflector comes
    from row k + 1, updated first), so T is read once per step.  Loops run
    over whole padded rows from a multiple of ``LANES``: the columns before
    k + 1 they touch meet v = w = 0 and are left unchanged.  In all, n^3 / 3
    element updates and 2 n^3 flops: full storage costs half again LAPACK
    dsytd2's 4 n^3 / 3 on one triangle, in one pass per step where dsytd2
    makes two (its symmetric matrix-vector product, then its rank-2 update).
    """
    n, npad = T.shape
    v = np.zeros(npad)
    w = np.zeros(npad)
    y = np.zeros(npad)
    v_next = np.zeros(npad)
    tau, beta = _reflector(T[0], 0, n, v)
    for i in range(n):  # y = T v for step 0; later steps get it from the fused pass
        row = T[i]
        acc = 0.0
        for j in range(npad):
            acc += row[j] * v[j]
        y[i] = acc
    for k in range(n - 1):
        d[k] = T[k, k]
        e[k] = beta
        yv = 0.0
        for j in range(npad):
            yv += y[j] * v[j]
        half = 0.5 * tau * tau * yv
        for j in range(npad):
            w[j] = tau * y[j] - half * v[j]
        w[:k + 1] = 0.0  # y is stale there; the columns before k + 1 stay as they are
        a = (k + 1) // LANES * LANES
        v_a, w_a, next_a = v[a:], w[a:], v_next[a:]  # slices: loops from 0 vectorize
        row = T[k + 1, a:]
        vi, wi = v[k + 1], w[k + 1]
        for j in range(row.shape[0]):
            row[j] -= vi * w_a[j] + wi * v_a[j]
        if k + 1 < n - 1:
            tau, beta = _reflector(T[k + 1], k + 1, n, v_next)
        else:
            v_next[:] = 0.0
        for i in range(k + 2, n):
            row = T[i, a:]
            vi, wi = v[i], w[i]
            acc = 0.0
            for j in range(row.shape[0]):
                x = row[j] - (vi * w_a[j] + wi * v_a[j])
                row[j] = x
                acc += x * next_a[j]
            y[i] = acc
        v[:] = v_next
    d[n - 1] = T[n - 1, n - 1]


@njit(cache=True)
def tridiagonal_form(G):
    """(d (r,), e (r - 1,)) float64: the tridiagonal form of symmetric G (r, r), by
    ``tridiagonalize`` on a copy padded to a multiple of ``LANES`` columns."""
    r = G.shape[0]
    T = np.zeros((r, (r + LANES - 1) // LANES * LANES))
    T[:, :r] = G
    d = np.empty(r)
    e = np.empty(max(r - 1, 0))
    tridiagonalize(T, d, e)
    return d, e


@njit(cache=True)
def tridiagonal_eigvals(d, e):
    """Eigenvalues of the symmetric tridiagonal (d (n,), e (n - 1,)) float64 ->
    (n,) ascending, by LAPACK dsterf (d and e are overwritten).  NaN entries if
    the iteration does not converge."""
    n = d.shape[0]
    size = np.full(1, n, np.int32)
    info = np.zeros(1, np.int32)
    off = np.zeros(max(n, 1))
    off[:n - 1] = e[:n - 1]
    dsterf(size.ctypes, d.ctypes, off.ctypes, info.ctypes)
    if info[0] != 0:
        d[:] = np.nan
    return d


@njit(cache=True)
def svdvals_one(A, out):
    """Singular values of A (m, n) into out (min(m, n),), descending, out's dtype."""
    m, n = A.shape
    A64 = A.astype(np.float64)
    G = A64.T @ A64 if m >= n else A64 @ A64.T  # (r, r)
    r = G.shape[0]
    lam = np.empty(0)
    if r <= SMALL:
        d, e = tridiagonal_form(G)
        lam = tridiagonal_eigvals(d, e)
    if r > SMALL or np.isnan(lam[0]):
        lam = np.linalg.eigvalsh(G)  # blocked dsytrd; also the fallback if dsterf fails
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
