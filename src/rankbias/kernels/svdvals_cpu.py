"""Batched exact singular values of NN-sized matrices on the CPU.

For A (m, n) with r = min(m, n), the singular values are the square roots of
the eigenvalues of the r x r Gram matrix, formed and solved in float64:

    G = A^T A  (m >= n)  or  A A^T  (m < n)   # (r, r), float64 BLAS dsyrk
    Q^T G Q = T, tridiagonal                  # Householder reduction (below)
    lam = eig(T)                              # rational QL, no vectors
    sigma = sqrt(max(lam, 0)), descending

For r <= ``SMALL`` the reduction is ``tridiagonalize``, this module's own, and
the tridiagonal eigenvalues of up to ``ql_cpu.GROUP`` matrices are found side
by side in SIMD lanes (``ql_cpu``; a lone matrix goes to LAPACK dsterf).
Above it, LAPACK's blocked dsytrd and dsterf (``np.linalg.eigvalsh``) win.

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

from .lapack_cpu import dsterf, dsyevd, dsyrk
from .ql_cpu import GROUP, tridiagonal_eigvals_lanes

SYRK_MIN = 112  # r from which dsyrk's Gram beats GEMM's (1 thread, per 32: 1.50 vs 1.97 ms; 1.15 vs 0.90 at 96)
SMALL = 512  # largest r reduced by ``tridiagonalize``: 1.44x eigvalsh at 256, 1.11x at 512, 0.85x at 640
LANES = 8  # float64 lanes of an AVX-512 register: rows are padded to a multiple
BLOCKED, BLOCK = 1 << 22, 256  # a float32 matrix past 2048 x 2048 entries is widened 256 rows at a time
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
    from row k + 1, updated first), so T is read once per step; rows go two
    at a time, sharing the loads of v, w and the next v.  Loops run
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
        i = k + 2
        while i + 1 < n:  # two rows per pass: half the loads of v, w, v_next and loop overhead
            r0, r1 = T[i, a:], T[i + 1, a:]
            v0, w0, v1, w1 = v[i], w[i], v[i + 1], w[i + 1]
            acc0 = 0.0
            acc1 = 0.0
            for j in range(r0.shape[0]):
                x0 = r0[j] - (v0 * w_a[j] + w0 * v_a[j])
                x1 = r1[j] - (v1 * w_a[j] + w1 * v_a[j])
                r0[j] = x0
                r1[j] = x1
                acc0 += x0 * next_a[j]
                acc1 += x1 * next_a[j]
            y[i] = acc0
            y[i + 1] = acc1
            i += 2
        if i < n:
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
def _gram(A):
    """The float64 Gram matrix (r, r), both triangles, of A (m, n): A^T A if m >= n, else
    A A^T.  From r = ``SYRK_MIN`` on by BLAS dsyrk, which forms one triangle (half a GEMM's
    flops; the other is mirrored); below it GEMM, whose small-size overhead is lower.  A
    float32 A of more than ``BLOCKED`` entries is widened to float64 ``BLOCK`` rows (or
    columns) at a time, its Gram summed block by block, instead of copied whole: the float64
    copy was twice the input's memory (8000 x 8000: 512 MB for a 256 MB matrix)."""
    m, n = A.shape
    r = min(m, n)
    if r >= SYRK_MIN and A.itemsize == 4 and m * n > BLOCKED:
        return _gram_blocked(A)
    A64 = A.astype(np.float64)  # C-contiguous: to BLAS, the column-major n x m matrix A^T
    if r < SYRK_MIN:
        return A64.T @ A64 if m >= n else A64 @ A64.T
    G = np.empty((r, r))
    # column-major A^T (n x m, lda n): A^T A = (A^T)(A^T)^T is trans "N" with k = m; A A^T is "T" with k = n
    _syrk(G, A64, m >= n, max(m, n), n, 0.0)
    return _mirrored(G)


@njit(cache=True)
def _gram_blocked(A):
    """``_gram`` of a large float32 A, as a sum over blocks of ``BLOCK`` rows (m >= n: A^T A =
    sum_b A_b^T A_b) or columns (m < n: A A^T = sum_b A_b A_b^T), each widened to float64."""
    m, n = A.shape
    r = min(m, n)
    G = np.zeros((r, r))
    for lo in range(0, max(m, n), BLOCK):
        if m >= n:
            hi = min(lo + BLOCK, m)
            B = A[lo:hi].astype(np.float64)  # (k, n): column-major B^T, lda n; B^T B is trans "N"
            _syrk(G, B, True, hi - lo, n, 1.0)
        else:
            hi = min(lo + BLOCK, n)
            B = np.ascontiguousarray(A[:, lo:hi]).astype(np.float64)  # (m, k): column-major B^T, lda k
            _syrk(G, B, False, hi - lo, hi - lo, 1.0)  # B B^T = (B^T)^T (B^T) is trans "T"
    return _mirrored(G)


@njit(cache=True)
def _syrk(G, B, trans_n, k, lda, beta):
    """G's upper (column-major) triangle <- beta G + the product by dsyrk of B (C-contiguous
    float64, read column-major as B^T): trans "N" (``trans_n``) (B^T)(B^T)^T, else (B^T)^T (B^T)."""
    r = G.shape[0]
    codes = np.array([ord("U"), ord("N") if trans_n else ord("T")], np.int8)
    sizes = np.array([r, k, lda, r], np.int32)  # n, k, lda, ldc of dsyrk
    scalars = np.array([1.0, beta])  # alpha, beta
    dsyrk(codes.ctypes, codes[1:].ctypes, sizes.ctypes, sizes[1:].ctypes, scalars.ctypes, B.ctypes,
          sizes[2:].ctypes, scalars[1:].ctypes, G.ctypes, sizes[3:].ctypes)


