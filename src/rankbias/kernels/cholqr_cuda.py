"""The small step of batched CholeskyQR on the GPU (numba-cuda), one block per matrix.

CholeskyQR of a tall panel Y (m, l): G = Y^T Y = R^T R (Cholesky), Q = Y R^-1.
The two products are GEMMs for cuBLAS; what lies between them, the Cholesky
factor of the l x l Gram matrix and its inverse, is this kernel:

    chol_inverse(G, Rinv, m, shift)

``G`` (batch, l, l) float64 Gram matrices, read only; ``Rinv`` (batch, l, l)
float64 receives R^-1 (upper triangular, zeros below).  With ``shift`` true,
s = 11 (m l + l (l + 1)) u tr(G) is added to G's diagonal first, u = 2^-53:
shifted CholeskyQR (Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa,
"Shifted Cholesky QR for computing the QR factorization of ill-conditioned
matrices", SIAM J. Sci. Comput. 42(1), 2020, Alg. 4.1), which keeps the
factorization defined for any Y; two plain passes after it restore
orthogonality to O(u) (their Thm. 5.x: shifted CholeskyQR3).

Factorization: right-looking, row by row in shared memory,

    r_jj = sqrt(S_jj),  r_jc = S_jc / r_jj (c > j),  S_ic -= r_ji r_jc (j < i <= c),

one thread per column c.  A pivot S_jj <= 4 l eps G_jj (column j of Y is a
combination of the columns before it, to working precision; a zero column
included) drops column j: row j of R and of R^-1 are zero, so Q's column j is
0 and the other columns do not use it.  The inverse is back substitution,
one thread per column of R^-1, kept in the lower triangle of the same shared
array until it is written out (32 KB of shared memory in all).  Launch with
``batch`` blocks of at least l threads (l is enough; the tests also launch
``MAX_L``); l <= ``MAX_L``.  Imports numba and math only: arrays come from any
caller with ``__cuda_array_interface__`` or from the CUDA simulator.
"""

import math

from numba import float64

from .numba_cuda import cuda

MAX_L = 64
U = 2.0**-53  # unit roundoff of float64
EPS = 2.0**-52


@cuda.jit
def chol_inverse(G, Rinv, m, shift):
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    l = G.shape[1]
    S = cuda.shared.array((MAX_L, MAX_L), float64)
    diag = cuda.shared.array(MAX_L, float64)  # G's diagonal before elimination
    lift = cuda.shared.array(1, float64)
    for i in range(t, l * l, cuda.blockDim.x):
        S[i // l, i % l] = G[b, i // l, i % l]
    cuda.syncthreads()
    if t == 0:
        trace = 0.0
        for i in range(l):
            trace += S[i, i]
        lift[0] = 11.0 * (m * l + l * (l + 1)) * U * trace if shift else 0.0
    cuda.syncthreads()
    if t < l:
        S[t, t] += lift[0]
        diag[t] = S[t, t]
    cuda.syncthreads()
    for j in range(l):
        pivot = S[j, j]
        dead = not (pivot > 4.0 * l * EPS * diag[j])  # also true for NaN
        root = 0.0 if dead else math.sqrt(pivot)
        c = t
        if j < c < l:
            S[j, c] = 0.0 if dead else S[j, c] / root
        cuda.syncthreads()
        if j < c < l:
            rc = S[j, c]
            for i in range(j + 1, c + 1):
                S[i, c] -= S[j, i] * rc
        if t == 0:
            S[j, j] = root
        cuda.syncthreads()
    # back substitution: column c of R^-1 solves R x = e_c; thread c keeps x_i (i < c) in S[c, i], below R
    # (the factorization only used the upper triangle), so its loop reads shared memory, not its own writes
    # to global memory
    c = t
    if c < l:
        inv = 1.0 / S[c, c] if S[c, c] > 0.0 else 0.0
        for i in range(c - 1, -1, -1):
            total = 0.0
            for k in range(i + 1, c):
                total += S[i, k] * S[c, k]
            total += S[i, c] * inv
            S[c, i] = -total / S[i, i] if S[i, i] > 0.0 else 0.0
    cuda.syncthreads()
    for i in range(t, l * l, cuda.blockDim.x):
        r, c = i // l, i % l
        if r < c:
            Rinv[b, r, c] = S[c, r]
        elif r == c:
            Rinv[b, r, c] = 1.0 / S[c, c] if S[c, c] > 0.0 else 0.0
        else:
            Rinv[b, r, c] = 0.0
