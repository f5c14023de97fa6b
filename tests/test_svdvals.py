"""Exact batched singular values against float64 LAPACK, within the documented bound."""

import numpy as np
import pytest
import torch

import rankbias as rb
from reference import SPECTRA, lapack_svdvals, planted


@pytest.mark.parametrize("kind", SPECTRA)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# (2, 150, 120) and (2, 120, 150): the Gram matrix by BLAS dsyrk, A^T A and A A^T; (1, 600, 520): and LAPACK's eigvalsh
@pytest.mark.parametrize("shape", [(6, 50, 50), (3, 64, 20), (2, 20, 64), (1, 33, 33), (2, 150, 120), (2, 120, 150),
                                   (1, 600, 520)])
def test_matches_lapack_within_bound(kind, dtype, shape):
    A, _ = planted(kind, *shape, dtype=dtype, seed=11)
    s = rb.svdvals(A)
    exact = lapack_svdvals(A)  # of the same (rounded) input
    assert s.dtype == dtype and s.shape == exact.shape
    r = min(shape[1:])
    sigma1 = exact[..., :1]
    # documented bound: |ds_i| / s_i <= r u (s_1 / s_i)^2 / 2 (with c = 4 slack),
    # plus float32 output rounding; tiny values are resolved in absolute terms
    u = np.finfo(np.float64).eps
    bound = 4 * r * u * sigma1**2 / (2 * np.maximum(exact, 1e-300)) + np.finfo(dtype).eps * exact
    absolute = 4 * np.sqrt(r * u) * sigma1
    err = np.abs(s.astype(np.float64) - exact)
    assert np.all((err <= bound) | (err <= absolute))


def test_issue_accuracy_target_float32():
    """rel err <= 1e-5 for sigma_i >= 1e-4 sigma_1, on a 1e-6 decay, 512 and 256 sizes."""
    rng = np.random.default_rng(0)
    for m in (100, 256):
        A, _ = planted("fast_decay", 2, m, m, dtype=np.float32, seed=int(rng.integers(100)))
        exact = lapack_svdvals(A)
        live = exact >= 1e-4 * exact[:, :1]
        rel = np.abs(rb.svdvals(A) - exact)[live] / exact[live]
        assert rel.max() <= 1e-5


def test_torch_in_torch_out_any_leading_dims():
    A, _ = planted("heavy_tail", 6, 12, 9, seed=12)
    t = torch.from_numpy(A.reshape(3, 2, 12, 9))
    out = rb.svdvals(t)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2, 9)
    np.testing.assert_allclose(out.numpy().reshape(6, 9), lapack_svdvals(A), rtol=1e-8, atol=1e-12)


def test_half_precision_is_measured_in_float32():
    A, _ = planted("fast_decay", 2, 16, 16, seed=13)
    out = rb.svdvals(torch.from_numpy(A).to(torch.bfloat16))
    assert out.dtype == torch.float32
    exact = lapack_svdvals(torch.from_numpy(A).to(torch.bfloat16).float().numpy())
    np.testing.assert_allclose(out.numpy(), exact, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2300, 1900), (1900, 2300)])
def test_a_large_float32_matrix_is_widened_block_by_block_to_the_same_accuracy(shape):
    """Past BLOCKED entries a float32 matrix's Gram is summed over float64 blocks (half the
    memory of a whole float64 copy): the same accuracy bound against float64 LAPACK."""
    from rankbias.kernels import svdvals_cpu

    A = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    assert A.size > svdvals_cpu.BLOCKED
    s = rb.svdvals(A)
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    r = min(shape)
    bound = 4 * r * 2**-53 * (exact[0] / exact) ** 2 / 2  # c r u (sigma_1 / sigma_i)^2 / 2, c = 4
    assert np.all(np.abs(s - exact) / exact <= np.maximum(bound, 1e-6))
