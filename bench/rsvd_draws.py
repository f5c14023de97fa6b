"""rsvd's top-k error over many sketches: the GPU path against torch.svd_lowrank and the CPU core.

    python -m bench.rsvd_draws [--batch 512]        # on a GPU: the real path; without one: its algorithm

The first device run measured a top-32 error of 2.1e-2 for the GPU path on 64 planted 100 x 100 matrices
(sigma_i = 3 * 0.93^i, k = 32, oversample 10, power_iters 2) against torch.svd_lowrank's 1.1e-3.  That
figure is the max over a batch, a heavy-tailed statistic of the draw, so this prints the distribution
(median, 90th percentile, max) of the per-matrix max relative error of the top k, for every method on the
same matrices.  Without a GPU, ``spectral_cuda.rsvd`` runs on CPU tensors with its two numba-cuda kernels
replaced by LAPACK (Cholesky + triangular inverse for CholeskyQR, SVD for the Jacobi step): the same
algorithm in the same float32 / float64 arithmetic, which tells the path's algorithm from its kernels.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

K, L, Q, N, DECAY = 32, 42, 2, 100, 0.93


def _lapack_kernels(sc) -> None:
    """Swap the path's kernels for LAPACK (CPU tensors): CholeskyQR's R^-1 and the l x l SVD."""
    def cholqr(Y, shift):
        R = torch.linalg.cholesky(Y.mT.double() @ Y.double()).mT
        return Y @ torch.linalg.inv(R).to(Y.dtype)

    def jacobi(M, sweeps=30, tol=1e-15, vectors=True):
        _, S, Vh = torch.linalg.svd(M)
        return S, Vh.mT, M @ Vh.mT

    sc._cholqr, sc.jacobi = cholqr, jacobi


def main(batch: int, seed: int) -> None:
    import rankbias as rb
    from rankbias.linalg.cuda import spectral as sc

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        _lapack_kernels(sc)
    g = torch.Generator().manual_seed(seed)
    planted = 3 * DECAY ** torch.arange(N, dtype=torch.float64)

    def orth():
        return torch.linalg.qr(torch.randn(batch, N, N, generator=g, dtype=torch.float64))[0]

    A = (orth() * planted @ orth().mT).float()

    def err(s):
        return ((torch.as_tensor(s).double().cpu()[:, :K] - planted[:K]).abs() / planted[:K]).amax(dim=1).numpy()

    torch.manual_seed(seed)
    errors = {
        f"rankbias GPU path ({'device' if device == 'cuda' else 'its algorithm, LAPACK kernels'})":
            err(sc.rsvd(A.to(device), K, L, Q, seed)[1]),
        "torch.svd_lowrank": err(torch.stack([torch.svd_lowrank(a, q=L, niter=Q)[1][:K] for a in A.to(device)])),
        "rankbias CPU core": err(rb.rsvd(A.numpy(), K, oversample=L - K, power_iters=Q, seed=seed).s),
    }
    print(f"{batch} planted {N}x{N} (sigma_i = 3 * {DECAY}^i), k = {K}, l = {L}, q = {Q}, seed {seed}: "
          "per-matrix max relative error of the top k")
    print(f"{'method':<52} {'median':>9} {'p90':>9} {'max':>9}")
    for name, e in errors.items():
        print(f"{name:<52} {np.median(e):9.2e} {np.quantile(e, 0.9):9.2e} {e.max():9.2e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.batch, args.seed)
