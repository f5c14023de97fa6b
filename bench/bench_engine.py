"""asv suites of the experiment engine: ensemble throughput against a plain
per-run loop, and the cost of metrics at the default cadence."""

from dataclasses import replace

from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import train_ensemble
from rankbias.engine.nets import NetSpec

from .cases import (ENGINE_WIDTHS, engine_data, engine_members, gradient_ensemble, large_members, module_case,
                    module_plain_loop, plain_loop, tracked_ensemble)

STEPS = 200


class EnsembleSuite:
    """64 SGD runs x 200 steps of MLP 32-100-100-100-10, B = 16."""

    timeout = 600
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self):
        self.data, self.members = engine_data(), engine_members(STEPS)

    def time_ensemble(self):
        train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), self.data, self.members)

    def time_plain_loop(self):
        plain_loop(self.data, self.members)


class ModuleEnsembleSuite:
    """64 SGD-momentum runs x 100 steps of the digits CNN (3 conv-BN-ReLU blocks of 32) and of
    the pointer-task attention net (4 heads, d_model 32): torch.func ensemble vs per-run loop."""

    timeout = 900
    number = 1
    repeat = (1, 2, 300.0)
    params = ["digits_cnn", "attention"]
    param_names = ["case"]

    def setup(self, case):
        self.case = module_case(case)

    def time_ensemble(self, case):
        train_ensemble(*self.case)

    def time_plain_loop(self, case):
        module_plain_loop(*self.case)


class MetricsSuite:
    """One 2500-step SGD run (an ensemble of one, as the engine trains a run alone) with and
    without every metric at 20 log points."""

    timeout = 300
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self):
        self.data = engine_data()
        self.spec = DynamicsSpec("sgd", "ce", lr=0.1, wd=1e-2, batch=4, epochs=10)

    def time_train(self):
        train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), self.data, [self.spec])

    def time_train_with_metrics(self):
        tracked_ensemble(self.data, [self.spec])


class EnsembleMetricsSuite:
    """64 SGD runs x 2000 steps (B = 16, N = 1000) without metrics, with the full-batch
    gradient only, and with every metric, at 20 log points."""

    timeout = 600
    number = 1
    repeat = (1, 2, 120.0)

    def setup(self):
        self.data = engine_data()
        self.members = [replace(m, log_points=20) for m in engine_members(2000)]

    def time_ensemble(self):
        train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), self.data, self.members)

    def time_ensemble_with_gradient_only(self):
        gradient_ensemble(self.data, self.members)

    def time_ensemble_with_metrics(self):
        tracked_ensemble(self.data, self.members)


class DeviceEnsembleSuite:
    """1024 SGD runs x 2000 steps (B = 16) with every metric at 20 log points, on the GPU
    and on this machine's CPU cores; skipped without a CUDA device."""

    params = ["cpu", "cuda"]
    param_names = ["device"]
    timeout = 1200
    number = 1
    repeat = (1, 1, 600.0)

    def setup(self, device):
        import torch

        if not torch.cuda.is_available():
            raise NotImplementedError("needs a CUDA device")
        self.torch, self.data, self.members = torch, engine_data().to(device), large_members(1024, 2000)

    def time_ensemble_with_metrics(self, device):
        tracked_ensemble(self.data, self.members)
        self.torch.cuda.synchronize()
