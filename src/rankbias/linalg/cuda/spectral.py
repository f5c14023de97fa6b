"""The GPU path of the spectral API: CUDA tensors stay on their device.

``rankbias.svdvals`` / ``rsvd`` / ``ranks`` send a CUDA tensor here.  The big
products go through cuBLAS (torch.bmm on the tensor's own memory); the small
per-matrix steps are numba-cuda kernels of ``rankbias.kernels`` handed the same
memory through ``__cuda_array_interface__``:

- ``svdvals``: the square roots of the eigenvalues of the float64 Gram matrix
  (cuBLAS), found by ``kernels.eigvalsh_cuda`` (Householder tridiagonalization
  and bisection, one block per matrix), as the CPU core does, when min(m, n) <=
  256 or a batch has min(m, n) <= 1024; a single larger matrix by
  torch.linalg.svdvals (cuSOLVER), as there is no per-matrix loop to save.
  ``method="jacobi"`` takes the relatively accurate route instead: one-sided
  Jacobi (``kernels.jacobi_cuda``) on the float64 matrix itself up to 256
  columns, block one-sided Jacobi (``rankbias.linalg.cuda.block_jacobi``: cuBLAS GEMMs,
  with the same kernel diagonalizing each 64 x 64 block-pair Gram matrix) past
  them; ``ranks`` takes it for numerical_rank of float64 input.
- ``rsvd``: HMT Alg. 4.1 + 4.4 with one shifted CholeskyQR pass for the
  intermediate bases of subspace iteration and shifted CholeskyQR3 for the
  last (the float64 Gram matrix and Q = Y R^-1 on cuBLAS, R^-1 from
  ``kernels.cholqr_cuda``; 7 launches at q = 2, where CholeskyQR3 everywhere took 15),
  then the SVD of the l x n projection B (Alg. 5.1), l = k + oversample <= 64:
  B^T = Q_B R_B by shifted CholeskyQR2 in float64, and Jacobi on the l x l R_B,
  so no thread of the Jacobi kernel walks n rows.
- ``ranks``: the spectrum as above, then ``kernels.rank_cuda`` on the device.

Every kernel launches on torch's current stream of its tensors' device (``launch.launch``),
so it is ordered with the torch operations around it on any stream and any GPU.  The
public API goes through ``replayed``: a call that repeats, on a route that reads nothing
back to the host (``RECORDABLE``), is replayed from a CUDA graph (``rankbias.linalg.cuda.graphs``).

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, the tests' way without a
GPU) the same code takes CPU tensors, whose numpy views the simulator runs on.
"""

from __future__ import annotations

import torch

from rankbias.linalg.cuda.launch import available, dynamic_shared, launch, require  # noqa: F401  (re-exported)

MAX_L = 64
GRAM_ONE_MAX = 256  # a single matrix past this goes to cuSOLVER: one block per matrix would use one SM


