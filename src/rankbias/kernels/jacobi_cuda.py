"""Batched one-sided Jacobi SVD on the GPU (numba-cuda), one block per matrix.

Hestenes' one-sided Jacobi (Demmel & Veselic, "Jacobi's method is more
accurate than QR", SIAM J. Matrix Anal. Appl. 13(4), 1992, Alg. 4.1):
columns p < q of the working matrix W (m, n) are rotated in pairs,

    alpha = ||w_p||^2, beta = ||w_q||^2, gamma = w_p . w_q,
    zeta = (beta - alpha) / (2 gamma), t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2)),
    c = 1 / sqrt(1 + t^2), s = c t,
    w_p <- c w_p - s w_q,  w_q <- s w_p + c w_q   (the same rotation on V),

which makes w_p . w_q = 0.  A sweep visits every pair once in n - 1 rounds of
the round-robin ("circle") ordering, n/2 disjoint pairs per round, one thread
per pair; sweeps repeat until no pair has |gamma| > tol sqrt(alpha beta).
At the end W = A V has orthogonal columns: sigma_j = ||w_j||, V holds the
right singular vectors and w_j / sigma_j the left ones.  Relative accuracy is
that of the float64 arithmetic, also for tiny singular values.

Shapes and dtypes: ``W`` (batch, m, n) float64, a working copy of A with n
even (pad an odd n with a zero column) and n <= ``MAX_N``; ``V`` (batch, n, n)
float64, or any (1, 1, 1) float64 array with ``vectors`` false (singular
values only: the rotations skip V, half the work of a square matrix); ``S``
(batch, n) float64 and ``order`` (batch, n) int32 receive the singular values
in descending order and the column permutation that sorts them (gather V's
and W's columns by it).  The sort ranks every column in parallel,
rank_j = #{i : s_i > s_j or (s_i = s_j and i < j)} (NaN below all), so ties keep
the column order: a zero pad column (never rotated, as its gamma is 0) always sorts last.
Launch with ``batch`` blocks of ``n // 2`` threads (at most 128, four warps).

Where W and V live: a thread's round is three passes down two columns, each
iteration using the values it loads, so the kernel is expected to run at the
latency of the memory W and V are in (not yet measured on a device).
``jacobi_svd`` rotates them in place in global memory (every round reads
columns that other threads wrote the round before: L2, not L1).
``jacobi_svd_shared`` first copies them into dynamic shared memory,
``shared_bytes(m, n, vectors)`` per launch (W, V and the column norms), rotates
them there and copies them back; without opting in a block gets 48 KB, which
holds rsvd's l x l factors with V up to l = 54 and a 64 x 64 matrix without.
``kernel_for(m, n, vectors)`` picks the kernel and its bytes.  Imports numba
and math only: arrays come from any caller with ``__cuda_array_interface__``
(torch, CuPy) or from the CUDA simulator.
"""

import math

from numba import float64, int32

from .numba_cuda import cuda

MAX_N = 256  # columns per matrix: n / 2 <= 128 threads per block


@cuda.jit(device=True, inline=True)
def _player(j, r, n):
    """Column at seat j in round r of the circle ordering: seat 0 fixed, the rest rotate."""
    if j == 0:
        return 0
    return (j - 1 + r) % (n - 1) + 1


@cuda.jit(device=True, inline=True)
def _key(x):
    """Sort key of a column norm: NaN (an overflowed column) ranks below every number."""
    return -1.0 if math.isnan(x) else x


