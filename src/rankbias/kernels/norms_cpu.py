"""Frobenius norms of batches of matrices, accumulated in float64."""

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=True)
def _row_sumsq(row):
    """sum_j row[j]^2 in float64 for a 1-d float32 or float64 row (SIMD order)."""
    acc = 0.0
    for j in range(row.shape[0]):  # an index loop vectorizes; iterating the array does not
        x = np.float64(row[j])
        acc += x * x
    return acc


@njit(cache=True)
def frobenius(A):
    """||A||_F of A (m, n), float32 or float64 -> float64.

    Error <= m n u_64 ||A||_F^2 in the sum of squares (fastmath only reorders
    each row's sum into SIMD lanes).  Non-finite entries give a non-finite norm.
    """
    acc = 0.0
    for i in range(A.shape[0]):
        acc += _row_sumsq(A[i])
    return np.sqrt(acc)


@njit(parallel=True, cache=True)
def frobenius_batched(A):
    """||A_i||_F for A (batch, m, n) -> (batch,) float64, parallel over all rows."""
    batch, m = A.shape[0], A.shape[1]
    rows = np.empty(batch * m)
    for t in prange(batch * m):
        rows[t] = _row_sumsq(A[t // m, t % m])
    return np.sqrt(rows.reshape(batch, m).sum(axis=1))
