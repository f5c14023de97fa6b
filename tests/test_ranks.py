"""Rank measures: hand-computed values, an obvious numpy reference, edge cases."""

import math

import numpy as np
import pytest

import rankbias as rb
from rankbias import kernels
from reference import lapack_svdvals, planted

S = np.array([[4.0, 2.0, 1.0, 0.0]])
FRO = np.array([math.sqrt(21.0)])


def test_hand_computed_values():
    assert kernels.rank_tol(S, FRO, 0.3)[0] == 2  # s / ||W||_F = .873, .436, .218, 0
    assert kernels.rank_tol(S, FRO, 0.2)[0] == 3
    assert kernels.rank_rel(S, 0.25)[0] == 2  # strict: sigma_3 = 1 = 0.25 * 4 is not counted
    assert kernels.rank_rel(S, 0.2)[0] == 3
    assert kernels.stable_rank(S, FRO)[0] == pytest.approx(21 / 16)
    p = np.array([4, 2, 1]) / 7
    assert kernels.effective_rank(S)[0] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert kernels.effective_rank(S)[0] == pytest.approx(2.6005, abs=1e-4)
    assert kernels.tail_k(S, FRO, 1)[0] == pytest.approx(math.sqrt(5 / 21))
    assert kernels.tail_k(S, FRO, 3)[0] == 0.0
    # Gavish-Donoho: square, omega(1) = 2.86, median 1.5 -> tau 4.29 -> 0;
    # 4 x 16, omega(1/4) = 1.834375, tau = 2.7516 -> 1
    assert kernels.gd_omega(1.0) == pytest.approx(2.86)
    assert kernels.gd_rank(S, 4, 4)[0] == 0
    assert kernels.gd_rank(S, 4, 16)[0] == 1
    assert kernels.numerical_rank(S, 4, 4, np.finfo(np.float64).eps)[0] == 3


def test_zero_matrix_has_rank_zero_everywhere():
    out = rb.ranks(np.zeros((2, 5, 4)), k=2)
    for name, value in out.items():
        np.testing.assert_array_equal(value, 0.0, err_msg=name)


def _reference(A, tol, eps, k):
    s = lapack_svdvals(A)
    m, n = A.shape[-2:]
    fro = np.linalg.norm(A, axis=(-2, -1))
    p = s / s.sum(-1, keepdims=True)
    ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(-1)
    beta = min(m, n) / max(m, n)
    omega = 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
    return {
        "rank_tol": (s / fro[:, None] > tol).sum(-1),
        "rank_rel": (s > eps * s[:, :1]).sum(-1),
        "stable_rank": fro**2 / s[:, 0] ** 2,
        "effective_rank": np.exp(ent),
        "tail_k": np.sqrt((s[:, k:] ** 2).sum(-1)) / fro,
        "gd_rank": (s > omega * np.median(s, axis=-1, keepdims=True)).sum(-1),
        "numerical_rank": np.array([np.linalg.matrix_rank(a) for a in A]),
    }


@pytest.mark.parametrize("kind", ["fast_decay", "spikes_noise", "low_rank", "heavy_tail"])
def test_api_matches_numpy_reference(kind):
    A, _ = planted(kind, 4, 40, 30, seed=21)
    got = rb.ranks(A, tol=1e-2, eps=5e-2, k=3)
    want = _reference(A, 1e-2, 5e-2, 3)
    for name in rb.MEASURES:
        if kind == "low_rank" and name == "gd_rank":
            continue  # no noise: the median is rounding noise, the GD threshold is undefined
        # effective_rank sums every sigma: exact zeros come back as ~1e-8 sigma_1
        # from the Gram eigenvalues (svdvals' documented absolute resolution)
        rtol = 1e-5 if name == "effective_rank" else 1e-9
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, err_msg=name)


def test_truncated_spectrum_gives_the_same_counts_with_fro():
    """rank_tol, stable_rank and tail_k need only the top values and ||W||_F."""
    A, _ = planted("fast_decay", 3, 50, 50, seed=22)
    s = lapack_svdvals(A)
    fro = np.linalg.norm(A, axis=(-2, -1))
    top = np.ascontiguousarray(s[:, :40])  # rank_tol(1e-3) counts 26 here: below 40
    np.testing.assert_array_equal(kernels.rank_tol(top, fro, 1e-3), kernels.rank_tol(s, fro, 1e-3))
    np.testing.assert_allclose(kernels.tail_k(top, fro, 4), kernels.tail_k(s, fro, 4), rtol=1e-9)
    np.testing.assert_allclose(kernels.stable_rank(top, fro), kernels.stable_rank(s, fro))


def test_subset_of_measures_and_string():
    A, _ = planted("fast_decay", 2, 10, 10, seed=23)
    assert set(rb.ranks(A, ["stable_rank", "gd_rank"])) == {"stable_rank", "gd_rank"}
    assert set(rb.ranks(A, "rank_tol")) == {"rank_tol"}


def test_rank_measures_of_a_subnormal_matrix_are_those_of_its_scaled_copy():
    """Found by hypothesis: [[8.4e-43, 8.4e-43]] read a stable rank of 1.00027,
    its singular value rounded to float32's subnormal grid; measures are ratios,
    so they are now taken before the values go back to the input's scale."""
    A = np.array([[8.4e-43, 8.4e-43]], np.float32)
    tiny, unit = rb.ranks(A), rb.ranks(np.array([[1.0, 1.0]], np.float32))
    for name in ("rank_tol", "rank_rel", "gd_rank", "numerical_rank"):
        assert tiny[name] == unit[name], name
    for name in ("stable_rank", "effective_rank"):  # a rank-1 matrix: 1 up to float32 rounding of sigma_1
        assert tiny[name] == pytest.approx(1.0, abs=1e-6), name
    assert tiny["tail_k"] <= 1e-3  # sqrt(||A||^2 - sigma_1^2) / ||A||: float32 sigma_1 leaves ~1e-4


def test_the_measures_and_omega_are_written_once_for_cpu_gpu_api_and_cli():
    from rankbias.kernels import rank_common, rank_cpu, rank_cuda
    from rankbias.linalg import measures

    assert rank_cuda.MEASURES is rank_common.MEASURES is rb.MEASURES is measures.MEASURES
    assert set(rank_common.FORMULAS) == set(rb.MEASURES)
    assert rank_cpu.gd_omega.py_func is rank_common.omega and rank_cuda.gd_omega.py_func is rank_common.omega
    assert rank_cpu.gd_omega(0.1) == pytest.approx(0.56e-3 - 0.95e-2 + 0.182 + 1.43)
    text = measures.explain()
    assert all(f"{name}: {rank_common.FORMULAS[name][0]}." in text for name in rb.MEASURES)
