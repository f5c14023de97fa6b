"""One trainer for any device: device names, worker placement, and an engine that
places every tensor it makes on the device it was asked for and never waits on it
per step.  CI has no GPU: the placement is checked by making torch's default
device 'meta' while the engine trains on the CPU, so a tensor created without an
explicit device lands on 'meta' and fails as it would on a GPU."""

import os

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from typer.testing import CliRunner

from rankbias.engine import device as D
from rankbias.cli import app
from rankbias.engine.data import gaussian_mixture
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import CHECK_EVERY, train_ensemble
from rankbias.engine.nets import NetSpec
from rankbias.experiments.config import RunConfig
from rankbias.experiments.execute import train_group
from reference import TINY_MATRIX

MIX = dict(kind="mixture", n=60, dim=6, classes=3, std=0.5, seed=0, test=12)



def test_cpu_and_auto_without_a_gpu():
    assert D.resolve("cpu") == torch.device("cpu")
    device, line = D.choose("auto")
    assert device == torch.device("cpu") and line.startswith("device: cpu (") and "CUDA" in line
    assert D.describe(device)["device"] == "cpu"


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "CPU", "cuda:-1", ""])
def test_a_malformed_device_name_is_refused(name):
    with pytest.raises(D.DeviceError, match=rf"'device' must be auto, cpu, cuda or cuda:N; got '{name}'"):
        D.resolve(name)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_what_is_missing_and_what_to_pass(name):
    with pytest.raises(D.DeviceError, match=rf"device '{name}' needs a CUDA GPU, but .*Pass --device cpu"):
        D.resolve(name)


def test_a_gpu_index_past_the_machines_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(D.DeviceError, match=r"'cuda:7' does not exist: torch sees 1 GPU \(cuda:0 to cuda:0\)"):
        D.resolve("cuda:7")


def test_pool_workers_spread_over_the_gpus():
    cuda = D.Placement("cuda", torch.device("cuda", 0), "device: cuda:0", 2)
    assert [cuda.worker(i, gpus=2) for i in range(4)] == [torch.device("cuda", i % 2) for i in range(4)]
    assert cuda.worker(3, gpus=1) == torch.device("cuda", 0)
    pinned = D.Placement("cuda:1", torch.device("cuda", 1), "device: cuda:1", 1)
    assert pinned.worker(3, gpus=4) == torch.device("cuda", 1)
    cpu = D.place("auto")  # resolved once, here, for every worker
    assert cpu.device == torch.device("cpu") and cpu.worker(3) == cpu.device and cpu.workers == (os.cpu_count() or 1)
    dask = D.place("auto", scheduler=True)  # each Dask worker resolves the name on its own machine
    assert dask.device is None and dask.worker(0) == "auto" and "each Dask worker" in dask.line