@cuda.jit(device=True)
def _rotate(W, V, m, n, sweeps, tol, vectors, rotated):
    """Sweeps of the circle ordering over W (m, n) and, with ``vectors``, V (n, n), set to
    the identity first, until a sweep rotates nothing: thread t rotates pair t of every round."""
    t = cuda.threadIdx.x
    if vectors:
        for i in range(t, n * n, cuda.blockDim.x):
            V[i // n, i % n] = 1.0 if i // n == i % n else 0.0
    cuda.syncthreads()
    for _ in range(sweeps):
        if t == 0:
            rotated[0] = 0
        cuda.syncthreads()
        for r in range(n - 1):
            p = _player(t, r, n)
            q = _player(n - 1 - t, r, n)
            if p > q:
                p, q = q, p
            alpha = 0.0
            beta = 0.0
            gamma = 0.0
            for i in range(m):
                a = W[i, p]
                c = W[i, q]
                alpha += a * a
                beta += c * c
                gamma += a * c
            if gamma != 0.0 and abs(gamma) > tol * math.sqrt(alpha * beta):
                zeta = (beta - alpha) / (2.0 * gamma)
                if abs(zeta) < 1e150:
                    tan = math.copysign(1.0, zeta) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                else:  # zeta^2 would overflow: t = 1 / (2 zeta) to working precision
                    tan = 0.5 / zeta
                cos = 1.0 / math.sqrt(1.0 + tan * tan)
                sin = cos * tan
                for i in range(m):
                    a = W[i, p]
                    c = W[i, q]
                    W[i, p] = cos * a - sin * c
                    W[i, q] = sin * a + cos * c
                if vectors:
                    for i in range(n):
                        a = V[i, p]
                        c = V[i, q]
                        V[i, p] = cos * a - sin * c
                        V[i, q] = sin * a + cos * c
                rotated[0] = 1
            cuda.syncthreads()
        done = rotated[0] == 0
        cuda.syncthreads()  # everyone has read the flag before thread 0 resets it
        if done:
            break


@cuda.jit(device=True)
def _sort(W, m, n, norms, S, order):
    """S (n,) = the column norms of W (m, n) in descending order, order (n,) = their columns."""
    t = cuda.threadIdx.x
    for j in range(t, n, cuda.blockDim.x):
        total = 0.0
        for i in range(m):
            total += W[i, j] * W[i, j]
        norms[j] = math.sqrt(total)
    cuda.syncthreads()
    for j in range(t, n, cuda.blockDim.x):  # rank sort, descending, ties in column order
        rank = 0
        mine = _key(norms[j])
        for i in range(n):
            other = _key(norms[i])
            if other > mine or (other == mine and i < j):
                rank += 1
        order[rank] = j
        S[rank] = norms[j]


@cuda.jit
def jacobi_svd(W, V, S, order, sweeps, tol, vectors):
    """One-sided Jacobi SVD of every W[b], in place in global memory."""
    b = cuda.blockIdx.x
    m, n = W.shape[1], W.shape[2]
    rotated = cuda.shared.array(1, int32)
    norms = cuda.shared.array(MAX_N, float64)
    Vb = V[b] if vectors else V[0]
    _rotate(W[b], Vb, m, n, sweeps, tol, vectors, rotated)
    _sort(W[b], m, n, norms, S[b], order[b])


@cuda.jit
def jacobi_svd_shared(W, V, S, order, sweeps, tol, vectors):
    """One-sided Jacobi SVD of every W[b] on copies in the launch's dynamic shared memory,
    ``shared_bytes(m, n, vectors)``: W (m, n), then V (n, n) with ``vectors``, then the norms (n,)."""
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    m, n = W.shape[1], W.shape[2]
    rotated = cuda.shared.array(1, int32)
    dyn = cuda.shared.array(0, float64)
    end = m * n
    Ws = dyn[:end].reshape((m, n))
    Vs = Ws  # not touched without vectors
    if vectors:
        Vs = dyn[end:end + n * n].reshape((n, n))
        end += n * n
    norms = dyn[end:end + n]
    for i in range(t, m * n, cuda.blockDim.x):
        Ws[i // n, i % n] = W[b, i // n, i % n]
    cuda.syncthreads()
    _rotate(Ws, Vs, m, n, sweeps, tol, vectors, rotated)
    for i in range(t, m * n, cuda.blockDim.x):
        W[b, i // n, i % n] = Ws[i // n, i % n]
    if vectors:
        for i in range(t, n * n, cuda.blockDim.x):
            V[b, i // n, i % n] = Vs[i // n, i % n]
    _sort(Ws, m, n, norms, S[b], order[b])


SHARED_LIMIT = 47 * 1024  # dynamic bytes a block may take without opting in: 48 KB less room for the static ones


def shared_bytes(m: int, n: int, vectors: bool) -> int:
    """Dynamic shared memory ``jacobi_svd_shared`` needs for W (m, n): W, V (n, n) with vectors, the norms."""
    return 8 * (m * n + (n * n if vectors else 0) + n)


def kernel_for(m: int, n: int, vectors: bool):
    """(kernel, dynamic shared bytes) for W (batch, m, n): in shared memory where it fits
    ``SHARED_LIMIT``, else in place in global memory."""
    nbytes = shared_bytes(m, n, vectors)
    return (jacobi_svd_shared, nbytes) if nbytes <= SHARED_LIMIT else (jacobi_svd, 0)
