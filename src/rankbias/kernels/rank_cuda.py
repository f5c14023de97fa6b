"""Rank measures on the GPU (numba-cuda): the twin of ``rank_cpu`` for
singular values that already live on the device, one thread per matrix.

``ranks_all(s, fro, tol, eps, k, m, n, mach_eps, out)``: s (batch, r) sorted
descending (float32 or float64), fro (batch,) = ||W||_F, out (7, batch)
float64 receives, row by row, ``MEASURES``: rank_tol (#sigma_i / ||W||_F >
tol), rank_rel (#sigma_i > eps sigma_1), stable_rank (||W||_F^2 / sigma_1^2),
effective_rank (Roy & Vetterli 2007), tail_k (share of ||W||_F outside the
best rank-k approximation), gd_rank (Gavish & Donoho 2014, omega(beta)
median(sigma), the full spectrum needed) and numerical_rank (#sigma_i >
sigma_1 max(m, n) mach_eps).  Definitions and references as in ``rank_cpu``;
a zero matrix has every measure 0.  Launch with at least ``batch`` threads.
"""

import math

from .numba_cuda import cuda
from .rank_common import MEASURES, omega

gd_omega = cuda.jit(device=True)(omega)  # the formula rank_cpu.gd_omega compiles for the CPU

__all__ = ["MEASURES", "gd_omega", "ranks_all"]


@cuda.jit
def ranks_all(s, fro, tol, eps, k, m, n, mach_eps, out):
    b = cuda.grid(1)
    if b >= s.shape[0]:
        return
    r = s.shape[1]
    top = float(s[b, 0])
    f = float(fro[b])
    beta = min(m, n) / max(m, n)
    tau = gd_omega(beta)
    median = 0.5 * (float(s[b, (r - 1) // 2]) + float(s[b, r // 2]))  # rows are sorted
    counts_tol = 0.0
    counts_rel = 0.0
    counts_gd = 0.0
    counts_num = 0.0
    total = 0.0
    head = 0.0
    for i in range(r):
        v = float(s[b, i])
        if v > tol * f:
            counts_tol += 1.0
        if v > eps * top:
            counts_rel += 1.0
        if v > tau * median:
            counts_gd += 1.0
        if v > top * max(m, n) * mach_eps:
            counts_num += 1.0
        total += v
        if i < k:
            head += v * v
    entropy = 0.0
    if total > 0.0:
        for i in range(r):
            v = float(s[b, i])
            if v > 0.0:
                entropy -= (v / total) * math.log(v / total)
    out[0, b] = counts_tol
    out[1, b] = counts_rel
    out[2, b] = (f / top) ** 2 if top > 0.0 else 0.0
    out[3, b] = math.exp(entropy) if total > 0.0 else 0.0
    out[4, b] = math.sqrt(max(f * f - head, 0.0)) / f if f > 0.0 else 0.0
    out[5, b] = counts_gd
    out[6, b] = counts_num
