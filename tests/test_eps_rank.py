"""Adaptive eps-rank against the exact count on spectra with a gap at the threshold."""

import numpy as np
import pytest

import rankbias as rb
from reference import haar


def _matrix(m, n, values, dtype, seed):
    rng = np.random.default_rng(seed)
    r = len(values)
    return ((haar(rng, m, r) * values) @ haar(rng, n, r).T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,rank", [(300, 200, 23), (150, 400, 7), (120, 120, 60)])
def test_exact_when_a_gap_separates_the_threshold(dtype, m, n, rank):
    # rank values in [1, 0.1], then a tail 30x below the threshold eps = 1e-2
    head = np.geomspace(1, 0.1, rank)
    tail = np.full(min(m, n) - rank, 3e-4)
    A = _matrix(m, n, np.concatenate([head, tail]), dtype, seed=rank)
    got = rb.eps_rank(A, 1e-2, seed=0)
    assert int(got.rank) == rank
    assert rank <= int(got.k) <= min(m, n)  # k = rank when the tail certifies early


def test_exact_low_rank_stops_on_the_certified_tail():
    A = _matrix(400, 300, np.geomspace(1, 1e-1, 12), np.float64, seed=1)
    got = rb.eps_rank(A, 1e-3, block=8, seed=0)
    assert int(got.rank) == 12 and int(got.k) == 16  # two blocks, then tail ~ 0
    assert float(got.tail) < 1e-10


def test_full_rank_runs_to_min_dim_and_zero_is_zero():
    A = np.random.default_rng(2).standard_normal((2, 40, 30))
    got = rb.eps_rank(A, 1e-6, seed=0)
    np.testing.assert_array_equal(got.rank, 30)
    np.testing.assert_array_equal(got.k, 30)
    zero = rb.eps_rank(np.zeros((3, 20, 10)), 1e-3, seed=0)
    np.testing.assert_array_equal(zero.rank, 0)


def test_batched_matches_single_and_is_deterministic():
    rng = np.random.default_rng(3)
    A = np.stack([_matrix(80, 60, np.geomspace(1, 1e-3, 9), np.float64, seed=s) for s in range(4)])
    a = rb.eps_rank(A, 1e-2, seed=5)
    b = rb.eps_rank(A, 1e-2, seed=5)
    one = rb.eps_rank(A[:1], 1e-2, seed=5)
    np.testing.assert_array_equal(a.rank, b.rank)
    assert int(one.rank[0]) == int(a.rank[0]) and int(one.k[0]) == int(a.k[0])
    exact = (np.geomspace(1, 1e-3, 9) > 1e-2).sum()
    np.testing.assert_array_equal(a.rank, exact)
    assert rng is not None