def jacobi(M: torch.Tensor, sweeps: int = 30, tol: float = 1e-15, vectors: bool = True):
    """One-sided Jacobi SVD of M (b, m, n), n <= ``jacobi_cuda.MAX_N`` -> (S (b, n) descending,
    V (b, n, n) or None without ``vectors``, W (b, m, n) = M V), float64, columns in the order of S;
    rotated in shared memory where W (and V) fit 47 KB (``jacobi_cuda.kernel_for``), else in global memory.
    No host synchronization: the kernel sorts a zero pad column last, so it is sliced off."""
    from rankbias.kernels import jacobi_cuda

    b, m, n = M.shape
    npad = n + n % 2  # the kernel pairs columns: pad an odd n with a zero column
    W = torch.zeros((b, m, npad), dtype=torch.float64, device=M.device)
    W[:, :, :n] = M
    shape = (b, npad, npad) if vectors else (1, 1, 1)
    V = torch.empty(shape, dtype=torch.float64, device=M.device)
    S = torch.empty((b, npad), dtype=torch.float64, device=M.device)
    order = torch.empty((b, npad), dtype=torch.int32, device=M.device)
    kernel, shared = jacobi_cuda.kernel_for(m, npad, vectors)
    launch(kernel, b, npad // 2, W, V, S, order, sweeps, tol, vectors, shared=shared)
    keep = order[:, :n].long()
    W = W.gather(2, keep[:, None, :].expand(b, m, n))
    if vectors:
        V = V[:, :n, :].gather(2, keep[:, None, :].expand(b, n, n))
    return S[:, :n], V if vectors else None, W


def _pair_eig(G: torch.Tensor) -> torch.Tensor:
    """Eigenvectors V of symmetric PSD G (p, 2w, 2w), 2w <= 64: Jacobi on G gives
    G V = W with orthogonal columns, so V^T G V is diagonal."""
    return jacobi(G)[1]


def gram_svdvals(M: torch.Tensor) -> torch.Tensor:
    """Singular values of M (b, m, n), n <= ``eigvalsh_cuda.MAX_N``, -> (b, n) float64, descending:
    sqrt(max(lam, 0)) for the eigenvalues lam of the float64 Gram matrix M^T M, each matrix first
    scaled by a power of two to max |M_ij| in [1, 2) (exact), so the Gram matrix neither overflows
    nor underflows.  Relative error ~ n u (sigma_1 / sigma_i)^2 (``kernels.svdvals_cpu``'s bound)."""
    from rankbias.kernels import eigvalsh_cuda

    b, m, n = M.shape
    X = M.double()
    top = X.abs().amax(dim=(1, 2), keepdim=True)
    scale = torch.where(top > 0, torch.exp2(-torch.floor(torch.log2(top))), torch.ones_like(top))
    X = X * scale
    G = (X.mT @ X).reshape(b, n * n)  # contiguous (b, n, n) from cuBLAS: a view
    lam = torch.empty((b, n), dtype=torch.float64, device=M.device)
    dynamic = n > eigvalsh_cuda.STATIC_CAPS[-1] and dynamic_shared(M.device)
    kernel, shared = eigvalsh_cuda.kernel_for(n, dynamic=dynamic)
    launch(kernel, b, eigvalsh_cuda.threads(n), G, lam, shared=shared)
    return lam.clamp_min(0.0).sqrt() / scale[:, :, 0]


def route(A: torch.Tensor, method: str = "gram", direct_max: int | None = None) -> str:
    """Which way ``svdvals`` takes for A (b, m, n): "gram", "jacobi", "block" or "cusolver" (see there)."""
    from rankbias.kernels import eigvalsh_cuda, jacobi_cuda

    if method not in ("gram", "jacobi"):
        raise ValueError(f"The 'method' parameter of spectral_cuda.svdvals must be 'gram' or 'jacobi'. "
                         f"Got {method!r} instead. Pass one of the two.")
    b, n = A.shape[0], min(A.shape[-2:])
    if method == "gram":
        if n <= GRAM_ONE_MAX or (b > 1 and n <= eigvalsh_cuda.MAX_N):
            return "gram"
    elif n <= (jacobi_cuda.MAX_N if direct_max is None else direct_max):
        return "jacobi"
    return "cusolver" if b == 1 else "block"


# Routes whose steps never read device values on the host, so a CUDA graph can record them: block
# Jacobi tests for convergence on the host after every sweep, cuSOLVER checks its info flag.
RECORDABLE = ("gram", "jacobi")


def _spectrum_method(backward_stable: bool) -> str:
    """``svdvals``'s method for the spectrum of ``ranks``."""
    return "jacobi" if backward_stable else "gram"


def recordable_route(A: torch.Tensor, backward_stable: bool = False) -> bool:
    """Whether ``svdvals`` (and ``ranks``, with its ``backward_stable``) of A take a route in ``RECORDABLE``."""
    return route(A, _spectrum_method(backward_stable)) in RECORDABLE


def svdvals(A: torch.Tensor, method: str = "gram", block_width: int = MAX_L // 2,
            direct_max: int | None = None) -> torch.Tensor:
    """Singular values of A (b, m, n) -> (b, min(m, n)) descending, in A's dtype.

    ``method="gram"``: ``gram_svdvals`` when min(m, n) <= ``GRAM_ONE_MAX`` or b > 1 and min(m, n) <=
    ``eigvalsh_cuda.MAX_N``.  ``method="jacobi"``: one-sided Jacobi on each matrix up to
    ``direct_max`` (default ``jacobi_cuda.MAX_N``) columns on the short side, else block Jacobi
    with blocks of ``block_width`` <= MAX_L / 2 columns (pairs must fit the kernel).  Either
    way a single matrix past both goes to cuSOLVER (``route`` says which)."""
    way = route(A, method, direct_max)
    M = A.mT if A.shape[-2] < A.shape[-1] else A  # columns = the smaller side
    if way == "gram":
        return gram_svdvals(M).to(A.dtype)
    if way == "jacobi":
        return jacobi(M.double(), vectors=False)[0].to(A.dtype)
    if way == "cusolver":
        return torch.linalg.svdvals(A)
    from rankbias.linalg.cuda import block_jacobi

    return block_jacobi.svdvals(M.double(), _pair_eig, width=block_width)[0].to(A.dtype)


def _cholqr(Y: torch.Tensor, shift: bool) -> torch.Tensor:
    """Q of Y (b, m, l) by CholeskyQR: the float64 Gram matrix and Q = Y R^-1 on
    cuBLAS, R^-1 from ``kernels.cholqr_cuda`` (``shift``: Fukaya et al. 2020's
    shifted CholeskyQR, defined for ill-conditioned Y; dependent columns of Y
    come out as zero columns of Q)."""
    from rankbias.kernels import cholqr_cuda

    b, m, l = Y.shape
    Yd = Y.double()  # one float64 copy for both operands (a float64 Y is not copied)
    G = Yd.mT @ Yd  # (b, l, l), contiguous
    Rinv = torch.empty_like(G)
    launch(cholqr_cuda.chol_inverse, b, l, G, Rinv, m, shift)  # one thread per column
    return Y @ Rinv.to(Y.dtype)  # (b, m, l)


def _basis(Y: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of Y's range: shifted CholeskyQR, then twice plain."""
    return _cholqr(_cholqr(_cholqr(Y, True), False), False)


def _span(Y: torch.Tensor) -> torch.Tensor:
    """A well-conditioned basis of Y's range, not orthonormal: one shifted CholeskyQR pass
    (Q^T Q = I - s R^-T R^-1, eigenvalues in (0, 1]), all that the intermediate steps of
    subspace iteration need, as in the CPU core (``kernels.qr_cpu.basis_one_pass``)."""
    return _cholqr(Y, True)


def sketch(A: torch.Tensor, l: int, seed: int) -> torch.Tensor:
    """The Gaussian sketch Omega (b, n, l) of ``rsvd`` on A (b, m, n), in A's dtype: ``seed``'s stream on A's device."""
    b, m, n = A.shape
    gen = torch.Generator(device=A.device).manual_seed(seed)
    return torch.randn((b, n, l), generator=gen, device=A.device, dtype=A.dtype)


def rsvd_sketched(A: torch.Tensor, omega: torch.Tensor, k: int, power_iters: int):
    """Top-k U (b, m, k), s (b, k), Vt (b, k, n) of A (b, m, n) from its sketch omega (b, n, l),
    k <= l <= 64 (see the module docstring)."""
    Y = A @ omega  # (b, m, l)
    for _ in range(power_iters):
        Y = A @ _span(A.mT @ _span(Y))
    Q = _basis(Y)
    Bt = (Q.mT @ A).mT.double()  # B^T, (b, n, l)
    Qb = _cholqr(_cholqr(Bt, True), False)  # B^T = Qb Rb: Jacobi then runs on l x l, not n x l
    S, V, Wr = jacobi(Qb.mT @ Bt)  # Rb V = Wr
    W = Qb @ Wr  # B^T V = W: B = V diag(S) (W / S)^T, (b, n, l)
    U = Q @ V[:, :, :k].to(A.dtype)
    Vt = (W[:, :, :k] / torch.where(S[:, None, :k] > 0, S[:, None, :k], 1.0)).mT.to(A.dtype)
    return U, S[:, :k].to(A.dtype), Vt


def rsvd(A: torch.Tensor, k: int, l: int, power_iters: int, seed: int):
    """Top-k U (b, m, k), s (b, k), Vt (b, k, n) of A (b, m, n), sketch width l <= 64."""
    return rsvd_sketched(A, sketch(A, l, seed), k, power_iters)


def replayed(fn, inputs: tuple, *args, recordable: bool = True) -> tuple:
    """fn(*inputs, *args) (tensors in, a tensor or a tuple of them out) as a tuple, replayed from a
    CUDA graph once its signature repeats (``rankbias.linalg.cuda.graphs``) if ``recordable``: if none of
    its steps reads device values on the host."""
    from rankbias.linalg.cuda import graphs as cuda_graphs

    def run(*tensors) -> tuple:
        out = fn(*tensors, *args)
        return out if isinstance(out, tuple) else (out,)

    if not recordable:
        return run(*inputs)
    key = (fn.__name__, tuple((tuple(t.shape), t.dtype, t.device) for t in inputs), args)
    return cuda_graphs.call(key, run, inputs)


def ranks(A: torch.Tensor, tol: float, eps: float, k: int, backward_stable: bool = False) -> torch.Tensor:
    """Every measure of ``kernels.rank_cuda.MEASURES`` for A (b, m, n) -> (7, b) float64.
    ``backward_stable``: the spectrum by Jacobi, whose relative accuracy resolves numerical_rank's
    u_64 sigma_1-scale tolerance in float64 (the Gram route's floor is ~1e-8 sigma_1)."""
    from rankbias.kernels import rank_cuda

    b, m, n = A.shape
    s = svdvals(A, method=_spectrum_method(backward_stable)).double().contiguous()
    fro = torch.linalg.vector_norm(A, dim=(-2, -1), dtype=torch.float64)  # summed in float64, no copy of A
    out = torch.empty((7, b), dtype=torch.float64, device=A.device)
    mach = float(torch.finfo(A.dtype).eps)
    launch(rank_cuda.ranks_all, (b + 127) // 128, 128, s, fro, tol, eps, k, m, n, mach, out)
    return out
