"""Eigenvalues of a batch of symmetric matrices on the GPU (numba-cuda), one block per matrix.

The GPU twin of ``svdvals_cpu``'s route: singular values of A as the square
roots of the eigenvalues of its float64 Gram matrix G = A^T A (cuBLAS forms
it), which gives sigma_i to a relative error of about u (sigma_1 / sigma_i)^2,
1e-8 at sigma_i = 1e-4 sigma_1 (u = 2^-53).  Two steps, both in one block:

1. Householder tridiagonalization, G = Q T Q^T (Golub & Van Loan, Matrix
   Computations, 4th ed., Alg. 8.3.1; LAPACK dsytd2 with uplo = 'L'): for
   k = 0, ..., n - 3, with x = G[k+1:, k],

       beta = -sign(x_0) ||x||,  tau = (beta - x_0) / beta,  v = x / (x_0 - beta) (v_0 = 1),
       p = tau G22 v,  w = p - (tau / 2) (p^T v) v,  G22 <- G22 - v w^T - w v^T,

   d_k = G_kk, e_k = beta (G22 = G[k+1:, k+1:]).  Thread i owns column i of
   G22 in each step; the two sums (||x||^2 and p^T v) are tree reductions.
2. Bisection on T with Sturm counts (Kahan; LAPACK dstebz / dlaebz): the
   number of eigenvalues <= x is the number of q_i <= 0 in

       q_0 = d_0 - x,  q_i = d_i - x - e_{i-1}^2 / q_{i-1},

   with |q_i| < pivmin replaced by -pivmin.  One thread per eigenvalue, each
   from the Gershgorin interval down to a width of u ||T||: absolute accuracy
   O(u ||T||), that of LAPACK's QR / QL routes, and the count is monotone in x,
   so the eigenvalues come out sorted.  A count is a chain of n dependent
   divisions, so its time is the divider's latency: each pass counts at the
   three quarter points at once (independent chains that overlap) and keeps
   the quarter holding the eigenvalue, about 27 passes where bisection takes 54.

Only the lower triangle is read.  Layouts: ``G`` (batch, n * n) float64, each
row a C-ordered n x n matrix; ``out`` (batch, n) float64 receives the
eigenvalues in descending order.  ``kernel_for(n)`` picks, by n, a kernel
that works on a packed copy in shared memory (row i at i (i + 1) / 2; n <= 100
in static shared memory, n <= 232 in dynamic shared memory where the launcher
opts in past 48 KB; G left as it was) or one that reduces G in place (n <= ``MAX_N``; it first
mirrors the lower triangle into the upper one and keeps both, so that a warp's
accesses are coalesced).  Launch with ``batch`` blocks of ``threads(n)``
threads (a power of two, 32 to 256).  Imports numba and math only: arrays come
from any caller with ``__cuda_array_interface__`` (torch, CuPy) or from the
CUDA simulator.
"""

import math

from numba import float64

from .numba_cuda import cuda

U = 2.0**-53  # unit roundoff of float64
SAFE_MIN = 2.0**-1022  # smallest normal float64
MAX_THREADS = 256


def threads(n: int) -> int:
    """Threads per block for order n: the power of two >= n, from one warp to ``MAX_THREADS``."""
    t = 32
    while t < n and t < MAX_THREADS:
        t *= 2
    return t


@cuda.jit(device=True, inline=True)
def _at(i, j, n, packed):
    """Index of element (i, j) of the symmetric matrix: in the packed lower triangle (row i at
    i (i + 1) / 2), or in the full n x n matrix, whose two triangles the reduction keeps equal
    (to rounding: with FMA contraction on a GPU the two updates of a pair may round apart)."""
    if not packed:
        return i * n + j
    if i < j:
        i, j = j, i
    return i * (i + 1) // 2 + j


@cuda.jit(device=True)
def _block_sum(x, red):
    """Sum of x over the block (every thread must call): a tree in red (blockDim.x,) of shared memory."""
    t = cuda.threadIdx.x
    red[t] = x
    cuda.syncthreads()
    h = cuda.blockDim.x // 2
    while h > 0:
        if t < h:
            red[t] += red[t + h]
        cuda.syncthreads()
        h //= 2
    total = red[0]
    cuda.syncthreads()  # everyone has read red[0] before the next sum overwrites it
    return total


