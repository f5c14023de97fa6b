"""asv suites of the GPU path against torch on the same device; every case is
skipped (setup raises NotImplementedError) without a CUDA device."""

from .cases import CUDA_CASES, CUDA_K, CUDA_SVDVALS_CASES, K, OVERSAMPLE, POWER_ITERS, nn_like


def _on_device(case):
    """torch and the case's matrix on the GPU; NotImplementedError (asv: skipped) without one."""
    import torch

    if not torch.cuda.is_available():
        raise NotImplementedError("needs a CUDA device")
    return torch, torch.from_numpy(nn_like(*CUDA_CASES[case])).cuda()


class _Synced:
    """Times self.fn(self.A) to the device's end: setup warms it up (compiles), each call syncs."""

    timeout = 300

    def _warm(self, torch, A, fn):
        self.torch, self.A, self.fn = torch, A, fn
        fn(A)
        torch.cuda.synchronize()

    def _call(self):
        self.fn(self.A)
        self.torch.cuda.synchronize()


class CudaRSVD(_Synced):
    params = [list(CUDA_CASES), ["rankbias", "torch.svd_lowrank"]]
    param_names = ["case", "peer"]

    def setup(self, case, peer):
        torch, A = _on_device(case)
        import rankbias as rb

        k = CUDA_K.get(case, K)
        self._warm(torch, A, {
            "rankbias": lambda A: rb.rsvd(A, k, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0),
            "torch.svd_lowrank": lambda A: torch.svd_lowrank(A, q=k + OVERSAMPLE, niter=POWER_ITERS)}[peer])

    def time_rsvd(self, case, peer):
        self._call()


class CudaSvdvals(_Synced):
    params = [CUDA_SVDVALS_CASES, ["rankbias", "torch.linalg.svdvals"]]
    param_names = ["case", "peer"]

    def setup(self, case, peer):
        torch, A = _on_device(case)
        import rankbias as rb

        self._warm(torch, A, {"rankbias": rb.svdvals, "torch.linalg.svdvals": torch.linalg.svdvals}[peer])

    def time_svdvals(self, case, peer):
        self._call()
