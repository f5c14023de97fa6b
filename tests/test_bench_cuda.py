"""GPU kernel speed against torch on the same device, side by side; skipped
without a CUDA device.  Every timed call ends with torch.cuda.synchronize().
Every group also times the CPU core on the same matrices (all cores, the copy
to the host included): whether a call pays on the GPU at all.

    pytest --benchmark-only tests/test_bench_cuda.py
"""

import functools

import pytest
import torch

import rankbias as rb
from bench.cases import CUDA_CASES, CUDA_K, CUDA_RANKS_CASES, CUDA_SHAPES, CUDA_SVDVALS_CASES, K, OVERSAMPLE, POWER_ITERS, exact_svdvals, max_rel_err_above, nn_like, topk_rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@functools.cache
def _case(name: str):
    A = nn_like(*CUDA_SHAPES[name])
    return torch.from_numpy(A).cuda(), exact_svdvals(A)


def _synced(fn):
    def run(A):
        out = fn(A)
        torch.cuda.synchronize()
        return out
    return run


def _k(case):
    return CUDA_K.get(case, K)


def _eager(fn):
    """fn with CUDA-graph replay off (``rankbias.linalg.cuda.graphs``): every kernel launched from Python."""
    from rankbias.linalg.cuda import graphs as cuda_graphs

    def run(A):
        with cuda_graphs.disabled():
            return fn(A)
    return run


@pytest.mark.parametrize("peer", ["rankbias", "rankbias-eager", "torch.svd_lowrank", "rankbias-cpu"])
@pytest.mark.parametrize("case", CUDA_CASES)
def test_rsvd_cuda(benchmark, case, peer):
    """rankbias: a repeated call, replayed from a CUDA graph; rankbias-eager: the same call launched
    kernel by kernel."""
    A, exact = _case(case)
    k = _k(case)
    ours = lambda A: rb.rsvd(A, k, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0).s  # noqa: E731
    fns = {"rankbias": ours, "rankbias-eager": _eager(ours),
           "torch.svd_lowrank": lambda A: torch.svd_lowrank(A, q=k + OVERSAMPLE, niter=POWER_ITERS)[1],
           "rankbias-cpu": lambda A: torch.as_tensor(rb.rsvd(A.cpu().numpy(), k, oversample=OVERSAMPLE,
                                                             power_iters=POWER_ITERS, seed=0).s)}
    benchmark.group = f"cuda rsvd {case} k={k} p={OVERSAMPLE} q={POWER_ITERS}"
    s = benchmark(_synced(fns[peer]), A)
    benchmark.extra_info["topk_rel_err"] = topk_rel_err(s.cpu().numpy(), exact, k)


@pytest.mark.parametrize("peer", ["rankbias", "rankbias-jacobi", "torch.linalg.svdvals", "rankbias-cpu"])
@pytest.mark.parametrize("case", CUDA_SVDVALS_CASES)
def test_svdvals_cuda(benchmark, case, peer):
    """rankbias: the Gram route (``kernels.eigvalsh_cuda``); rankbias-jacobi: the one-sided / block
    Jacobi route it replaced as the default; rankbias-cpu: the CPU core on all cores."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    A, exact = _case(case)
    fns = {"rankbias": rb.svdvals, "rankbias-jacobi": lambda A: spectral_cuda.svdvals(A, method="jacobi"),
           "torch.linalg.svdvals": torch.linalg.svdvals,
           "rankbias-cpu": lambda A: torch.as_tensor(rb.svdvals(A.cpu().numpy()))}
    benchmark.group = f"cuda svdvals {case}"
    s = benchmark(_synced(fns[peer]), A)
    benchmark.extra_info["max_rel_err_above_1e-4"] = max_rel_err_above(s.cpu().numpy(), exact)


def _rank_tol_from_torch(A):
    """The peer a torch user writes: svdvals on the device, then rank_tol (sigma_i / ||A||_F > 1e-3)."""
    s = torch.linalg.svdvals(A)
    return (s > 1e-3 * torch.linalg.vector_norm(s, dim=-1, keepdim=True)).sum(-1)


@pytest.mark.parametrize("peer", ["rankbias", "torch.linalg.svdvals", "rankbias-cpu"])
@pytest.mark.parametrize("case", CUDA_RANKS_CASES)
def test_ranks_cuda(benchmark, case, peer):
    A, exact = _case(case)
    fns = {"rankbias": lambda A: rb.ranks(A)["rank_tol"], "torch.linalg.svdvals": _rank_tol_from_torch,
           "rankbias-cpu": lambda A: torch.as_tensor(rb.ranks(A.cpu().numpy())["rank_tol"])}
    benchmark.group = f"cuda ranks {case} (rank_tol; rankbias: all 7 measures)"
    got = benchmark(_synced(fns[peer]), A).cpu().numpy()
    want = (exact > 1e-3 * (exact**2).sum(-1, keepdims=True) ** 0.5).sum(-1)
    benchmark.extra_info["rank_tol_equal"] = float((got == want).mean())