@cuda.jit(device=True)
def _tridiagonalize(P, n, packed, d, e, v, w, red):
    """Reduce the symmetric matrix in P (layout by ``packed``, see ``_at``) to T = tridiag(e, d, e);
    see step 1 of the module docstring.  d (n,), e (n - 1,), v, w (n,) are shared work arrays.

    Thread i owns column k + 1 + i of G22 (and its mirror, row k + 1 + i): in the full layout
    every read and write of a warp then falls on consecutive addresses of one row, and in the
    packed one the rows' offsets i (i + 1) / 2 fall on distinct banks.  The full layout updates
    both triangles (twice the writes of one) for that coalescing."""
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    for k in range(n - 2):
        r = n - k - 1  # length of x = G[k+1:, k]
        part = 0.0
        for i in range(k + 2 + t, n, T):
            a = P[_at(k, i, n, packed)]
            part += a * a
        sigma2 = _block_sum(part, red)  # ||x[1:]||^2
        alpha = P[_at(k, k + 1, n, packed)]
        if t == 0:
            d[k] = P[_at(k, k, n, packed)]
        if sigma2 == 0.0:  # x = alpha e_1 already: no reflection (tau = 0), as in LAPACK dlarfg
            if t == 0:
                e[k] = alpha
            continue
        beta = -math.copysign(math.sqrt(alpha * alpha + sigma2), alpha)
        tau = (beta - alpha) / beta
        scale = 1.0 / (alpha - beta)
        for i in range(t, r, T):
            v[i] = 1.0 if i == 0 else P[_at(k, k + 1 + i, n, packed)] * scale
        if t == 0:
            e[k] = beta
        cuda.syncthreads()
        part = 0.0
        for i in range(t, r, T):  # p = tau G22 v, entry i: column i of G22 against v
            acc = 0.0
            for j in range(r):
                acc += P[_at(k + 1 + j, k + 1 + i, n, packed)] * v[j]
            acc *= tau
            w[i] = acc
            part += acc * v[i]
        half_tau_pv = 0.5 * tau * _block_sum(part, red)  # the sum's barriers also complete p
        for i in range(t, r, T):
            w[i] -= half_tau_pv * v[i]
        cuda.syncthreads()
        for i in range(t, r, T):  # G22 -= v w^T + w v^T: column i, its lower part when packed
            vi = v[i]
            wi = w[i]
            for j in range(i if packed else 0, r):
                P[_at(k + 1 + j, k + 1 + i, n, packed)] -= v[j] * wi + w[j] * vi
        cuda.syncthreads()
    if t == 0:
        if n >= 2:
            d[n - 2] = P[_at(n - 2, n - 2, n, packed)]
            e[n - 2] = P[_at(n - 1, n - 2, n, packed)]
        d[n - 1] = P[_at(n - 1, n - 1, n, packed)]
    cuda.syncthreads()


@cuda.jit(device=True, inline=True)
def _guard(q, pivmin):
    """A Sturm pivot kept off zero: |q| < pivmin reads as -pivmin (LAPACK dlaebz)."""
    return -pivmin if abs(q) < pivmin else q


@cuda.jit(device=True, inline=True)
def _counts_at_most(d, e2, n, x1, x2, x3, pivmin):
    """Sturm counts: the numbers of eigenvalues of tridiag(e, d, e) that are <= x1, x2, x3, by
    three independent recurrences in one loop, so that their divisions overlap."""
    q1 = _guard(d[0] - x1, pivmin)
    q2 = _guard(d[0] - x2, pivmin)
    q3 = _guard(d[0] - x3, pivmin)
    c1 = 1 if q1 <= 0.0 else 0
    c2 = 1 if q2 <= 0.0 else 0
    c3 = 1 if q3 <= 0.0 else 0
    for i in range(1, n):
        di = d[i]
        ei = e2[i - 1]
        q1 = _guard(di - ei / q1 - x1, pivmin)
        q2 = _guard(di - ei / q2 - x2, pivmin)
        q3 = _guard(di - ei / q3 - x3, pivmin)
        if q1 <= 0.0:
            c1 += 1
        if q2 <= 0.0:
            c2 += 1
        if q3 <= 0.0:
            c3 += 1
    return c1, c2, c3


@cuda.jit(device=True)
def _bisect(d, e, n, out, bounds):
    """Eigenvalues of tridiag(e, d, e) into out (n,), descending; see step 2 of the module
    docstring.  e is squared in place; bounds (4,) is shared scratch."""
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    if t == 0:  # Gershgorin interval and the pivot floor, serially: O(n)
        lo = d[0]
        hi = d[0]
        e2max = 0.0
        for i in range(n):
            radius = 0.0
            if i > 0:
                radius += abs(e[i - 1])
            if i < n - 1:
                radius += abs(e[i])
                e2max = max(e2max, e[i] * e[i])
            lo = min(lo, d[i] - radius)
            hi = max(hi, d[i] + radius)
        pivmin = SAFE_MIN * max(1.0, e2max)
        norm = max(abs(lo), abs(hi))
        widen = 2.1 * (2.0 * U * norm * n + 2.0 * pivmin)  # dstebz's fudge: no eigenvalue on the edge
        bounds[0] = lo - widen
        bounds[1] = hi + widen
        bounds[2] = pivmin
        bounds[3] = norm
    cuda.syncthreads()
    if bounds[3] == 0.0:  # T = 0: every eigenvalue is exactly 0, not a midpoint of +-pivmin
        for j in range(t, n, T):
            out[j] = 0.0
        return
    for i in range(t, n - 1, T):
        e[i] = e[i] * e[i]
    cuda.syncthreads()
    pivmin = bounds[2]
    tol = 2.0 * U * max(abs(bounds[0]), abs(bounds[1])) + pivmin
    for j in range(t, n, T):  # the (j + 1)-th smallest eigenvalue
        lo = bounds[0]
        hi = bounds[1]
        for _ in range(64):  # ~27 quarterings reach tol; the cap only guards the loop
            if hi - lo <= tol:
                break
            x2 = 0.5 * (lo + hi)
            x1 = 0.5 * (lo + x2)
            x3 = 0.5 * (x2 + hi)
            if not lo < x1 < x2 < x3 < hi:  # a few ulps wide: as narrow as it gets
                break
            c1, c2, c3 = _counts_at_most(d, e, n, x1, x2, x3, pivmin)
            if c1 > j:  # the eigenvalue lies in (lo, x1]
                hi = x1
            elif c2 > j:
                lo = x1
                hi = x2
            elif c3 > j:
                lo = x2
                hi = x3
            else:
                lo = x3
        out[n - 1 - j] = 0.5 * (lo + hi)


