"""Every CUDA kernel compiles for a real GPU (sm_90, the H100 / H200) without one.

The simulator (test_cuda_sim.py, test_cuda_eigvalsh.py) runs the kernels as
Python, so it never types or lowers them: a kernel that only the device
compiler rejects, or one whose static shared memory passes the 48 KB a block
gets without opting in (the launch would fail), passes there and breaks on
the first GPU.  Here numba-cuda compiles each kernel to PTX with NVVM (the
``cuda-toolkit[nvvm,nvrtc]`` wheels of the test extra), in a child process so
that the device query it is spared does not leak into other tests.
"""

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json
import re
from types import SimpleNamespace

from numba import boolean, float64, int32, int64

from rankbias.kernels.numba_cuda import cuda
import numba.cuda.dispatcher as dispatcher

# compiling a call to a device function asks the current GPU for its compute capability: say sm_90
dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))

from rankbias.kernels import cholqr_cuda, eigvalsh_cuda, jacobi_cuda, rank_cuda

f3, f2, f1 = float64[:, :, ::1], float64[:, ::1], float64[::1]
kernels = {
    "jacobi_svd": (jacobi_cuda.jacobi_svd, (f3, f3, f2, int32[:, ::1], int64, float64, boolean)),
    "chol_inverse": (cholqr_cuda.chol_inverse, (f3, f3, int64, boolean)),
    "ranks_all": (rank_cuda.ranks_all, (f2, f1, float64, float64, int64, int64, int64, float64, f2)),
}
kernels["jacobi_svd_shared"] = (jacobi_cuda.jacobi_svd_shared, kernels["jacobi_svd"][1])
for cap, kernel in eigvalsh_cuda.KERNELS.items():
    kernels[f"eigvalsh_{cap}"] = (kernel, (f2, f2))
kernels["eigvalsh_dynamic"] = (eigvalsh_cuda.DYNAMIC, (f2, f2))
out = {}
for name, (kernel, sig) in kernels.items():
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    shared = sum(int(size) for size in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", ptx))
    out[name] = {"shared": shared, "entry": ".entry" in ptx, "lines": len(ptx.splitlines())}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def ptx():
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode and ("libnvvm" in done.stderr or "libnvrtc" in done.stderr):
        if os.environ.get("RANKBIAS_REQUIRE_NVVM"):
            pytest.fail(f"NVVM is required here (RANKBIAS_REQUIRE_NVVM) but missing:\n{done.stderr[-2000:]}")
        pytest.skip("NVVM / NVRTC not installed: pip install 'cuda-toolkit[nvvm,nvrtc]==13.*' (the test extra)")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_kernel_compiles_to_ptx_for_sm90(ptx):
    from rankbias.kernels import eigvalsh_cuda

    names = {"jacobi_svd", "jacobi_svd_shared", "chol_inverse", "ranks_all", "eigvalsh_dynamic"}
    names |= {f"eigvalsh_{cap}" for cap in eigvalsh_cuda.KERNELS}
    assert set(ptx) == names
    assert all(k["entry"] and k["lines"] > 100 for k in ptx.values())


def test_static_shared_memory_fits_a_block_without_opting_in(ptx):
    """48 KB is what a block may allocate statically; the eigenvalue kernel at cap 100 is sized to it."""
    for name, kernel in ptx.items():
        assert kernel["shared"] <= 48 * 1024, (name, kernel["shared"])
    assert ptx["eigvalsh_100"]["shared"] > 40 * 1024  # the packed 100 x 100 triangle is in shared memory
    assert ptx["eigvalsh_256"]["shared"] < 12 * 1024  # the in-place kernel keeps only vectors there
    assert ptx["jacobi_svd"]["shared"] < 4 * 1024  # in place: the column norms only


def test_the_shared_jacobi_kernel_fits_48_kb_with_its_largest_dynamic_launch(ptx):
    """Static plus dynamic shared memory within the 48 KB a block gets without opting in, and within 2 KB
    of it: kernel_for's limit is not wasted."""
    from rankbias.kernels import jacobi_cuda

    total = ptx["jacobi_svd_shared"]["shared"] + jacobi_cuda.SHARED_LIMIT
    assert 46 * 1024 <= total <= 48 * 1024, total


def test_the_dynamic_kernel_fits_sm90_after_opting_in(ptx):
    """Its static vectors plus the packed triangle of its largest order within the 227 KB (232448
    bytes) a block on sm_90 may have after opting in, and within 8 KB of it: the cap is not wasted."""
    from rankbias.kernels import eigvalsh_cuda

    total = ptx["eigvalsh_dynamic"]["shared"] + eigvalsh_cuda.shared_bytes(eigvalsh_cuda.DYNAMIC_CAP)
    assert 232448 - 8 * 1024 < total <= 232448, total
