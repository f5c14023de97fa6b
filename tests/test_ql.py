"""The lane-interleaved rational QL (kernels/ql_cpu.py) against LAPACK, with
matrices that break such code side by side in one call: graded over 12 decades
both ways, rank-deficient, zero, already diagonal, repeated and clustered
eigenvalues, exact splits, the Wilkinson matrix, small integers (exact zero
pivots), and magnitudes near the ends of the float64 range (the scaling's job)."""

import types

import numpy as np
import pytest
from numba import njit
from scipy.linalg import eigvalsh_tridiagonal

from rankbias.kernels import ql_cpu
from rankbias.kernels import svdvals_cpu as S
from reference import haar

U = 2.0**-53


def _tridiagonal(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(d (n,), e (n - 1,)) of one test kind."""
    if kind == "wilkinson":  # W_n^+: pairs of eigenvalues agreeing to many digits
        return np.abs(np.arange(n) - (n - 1) / 2), np.ones(n - 1)
    if kind == "split":  # exact zeros in e: independent blocks
        d, e = rng.standard_normal(n), rng.standard_normal(n - 1)
        e[:: max(n // 4, 1)] = 0.0
        return d, e
    if kind in ("tiny", "huge"):  # an O(1) matrix scaled near the ends of the range: e^2 under/overflows
        d, e = rng.standard_normal(n), rng.standard_normal(n - 1)
        scale = 1e-200 if kind == "tiny" else 1e200
        return d * scale, e * scale
    if kind == "diagonal":
        return rng.standard_normal(n), np.zeros(n - 1)
    if kind == "identity":  # one eigenvalue, n times
        return np.ones(n), np.zeros(n - 1)
    if kind == "integer":  # small integers: the sweep meets exact zero pivots g (n >= 3)
        return np.ones(n), np.full(n - 1, 2.0)
    sigma = {  # Gram matrices A^T A of A with these singular values
        "random": None,
        "graded": np.logspace(0, -6, n),  # eigenvalues over 12 decades, largest first in A
        "graded_reversed": np.logspace(-6, 0, n),
        "rank_deficient": np.r_[rng.random(max(n // 3, 1)) + 0.5, np.zeros(n - max(n // 3, 1))],
        "clustered": 1 + 1e-10 * rng.random(n),
        "zero": np.zeros(n),
    }[kind]
    A = rng.standard_normal((n + 5, n)) if sigma is None else haar(rng, n + 5, n) * sigma @ haar(rng, n, n).T
    return S.tridiagonal_form(A.T @ A)


KINDS = ["random", "graded", "graded_reversed", "rank_deficient", "clustered", "zero", "wilkinson", "split",
         "diagonal", "identity", "integer", "tiny", "huge"]


def _lanes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """All KINDS as lanes of one call: d, e (n, L) and each lane's LAPACK eigenvalues."""
    rng = np.random.default_rng(seed)
    pairs = [_tridiagonal(kind, n, rng) for kind in KINDS]
    d = np.stack([p[0] for p in pairs], axis=1)
    e = np.zeros_like(d)
    e[:n - 1] = np.stack([p[1] for p in pairs], axis=1)
    exact = [eigvalsh_tridiagonal(*p) if n > 1 else p[0].copy() for p in pairs]
    return d, e, exact


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [1, 2, 3, 8, 17, 100])
def test_every_lane_within_n_u_norm_of_lapack(n, seed):
    d, e, exact = _lanes(n, seed)
    info = np.full(d.shape[1], -1)
    ql_cpu.tridiagonal_eigvals_lanes(d, e, info)
    assert not info.any()
    for j, kind in enumerate(KINDS):
        scale = max(np.abs(exact[j]).max(), 1e-300)
        err = np.abs(d[:, j] - exact[j]).max()  # both ascending
        assert err <= 4 * n * U * scale, (kind, err / (n * U * scale))


def test_a_lane_does_not_depend_on_its_neighbours():
    """Masked lockstep: each lane alone gives what it gives among the others
    (to rounding: the lane loop's vector body and its remainder may contract
    products into FMAs differently)."""
    d, e, _ = _lanes(40, 2)
    together = d.copy()
    ql_cpu.tridiagonal_eigvals_lanes(together, e.copy(), np.zeros(d.shape[1], np.int64))
    for j in range(d.shape[1]):
        alone = d[:, j:j + 1].copy()
        ql_cpu.tridiagonal_eigvals_lanes(alone, e[:, j:j + 1].copy(), np.zeros(1, np.int64))
        scale = max(np.abs(alone).max(), 1e-300)
        assert np.abs(alone[:, 0] - together[:, j]).max() <= 16 * 40 * U * scale, KINDS[j]


def test_a_lane_out_of_iterations_is_flagged_and_only_that_lane():
    """``info`` names the row that ran out (1-based); lanes that need no
    iteration (diagonal, zero) stay 0.  Checked with the limit set to 0."""
    glob = dict(ql_cpu._rational_ql.py_func.__globals__, MAX_ITERS=0)
    no_iterations = njit(fastmath=ql_cpu.FAST)(types.FunctionType(ql_cpu._rational_ql.py_func.__code__, glob))
    d, e, _ = _lanes(9, 0)
    big = np.maximum(np.abs(d).max(axis=0), np.abs(e).max(axis=0))
    d, e = d / np.where(big > 0, big, 1), e / np.where(big > 0, big, 1)  # the scaling the wrapper does
    e2 = np.zeros_like(e)
    e2[:8] = e[:8] ** 2
    info = np.zeros(d.shape[1], np.int64)
    no_iterations(d, e2, info)
    flagged = {KINDS[j] for j in np.flatnonzero(info)}
    assert flagged == set(KINDS) - {"zero", "diagonal", "identity"}
    assert info[KINDS.index("random")] == 1  # its first row already needs an iteration


@pytest.mark.parametrize("batch", [1, 2, 37])
@pytest.mark.parametrize("threads", [1, 2, 16])
def test_batched_groups_match_lapack(batch, threads):
    """Group sizes from ``threads`` (37 on 2 threads: groups of 19 and 18; on 16:
    groups of 3 and a lone matrix, which takes dsterf) all give LAPACK's values."""
    rng = np.random.default_rng(batch)
    A = (rng.standard_normal((batch, 30, 24)) * np.logspace(0, -5, 24)).astype(np.float32)
    s = np.empty((batch, 24), np.float32)
    S.svdvals_batched(A, s, threads)
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    live = exact >= 1e-4 * exact[:, :1]
    assert (np.abs(s - exact)[live] / exact[live]).max() <= 1e-6


def test_a_flagged_lane_is_redone_by_lapack():
    """svdvals_group's fallback: a lane the QL flags (here: lane 1, its values
    spoiled) gets LAPACK eigvalsh's values; the other lanes keep the QL's."""

    @njit
    def flag_lane_one(d, e, info):
        ql_cpu.tridiagonal_eigvals_lanes(d, e, info)
        d[:, 1] = -1.0
        info[1] = 3

    glob = dict(S.svdvals_group.py_func.__globals__, tridiagonal_eigvals_lanes=flag_lane_one)
    group = njit(types.FunctionType(S.svdvals_group.py_func.__code__, glob))
    A = np.random.default_rng(5).standard_normal((3, 20, 12)).astype(np.float32)
    s = np.empty((3, 12), np.float32)
    group(A, s)
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(s, exact, rtol=1e-6)
