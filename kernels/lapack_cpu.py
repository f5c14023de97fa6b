"""LAPACK routines Numba code calls directly: SciPy's ``cython_lapack`` symbols.

Numba compiles ``np.linalg`` calls to LAPACK itself, but only the drivers numpy
exposes.  The eigenvalue step of a symmetric tridiagonal matrix has no numpy
driver, so it is bound here to the function SciPy exports (the LAPACK that
``scipy.linalg`` calls): its address is registered with LLVM under a name of
ours at import, and kernels call that name as a Numba external function, so
their machine code holds a symbol, not an address, and stays cacheable.

- ``dsterf(n, d, e, info)``: all eigenvalues of the symmetric tridiagonal
  matrix with diagonal ``d`` (n,) and off-diagonal ``e`` (n - 1,), float64,
  by the Pal-Walker-Kahan root-free QL/QR iteration; on exit ``d`` holds them
  ascending and ``e`` is destroyed.  Every argument is a pointer (pass
  ``arr.ctypes``): ``n`` and ``info`` to one int32; ``info[0] > 0`` when the
  iteration did not converge.  Reference: LAPACK Users' Guide, 3rd ed.,
  §2.4.4; Golub & Van Loan, Matrix Computations, 4th ed., §8.3.
"""

from llvmlite import binding
from numba.core import types
from numba.extending import get_cython_function_address

_SYMBOL = "rankbias_dsterf"
binding.add_symbol(_SYMBOL, get_cython_function_address("scipy.linalg.cython_lapack", "dsterf"))

_int_p = types.CPointer(types.int32)
_double_p = types.CPointer(types.float64)
dsterf = types.ExternalFunction(_SYMBOL, types.void(_int_p, _double_p, _double_p, _int_p))
