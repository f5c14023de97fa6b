"""Public spectral API: randomized SVD, exact singular values, rank measures.

Each function takes a numpy array or a torch tensor shaped (..., m, n),
float16/bfloat16/float32/float64 (half precision is measured in float32),
validates it once, runs a compiled kernel from ``rankbias.kernels`` over the
flattened batch, and returns results of the input's type with the input's
leading dimensions.  ``rsvd``, ``svdvals`` and ``ranks`` of a CUDA tensor run
on its device and return CUDA tensors (``rankbias.linalg.cuda.spectral``).

Threads: a batch at least as large as Numba's thread count runs one matrix per
thread with BLAS held to one thread (threadpoolctl); a smaller batch runs
everything serially and lets BLAS use every core.  The two never mix: BLAS
threads nested in Numba's OpenMP threads make OpenBLAS fall back to one
thread, and OpenBLAS workers still spinning after a call slow the next OpenMP
region several-fold on a 2-core machine.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  loads the BLAS Numba calls, so threadpoolctl sees it
from threadpoolctl import ThreadpoolController

from rankbias import kernels
from rankbias.linalg.measures import MEASURES  # the kernels' names, in the order they return them
from rankbias.linalg.inputs import as_batch, as_cuda_batch, check_finite, check_int, check_seed, check_tolerance, is_tensor

_controller: ThreadpoolController | None = None


def _blas_limit(parallel: bool):
    """Hold BLAS to one thread while a prange kernel runs one matrix per thread."""
    global _controller
    if not parallel:
        return contextlib.nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def _on_cuda(A) -> bool:
    return is_tensor(A) and A.device.type == "cuda"


def _cuda_batch(A, func: str):
    """(spectral_cuda module, ``inputs.as_cuda_batch(A, func)``...) of a CUDA tensor, once the
    GPU path is known to run here (``spectral_cuda.require``)."""
    from rankbias.linalg.cuda import spectral as spectral_cuda

    spectral_cuda.require(func)
    return (spectral_cuda, *as_cuda_batch(A, func))


def _validated(A, func: str):
    """(batch, m, n) array, its Batch record, its Frobenius norms (batch,), whether
    the batch is large enough to run one matrix per Numba thread, and the scale
    of ``_safe_range``: the array returned is A times it (None: A unchanged)."""
    arr, batch = as_batch(A, func)
    parallel = batch.size >= numba.get_num_threads()
    if parallel:
        fro = kernels.frobenius_batched(arr)
    else:
        fro = np.array([kernels.frobenius(a) for a in arr])
    check_finite(fro, arr, func)
    arr, scale = _safe_range(arr, fro)
    return arr, batch, fro, parallel, scale


SAFE = 2.0**30  # matrices with ||A||_F outside [1 / SAFE, SAFE] are rescaled


def _safe_range(arr: np.ndarray, fro: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale matrices whose ||A||_F lies outside [2^-30, 2^30] by the power of two
    that brings it into [1/2, 1), exactly (only the exponent changes): the kernels'
    float32 products A^T (A Omega) and Gram matrices would underflow to 0 or
    overflow otherwise (a matrix of entries ~1e-38 gave NaN).  Singular values scale
    with A, so callers divide them by the scale.  -> (array, scale (batch,)) or (arr, None)."""
    far = (fro > 0) & ((fro < 1 / SAFE) | (fro > SAFE))
    if not far.any():
        return arr, None
    scale = np.ones(len(arr))
    scale[far] = np.ldexp(1.0, -np.frexp(fro[far])[1])
    out = arr.copy()
    # in float64: the factor itself may not fit float32 (2^139 for a subnormal matrix)
    out[far] = (arr[far] * scale[far][:, None, None]).astype(arr.dtype)
    return out, scale


def _sketch(batch: int, n: int, l: int, dtype, seed: int, parallel: bool) -> np.ndarray:
    """Gaussian sketches (batch, n, l); matrix i's is stream i of ``seed`` either way."""
    omega = np.empty((batch, n, l), dtype=dtype)
    if parallel:
        kernels.fill_gaussian(omega, seed)
    else:
        for i in range(batch):
            kernels.fill_gaussian_block(omega[i], seed, i, 0)
    return omega


