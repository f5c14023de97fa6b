"""Eigenvalues of many symmetric tridiagonal matrices at once, in SIMD lanes.

LAPACK's ``dsterf`` solves one tridiagonal matrix at a time, and its inner
loop is one long chain of dependent divisions: it is bound by their latency,
not by the arithmetic units.  Here L matrices of the same order n are stored
side by side, ``d[i, j]`` the i-th diagonal entry of matrix j, and every step
of the iteration runs over the lane axis j innermost, so LLVM vectorizes it
and the L independent chains fill the pipelines.

The iteration is Reinsch's rational QL (CACM Algorithm 464, 1973; EISPACK
``tqlrat``), the root-free Pal-Walker-Kahan form of implicit QL with
Wilkinson's shift that ``dsterf`` also uses: it works on d and the squared
off-diagonal e2 and takes no square root in its inner loop.  Per lane, row l
converges when e2[l] <= (eps t)^2, t = max_{k <= l} (|d_k| + |e_k|) and
eps = 2u (EISPACK's absolute test), giving the eigenvalue d[l] + f, f the shifts accumulated so
far; an iteration on the rows l..n-1 that remain

    sigma = d_l - e_l / (p + sign(p) sqrt(p^2 + 1)),  p = (d_{l+1} - d_l) / (2 e_l)
    d[l+1:] -= sigma;  f += sigma
    g = h = d_{n-1};  s = 0
    for i = n-2 down to l:                       # the rational QL sweep
        p = g h;  r = p + e2_i
        e2_{i+1} = s r;  s = e2_i / r
        d_{i+1} = h + s (h + d_i)
        g = d_i - e2_i / g;  h = g p / r
    d_l = h;  e2_l = h s g

Lanes march in lockstep, one iteration each per pass; a lane's rows above its
own l are masked, so lanes that converge at different speeds only cost the
few rows by which their l differ (96-97% of the swept lane-rows do work
on 32 Gram matrices of order 100 or 200).  Two changes from ``tqlrat``:

- The sweep always starts at the bottom row instead of at the first
  negligible e2 below l.  An exactly zero e2_i restarts the recurrence
  (g = h = d_i, s = 0), as a split would; a tiny nonzero one only lets the
  shift act on an already decoupled block, an orthogonal similarity like any
  other: the cost is sweep length, never accuracy.
- The two divisions of a step share one: with q = 1 / (r g), 1/r = g q and
  1/g = r q.  Safe because each matrix is first scaled by a power of two
  (exact) to max(|d|, |e|) in [1/2, 1), so no product here over- or
  underflows; the scaling also keeps (eps t)^2 from underflowing unless T's
  entries span more than ~140 decades.

Accuracy: every eigenvalue within a small multiple of n u ||T||_2 of the
exact one (backward stable, like ``dsterf``; Golub & Van Loan, Matrix
Computations, 4th ed., §8.3).  A lane that needs more than ``MAX_ITERS``
iterations for one eigenvalue (EISPACK's limit) is flagged in ``info``.
"""

import math

import numpy as np
from numba import njit

