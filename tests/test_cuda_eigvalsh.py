"""The GPU svdvals route (float64 Gram, then ``kernels.eigvalsh_cuda``: Householder
tridiagonalization and bisection in one block per matrix) under Numba's CUDA
simulator, against float64 LAPACK, on small sizes: the simulator runs every
thread as a Python thread."""

import numpy as np
import pytest
from conftest import simulate

CHILD = r"""
import json
import numpy as np
import torch
from rankbias.kernels import eigvalsh_cuda as ec
from rankbias.linalg.cuda import spectral as sc

rng = np.random.default_rng(0)
n = 9
def orth(k):
    return np.linalg.qr(rng.standard_normal((k, k)))[0]
kinds = {
    "random": rng.standard_normal((n + 3, n)),
    "graded12": orth(n + 3)[:, :n] * np.logspace(0, -12, n) @ orth(n),   # U diag(s) V^T, 12 decades
    "rank2": rng.standard_normal((n + 3, 2)) @ rng.standard_normal((2, n)),
    "zero": np.zeros((n + 3, n)),
    "orthogonal_columns": orth(n + 3)[:, :n] * np.arange(1.0, n + 1),  # G diagonal: no reflection at all
    "clustered": orth(n + 3)[:, :n] * (1.0 + 1e-10 * np.arange(n)) @ orth(n),
    "bidiagonal": np.vstack([np.diag(rng.standard_normal(n)) + np.diag(rng.standard_normal(n - 1), 1),
                             np.zeros((3, n))]),  # G tridiagonal already: no reflection, e_k = G[k+1, k]
}
G = np.stack([A.T @ A for A in kinds.values()])
out = {"kinds": list(kinds), "G": G.tolist()}
lower_only = np.where(np.tri(n, dtype=bool), G, np.nan).reshape(len(kinds), n * n)  # the kernels read no more
for cap in (32, 256):  # packed in shared memory, and in place in G
    flat = lower_only.copy()
    lam = np.full((len(kinds), n), np.nan)
    ec.KERNELS[cap][len(kinds), ec.threads(n)](flat, lam)
    out[f"lam_{cap}"] = lam.tolist()
    out[f"kept_{cap}"] = bool(np.array_equal(flat, lower_only, equal_nan=True))
flat = lower_only.copy()  # packed in dynamic shared memory (past 48 KB on a GPU; any size here)
lam = np.full((len(kinds), n), np.nan)
ec.DYNAMIC[len(kinds), ec.threads(n), 0, ec.shared_bytes(n)](flat, lam)
out["lam_dynamic"] = lam.tolist()
out["kept_dynamic"] = bool(np.array_equal(flat, lower_only, equal_nan=True))
for k in (1, 2, 33):  # no reflection at all, one 2 x 2 block, and more than a warp (64 threads)
    A = rng.standard_normal((2 if k < 33 else 1, k + 1, k))
    Gk = np.ascontiguousarray(A.transpose(0, 2, 1) @ A)
    lam = np.full((A.shape[0], k), np.nan)
    ec.kernel_for(k)[0][A.shape[0], ec.threads(k)](Gk.reshape(A.shape[0], k * k), lam)
    out[f"order{k}"] = {"G": Gk.tolist(), "lam": lam.tolist()}
g = torch.Generator().manual_seed(1)
A = torch.randn(2, 7, 5, generator=g, dtype=torch.float64)
out["glue"] = {
    "A": A.tolist(),
    "tall": sc.svdvals(A).tolist(),
    "wide": sc.svdvals(A.mT.contiguous()).tolist(),
    "huge": sc.svdvals(A * 1e250).tolist(),  # its Gram (1e500) would overflow unscaled
    "tiny": sc.svdvals(A * 1e-250).tolist(),  # ... and underflow
    "row": sc.svdvals(A[:, :1, :].contiguous()).tolist(),  # 1 x n
    "column": sc.svdvals(A[:, :, :1].contiguous()).tolist(),  # n x 1
    "zero": sc.svdvals(torch.zeros(1, 4, 3)).tolist(),
    "float32": str(sc.svdvals(A.float()).dtype),
}
ec.STATIC_CAPS = (4,)  # as if 5 columns were past the static kernels: the glue's dynamic-shared-memory launch
out["glue"]["dynamic"] = sc.svdvals(A).tolist()
low = torch.randn(1, 8, 2, generator=g, dtype=torch.float64) @ torch.randn(1, 2, 6, generator=g, dtype=torch.float64)
out["rank2"] = {"gram": sc.ranks(low, 1e-3, 1e-3, 1).tolist(),
                "stable": sc.ranks(low, 1e-3, 1e-3, 1, backward_stable=True).tolist()}
print(json.dumps(out))
"""

U = 2.0**-53


@pytest.fixture(scope="module")
def sim():
    return simulate(CHILD)


def _check_eigenvalues(lam, G):
    """Descending, and within 4 n u ||G|| of LAPACK (the backward error of the reduction and
    of bisection's O(u ||T||) intervals)."""
    n = G.shape[-1]
    ref = np.linalg.eigvalsh(G)[::-1]
    assert (np.diff(lam) <= 0).all(), lam
    np.testing.assert_allclose(lam, ref, rtol=0, atol=4 * n * U * max(np.abs(ref).max(), 1e-300))