class RSVD(NamedTuple):
    """Truncated SVD A ~ U diag(s) Vt: U (..., m, k), s (..., k) descending,
    Vt (..., k, n), and fro (...,) = ||A||_F (float64)."""

    U: object
    s: object
    Vt: object
    fro: object


def rsvd(A, k: int, *, oversample: int = 10, power_iters: int = 2, seed: int | None = None) -> RSVD:
    """Randomized SVD of every matrix of A: the top-k U, s, Vt and ||A||_F.

    Halko, Martinsson & Tropp 2011 (arXiv 0909.4061): a Gaussian sketch of
    l = min(k + oversample, m, n) columns (Alg. 4.1), ``power_iters`` subspace
    iterations re-orthonormalized after every product (Alg. 4.4), then the
    direct SVD of the l x n projection (Alg. 5.1); see ``kernels.rsvd_cpu``.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (..., m, n)
        Real floats (float16 and bfloat16 are measured in float32); a CUDA
        tensor runs on its GPU.
    k : int
        Singular triplets kept, in [1, min(m, n)].
    oversample : int
        Extra sketch columns, l = k + oversample (capped at min(m, n)).
    power_iters : int
        Subspace iterations q.
    seed : int or None
        Seed of the sketch; the sketch of matrix i is stream i of the seed, so
        the same seed gives the same result.

    Returns
    -------
    RSVD
        ``U`` (..., m, k), ``s`` (..., k) descending, ``Vt`` (..., k, n) in A's
        float dtype and type, and ``fro`` (...,) = ||A||_F in float64.

    Notes
    -----
    Singular values and vectors converge top-down; on flat spectra (a
    Marchenko-Pastur bulk) power_iters = 2 leaves ~1-5% relative error in the
    lower part of the top k.  Raise power_iters or oversample for more.
    """
    if _on_cuda(A):
        return _rsvd_cuda(A, k, oversample, power_iters, seed)
    arr, batch, fro, parallel, scale = _validated(A, "rsvd")
    m, n = batch.m, batch.n
    k, l, power_iters, seed = _rsvd_params(m, n, k, oversample, power_iters, seed)
    b = batch.size
    omega = _sketch(b, n, l, arr.dtype, seed, parallel)
    U = np.empty((b, m, k), dtype=arr.dtype)
    s = np.empty((b, k), dtype=arr.dtype)
    Vt = np.empty((b, k, n), dtype=arr.dtype)
    with _blas_limit(parallel):
        (kernels.rsvd_batched if parallel else kernels.rsvd_serial)(arr, omega, k, power_iters, U, s, Vt)
    if scale is not None:
        s = (s / scale[:, None]).astype(arr.dtype)
    return RSVD(batch.restore(U), batch.restore(s), batch.restore(Vt), batch.restore(fro))


def _rsvd_params(m: int, n: int, k, oversample, power_iters, seed) -> tuple[int, int, int, int]:
    """Validated (k, sketch width l, power_iters, seed) of rsvd on m x n matrices."""
    r = min(m, n)
    k = check_int(k, "rsvd", "k", 1, r, f" = min(m, n) for A of shape {(m, n)}")
    oversample = check_int(oversample, "rsvd", "oversample", 0, 10**6)
    power_iters = check_int(power_iters, "rsvd", "power_iters", 0, 100)
    return k, min(k + oversample, r), power_iters, check_seed(seed, "rsvd")


def _rsvd_cuda(A, k, oversample, power_iters, seed) -> RSVD:
    sc, flat, fro, lead = _cuda_batch(A, "rsvd")
    m, n = flat.shape[-2:]
    k, l, power_iters, seed = _rsvd_params(m, n, k, oversample, power_iters, seed)
    if l > sc.MAX_L:
        raise ValueError(
            f"The sketch width k + oversample of rsvd on CUDA must be <= {sc.MAX_L} (the Jacobi step holds "
            f"l x l factors). Got {l} instead. Lower k or oversample, or pass A.cpu()."
        )
    U, s, Vt = sc.replayed(sc.rsvd_sketched, (flat, sc.sketch(flat, l, seed)), k, power_iters)
    return RSVD(U.reshape(*lead, m, k), s.reshape(*lead, k), Vt.reshape(*lead, k, n), fro.reshape(lead))