FAST = {"reassoc", "contract", "nsz", "arcp"}  # no "nnan": masked lanes may hold NaN
MAX_ITERS = 30  # iterations allowed per eigenvalue before a lane is flagged
GROUP = 32  # matrices per call in the batched callers: 1.7x the speed of 16; 64: +15% or -20% by machine load
U = np.finfo(np.float64).eps / 2


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _rational_ql(d, e2, info):
    """Reinsch's rational QL on lanes (module docstring), in place: d (n, L) ->
    the eigenvalues, unsorted.  e2 (n, L) is destroyed; e2[n - 1] must be 0.
    info (L,) int64, zeros on entry: set to l + 1 for the first row l of a
    lane that ran out of iterations."""
    n, L = d.shape
    top = np.zeros(L, np.int64)  # l, each lane's first unconverged row (n: done)
    its = np.zeros(L, np.int64)  # iterations spent on row l
    f = np.zeros(L)  # shifts accumulated
    t = np.zeros(L)  # max of |d_k| + |e_k| over the rows l has reached
    b = np.zeros(L)  # eps t: stands in for a zero pivot g
    c = np.zeros(L)  # (eps t)^2: the deflation threshold on e2
    shift = np.zeros(L)
    g = np.zeros(L)
    h = np.zeros(L)
    s = np.zeros(L)
    while True:
        lo = n  # the lowest top row over lanes: the sweep's end
        for j in range(L):
            l = top[j]
            while l < n:
                tt = abs(d[l, j]) + np.sqrt(e2[l, j])
                if tt > t[j]:
                    t[j] = tt
                    b[j] = 2 * U * tt
                    c[j] = b[j] * b[j]
                if e2[l, j] > c[j]:
                    if its[j] < MAX_ITERS:
                        break
                    if info[j] == 0:  # out of iterations: flag the lane, accept the row, go on
                        info[j] = l + 1
                d[l, j] += f[j]
                its[j] = 0
                l += 1
            top[j] = l
            lo = min(lo, l)
        if lo == n:
            return
        for j in range(L):  # the shift, from the leading 2 x 2 of rows l, l + 1
            on = top[j] < n
            l = min(top[j], n - 2)
            el = np.sqrt(e2[l, j])
            dl = d[l, j]
            p = (d[l + 1, j] - dl) / (2.0 * el)
            rest = el / (p + np.copysign(np.sqrt(p * p + 1.0), p))
            shift[j] = dl - rest if on else 0.0
            d[l, j] = rest if on else dl
            f[j] += shift[j]
            its[j] += 1 if on else 0
        for i in range(lo + 1, n):
            for j in range(L):
                d[i, j] -= shift[j] if i > top[j] else 0.0
        for j in range(L):
            gj = d[n - 1, j]
            g[j] = h[j] = b[j] if gj == 0.0 else gj
            s[j] = 0.0
        for i in range(n - 2, lo - 1, -1):  # the sweep; rows above a lane's l masked
            for j in range(L):
                on = i >= top[j]
                gj, hj, sj = g[j], h[j], s[j]
                ei, di = e2[i, j], d[i, j]
                p = gj * hj
                r = p + ei
                q = 1.0 / (r * gj)
                s_new = ei * gj * q
                g_new = di - ei * r * q
                g_new = b[j] if g_new == 0.0 else g_new
                e2[i + 1, j] = sj * r if on else e2[i + 1, j]
                d[i + 1, j] = hj + s_new * (hj + di) if on else d[i + 1, j]
                g[j] = g_new if on else gj
                h[j] = g_new * p * gj * q if on else hj
                s[j] = s_new if on else sj
        for j in range(L):
            l = top[j]
            if l < n:
                d[l, j] = h[j]
                e2[l, j] = h[j] * s[j] * g[j]


@njit(fastmath=FAST, error_model="numpy", cache=True)
def tridiagonal_eigvals_lanes(d, e, info):
    """Eigenvalues of L symmetric tridiagonal matrices of order n, in place.

    d (n, L) float64: column j the diagonal of matrix j; on exit its
    eigenvalues, ascending.  e (n, L) float64: e[i, j] = T_j[i, i + 1] for
    i < n - 1 (row n - 1 is ignored); destroyed.  info (L,) int64: set to 0,
    or to l + 1 > 0 for a lane whose row l (the first such) did not converge
    in ``MAX_ITERS`` iterations: that lane's values are not to be trusted.
    """
    n, L = d.shape
    info[:] = 0
    scale = np.ones(L)
    for j in range(L):
        big = 0.0
        for i in range(n):
            big = max(big, abs(d[i, j]), abs(e[i, j]) if i < n - 1 else 0.0)
        if big > 0.0:
            scale[j] = math.ldexp(1.0, -math.frexp(big)[1])  # big * scale in [1/2, 1)
    for i in range(n):
        for j in range(L):
            d[i, j] *= scale[j]
            x = e[i, j] * scale[j] if i < n - 1 else 0.0
            e[i, j] = x * x
    _rational_ql(d, e, info)
    for j in range(L):
        d[:, j] = np.sort(d[:, j]) / scale[j]