@pytest.mark.parametrize("cap", [32, "dynamic", 256], ids=["shared", "dynamic", "global"])
@pytest.mark.parametrize("kind", range(7), ids=["random", "graded12", "rank2", "zero", "orthogonal_columns",
                                               "clustered", "bidiagonal"])
def test_eigenvalues_of_each_kind_match_lapack(sim, cap, kind):
    G = np.array(sim["G"])[kind]
    lam = np.array(sim[f"lam_{cap}"])[kind]
    _check_eigenvalues(lam, G)
    if sim["kinds"][kind] == "zero":
        assert (lam == 0).all()  # exactly: not a midpoint of +-pivmin


def test_the_shared_memory_kernels_leave_g_as_it_was(sim):
    assert sim["kept_32"] and sim["kept_dynamic"]


def test_kernel_choice_by_order_and_dynamic_shared_memory():
    from rankbias.kernels import eigvalsh_cuda as ec

    assert ec.kernel_for(100, dynamic=True) == (ec.KERNELS[100], 0)  # static shared memory first
    assert ec.kernel_for(101, dynamic=True) == (ec.DYNAMIC, 8 * 101 * 51)
    assert ec.kernel_for(232, dynamic=True) == (ec.DYNAMIC, 8 * 232 * 233 // 2)
    assert ec.kernel_for(233, dynamic=True) == (ec.KERNELS[256], 0)
    assert ec.kernel_for(101) == (ec.KERNELS[256], 0)  # no opt-in: in place
    with pytest.raises(ValueError, match="past MAX_N"):
        ec.kernel_for(1025)


def test_a_failed_opt_in_warns_and_falls_back_to_the_in_place_kernel(monkeypatch):
    """On a GPU (faked here) whose driver refuses the shared memory, the route still works."""
    import numba
    import torch

    from rankbias.linalg.cuda import launch
    from rankbias.kernels import eigvalsh_cuda

    def refuse(sig):
        raise RuntimeError("CUDA_ERROR_INVALID_VALUE")

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", False)
    monkeypatch.setattr(eigvalsh_cuda.DYNAMIC, "compile", refuse)
    monkeypatch.setattr(launch, "launching", lambda device: __import__("contextlib").nullcontext(0))
    monkeypatch.setattr(launch, "_opted_in", {})
    device = torch.device("cuda", 3)
    with pytest.warns(RuntimeWarning, match=r"could not give the eigenvalue kernel 216224 bytes .* cuda:3 .*"
                                            r"101-232 columns use the slower in-place kernel"):
        assert launch.dynamic_shared(device) is False
    assert launch.dynamic_shared(device) is False  # asked once per device


@pytest.mark.parametrize("k", [1, 2, 33])
def test_orders_one_two_and_past_a_warp(sim, k):
    G, lam = (np.array(sim[f"order{k}"][key]) for key in ("G", "lam"))
    for b in range(G.shape[0]):
        _check_eigenvalues(lam[b], G[b])


def test_gram_svdvals_match_lapack_for_every_shape_and_scale(sim):
    g = {key: np.array(value) if key != "float32" else value for key, value in sim["glue"].items()}
    ref = np.linalg.svd(g["A"], compute_uv=False)
    for key, scale in (("tall", 1.0), ("wide", 1.0), ("huge", 1e250), ("tiny", 1e-250), ("dynamic", 1.0)):
        np.testing.assert_allclose(g[key], ref * scale, rtol=1e-12, err_msg=key)  # cond ~ 10: relative
    np.testing.assert_allclose(g["row"][:, 0], np.linalg.norm(g["A"][:, 0, :], axis=1), rtol=1e-14)
    np.testing.assert_allclose(g["column"][:, 0], np.linalg.norm(g["A"][:, :, 0], axis=1), rtol=1e-14)
    assert (g["zero"] == 0).all()
    assert g["float32"] == "torch.float32"


def test_ranks_of_float64_take_jacobi_when_numerical_rank_needs_u64_resolution(sim):
    """A rank-2 float64 matrix: the Gram route leaves its zero singular values at ~1e-8 sigma_1, above
    numerical_rank's ~1e-15 sigma_1 tolerance; Jacobi resolves them."""
    gram, stable = np.array(sim["rank2"]["gram"]), np.array(sim["rank2"]["stable"])
    numerical = 6  # the row of numerical_rank in kernels.rank_cuda.MEASURES
    assert stable[numerical, 0] == 2
    assert gram[numerical, 0] > 2  # why the switch exists; if this ever fails, the switch can go
    np.testing.assert_allclose(gram[:5], stable[:5], rtol=1e-6)  # rank_tol .. tail_k agree (gd_rank reads the median)


def test_an_unknown_route_is_refused_by_name():
    import torch

    from rankbias.linalg.cuda import spectral as spectral_cuda

    with pytest.raises(ValueError, match=r"'method' parameter of spectral_cuda.svdvals must be 'gram' or 'jacobi'. "
                                         r"Got 'qr' instead"):
        spectral_cuda.svdvals(torch.ones(1, 3, 3), method="qr")
