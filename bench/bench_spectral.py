"""asv suites of the spectral core: time, peak memory and accuracy per commit.

    asv run            # benchmark HEAD in a fresh virtualenv
    asv publish && asv preview

Peers run in the same suites (param ``peer``) so the site shows rankbias and
torch side by side; ``track_*`` records accuracy against float64 LAPACK, so a
speed-up that costs accuracy shows in the history.
"""

import torch

import rankbias as rb

from .cases import K, OVERSAMPLE, POWER_ITERS, RSVD_CASES, SVDVALS_CASES, exact_svdvals, max_rel_err_above, nn_like, topk_rel_err

RSVD = {
    "rankbias": lambda A: rb.rsvd(A, K, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0).s,
    "torch": lambda A: torch.svd_lowrank(torch.from_numpy(A), q=K + OVERSAMPLE, niter=POWER_ITERS)[1].numpy(),
}
SVDVALS = {
    "rankbias": rb.svdvals,
    "torch": lambda A: torch.linalg.svdvals(torch.from_numpy(A)).numpy(),
}


class RSVDSuite:
    """Batched randomized SVD, k=32, p=10, q=2, float32."""

    params = (list(RSVD_CASES), list(RSVD))
    param_names = ["case", "peer"]
    timeout = 300

    def setup_cache(self):
        return {name: nn_like(*shape) for name, shape in RSVD_CASES.items()}

    def setup(self, data, case, peer):
        self.A = data[case]
        RSVD[peer](self.A)  # the same path (batched or serial) loads its kernels outside the timing

    def time_rsvd(self, data, case, peer):
        RSVD[peer](self.A)

    def peakmem_rsvd(self, data, case, peer):
        RSVD[peer](self.A)

    def track_topk_rel_err(self, data, case, peer):
        return topk_rel_err(RSVD[peer](self.A), exact_svdvals(self.A))

    track_topk_rel_err.unit = "relative error"


TRACKED_SVDVALS = ["512x100x100", "128x200x200", "64x256x256"]  # NN-sized batches (1024 is pytest's alone)


class SvdvalsSuite:
    """Exact batched singular values, float32 input."""

    params = (TRACKED_SVDVALS, list(SVDVALS))
    param_names = ["case", "peer"]
    timeout = 300

    def setup_cache(self):
        return {name: nn_like(*SVDVALS_CASES[name]) for name in TRACKED_SVDVALS}

    def setup(self, data, case, peer):
        self.A = data[case]
        SVDVALS[peer](self.A)

    def time_svdvals(self, data, case, peer):
        SVDVALS[peer](self.A)

    def track_max_rel_err(self, data, case, peer):
        return max_rel_err_above(SVDVALS[peer](self.A), exact_svdvals(self.A))

    track_max_rel_err.unit = "relative error"


class RanksSuite:
    """Every rank measure of 512 MLP-sized layers (a training run's metric step)."""

    def setup(self):
        self.A = nn_like(512, 100, 100)
        rb.ranks(self.A)

    def time_ranks(self):
        rb.ranks(self.A)


class ImportSuite:
    """Start-up cost: importing rankbias and loading cached kernels."""

    def timeraw_import_and_first_call(self):
        return "import numpy as np, rankbias as rb; rb.ranks(np.eye(3))"