def test_auto_that_finds_a_gpu_spreads_pool_workers_over_the_gpus(monkeypatch):
    monkeypatch.setattr(D, "choose", lambda name: (torch.device("cuda", 0), "device: cuda:0 (a GPU)"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    placement = D.place("auto")
    assert placement.workers == 2 and placement.worker(1) == torch.device("cuda", 1)
    assert D.place("cuda:0").workers == 1  # a pinned GPU: one worker


def test_rankbias_run_resolves_the_device_once(tmp_path, monkeypatch):
    calls = []
    choose = D.choose
    monkeypatch.setattr(D, "choose", lambda name: calls.append(name) or choose(name))
    matrix = tmp_path / "m.toml"
    matrix.write_text(TINY_MATRIX)
    done = CliRunner().invoke(app, ["run", str(matrix), "--processes", "1", "--store", str(tmp_path / "s.sqlite"),
                                    "--scorecard", "", "--quiet"])
    assert done.exit_code == 0, done.output
    assert calls == ["auto"]


CONFIGS = {
    "sgd ensemble, bias, residual": [
        RunConfig(MIX, NetSpec("residual_relu", (6, 8, 8, 3), bias=True),
                  DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=10, steps=40, log_points=4), seed=s)
        for s, wd in ((0, 0.0), (1, 0.01))],
    "gated gd": [RunConfig(MIX, NetSpec("deep_relu", (6, 8, 3)),
                           DynamicsSpec("gd", "ce", lr=0.2, wd=0.05, steps=30, gate=0.5, max_steps=60, log_points=3))],
    "gradient flow, regression": [
        RunConfig(dict(kind="linear_teacher", n=30, dim=4, outputs=2, seed=0, test=6), NetSpec("deep_linear", (4, 5, 2)),
                  DynamicsSpec("gf", "mse", wd=0.01, flow_time=2.0, log_points=3))],
    "merging pair": [RunConfig(dict(kind="subspace_pair", n=30, dim=8, k=2, cosine=0.0, seed=0),
                               NetSpec("shallow_relu", (8, 6, 1)),
                               DynamicsSpec("sgd", "logistic", lr=0.1, wd=0.01, batch=10, steps=20, log_points=3))],
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_every_tensor_the_engine_makes_is_on_the_device_it_was_asked_for(case):
    expected = train_group(CONFIGS[case], "cpu")
    torch.set_default_device("meta")  # a tensor made without a device lands here, and mixing it fails
    try:
        placed = train_group(CONFIGS[case], "cpu")
    finally:
        torch.set_default_device(None)
    for want, got in zip(expected, placed):
        assert got.error is None and got.status == want.status == "done"
        assert [m[:3] for m in got.metrics] == [m[:3] for m in want.metrics] and len(got.metrics) > 20
        np.testing.assert_array_equal([m[3] for m in got.metrics], [m[3] for m in want.metrics])  # NaN == NaN here
        assert got.provenance["device"] == "cpu"


class _Reads(TorchDispatchMode):
    """Counts the reads of a tensor's value by the host (.item(), float(), bool())."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def test_training_steps_do_not_wait_on_the_device_and_divergence_keeps_its_step():
    data = gaussian_mixture(40, 6, 3, 0.5, seed=0)
    steps = 3 * CHECK_EVERY
    members = [DynamicsSpec("gd", "ce", lr=lr, wd=0.01, steps=steps, log_points=2) for lr in (0.1, 1e5)]
    with _Reads() as reads:
        results = train_ensemble(NetSpec("deep_relu", (6, 8, 3)), data, members)
    assert reads.count < steps // 10  # the host reads at log points and checks, not per step
    assert results[0].status == "done" and results[0].steps == steps
    assert results[1].status == "diverged" and 0 < results[1].diverged_at < CHECK_EVERY
    assert results[1].steps == results[1].diverged_at and results[1].log[-1]["at"] < results[1].diverged_at


def test_a_group_out_of_gpu_memory_is_split_until_it_fits(monkeypatch):
    import rankbias.engine.ensemble

    real, sizes = rankbias.engine.ensemble.train_ensemble, []

    def fits_two(spec, data, members, **kw):
        sizes.append(len(members))
        if len(members) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(spec, data, members, **kw)

    group = [RunConfig(MIX, NetSpec("deep_relu", (6, 8, 3)), DynamicsSpec("sgd", "ce", lr=0.1, wd=0.01, batch=10,
                                                                          steps=20, log_points=3), seed=s)
             for s in range(5)]
    alone = [train_group([c], "cpu")[0] for c in group]
    monkeypatch.setattr(rankbias.engine.ensemble, "train_ensemble", fits_two)
    split = train_group(group, "cpu")
    assert sizes == [5, 2, 3, 1, 2]  # halves until every part fits: [0, 1], then [2, 3, 4] as [2] and [3, 4]
    assert [r.name for r in split] == [c.name() for c in group] and {r.status for r in split} == {"done"}
    for a, b in zip(split, alone):
        np.testing.assert_allclose([m[3] for m in a.metrics], [m[3] for m in b.metrics], rtol=1e-5, atol=1e-6)


def test_a_run_that_alone_does_not_fit_says_how_to_make_it_fit(monkeypatch):
    import rankbias.engine.ensemble

    def never(*args, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(rankbias.engine.ensemble, "train_ensemble", never)
    rec = train_group(CONFIGS["gated gd"], "cpu")[0]
    assert rec.status == "failed" and rec.metrics == []
    assert rec.error.startswith("OutOfMemoryError: this run alone does not fit in the memory of cpu; train it with")


@pytest.mark.parametrize("command", [["run", "quick"], ["train", "--widths", "6,8,3", "--lr", "0.1", "--steps", "5",
                                                         "--batch", "8"]])
def test_a_gpu_the_machine_lacks_stops_the_cli_before_the_store_is_touched(tmp_path, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, [*command, "--device", "cuda:7", "--store", str(store)])
    assert result.exit_code == 2 and "device 'cuda:7' does not exist: torch sees 1 GPU" in result.output
    assert "Traceback" not in result.output and not store.exists()


def test_with_a_dask_scheduler_the_workers_resolve_the_device(tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text('[[scenario]]\nid = "s"\npaper = "p"\n'
                      'data = { kind = "mixture", n = 60, dim = 6, classes = 3, std = 0.5, seed = 0 }\n'
                      'net = { arch = "deep_relu", widths = [6, 8, 3] }\n'
                      'dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 10, steps = 5 }\n')
    common = ["run", str(matrix), "--store", str(tmp_path / "s.sqlite"), "--quiet", "--scheduler", "tcp://127.0.0.1:9"]
    result = CliRunner().invoke(app, [*common, "--device", "cuda"])  # no GPU here; the workers may have one
    assert "device: cuda (resolved by each Dask worker)" in result.output
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*common, "--device", "tpu"])
    assert result.exit_code == 2 and "'device' must be auto, cpu, cuda or cuda:N; got 'tpu'" in result.output
