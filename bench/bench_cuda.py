"""asv suites of the GPU path against torch on the same device; every case is
skipped (setup raises NotImplementedError) without a CUDA device."""

from .cases import CUDA_CASES, CUDA_K, K, OVERSAMPLE, POWER_ITERS, nn_like


class CudaRSVD:
    params = [list(CUDA_CASES), ["rankbias", "torch.svd_lowrank"]]
    param_names = ["case", "peer"]
    timeout = 300

    def setup(self, case, peer):
        import torch

        if not torch.cuda.is_available():
            raise NotImplementedError("needs a CUDA device")
        import rankbias as rb

        self.torch = torch
        self.A = torch.from_numpy(nn_like(*CUDA_CASES[case])).cuda()
        k = CUDA_K.get(case, K)
        self.fn = {"rankbias": lambda A: rb.rsvd(A, k, oversample=OVERSAMPLE, power_iters=POWER_ITERS, seed=0),
                   "torch.svd_lowrank": lambda A: torch.svd_lowrank(A, q=k + OVERSAMPLE, niter=POWER_ITERS)}[peer]
        self.fn(self.A)  # compile and warm up
        torch.cuda.synchronize()

    def time_rsvd(self, case, peer):
        self.fn(self.A)
        self.torch.cuda.synchronize()
