"""Block one-sided Jacobi (the GPU path's svdvals beyond 64 columns), run here on
CPU tensors with LAPACK's eigh as the pair step; test_cuda_sim.py runs it with
the CUDA Jacobi kernel as the pair step."""

import itertools

import numpy as np
import pytest
import torch

from rankbias.linalg.cuda import block_jacobi


def _eigh(G):
    return torch.linalg.eigh(G).eigenvectors


@pytest.mark.parametrize("nb", [2, 4, 6, 8])
def test_a_sweep_pairs_every_two_blocks_once_and_each_round_uses_every_column_once(nb):
    width = 3
    seen = []
    for cols in block_jacobi._rounds(nb, width, "cpu"):
        assert sorted(cols.tolist()) == list(range(nb * width))
        chunks = cols.view(nb // 2, 2, width)  # (pairs, 2 sides, width)
        blocks = chunks[:, :, 0] // width  # (pairs, 2) block numbers
        assert torch.equal(chunks, blocks[:, :, None] * width + torch.arange(width))  # whole blocks, in order
        seen += [tuple(sorted(p)) for p in blocks.tolist()]
    assert sorted(seen) == list(itertools.combinations(range(nb), 2))


def _graded(b, m, n, decades, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, m, n, generator=g, dtype=torch.float64) @ torch.diag(
        10.0 ** -torch.linspace(0, decades, n, dtype=torch.float64))


CASES = {
    "square, padded to whole blocks": (lambda: _graded(3, 70, 70, 0, 0), 16),
    "tall": (lambda: _graded(2, 150, 100, 0, 1), 16),
    "one block pair": (lambda: _graded(2, 30, 20, 0, 2), 16),
    "graded over 12 decades": (lambda: _graded(2, 96, 96, 12, 3), 16),
    "rank 5": (lambda: _graded(2, 80, 5, 0, 4) @ _graded(2, 5, 60, 0, 5), 8),
    "zero": (lambda: torch.zeros(1, 20, 18, dtype=torch.float64), 4),
}


@pytest.mark.parametrize("case", list(CASES))
def test_singular_values_match_lapack_to_eps_of_the_norm(case):
    make, width = CASES[case]
    A = make()
    S, sweeps = block_jacobi.svdvals(A, _eigh, width=width)
    ref = np.linalg.svd(A.numpy(), compute_uv=False)
    assert S.shape == ref.shape and S.dtype == torch.float64
    assert sweeps < 30  # converged, the graded case included: it needs the eps ||X||^2 floor
    scale = np.maximum(ref[:, :1], 1e-300)
    np.testing.assert_array_less(np.abs(S.numpy() - ref) / scale, 1e-13)


def test_well_conditioned_values_are_accurate_relative_to_themselves():
    A = _graded(2, 120, 90, 2, 6)  # condition 100
    S, _ = block_jacobi.svdvals(A, _eigh, width=16)
    np.testing.assert_allclose(S.numpy(), np.linalg.svd(A.numpy(), compute_uv=False), rtol=1e-12)


def test_the_sweep_cap_stops_an_unconverged_run():
    A = _graded(1, 64, 64, 0, 7)
    S, sweeps = block_jacobi.svdvals(A, _eigh, width=8, sweeps=1)
    assert sweeps == 1
    ref = np.linalg.svd(A.numpy(), compute_uv=False)
    assert np.abs(S.numpy() - ref).max() > 1e-6 * ref[0, 0]  # one sweep does not orthogonalize 8 blocks
