"""Kernel speed against the libraries users would pick instead, side by side.

    pytest --benchmark-only tests/test_bench_spectral.py

Each group times rankbias and its peers on the same float32 matrices; the
table's ratios compare them, and ``extra_info`` holds each one's accuracy
against float64 LAPACK (top-k relative error for rSVD, max relative error over
sigma_i >= 1e-4 sigma_1 for singular values).
"""

import functools

import numpy as np
import pytest
import torch
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_limits

import rankbias as rb
from bench.cases import K, OVERSAMPLE, POWER_ITERS, RSVD_CASES, SVDVALS_CASES, exact_svdvals, max_rel_err_above, nn_like, topk_rel_err


@functools.cache
def _case(name: str):
    A = nn_like(*{**RSVD_CASES, **SVDVALS_CASES}[name])
    return A, exact_svdvals(A)


def _sklearn_rsvd(A):
    # one BLAS thread: numpy and scipy's two OpenBLAS pools fight on 2 cores otherwise
    with threadpool_limits(1, user_api="blas"):
        return np.stack([randomized_svd(a, K, n_oversamples=OVERSAMPLE, n_iter=POWER_ITERS, random_state=0)[1] for a in A])


RSVD_PEERS = {
    "rankbias": lambda A: rb.rsvd(A, K, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0).s,
    "torch.svd_lowrank": lambda A: torch.svd_lowrank(torch.from_numpy(A), q=K + OVERSAMPLE, niter=POWER_ITERS)[1].numpy(),
    "sklearn.randomized_svd": _sklearn_rsvd,
}


@pytest.mark.parametrize("peer", list(RSVD_PEERS))
@pytest.mark.parametrize("case", list(RSVD_CASES))
def test_rsvd(benchmark, case, peer):
    if peer.startswith("sklearn") and case == "1x4096x4096":
        pytest.skip("sklearn on one thread is ~10x behind at 4096: not informative")
    A, exact = _case(case)
    benchmark.group = f"rsvd {case} k={K} p={OVERSAMPLE} q={POWER_ITERS}"
    s = benchmark(RSVD_PEERS[peer], A)
    benchmark.extra_info["topk_rel_err"] = topk_rel_err(s, exact)


SVDVALS_PEERS = {
    "rankbias": rb.svdvals,
    "torch.linalg.svdvals": lambda A: torch.linalg.svdvals(torch.from_numpy(A)).numpy(),
    "numpy.linalg.svd": lambda A: np.linalg.svd(A, compute_uv=False),
}


@pytest.mark.parametrize("peer", list(SVDVALS_PEERS))
@pytest.mark.parametrize("case", list(SVDVALS_CASES))
def test_svdvals(benchmark, case, peer):
    A, exact = _case(case)
    benchmark.group = f"svdvals {case}"
    s = benchmark(SVDVALS_PEERS[peer], A)
    benchmark.extra_info["max_rel_err_above_1e-4"] = max_rel_err_above(s, exact)


def test_ranks_of_an_mlp_batch(benchmark):
    """All rank measures of 512 MLP layers (the metric step of a training run)."""
    A, _ = _case("512x100x100")
    benchmark.group = "ranks 512x100x100"
    out = benchmark(rb.ranks, A)
    assert set(out) == set(rb.MEASURES)


def _grams(n: int) -> list[np.ndarray]:
    A = nn_like(32, n, n).astype(np.float64)
    return [a.T @ a for a in A]


def _own_reduction(grams):
    from rankbias.kernels import svdvals_cpu

    for G in grams:
        svdvals_cpu.tridiagonal_form(G)


def _lapack_reduction(grams):
    from scipy.linalg import lapack

    for G in grams:
        lapack.dsytrd(G, lower=1)


@pytest.mark.parametrize("peer", ["rankbias.tridiagonalize", "lapack.dsytrd"])
@pytest.mark.parametrize("n", [100, 200])
def test_tridiagonal_reduction(benchmark, n, peer):
    """The larger step of svdvals of NN-sized matrices: 32 Gram matrices, one thread."""
    grams = _grams(n)
    benchmark.group = f"tridiagonal reduction 32x{n}x{n}, one thread"
    with threadpool_limits(1):
        benchmark(_own_reduction if peer.startswith("rankbias") else _lapack_reduction, grams)


def _tridiagonals(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The tridiagonal forms of ``_grams(n)`` as lanes: d, e (n, 32)."""
    from rankbias.kernels import svdvals_cpu

    forms = [svdvals_cpu.tridiagonal_form(G) for G in _grams(n)]
    d = np.stack([f[0] for f in forms], axis=1)
    e = np.zeros_like(d)
    e[:-1] = np.stack([f[1] for f in forms], axis=1)
    return d, e


def _lanes_eigvals(d, e):
    from rankbias.kernels import ql_cpu

    d = d.copy()
    ql_cpu.tridiagonal_eigvals_lanes(d, e.copy(), np.zeros(d.shape[1], np.int64))
    return d


def _dsterf_eigvals(d, e):
    from rankbias.kernels import svdvals_cpu

    return np.stack([svdvals_cpu.tridiagonal_eigvals(d[:, j].copy(), e[:-1, j].copy()) for j in range(d.shape[1])], axis=1)


@pytest.mark.parametrize("peer", ["rankbias.ql_cpu (32 lanes)", "lapack.dsterf (one by one)"])
@pytest.mark.parametrize("n", [100, 200])
def test_tridiagonal_eigenvalues(benchmark, n, peer):
    """The eigenvalue step after the reduction: 32 tridiagonal matrices, one thread."""
    d, e = _tridiagonals(n)
    benchmark.group = f"tridiagonal eigenvalues 32x{n}, one thread"
    lam = benchmark(_lanes_eigvals if peer.startswith("rankbias") else _dsterf_eigvals, d, e)
    exact = _dsterf_eigvals(d, e)
    benchmark.extra_info["max_abs_err_over_norm"] = float(np.abs(lam - exact).max() / np.abs(exact).max())
