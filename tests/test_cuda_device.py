"""The GPU path on a real device: CUDA tensors in, CUDA tensors out, CPU == GPU
within tolerance.  Skipped without a CUDA device; CI has none, so the same
kernels are also checked under Numba's simulator (test_cuda_sim.py)."""

import warnings

import numpy as np
import pytest
import torch

import rankbias as rb
from reference import subspace_iteration_svdvals

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _nn_like(b, m, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, m, n, generator=g) @ torch.diag(1.0 / (1 + torch.arange(n, dtype=torch.float32)))


SHAPES = {"32": (64, 40, 32), "64": (16, 48, 40), "100": (4, 96, 80), "dynamic-232": (12, 220, 180),
          "256": (8, 300, 256), "1024": (3, 520, 513), "one-matrix": (1, 300, 200), "one-matrix-cusolver": (1, 300, 280)}


@pytest.mark.parametrize("method", ["gram", "jacobi"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_svdvals_on_the_device_equal_the_cpu_core(shape, method):
    """Every kernel of each route (gram: static shared memory up to 100, dynamic up to 232, in place 256, 1024; jacobi:
    one-sided up to 256 columns, block Jacobi past it), and cuSOLVER for a single large matrix."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    A = _nn_like(*shape, seed=0)
    got = spectral_cuda.svdvals(A.cuda(), method=method)
    assert got.is_cuda and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), rb.svdvals(A.numpy()), rtol=1e-4, atol=1e-6)
    if method == "gram":
        assert torch.equal(rb.svdvals(A.cuda()), got)  # the default route


def test_rsvd_on_the_device_finds_what_the_cpu_core_finds():
    A = _nn_like(8, 256, 200, seed=1)
    out = rb.rsvd(A.cuda(), 16, seed=3)
    assert all(t.is_cuda for t in (out.U, out.s, out.Vt))
    cpu = rb.rsvd(A.numpy(), 16, seed=3)
    exact = np.linalg.svd(A.double().numpy(), compute_uv=False)[:, :16]
    for s in (out.s.cpu().numpy(), cpu.s):
        np.testing.assert_allclose(s[:, :4], exact[:, :4], rtol=1e-3)  # sigma_1..4 converge with q = 2
    U = out.U.double().cpu()
    np.testing.assert_allclose((U.mT @ U).numpy(), np.broadcast_to(np.eye(16), (8, 16, 16)), atol=1e-4)


def test_rsvd_on_the_device_is_float64_subspace_iteration_on_the_first_runs_lossy_case():
    """The first device run's 64x100x100 case (planted sigma_i = 3 * 0.93^i, k = 32, l = 42, q = 2: top-32 error
    2.1e-2 against torch.svd_lowrank's 1.1e-3).  Each matrix's top 32 must equal float64 subspace iteration from
    the path's own sketch, which separates a defect of the path from the luck of the draw; the mean error over the
    batch (the benchmark's statistic) must then be within 2x torch's, whose sketches differ."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    b, n, k, l, q = 64, 100, 32, 42, 2
    g = torch.Generator().manual_seed(5)
    orth = lambda: torch.linalg.qr(torch.randn(b, n, n, generator=g, dtype=torch.float64))[0]
    planted = 3 * 0.93 ** torch.arange(n, dtype=torch.float64)
    A = (orth() * planted @ orth().mT).float().cuda()
    s = spectral_cuda.rsvd(A, k, l, q, seed=0)[1].double().cpu()
    omega = spectral_cuda.sketch(A, l, seed=0)  # the path's own draw
    exact_algorithm = subspace_iteration_svdvals(A.cpu().numpy(), omega.double().cpu().numpy(), q, k)
    np.testing.assert_allclose(s.numpy(), exact_algorithm, rtol=1e-5)
    torch.manual_seed(0)
    theirs = torch.stack([torch.svd_lowrank(a, q=l, niter=q)[1][:k] for a in A]).double().cpu()
    mean_err = lambda s: float(((s - planted[:k]).abs() / planted[:k]).amax(dim=1).mean())
    assert mean_err(s) <= 2 * mean_err(theirs)


def test_ranks_on_the_device_equal_the_cpu_core():
    A = _nn_like(32, 64, 50, seed=2)
    got = rb.ranks(A.cuda(), tol=1e-2, eps=1e-2, k=5)
    want = rb.ranks(A.numpy(), tol=1e-2, eps=1e-2, k=5)
    for name in rb.MEASURES:
        assert got[name].is_cuda
        np.testing.assert_allclose(got[name].cpu().numpy(), want[name], rtol=1e-4, err_msg=name)


def test_repeated_calls_replay_a_cuda_graph_that_equals_the_eager_path_on_each_input():
    """The second call of a signature records a CUDA graph (``rankbias.linalg.cuda.graphs``) and later ones replay it.
    A recording that fails would warn and stay eager, so the warning is an error here; each call's result must
    be the eager path's on that call's own input (no stale static buffer, no output overwritten later)."""
    from rankbias.linalg.cuda import graphs as cuda_graphs

    cuda_graphs.clear()
    inputs = [_nn_like(24, 100, 90, seed=seed).cuda() for seed in range(4)]
    calls = {"svdvals": rb.svdvals, "ranks": lambda A: rb.ranks(A, tol=1e-2, eps=1e-2, k=5)["effective_rank"],
             "rsvd": lambda A: rb.rsvd(A, 16, seed=3).U}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = {name: [fn(A) for A in inputs] for name, fn in calls.items()}
    assert sorted(key[0] for key in cuda_graphs.recorded()) == ["ranks", "rsvd_sketched", "svdvals"]
    with cuda_graphs.disabled():
        want = {name: [fn(A) for A in inputs] for name, fn in calls.items()}
    for name in calls:
        for i, (a, b) in enumerate(zip(got[name], want[name])):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name}, input {i}")
    cuda_graphs.clear()


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (9, 0),
                    reason="227 KB of shared memory per block is sm_90's (H100 / H200)")
def test_the_eigenvalue_kernel_gets_its_dynamic_shared_memory_on_sm90():
    """The opt-in past 48 KB must take on an H100 / H200: if it fails, a warning and the slower
    in-place kernel would still pass the equality tests above."""
    from rankbias.linalg.cuda import launch

    assert launch.dynamic_shared(torch.device("cuda", torch.cuda.current_device()))
