"""LAPACK and BLAS routines Numba code calls directly: SciPy's ``cython_lapack``
and ``cython_blas`` symbols.

Numba compiles ``np.linalg`` calls and ``@`` to LAPACK and BLAS itself, but only
to the routines numpy's API reaches.  The eigenvalue step of a symmetric
tridiagonal matrix has no numpy driver, and ``@`` never takes the symmetric
rank-k update, so these are bound here to the functions SciPy exports (the
LAPACK and BLAS that ``scipy.linalg`` and Numba's ``@`` call): each address is
registered with LLVM under a name of ours at import, and kernels call that name
as a Numba external function, so their machine code holds a symbol, not an
address, and stays cacheable.

- ``dsterf(n, d, e, info)``: all eigenvalues of the symmetric tridiagonal
  matrix with diagonal ``d`` (n,) and off-diagonal ``e`` (n - 1,), float64,
  by the Pal-Walker-Kahan root-free QL/QR iteration; on exit ``d`` holds them
  ascending and ``e`` is destroyed.  Every argument is a pointer (pass
  ``arr.ctypes``): ``n`` and ``info`` to one int32; ``info[0] > 0`` when the
  iteration did not converge.  Reference: LAPACK Users' Guide, 3rd ed.,
  §2.4.4; Golub & Van Loan, Matrix Computations, 4th ed., §8.3.
- ``dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)``: BLAS's symmetric
  rank-k update C = alpha A A^T + beta C (trans "N"; A n x k) or alpha A^T A +
  beta C (trans "T"; A k x n), C n x n, column-major, only the ``uplo``
  ("U" / "L") triangle of C referenced and written: half the flops of a GEMM
  forming the same product.  Every argument is a pointer: ``uplo`` and
  ``trans`` to one int8 character code, ``n``, ``k``, ``lda``, ``ldc`` to
  int32, ``alpha``, ``beta``, ``a``, ``c`` to float64.  Reference: BLAS
  Technical Forum / Dongarra et al., "A set of level 3 basic linear algebra
  subprograms", ACM TOMS 16(1), 1990.
- ``dsyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)``: the
  eigenvalues (``jobz`` "N") of the symmetric n x n matrix ``a`` (column-major,
  the ``uplo`` triangle read, ``a`` destroyed) into ``w`` (n,) ascending, by
  Householder tridiagonalization (dsytrd) and dsterf: the driver
  ``np.linalg.eigvalsh`` calls, here without its copy of ``a``.  ``lwork = -1``
  (and ``liwork = -1``) asks for the optimal workspace sizes in ``work[0]`` and
  ``iwork[0]``.  Pointers as above; ``info[0] != 0`` on failure.  Reference:
  LAPACK Users' Guide, 3rd ed., §2.4.4 (the divide-and-conquer driver).
"""

from llvmlite import binding
from numba.core import types
from numba.extending import get_cython_function_address

binding.add_symbol("rankbias_dsterf", get_cython_function_address("scipy.linalg.cython_lapack", "dsterf"))
binding.add_symbol("rankbias_dsyrk", get_cython_function_address("scipy.linalg.cython_blas", "dsyrk"))
binding.add_symbol("rankbias_dsyevd", get_cython_function_address("scipy.linalg.cython_lapack", "dsyevd"))

_int_p = types.CPointer(types.int32)
_double_p = types.CPointer(types.float64)
_char_p = types.CPointer(types.int8)
dsterf = types.ExternalFunction("rankbias_dsterf", types.void(_int_p, _double_p, _double_p, _int_p))
dsyrk = types.ExternalFunction("rankbias_dsyrk", types.void(_char_p, _char_p, _int_p, _int_p, _double_p, _double_p,
                                                             _int_p, _double_p, _double_p, _int_p))
dsyevd = types.ExternalFunction("rankbias_dsyevd", types.void(_char_p, _char_p, _int_p, _double_p, _int_p, _double_p,
                                                               _double_p, _int_p, _int_p, _int_p, _int_p))