@njit(cache=True)
def _mirrored(G):
    """G with its lower row-major triangle (dsyrk's column-major upper) mirrored up."""
    r = G.shape[0]
    for i in range(r):
        for j in range(i + 1, r):
            G[i, j] = G[j, i]
    return G


@njit(cache=True)
def _from_eigvals(lam, out):
    """out (r,) <- sqrt(max(lam, 0)) descending, from lam (r,) ascending."""
    r = lam.shape[0]
    for i in range(r):
        out[i] = np.sqrt(max(lam[r - 1 - i], 0.0))


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
def _one_by_dsterf(A, out):
    """Singular values of one A (m, n) into out (r,): ``tridiagonalize`` and
    LAPACK dsterf, which beats a lone lane of ``ql_cpu`` (0.35 vs 0.42 ms at
    100 x 100); LAPACK eigvalsh if dsterf fails."""
    G = _gram(A)
    lam = tridiagonal_eigvals(*tridiagonal_form(G))
    _from_eigvals(np.linalg.eigvalsh(G) if np.isnan(lam[0]) else lam, out)


@njit(cache=True)
def svdvals_group(A, out):
    """Singular values of A (L, m, n), r = min(m, n) <= ``SMALL``, into out (L, r):
    each Gram matrix reduced by ``tridiagonalize``, then the L tridiagonal
    eigenproblems solved side by side in SIMD lanes (``ql_cpu``).  A lane whose
    iteration fails (``info``) is redone by LAPACK ``np.linalg.eigvalsh``."""
    L = A.shape[0]
    if L == 1:
        _one_by_dsterf(A[0], out[0])
        return
    r = min(A.shape[1], A.shape[2])
    d = np.empty((r, L))
    e = np.zeros((r, L))
    info = np.empty(L, np.int64)
    for j in range(L):
        dj, ej = tridiagonal_form(_gram(A[j]))
        d[:, j] = dj
        e[:r - 1, j] = ej
    tridiagonal_eigvals_lanes(d, e, info)
    for j in range(L):
        _from_eigvals(d[:, j] if info[j] == 0 else np.linalg.eigvalsh(_gram(A[j])), out[j])


@njit(cache=True)
def svdvals_lapack(A, out):
    """Singular values of A (m, n) into out (r,): eigenvalues of the Gram matrix
    by LAPACK's blocked dsytrd + dsterf (dsyevd, ``np.linalg.eigvalsh``'s driver, on
    the Gram matrix in place), for r > ``SMALL``."""
    _from_eigvals(_eigvalsh_in_place(_gram(A)), out)


@njit(cache=True)
def _eigvalsh_in_place(G):
    """Eigenvalues (r,) ascending of the symmetric G (r, r), which is destroyed: LAPACK dsyevd
    with jobz "N" and uplo "L" after a workspace query, as ``np.linalg.eigvalsh`` calls it,
    without its copy of G (an 8000 x 8000 Gram matrix is 512 MB)."""
    n = G.shape[0]
    codes = np.array([ord("N"), ord("L")], np.int8)
    size = np.array([n], np.int32)
    lwork, liwork, info = np.array([-1], np.int32), np.array([-1], np.int32), np.zeros(1, np.int32)
    w, query, iquery = np.empty(n), np.empty(1), np.empty(1, np.int32)
    dsyevd(codes.ctypes, codes[1:].ctypes, size.ctypes, G.ctypes, size.ctypes, w.ctypes, query.ctypes,
           lwork.ctypes, iquery.ctypes, liwork.ctypes, info.ctypes)
    lwork[0], liwork[0] = np.int32(query[0]), iquery[0]
    work, iwork = np.empty(lwork[0]), np.empty(liwork[0], np.int32)
    dsyevd(codes.ctypes, codes[1:].ctypes, size.ctypes, G.ctypes, size.ctypes, w.ctypes, work.ctypes,
           lwork.ctypes, iwork.ctypes, liwork.ctypes, info.ctypes)
    if info[0] != 0:
        raise np.linalg.LinAlgError("dsyevd did not converge")
    return w


@njit(parallel=True, cache=True)
def svdvals_batched(A, out, threads):
    """Singular values of every A[i]: A (batch, m, n) -> out (batch, min(m, n)).

    Parallel over the batch, in groups of up to ``GROUP`` matrices, fewer when
    that would leave one of ``threads`` (Numba's thread count, passed in: a
    call to ``numba.get_num_threads`` here would keep this kernel out of the
    disk cache) idle.  Hold BLAS to one thread around the call."""
    batch = A.shape[0]
    if min(A.shape[1], A.shape[2]) > SMALL:
        for i in prange(batch):
            svdvals_lapack(A[i], out[i])
        return
    lanes = min(GROUP, max(1, -(-batch // threads)))
    for k in prange(-(-batch // lanes)):
        lo = k * lanes
        hi = min(lo + lanes, batch)
        svdvals_group(A[lo:hi], out[lo:hi])


@njit(cache=True)
def svdvals_serial(A, out):
    """As ``svdvals_batched`` without Numba's threads, for batches smaller than
    the thread count, where each matrix's GEMM and eigensolver use BLAS threads."""
    batch = A.shape[0]
    if min(A.shape[1], A.shape[2]) > SMALL:
        for i in range(batch):
            svdvals_lapack(A[i], out[i])
        return
    for lo in range(0, batch, GROUP):
        svdvals_group(A[lo:lo + GROUP], out[lo:lo + GROUP])
