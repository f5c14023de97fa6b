"""asv suites of the GPU path against torch on the same device; every case is
skipped (setup raises NotImplementedError) without a CUDA device.  ``track_*``
records accuracy against float64 LAPACK beside the time, as the CPU suites do."""

from .cases import (CUDA_CASES, CUDA_K, CUDA_SHAPES, CUDA_SVDVALS_CASES, K, OVERSAMPLE, POWER_ITERS, exact_svdvals,
                    max_rel_err_above, nn_like, topk_rel_err)


def _on_device(case):
    """torch and the case's matrix on the GPU; NotImplementedError (asv: skipped) without one."""
    import torch

    if not torch.cuda.is_available():
        raise NotImplementedError("needs a CUDA device")
    return torch, torch.from_numpy(nn_like(*CUDA_SHAPES[case])).cuda()


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

    def _values_and_exact(self, case):
        """(the peer's singular values on the host, float64 LAPACK's)."""
        return self.fn(self.A).cpu().numpy(), exact_svdvals(nn_like(*CUDA_SHAPES[case]))


class CudaRSVD(_Synced):
    params = [CUDA_CASES, ["rankbias", "torch.svd_lowrank"]]
    param_names = ["case", "peer"]

    def setup(self, case, peer):
        torch, A = _on_device(case)
        import rankbias as rb

        k = CUDA_K.get(case, K)
        self._warm(torch, A, {
            "rankbias": lambda A: rb.rsvd(A, k, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0).s,
            "torch.svd_lowrank": lambda A: torch.svd_lowrank(A, q=k + OVERSAMPLE, niter=POWER_ITERS)[1]}[peer])
        self.k = k

    def time_rsvd(self, case, peer):
        self._call()

    def track_topk_rel_err(self, case, peer):
        return topk_rel_err(*self._values_and_exact(case), self.k)

    track_topk_rel_err.unit = "relative error"


class CudaSvdvals(_Synced):
    params = [CUDA_SVDVALS_CASES, ["rankbias", "rankbias-jacobi", "torch.linalg.svdvals"]]
    param_names = ["case", "peer"]

    def setup(self, case, peer):
        torch, A = _on_device(case)
        import rankbias as rb
        from rankbias.linalg.cuda import spectral as spectral_cuda

        fns = {"rankbias": rb.svdvals, "rankbias-jacobi": lambda A: spectral_cuda.svdvals(A, method="jacobi"),
               "torch.linalg.svdvals": torch.linalg.svdvals}
        self._warm(torch, A, fns[peer])

    def time_svdvals(self, case, peer):
        self._call()

    def track_max_rel_err(self, case, peer):
        return max_rel_err_above(*self._values_and_exact(case))

    track_max_rel_err.unit = "relative error"