def _svdvals_and_fro(A, func: str, backward_stable_f64: bool = False):
    """Exact singular values (batch, min(m, n)), Batch record, Frobenius norms,
    both of A times the ``_safe_range`` scale (None: of A itself), which rank
    measures, being ratios, do not see.

    backward_stable_f64: for float64 input, take LAPACK gesdd (numpy) instead of
    the Gram kernel, whose ~1e-8 sigma_1 resolution is coarser than tolerances
    of order u_64 sigma_1."""
    arr, batch, fro, parallel, scale = _validated(A, func)
    if backward_stable_f64 and arr.dtype == np.float64:
        s = np.linalg.svd(arr, compute_uv=False)
    else:
        s = np.empty((batch.size, min(batch.m, batch.n)), dtype=arr.dtype)
        with _blas_limit(parallel):
            if parallel:
                kernels.svdvals_batched(arr, s, numba.get_num_threads())
            else:
                kernels.svdvals_serial(arr, s)
    return s, batch, fro if scale is None else fro * scale, scale


def svdvals(A):
    """Singular values of every matrix of A, descending.

    sigma_i = sqrt(lambda_i(A^T A)) (or of A A^T, the smaller), the eigenvalues
    of the float64 Gram matrix by Householder tridiagonalization and QL
    (``kernels.svdvals_cpu``; on a GPU ``kernels.eigvalsh_cuda``).

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (..., m, n)
        Real floats; a CUDA tensor runs on its GPU.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (..., min(m, n))
        Descending, in A's float dtype and type.

    Notes
    -----
    Relative error <= c r u_64 (sigma_1 / sigma_i)^2 / 2 against float64
    LAPACK, i.e. < 1e-5 for sigma_i >= 1e-4 sigma_1 up to r = min(m, n) = 1024.
    """
    if _on_cuda(A):
        sc, flat, _, lead = _cuda_batch(A, "svdvals")
        (s,) = sc.replayed(sc.svdvals, (flat,), recordable=sc.recordable_route(flat))
        return s.reshape(*lead, -1)
    s, batch, _, scale = _svdvals_and_fro(A, "svdvals")
    if scale is not None:
        s = (s / scale[:, None]).astype(s.dtype)
    return batch.restore(s)




def _measures_checked(measures) -> tuple[str, ...]:
    """``measures`` as a tuple of names of ``MEASURES`` (one name alone is allowed)."""
    measures = (measures,) if isinstance(measures, str) else tuple(measures)
    if not measures or any(name not in MEASURES for name in measures):
        raise ValueError(
            f"The 'measures' parameter of ranks must be a non-empty list of names "
            f"from {list(MEASURES)}. Got {list(measures)!r} instead. "
            f"Pick names from that list."
        )
    return measures


