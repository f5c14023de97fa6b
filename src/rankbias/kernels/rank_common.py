"""What the CPU and GPU rank kernels share: the measures' names, formulas and references,
and the Gavish-Donoho threshold factor omega(beta).

``MEASURES`` names the measures in the order every kernel returns them;
``FORMULAS`` gives each its formula and reference (``rankbias ranks --explain``
prints this table).  ``omega`` is plain Python, compiled by ``rank_cpu`` with
``numba.njit`` and by ``rank_cuda`` as a CUDA device function, so the two
kernels evaluate one formula.
"""

MEASURES = ("rank_tol", "rank_rel", "stable_rank", "effective_rank", "tail_k", "gd_rank", "numerical_rank")

# name -> (formula, reference or "")
FORMULAS = {
    "rank_tol": ("#{i : sigma_i / ||W||_F > tol}", "Galanti, Siegel, Gupte & Poggio, arXiv 2206.05794"),
    "rank_rel": ("#{i : sigma_i > eps sigma_1}", ""),
    "stable_rank": ("||W||_F^2 / sigma_1^2, in [1, r]",
                    'Rudelson & Vershynin, "Sampling from large matrices", J. ACM 54(4), 2007'),
    "effective_rank": ("exp(-sum_i p_i log p_i), p_i = sigma_i / sum_j sigma_j (0 log 0 = 0)",
                       'Roy & Vetterli, "The effective rank", EUSIPCO 2007'),
    "tail_k": ("(sum_{i > k} sigma_i^2)^(1/2) / ||W||_F, the share of W outside its best rank-k approximation", ""),
    "gd_rank": ("#{i : sigma_i > omega(beta) median(sigma)} of an m x n matrix, beta = min(m, n) / max(m, n), "
                "omega(beta) ~ 0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43; needs the full spectrum",
                'Gavish & Donoho, "The optimal hard threshold for singular values is 4/sqrt(3)", IEEE Trans. '
                "Inf. Theory 60(8), 2014, Eq. (5) for unknown noise"),
    "numerical_rank": ("#{i : sigma_i > sigma_1 max(m, n) eps}, eps the machine epsilon of the matrix's dtype",
                       "numpy.linalg.matrix_rank's default"),
}


def omega(beta):
    """Gavish-Donoho omega(beta), the unknown-noise threshold factor (Eq. (5))."""
    return 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
