"""numba-cuda 0.30.x on numpy >= 2.5 (no ``np.row_stack``): reproduced without a GPU
by removing the alias in a fresh process, where the array module of numba-cuda,
which a device loads at its first kernel, fails to import unless rankbias's
``kernels.numba_cuda`` put the alias back first."""

import subprocess
import sys

import pytest

pytest.importorskip("numba.cuda")

NUMPY_2_5 = ("import numpy; numpy.__dict__.pop('row_stack', None)\n"  # numpy as of 2.5: no alias, not in __all__
             "numpy.__all__ = [n for n in numpy.__all__ if n != 'row_stack']\n")
LOAD_ARRAYS = "import importlib; importlib.import_module('numba.cuda.np.arrayobj')\n"  # what a device loads


def _python(code: str, sim: bool = False) -> subprocess.CompletedProcess:
    env = {"NUMBA_ENABLE_CUDASIM": "1"} if sim else {}
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_without_the_fix_numba_cudas_array_module_fails_on_numpy_2_5():
    done = _python(NUMPY_2_5 + "from numba import cuda\n" + LOAD_ARRAYS)
    assert done.returncode != 0 and "has no attribute 'row_stack'" in done.stderr


def test_rankbias_kernels_load_numba_cuda_on_numpy_2_5():
    done = _python(NUMPY_2_5 + "from rankbias.kernels.numba_cuda import cuda\n" + LOAD_ARRAYS +
                   "import numpy; assert numpy.row_stack is numpy.vstack\nprint('loaded')")
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr


def test_the_gpu_path_runs_under_the_simulator_on_numpy_2_5():
    code = NUMPY_2_5 + (
        "import torch, rankbias as rb\n"
        "from rankbias.linalg.cuda import spectral as sc\n"
        "A = torch.randn(3, 12, 8, dtype=torch.float64)\n"
        "s = sc.svdvals(A)\n"
        "assert torch.allclose(s, torch.linalg.svdvals(A), rtol=1e-10, atol=1e-12)\n"
        "print('svdvals ok')\n")
    done = _python(code, sim=True)
    assert done.returncode == 0 and "svdvals ok" in done.stdout, done.stderr
