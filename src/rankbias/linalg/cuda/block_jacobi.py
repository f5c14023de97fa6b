"""Singular values of a batch of matrices wider than one Jacobi block: block one-sided Jacobi.

The GPU path's svdvals for a batch of matrices with more than 1024 columns on the
short side, or more than 256 on its Jacobi route (``spectral_cuda.svdvals``,
``method="jacobi"``), so that a batch of them is not a loop over
cuSOLVER, one matrix at a time.  Block one-sided Jacobi, the Gram-matrix form
of Boukaram, Turkiyyah, Ltaief & Keyes, "Batched QR and SVD algorithms on GPUs
with applications in hierarchical matrix compression", Parallel Computing 74
(2018), 19-33:

    the n columns of X (m, n) are split into blocks of ``width`` columns;
    a sweep visits every pair of blocks (i, j) once, in nb - 1 rounds of the
    round-robin ordering, nb / 2 disjoint pairs per round, all pairs of all
    matrices of the batch at once:
        X_ij = [X_i X_j]                  (m, 2 width)
        G = X_ij^T X_ij                   (2 width, 2 width), float64 GEMM
        G = V diag(lambda) V^T            (``eig``: the small symmetric eigenproblem)
        X_ij <- X_ij V                    GEMM: the 2 width columns become orthogonal
    until a sweep rotates no pair; then sigma_j = ||x_j||.

The products are batched GEMMs (cuBLAS on a GPU); ``eig`` is the only small,
per-pair step (on the GPU, the one-block-per-matrix Jacobi kernel of
``kernels.jacobi_cuda``).  A pair is rotated only while some off-diagonal
entry of G exceeds both tol sqrt(g_pp g_qq) (the columns' cosine) and
2 width u max_p g_pp (u = 2^-52): the Gram route orthogonalizes columns to an
absolute eps ||X_ij||^2, not relative to two small columns, so the second
bound keeps a graded matrix from rotating forever (tested).  The singular
values are the column norms, computed from X itself: absolute accuracy
O(eps ||A||), as LAPACK's bidiagonal route has; tiny singular values of a
graded matrix lose relative accuracy, as the Gram route must.

Pure torch, any device; the eigen step is passed in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

EPS = 2.0**-52


@functools.cache
def _rounds(nb: int, width: int, device: str) -> tuple[torch.Tensor, ...]:
    """Column indices of each round of a sweep, (nb - 1) tensors of (nb * width,):
    pair j of round r takes columns [block p, block q] at [2 j width, 2 (j + 1) width)."""

    def seat(j: int, r: int) -> int:  # the circle ordering: seat 0 fixed, the rest rotate
        return 0 if j == 0 else (j - 1 + r) % (nb - 1) + 1

    out = []
    for r in range(nb - 1):
        cols = []
        for j in range(nb // 2):
            p, q = sorted((seat(j, r), seat(nb - 1 - j, r)))
            cols += [*range(p * width, (p + 1) * width), *range(q * width, (q + 1) * width)]
        out.append(torch.tensor(cols, device=device))
    return tuple(out)


def svdvals(
    M: torch.Tensor,
    eig: Callable[[torch.Tensor], torch.Tensor],
    width: int = 32,
    sweeps: int = 30,
    tol: float = 1e-10,
) -> tuple[torch.Tensor, int]:
    """Singular values of M (b, m, n) float64 -> (S (b, n) float64 descending, sweeps run).

    ``eig(G)`` takes G (p, 2 width, 2 width) symmetric positive semidefinite and
    returns V (p, 2 width, 2 width) orthogonal with V^T G V diagonal.  Columns
    are padded with zeros to a whole, even number of blocks (zero columns are
    never rotated and sort last).  Stops after ``sweeps`` sweeps even if
    pairs still rotate (the second value says how many ran).
    """
    b, m, n = M.shape
    nb = 2 * math.ceil(n / (2 * width))  # an even number of blocks
    pairs, two = nb // 2, 2 * width
    X = torch.zeros((b, m, nb * width), dtype=torch.float64, device=M.device)
    X[:, :, :n] = M
    off_diagonal = ~torch.eye(two, dtype=torch.bool, device=M.device)
    identity = torch.eye(two, dtype=torch.float64, device=M.device)
    done = 0
    while done < sweeps:
        done += 1
        rotated = torch.zeros((), dtype=torch.bool, device=M.device)
        for cols in _rounds(nb, width, str(M.device)):
            Xp = X[:, :, cols].view(b, m, pairs, two).transpose(1, 2).reshape(b * pairs, m, two)  # (b P, m, 2w)
            G = Xp.mT @ Xp  # (b P, 2w, 2w)
            g = G.diagonal(dim1=-2, dim2=-1)  # (b P, 2w) squared column norms
            cosine = tol * (g[:, :, None] * g[:, None, :]).sqrt()
            floor = two * EPS * g.amax(-1)[:, None, None]
            need = ((G.abs() > torch.maximum(cosine, floor)) & off_diagonal).flatten(1).any(1)  # (b P,)
            V = torch.where(need[:, None, None], eig(G), identity)  # (b P, 2w, 2w)
            X[:, :, cols] = (Xp @ V).view(b, pairs, m, two).transpose(1, 2).reshape(b, m, nb * width)
            rotated |= need.any()
        if not rotated:  # one device sync per sweep
            break
    S = torch.linalg.vector_norm(X, dim=1).sort(dim=1, descending=True).values  # (b, nb width)
    return S[:, :n], done
