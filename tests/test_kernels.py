"""Kernel-level properties: orthonormal bases, the sketch generator, the disk cache."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from rankbias.kernels import fill_gaussian
from rankbias.kernels.qr_cpu import basis_one_pass, orthonormalize
from reference import haar


def _panel(cond, m=200, l=30, rank=None, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    s = np.geomspace(1, 1 / cond, l)
    if rank is not None:
        s[rank:] = 0
    return ((haar(rng, m, l) * s) @ haar(rng, l, l).T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cond,rank", [(1e1, None), (1e6, None), (1e12, None), (10, 7), (10, 1), (1, 0)])
def test_orthonormalize_gives_orthonormal_columns(dtype, cond, rank):
    Y = _panel(cond, rank=rank, dtype=dtype) if rank != 0 else np.zeros((200, 30), dtype=dtype)
    Q = orthonormalize(Y)
    assert Q.dtype == dtype and Q.flags.c_contiguous
    u = np.finfo(dtype).eps
    assert np.abs(Q.T.astype(np.float64) @ Q - np.eye(30)).max() < 100 * u
    if rank is None and cond <= 1e6:  # full numerical rank: the span is kept
        Y64 = Y.astype(np.float64)
        resid = Y64 - Q @ (Q.T.astype(np.float64) @ Y64)
        assert np.linalg.norm(resid) <= 1e3 * u * np.linalg.norm(Y64)


def test_one_pass_keeps_the_span_with_bounded_columns():
    Y = _panel(1e5, dtype=np.float32)
    Q = basis_one_pass(Y).astype(np.float64)
    eig = np.linalg.eigvalsh(Q.T @ Q)
    # (0, 1] in exact arithmetic, plus u_32 cond(Y) = 6e-3 of float32 rounding
    assert eig.max() <= 1 + 6e-3 and eig.min() > 0.5
    Y64 = Y.astype(np.float64)
    resid = Y64 - Q @ np.linalg.lstsq(Q, Y64, rcond=None)[0]
    assert np.linalg.norm(resid) < 1e-5 * np.linalg.norm(Y64)


def test_gaussian_sketch_moments_and_streams():
    out = np.empty((3, 300, 257), dtype=np.float64)  # odd width exercises the last column
    fill_gaussian(out, 123)
    x = out.ravel()
    assert abs(x.mean()) < 0.01 and abs(x.var() - 1) < 0.01
    assert abs(((x - x.mean()) ** 4).mean() / x.var() ** 2 - 3) < 0.05  # Gaussian kurtosis
    corr = np.corrcoef(out[0].ravel(), out[1].ravel())[0, 1]
    assert abs(corr) < 0.01  # streams are independent
    again = np.empty_like(out)
    fill_gaussian(again, 123)
    np.testing.assert_array_equal(out, again)
    fill_gaussian(again, 124)
    assert not np.array_equal(out, again)


def test_sketch_does_not_depend_on_thread_count():
    a = np.empty((4, 50, 11), dtype=np.float32)
    b = np.empty_like(a)
    fill_gaussian(a, 9)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        fill_gaussian(b, 9)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a, b)


def test_second_process_pays_no_compile(tmp_path):
    """cache=True: a fresh process loads every kernel it calls from the disk cache."""
    code = (
        "import numpy as np, rankbias as rb\n"
        "from rankbias import kernels as K\n"
        "A = np.random.default_rng(0).standard_normal((4, 12, 9))\n"
        "rb.ranks(A, ['rank_tol', 'stable_rank']); rb.rsvd(A, 3, seed=0)\n"
        "used = [K.frobenius_batched, K.svdvals_batched, K.rank_tol, K.stable_rank, K.fill_gaussian, K.rsvd_batched]\n"
        "print(sum(f.stats.cache_misses.get(s, 0) for f in used for s in f.signatures),"
        " sum(f.stats.cache_hits.get(s, 0) for f in used for s in f.signatures))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True) for _ in range(2)]
    first_misses, _ = map(int, runs[0].stdout.split())
    second_misses, second_hits = map(int, runs[1].stdout.split())
    assert first_misses > 0  # the empty cache really was empty
    assert second_misses == 0 and second_hits >= 6


def test_benchmark_cases_are_float32_with_the_planted_spikes():
    from bench.cases import nn_like

    A = nn_like(2, 64, 48)
    assert A.dtype == np.float32 and A.flags.c_contiguous
    s = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    assert np.all(s[:, 0] > 5) and np.all(s[:, 9] < 2.5)  # spikes 10..2, then the bulk edge ~2


def test_the_kernels_folder_refuses_a_second_module_name():
    """``import kernels`` from inside src/rankbias would compile the kernels under a
    second module name into the same Numba cache files, and every later
    ``import rankbias`` would then fail with "No module named 'kernels'"."""
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "rankbias")
    done = subprocess.run([sys.executable, "-c", "import kernels"], cwd=package, capture_output=True, text=True)
    assert done.returncode != 0
    assert "import it as rankbias.kernels" in done.stderr
