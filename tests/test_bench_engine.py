"""Training throughput: an ensemble against a plain per-run loop, and the cost of metrics.

    pytest --benchmark-only tests/test_bench_engine.py

In the first group both sides do the same work per round, so the ratio is the
ensemble's speed-up; in the metric groups the ratio is 1 + the metrics' share.
"""

from dataclasses import replace

import pytest
import torch

from bench.cases import (
    ENGINE_MEMBERS,
    MODULE_STEPS,
    module_case,
    module_plain_loop,
    ENGINE_WIDTHS,
    engine_data,
    engine_members,
    gradient_ensemble,
    large_members,
    plain_loop,
    tracked_ensemble,
)
from rankbias.engine.dynamics import DynamicsSpec, log_steps
from rankbias.engine.ensemble import train_ensemble
from rankbias.engine.nets import NetSpec

STEPS = 500  # runs of the claims take 2k-20k steps; 500 amortizes set-up as they do
DATA = engine_data()
SPECS = engine_members(STEPS)
GROUP = f"train {ENGINE_MEMBERS} runs x {STEPS} SGD steps, MLP {'-'.join(map(str, ENGINE_WIDTHS))}, B=16"


def test_plain_per_run_loop(benchmark):
    benchmark.group = GROUP
    benchmark.pedantic(plain_loop, args=(DATA, SPECS), rounds=3, iterations=1)


def test_ensemble(benchmark):
    benchmark.group = GROUP
    results = benchmark.pedantic(lambda: train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), DATA, SPECS), rounds=3, iterations=1)
    assert all(r.status == "done" for r in results)


@pytest.mark.parametrize("case", ["digits_cnn", "attention"])
def test_module_plain_per_run_loop(benchmark, case):
    benchmark.group = f"train 64 runs x {MODULE_STEPS} SGD-momentum steps, {case}"
    benchmark.pedantic(module_plain_loop, args=module_case(case), rounds=2, iterations=1)


@pytest.mark.parametrize("case", ["digits_cnn", "attention"])
def test_module_ensemble(benchmark, case):
    benchmark.group = f"train 64 runs x {MODULE_STEPS} SGD-momentum steps, {case}"
    results = benchmark.pedantic(lambda: train_ensemble(*module_case(case)), rounds=2, iterations=1)
    assert all(r.status == "done" for r in results)


# galanti.wd's run length (docs/claims.md): 40 epochs at B=4 on N=1000, 10k steps, 20 log points
LONG = DynamicsSpec("sgd", "ce", lr=0.1, wd=1e-2, batch=4, epochs=40)


def test_training_without_metrics(benchmark):
    benchmark.group = "one run (an ensemble of one), 10k SGD steps (B=4), default 20 log points"
    benchmark.pedantic(lambda: train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), DATA, [LONG]), rounds=3,
                       iterations=1)


def test_training_with_all_metrics(benchmark):
    benchmark.group = "one run (an ensemble of one), 10k SGD steps (B=4), default 20 log points"
    benchmark.pedantic(tracked_ensemble, args=(DATA, [LONG]), rounds=3, iterations=1)


# an ensemble's steps are ~10x cheaper per run, full-batch metrics are not: their share is larger
TRACKED = [replace(m, log_points=20) for m in engine_members(2000)]
TRACKED_GROUP = f"{ENGINE_MEMBERS} runs x 2000 SGD steps (B=16, N=1000), default 20 log points"


def test_ensemble_without_metrics(benchmark):
    benchmark.group = TRACKED_GROUP
    benchmark.pedantic(lambda: train_ensemble(NetSpec("deep_relu", ENGINE_WIDTHS), DATA, TRACKED), rounds=2, iterations=1)


def test_ensemble_with_the_gradient_only(benchmark):
    """The full-batch gradient alone (N = 1000 samples at 21 log points, against 2000 steps
    of B = 16): the pass that alignment, stationarity, collapse_bound and the feature
    metrics all start from, so the floor of their share."""
    benchmark.group = TRACKED_GROUP
    assert benchmark.pedantic(gradient_ensemble, args=(DATA, TRACKED), rounds=2, iterations=1) == len(log_steps(2000, 20))


def test_ensemble_with_all_metrics(benchmark):
    benchmark.group = TRACKED_GROUP
    rows = benchmark.pedantic(tracked_ensemble, args=(DATA, TRACKED), rounds=2, iterations=1)
    assert rows == len(TRACKED) * len(log_steps(2000, 20))  # every member measured at every log point


# the GPU against the same code on this machine's CPU cores: one group of a GPU run's size
LARGE = large_members(1024, 2000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_large_ensemble_on_device(benchmark, device):
    benchmark.group = "1024 runs x 2000 SGD steps (B=16), every metric at 20 log points: cuda vs cpu"
    data = DATA.to(device)

    def run():
        rows = tracked_ensemble(data, LARGE)
        torch.cuda.synchronize()
        return rows

    rows = benchmark.pedantic(run, rounds=1, iterations=1)
    assert rows == len(LARGE) * len(log_steps(2000, 20))
