"""Orthonormal bases of tall panels: mixed-precision shifted CholeskyQR2.

For a tall panel Y (m, l), m >= l, ``orthonormalize`` returns Q (m, l) with
Q^T Q = I to working precision and span(Q) = span(Y) whenever Y has full
numerical rank, at the cost of two Gram products and two GEMMs: much cheaper
than Householder QR (LAPACK geqrf + orgqr) on the small panels of a batched
randomized SVD.

Algorithm (one panel):

1. G = Y^T Y in float64 (Yamazaki, Tomov & Dongarra, "Mixed-precision
   Cholesky QR factorization and its case studies on multicore CPU with
   multiple GPUs", SIAM J. Sci. Comput. 37(3), 2015: a float64 Gram of a
   float32 panel keeps CholeskyQR stable up to cond(Y) ~ 1/u_float32).
2. R = chol(G + s I) with the shift s = 11 (m l + l (l + 1)) u_64 tr(G) of
   Fukaya, Kannan, Nakatsukasa, Zhang & Yamamoto, "Shifted Cholesky QR for
   computing the QR factorization of ill-conditioned matrices", SIAM J. Sci.
   Comput. 42(1), 2020, so the factorization cannot break down.
3. Q1 = Y R^{-1}; then one more CholeskyQR pass on Q1 (CholeskyQR2).
4. A-posteriori check: if the Gram of Q1 is not within Gershgorin radius 0.5
   of the identity (Y numerically rank deficient: exact low rank, a zero
   matrix), fall back to Householder QR, which returns an orthonormal Q for
   any Y.

Accuracy: ||Q^T Q - I||_2 = O(u) of Y's dtype on the CholeskyQR2 path
(Yamamoto et al. 2015, ETNA 44) and on the Householder path.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def cholesky_upper(G, R):
    """Cholesky factor of a symmetric positive definite matrix, in place.

    G: (l, l) float64, symmetric; R: (l, l) float64, overwritten with the
    upper-triangular R such that R^T R = G.  Returns False (R undefined) when
    a pivot is not positive, instead of raising: callers run inside prange.
    """
    l = G.shape[0]
    R[:, :] = 0.0
    for j in range(l):
        d = G[j, j]
        for p in range(j):
            d -= R[p, j] * R[p, j]
        if not d > 0.0:  # also catches NaN
            return False
        rjj = np.sqrt(d)
        R[j, j] = rjj
        for i in range(j + 1, l):
            v = G[j, i]
            for p in range(j):
                v -= R[p, j] * R[p, i]
            R[j, i] = v / rjj
    return True


@njit(cache=True)
def upper_inverse(R):
    """Inverse of an upper-triangular (l, l) float64 matrix by back substitution."""
    l = R.shape[0]
    X = np.zeros_like(R)
    for j in range(l):
        X[j, j] = 1.0 / R[j, j]
        for i in range(j - 1, -1, -1):
            v = 0.0
            for p in range(i + 1, j + 1):
                v += R[i, p] * X[p, j]
            X[i, j] = -v / R[i, i]
    return X


@njit(cache=True)
def _gram64(Y):
    """G = Y^T Y in float64 for Y (m, l) of float32 or float64 -> (l, l) float64."""
    Y64 = Y.astype(np.float64)
    return Y64.T @ Y64


@njit(cache=True)
def _near_identity(G):
    """True when every Gershgorin disc of G (l, l) lies within 0.5 of 1."""
    l = G.shape[0]
    for i in range(l):
        radius = abs(G[i, i] - 1.0)
        for j in range(l):
            if j != i:
                radius += abs(G[i, j])
        if not radius < 0.5:
            return False
    return True


@njit(cache=True)
def _householder(Y):
    """Orthonormal Q (m, l), C-contiguous, from LAPACK Householder QR of Y (m, l)."""
    return np.ascontiguousarray(np.linalg.qr(Y)[0])


@njit(cache=True)
def _shifted_factor(Y, R):
    """Steps 1-2: R (l, l) <- chol(Y^T Y + s I); False if Y == 0 or the factor fails."""
    m, l = Y.shape
    G = _gram64(Y)
    shift = 11.0 * (m * l + l * (l + 1)) * 2.220446049250313e-16 * np.trace(G)
    if not shift > 0.0:  # Y == 0 (or NaN)
        return False
    for i in range(l):
        G[i, i] += shift
    return cholesky_upper(G, R)


@njit(cache=True)
def basis_one_pass(Y):
    """One shifted CholeskyQR pass: Q (m, l) with span(Q) = span(Y), cond(Q) small.

    For the intermediate steps of subspace iteration, where only the span must
    survive: Q^T Q = I - s R^{-T} R^{-1} has its eigenvalues in (0, 1], so the
    columns never blow up, even for a rank-deficient Y.  Y: (m, l), m >= l.
    """
    l = Y.shape[1]
    R = np.empty((l, l), dtype=np.float64)
    if _shifted_factor(Y, R):
        return Y @ upper_inverse(R).astype(Y.dtype)  # (m, l)
    return _householder(Y)


@njit(cache=True)
def orthonormalize(Y):
    """Orthonormal basis of the columns of a tall panel (see module docstring).

    Y: (m, l) float32 or float64 with m >= l.  Returns Q: (m, l), same dtype,
    C-contiguous, Q^T Q = I, span(Q) = span(Y) when Y has full numerical rank.
    """
    l = Y.shape[1]
    R = np.empty((l, l), dtype=np.float64)
    if _shifted_factor(Y, R):
        Q = Y @ upper_inverse(R).astype(Y.dtype)  # (m, l)
        G = _gram64(Q)
        if _near_identity(G) and cholesky_upper(G, R):
            return Q @ upper_inverse(R).astype(Y.dtype)  # (m, l)
    return _householder(Y)