def ranks(A, measures=MEASURES, *, tol: float = 1e-3, eps: float = 1e-3, k: int = 1) -> dict:
    """Rank measures of every matrix of A.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (..., m, n)
        Real floats; a CUDA tensor runs on its GPU.
    measures : str or sequence of str
        Names from ``MEASURES`` (``rankbias ranks --explain`` gives each formula
        and reference, from ``kernels.rank_common.FORMULAS``).
    tol : float
        rank_tol's threshold on sigma_i / ||W||_F (Galanti et al.: 1e-3).
    eps : float
        rank_rel's threshold on sigma_i / sigma_1.
    k : int
        tail_k's k: the share of ||W||_F outside the best rank-k approximation.

    Returns
    -------
    dict of str to numpy.ndarray or torch.Tensor
        {name: (...,) float64}, one entry per measure asked.

    Notes
    -----
    The spectrum comes from ``svdvals``: exact zeros read as ~1e-8 sigma_1, so
    measures that sum every sigma (effective_rank) carry ~1e-6 relative error
    on exactly rank-deficient float64 matrices.  numerical_rank's tolerance
    (sigma_1 max(m, n) eps, ~1e-14 sigma_1 in float64) is finer than that, so
    when it is asked of float64 input the spectrum comes from LAPACK gesdd
    (numpy), as numpy.linalg.matrix_rank's does.
    """
    measures = _measures_checked(measures)
    tol = check_tolerance(tol, "ranks", "tol")
    eps = check_tolerance(eps, "ranks", "eps")
    stable_f64 = "numerical_rank" in measures  # float64 input needs a u_64-accurate spectrum: see above
    if _on_cuda(A):
        sc, flat, _, lead = _cuda_batch(A, "ranks")
        k = check_int(k, "ranks", "k", 1, min(flat.shape[-2:]), f" = min(m, n) for A of shape {tuple(flat.shape[-2:])}")
        stable = stable_f64 and flat.element_size() == 8
        (rows,) = sc.replayed(sc.ranks, (flat,), tol, eps, k, stable,  # (7, batch)
                              recordable=sc.recordable_route(flat, stable))
        return {name: rows[MEASURES.index(name)].reshape(lead) for name in measures}
    s, batch, fro, _ = _svdvals_and_fro(A, "ranks", backward_stable_f64=stable_f64)
    m, n = batch.m, batch.n
    k = check_int(k, "ranks", "k", 1, min(m, n), f" = min(m, n) for A of shape {(m, n)}")
    compute = {
        "rank_tol": lambda: kernels.rank_tol(s, fro, tol),
        "rank_rel": lambda: kernels.rank_rel(s, eps),
        "stable_rank": lambda: kernels.stable_rank(s, fro),
        "effective_rank": lambda: kernels.effective_rank(s),
        "tail_k": lambda: kernels.tail_k(s, fro, k),
        "gd_rank": lambda: kernels.gd_rank(s, m, n),
        "numerical_rank": lambda: kernels.numerical_rank(s, m, n, float(np.finfo(s.dtype).eps)),
    }
    return {name: batch.restore(compute[name]()) for name in measures}


class EpsRank(NamedTuple):
    """rank (..., ) int64: #sigma_i > eps sigma_1; k: basis size used;
    tail (...,) float64: ||A - Q Q^T A||_F at the end."""

    rank: object
    k: object
    tail: object


def eps_rank(A, eps: float = 1e-3, *, block: int = 10, power_iters: int = 2, seed: int | None = None) -> EpsRank:
    """eps-rank #{sigma_i > eps sigma_1} of every matrix of A without a full SVD.

    A blocked randomized range finder grown ``block`` columns at a time (Yu, Gu &
    Li 2018, arXiv 1606.09402; see ``kernels.eps_rank_cpu``).

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (..., m, n)
        Real floats, on the CPU.
    eps : float
        Threshold relative to sigma_1.
    block : int
        Columns added to the basis per step.
    power_iters : int
        Power iterations per block.
    seed : int or None
        Seed of the sketches.

    Returns
    -------
    EpsRank
        ``rank`` (...,) int64 counts, ``k`` the basis size used, and ``tail``
        (...,) float64 = ||A - Q Q^T A||_F at the end.

    Notes
    -----
    Exact when the spectrum has a gap around eps sigma_1; on a gapless spectrum
    the count can miss values within a few percent of the threshold.  Cheaper
    than ``ranks`` only when the rank is far below min(m, n).
    """
    arr, batch, _, parallel, scale = _validated(A, "eps_rank")
    eps = check_tolerance(eps, "eps_rank", "eps")
    block = check_int(block, "eps_rank", "block", 1, 10**6)
    power_iters = check_int(power_iters, "eps_rank", "power_iters", 0, 100)
    seed = check_seed(seed, "eps_rank")
    b = batch.size
    rank = np.empty(b, dtype=np.int64)
    used = np.empty(b, dtype=np.int64)
    tail = np.empty(b, dtype=np.float64)
    with _blas_limit(parallel):
        (kernels.eps_rank_batched if parallel else kernels.eps_rank_serial)(
            arr, eps, block, power_iters, seed, rank, used, tail
        )
    if scale is not None:
        tail = tail / scale
    return EpsRank(batch.restore(rank), batch.restore(used), batch.restore(tail))