def make_kernel(cap: int, layout: str):
    """The kernel for n <= cap, by where the matrix is reduced (``layout``):

    - "static": a packed copy of the lower triangle in a static shared array sized for cap,
      cap (cap + 1) / 2 + 4 cap + threads(cap) float64 in all (44 KB at cap = 100, under the
      48 KB a block gets without opting in); G is left as it was.
    - "dynamic": the same copy in dynamic shared memory, ``shared_bytes(n)`` per launch, past
      48 KB (the launcher must opt the kernel in; up to ``DYNAMIC_CAP`` on sm_90's 227 KB).
    - "global": in place in G (global memory, cached in L1 / L2), which it overwrites.

    The vectors d, e, v, w (cap each) and the sums' tree (threads(cap)) are static shared arrays."""
    size = cap * (cap + 1) // 2 if layout == "static" else 0 if layout == "dynamic" else 1
    width = threads(cap)
    packed = layout != "global"

    @cuda.jit
    def eigvalsh(G, out):
        b = cuda.blockIdx.x
        t = cuda.threadIdx.x
        n = out.shape[1]
        P = cuda.shared.array(size, float64)  # size 0: the launch's dynamic shared memory
        d = cuda.shared.array(cap, float64)
        e = cuda.shared.array(cap, float64)
        v = cuda.shared.array(cap, float64)
        w = cuda.shared.array(cap, float64)
        red = cuda.shared.array(width, float64)
        bounds = cuda.shared.array(4, float64)
        if n > cap:
            return
        if packed:
            for i in range(n):
                for j in range(t, i + 1, cuda.blockDim.x):
                    P[i * (i + 1) // 2 + j] = G[b, i * n + j]
            cuda.syncthreads()
            _tridiagonalize(P, n, True, d, e, v, w, red)
        else:
            for i in range(n):  # mirror the lower triangle: the reduction reads and keeps both
                for j in range(i + 1 + t, n, cuda.blockDim.x):
                    G[b, i * n + j] = G[b, j * n + i]
            cuda.syncthreads()
            _tridiagonalize(G[b], n, False, d, e, v, w, red)
        _bisect(d, e, n, out[b], bounds)

    return eigvalsh


STATIC_CAPS = (32, 64, 100)  # packed in static shared memory
DYNAMIC_CAP = 232  # packed in dynamic shared memory: 216 KB + 9 KB of vectors, within sm_90's 227 KB
GLOBAL_CAPS = (256, 1024)  # in place in G
MAX_N = GLOBAL_CAPS[-1]
KERNELS = {cap: make_kernel(cap, "static") for cap in STATIC_CAPS}
KERNELS.update({cap: make_kernel(cap, "global") for cap in GLOBAL_CAPS})
DYNAMIC = make_kernel(DYNAMIC_CAP, "dynamic")


def shared_bytes(n: int) -> int:
    """Dynamic shared memory of ``DYNAMIC`` for order n: the packed lower triangle."""
    return 8 * (n * (n + 1) // 2)


def kernel_for(n: int, dynamic: bool = False):
    """(kernel, dynamic shared bytes) for order n <= ``MAX_N``: the smallest static cap that holds
    n, then ``DYNAMIC`` up to ``DYNAMIC_CAP`` when the caller can give it dynamic shared memory
    past 48 KB (``dynamic``), then the smallest in-place cap."""
    for cap in STATIC_CAPS:
        if n <= cap:
            return KERNELS[cap], 0
    if dynamic and n <= DYNAMIC_CAP:
        return DYNAMIC, shared_bytes(n)
    for cap in GLOBAL_CAPS:
        if n <= cap:
            return KERNELS[cap], 0
    raise ValueError(f"order {n} is past MAX_N = {MAX_N}")
