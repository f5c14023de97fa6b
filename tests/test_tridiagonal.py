"""The CPU svdvals kernel's own Householder tridiagonalization and its LAPACK
eigenvalue step, against float64 LAPACK on the matrices that break such code:
graded over 12 decades, rank-deficient, zero, sizes around the 8-lane padding,
1 x 1 and 2 x 2, and 1 x n / n x 1 inputs of the whole kernel."""

import numpy as np
import pytest
from scipy.linalg import eigvalsh_tridiagonal

import rankbias as rb
from rankbias.kernels import svdvals_cpu as K
from reference import haar, lapack_svdvals


def _gram(kind: str, n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        A = rng.standard_normal((n + 5, n))
    elif kind == "graded":  # singular values over 12 decades: the Gram spans 24
        A = haar(rng, n + 5, n) * np.logspace(0, -12, n) @ haar(rng, n, n).T
    elif kind == "rank_deficient":
        A = rng.standard_normal((n + 5, max(n // 3, 1))) @ rng.standard_normal((max(n // 3, 1), n))
    elif kind == "zero":
        A = np.zeros((n + 5, n))
    elif kind == "diagonal":  # already tridiagonal: every reflector is the identity (tau = 0)
        return np.diag(rng.random(n))
    return A.T @ A


@pytest.mark.parametrize("kind", ["random", "graded", "rank_deficient", "zero", "diagonal"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 16, 17, 100])
def test_tridiagonal_form_has_the_eigenvalues_of_the_matrix(kind, n):
    G = _gram(kind, n)
    d, e = K.tridiagonal_form(G)
    exact = np.linalg.eigvalsh(G)
    scale = max(np.abs(exact).max(), 1e-300)
    got = eigvalsh_tridiagonal(d, e) if n > 1 else d
    # backward stable: every eigenvalue within c n u ||G||_2 (Golub & Van Loan Thm. 8.1.5)
    assert np.abs(got - exact).max() <= 8 * n * 2.0**-53 * scale
    assert abs(d.sum() - np.trace(G)) <= 8 * n * 2.0**-53 * max(np.abs(G).sum(), 1e-300)  # similarity keeps the trace
    if kind == "zero":
        assert not d.any() and not e.any()


@pytest.mark.parametrize("n", [1, 2, 9, 64])
def test_dsterf_step_matches_lapack(n):
    rng = np.random.default_rng(n)
    d, e = rng.standard_normal(n), rng.standard_normal(max(n - 1, 0))
    exact = np.linalg.eigvalsh(np.diag(d) + np.diag(e, 1) + np.diag(e, -1))
    np.testing.assert_allclose(K.tridiagonal_eigvals(d.copy(), e.copy()), exact, rtol=0, atol=16 * n * 2.0**-53 * np.abs(exact).max())


@pytest.mark.parametrize("shape", [(1, 1), (1, 30), (30, 1), (2, 2), (9, 9), (17, 40), (200, 200), (300, 290), (514, 513)])
def test_kernel_on_thin_and_padded_shapes(shape):
    """(514, 513): past ``SMALL``, LAPACK's reduction; the rest, the kernel's."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, *shape)) * np.logspace(0, -6, shape[1])
    s = np.empty((2, min(shape)))
    K.svdvals_serial(A, s)
    exact = lapack_svdvals(A)
    live = exact >= 1e-4 * exact[:, :1]
    assert (np.abs(s - exact)[live] / exact[live]).max() <= 1e-6  # the bound above 1e-4 sigma_1
    assert np.all(np.diff(s, axis=1) <= 0)


def test_zero_matrix_has_zero_singular_values():
    assert not rb.svdvals(np.zeros((3, 20, 12), np.float32)).any()
