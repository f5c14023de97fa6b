"""Randomized SVD against float64 LAPACK on planted spectra."""

import numpy as np
import pytest
import torch

import rankbias as rb
from reference import SPECTRA, lapack_svdvals, planted, rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("kind", SPECTRA)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 60, 40), (3, 30, 70), (1, 50, 50)])
def test_factors_are_an_svd(kind, dtype, shape):
    A, _ = planted(kind, *shape, dtype=dtype, seed=1)
    k = 8
    U, s, Vt, fro = rb.rsvd(A, k, seed=0)
    assert U.dtype == s.dtype == Vt.dtype == dtype
    eye = np.eye(k)
    # U has orthonormal columns always; s is sorted and non-negative
    assert np.abs(np.einsum("bmi,bmj->bij", U, U) - eye).max() < 50 * TOL[dtype] ** 0.5 + TOL[dtype]
    assert np.all(np.diff(s, axis=-1) <= 1e-6 * s[..., :1] + 1e-30) and np.all(s >= 0)
    np.testing.assert_allclose(fro, np.linalg.norm(A.astype(np.float64), axis=(-2, -1)), rtol=1e-6)
    # U^T A V = diag(s) on the directions with sigma_i > 0
    exact = lapack_svdvals(A)[..., :k]
    proj = np.einsum("bmi,bmn,bin->bi", U.astype(np.float64), A.astype(np.float64), Vt.astype(np.float64))
    live = exact > 1e-3 * exact[..., :1]
    np.testing.assert_allclose(proj[live], s.astype(np.float64)[live], rtol=1e-3, atol=1e-5)
    # Vt has orthonormal rows on the live directions (eig path and SVD fallback alike)
    for b in range(A.shape[0]):
        n_live = int(live[b].sum())
        V = Vt[b, :n_live].astype(np.float64)
        np.testing.assert_allclose(V @ V.T, np.eye(n_live), atol=1e-3 if dtype == np.float32 else 1e-8)


@pytest.mark.parametrize("kind", ["fast_decay", "spikes_noise", "low_rank", "rank_one", "zero"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_matches_lapack_when_the_spectrum_decays(kind, dtype):
    A, _ = planted(kind, 5, 80, 64, dtype=dtype, seed=2)
    # k = 5: the spikes of spikes_noise; l = 25 covers the rank 16 of low_rank
    s = rb.rsvd(A, 5, oversample=20, power_iters=3, seed=0).s
    exact = lapack_svdvals(A)[..., :5]
    assert rel_err(s, exact).max() < (2e-5 if dtype == np.float32 else 1e-9)


def test_flat_bulk_error_shrinks_with_power_iterations():
    A, _ = planted("mp_bulk", 6, 120, 120, seed=3)
    exact = lapack_svdvals(A)[..., :10]
    errs = [rel_err(rb.rsvd(A, 10, power_iters=q, seed=0).s, exact).mean() for q in (0, 2, 6)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.02


def test_k_equal_min_dim_is_exact():
    A, _ = planted("heavy_tail", 3, 40, 25, seed=4)
    s = rb.rsvd(A, 25, seed=0).s
    np.testing.assert_allclose(s, lapack_svdvals(A), rtol=1e-9, atol=1e-12)


def test_same_seed_same_result_and_other_seed_differs():
    A, _ = planted("mp_bulk", 4, 64, 48, dtype=np.float32, seed=5)
    a, b, c = (rb.rsvd(A, 5, power_iters=0, seed=sd) for sd in (7, 7, 8))
    np.testing.assert_array_equal(a.U, b.U)
    np.testing.assert_array_equal(a.s, b.s)
    assert not np.array_equal(a.s, c.s)


def test_batch_and_serial_paths_agree():
    """A batch below the thread count runs the serial kernel; matrix i of a big
    batch must get the same sketch (stream i) and the same answer."""
    A, _ = planted("spikes_noise", 6, 50, 40, seed=6)
    full = rb.rsvd(A, 4, seed=3).s
    first = rb.rsvd(A[:1], 4, seed=3).s
    np.testing.assert_allclose(first[0], full[0], rtol=1e-12)


def test_leading_dims_and_torch_roundtrip():
    A, _ = planted("fast_decay", 6, 30, 20, dtype=np.float32, seed=7)
    A4 = A.reshape(2, 3, 30, 20)
    out = rb.rsvd(torch.from_numpy(A4), 3, seed=1)
    assert isinstance(out.U, torch.Tensor) and out.U.shape == (2, 3, 30, 3)
    assert out.s.shape == (2, 3, 3) and out.Vt.shape == (2, 3, 3, 20) and out.fro.shape == (2, 3)
    np.testing.assert_allclose(out.s.numpy().reshape(6, 3), rb.rsvd(A, 3, seed=1).s, rtol=1e-6)


def test_transposed_and_strided_inputs():
    A, _ = planted("fast_decay", 2, 40, 30, seed=8)
    At = np.swapaxes(A, -1, -2)  # non-contiguous view (2, 30, 40)
    np.testing.assert_allclose(rb.rsvd(At, 5, power_iters=3, seed=0).s, lapack_svdvals(A)[:, :5], rtol=1e-9)
    strided = np.asfortranarray(A[0])[::2, ::3]
    np.testing.assert_allclose(rb.svdvals(strided), lapack_svdvals(strided), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-37, 1e-20, 1e20])
def test_tiny_and_huge_matrices_scale_exactly(scale):
    """Entries near float32's smallest normal or far above 1 once made the float32
    products underflow (NaN from rsvd); results now scale with the matrix."""
    A = np.random.default_rng(3).standard_normal((2, 20, 10)).astype(np.float32)
    big = (A * np.float32(scale)).astype(np.float32)
    exact = np.linalg.svd(big.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(rb.rsvd(big, 10, seed=0).s, exact, rtol=1e-4)
    np.testing.assert_allclose(rb.svdvals(big), exact, rtol=1e-4)
    assert (rb.eps_rank(big, 1e-3).rank == rb.eps_rank(A, 1e-3).rank).all()
    assert (rb.ranks(big)["rank_tol"] == rb.ranks(A)["rank_tol"]).all()


def test_a_matrix_of_two_smallest_normals_keeps_its_singular_values():
    A = np.zeros((1, 4, 3), np.float32)
    A[0, 1, 0], A[0, 2, 1] = 1.17549435e-38, 2.3694278e-38  # the case hypothesis found
    assert rb.rsvd(A, 2, seed=0).s[0] == pytest.approx([2.3694278e-38, 1.17549435e-38], rel=1e-6)
