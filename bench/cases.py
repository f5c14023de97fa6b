"""Benchmark matrices shared by asv (bench/) and pytest-benchmark (tests/).

NN-like spectra: a Marchenko-Pastur bulk (a Gaussian matrix / sqrt(max(m, n)))
plus 8 planted spikes from 10 down to 2, float32, seeded.  The top-k error of
a randomized SVD on it mixes a well-separated head and a flat bulk.
"""

import numpy as np

RSVD_CASES = {"64x256x256": (64, 256, 256), "8x1024x1024": (8, 1024, 1024), "1x4096x4096": (1, 4096, 4096)}
SVDVALS_CASES = {"512x100x100": (512, 100, 100), "64x256x256": (64, 256, 256), "8x1024x1024": (8, 1024, 1024)}
K, OVERSAMPLE, POWER_ITERS = 32, 10, 2


def nn_like(batch: int, m: int, n: int, seed: int = 0) -> np.ndarray:
    """(batch, m, n) float32: MP bulk + 8 spikes, C-contiguous."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((batch, m, n), dtype=np.float32)
    A *= np.float32(1 / np.sqrt(max(m, n)))  # in place: stays float32 (a float64 scalar would promote)
    left = rng.standard_normal((batch, m, 8)) / np.sqrt(m)
    right = rng.standard_normal((batch, n, 8)) / np.sqrt(n)
    A += np.einsum("bmi,i,bni->bmn", left, np.geomspace(10, 2, 8), right).astype(np.float32)
    return A


def exact_svdvals(A: np.ndarray) -> np.ndarray:
    """float64 LAPACK singular values, (batch, min(m, n))."""
    return np.linalg.svd(A.astype(np.float64), compute_uv=False)


def topk_rel_err(s, exact, k: int = K) -> float:
    """Mean over the batch of ||s[:k] - exact[:k]|| / ||exact[:k]||."""
    s = np.asarray(s, dtype=np.float64)[..., :k]
    e = exact[..., :k]
    return float(np.mean(np.linalg.norm(s - e, axis=-1) / np.linalg.norm(e, axis=-1)))


def max_rel_err_above(s, exact, floor: float = 1e-4) -> float:
    """max |s_i - exact_i| / exact_i over sigma_i >= floor * sigma_1."""
    s = np.asarray(s, dtype=np.float64)
    live = exact >= floor * exact[..., :1]
    return float((np.abs(s - exact)[live] / exact[live]).max())
