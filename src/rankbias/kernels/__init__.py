"""rankbias.kernels: the compiled spectral core (Numba, CPU).

Only numpy, numba and math are imported here (and SciPy's LAPACK, bound for
Numba in ``lapack_cpu``): no torch, no I/O.  Every kernel
takes C-contiguous float32 or float64 arrays with a leading batch axis, writes
or returns arrays of the same dtype, and draws randomness only from a seed it
is given.  Validation lives in ``rankbias.linalg.spectral``; kernels trust their input.

This package is ``rankbias.kernels`` and must be imported by that name
only: Numba's disk cache beside these files is keyed by file, not by module,
so kernels compiled under another name (``import kernels`` from inside the
folder src/rankbias) leave entries that every later ``import rankbias`` fails to load.
"""

if __name__ != "rankbias.kernels":
    raise ImportError(
        f"The spectral core was imported as {__name__!r}; import it as rankbias.kernels "
        f"(from rankbias import kernels). Under another name its Numba cache entries would break every "
        f"later import of rankbias with \"No module named {__name__!r}\". Install the package "
        f"(pip install -e .) if rankbias is not importable."
    )

from .eps_rank_cpu import eps_rank_batched, eps_rank_serial
from .norms_cpu import frobenius, frobenius_batched
from .random_cpu import fill_gaussian, fill_gaussian_block
from .rank_common import FORMULAS, MEASURES
from .rank_cpu import (
    effective_rank,
    gd_omega,
    gd_rank,
    numerical_rank,
    rank_rel,
    rank_tol,
    stable_rank,
    tail_k,
)
from .rsvd_cpu import rsvd_batched, rsvd_serial
from .svdvals_cpu import svdvals_batched, svdvals_serial

__all__ = [
    "FORMULAS",
    "MEASURES",
    "effective_rank",
    "eps_rank_batched",
    "eps_rank_serial",
    "fill_gaussian",
    "fill_gaussian_block",
    "gd_omega",
    "frobenius",
    "frobenius_batched",
    "gd_rank",
    "numerical_rank",
    "rank_rel",
    "rank_tol",
    "rsvd_batched",
    "rsvd_serial",
    "stable_rank",
    "svdvals_batched",
    "svdvals_serial",
    "tail_k",
]
