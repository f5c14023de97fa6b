"""Benchmark matrices shared by asv (bench/) and pytest-benchmark (tests/).

NN-like spectra: a Marchenko-Pastur bulk (a Gaussian matrix / sqrt(max(m, n)))
plus 8 planted spikes from 10 down to 2, float32, seeded.  The top-k error of
a randomized SVD on it mixes a well-separated head and a flat bulk.
"""

import numpy as np

RSVD_CASES = {"64x256x256": (64, 256, 256), "8x1024x1024": (8, 1024, 1024), "1x4096x4096": (1, 4096, 4096)}
SVDVALS_CASES = {"512x100x100": (512, 100, 100), "128x200x200": (128, 200, 200), "64x256x256": (64, 256, 256), "8x1024x1024": (8, 1024, 1024)}
K, OVERSAMPLE, POWER_ITERS = 32, 10, 2
# GPU cases (issue: launch-bound batches of small and mid-size matrices, and one big one; the
# first real-device table's cases, plus the engine's own layer batches for the ranks)
CUDA_SHAPES = {"1024x64x64": (1024, 64, 64), "4096x64x64": (4096, 64, 64), "4096x32x32": (4096, 32, 32),
               "64x100x100": (64, 100, 100), "192x100x100": (192, 100, 100), "192x200x200": (192, 200, 200),
               "256x256x256": (256, 256, 256), "16x1024x1024": (16, 1024, 1024), "1x2048x2048": (1, 2048, 2048),
               "1x4096x4096": (1, 4096, 4096)}
CUDA_CASES = ["1024x64x64", "4096x64x64", "64x100x100", "256x256x256", "16x1024x1024", "1x4096x4096"]  # rsvd
# svdvals: the Gram route's shared-memory kernels (32, 64, 100 columns), its in-place one (256, 1024), and a
# single large matrix (cuSOLVER on either route)
CUDA_SVDVALS_CASES = ["4096x32x32", "1024x64x64", "64x100x100", "192x100x100", "192x200x200", "256x256x256",
                      "16x1024x1024", "1x2048x2048"]
CUDA_RANKS_CASES = ["192x100x100", "192x200x200"]  # one 64-member ensemble's hidden layers, at two widths
CUDA_K = {"1024x64x64": 16, "4096x64x64": 16}  # l = k + p must fit the 64-column Jacobi step: 16 + 10 on 64 x 64


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


# --- training workloads (experiment engine) ---------------------------------

ENGINE_WIDTHS = (32, 100, 100, 100, 10)
ENGINE_MEMBERS, ENGINE_BATCH = 64, 16
ENGINE_WDS = (0.0, 1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 1e-1)


def engine_data():
    from rankbias.engine.data import gaussian_mixture

    return gaussian_mixture(1000, 32, 10, 1.0, seed=0)


def engine_members(steps: int):
    """64 SGD runs (8 seeds x 8 weight decays), lr 0.1, B = 16."""
    from rankbias.engine.dynamics import DynamicsSpec

    return [DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=ENGINE_BATCH, steps=steps, seed=s, log_points=2)
            for s in range(8) for wd in ENGINE_WDS]


def large_members(members: int = 1024, steps: int = 2000):
    """``members`` SGD runs (members / 8 seeds x the 8 weight decays), lr 0.1, B = 16, 20 log
    points: the device benchmark's ensemble (one group of a GPU run's size)."""
    from rankbias.engine.dynamics import DynamicsSpec

    return [DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=ENGINE_BATCH, steps=steps, seed=s, log_points=20)
            for s in range(max(1, members // len(ENGINE_WDS))) for wd in ENGINE_WDS]


def tracked_ensemble(data, members) -> int:
    """An ensemble measured by ``metrics.Tracker`` at every log point, as a matrix run is;
    returns how many (member, log point) measurements it made."""
    from rankbias.engine.metrics import Tracker

    tracker = Tracker(engine_net(), members[0].loss, [m.wd for m in members])
    return _measured_ensemble(data, members, lambda ens: len(tracker(*ens.effective(), data)))


def gradient_ensemble(data, members) -> int:
    """An ensemble that computes, at every log point, only the full-batch gradient every
    metric set starts from (``metrics.gradients``: theta, grad L, features, deltas): the
    floor under ``tracked_ensemble``.  Returns how many log points it measured."""
    from rankbias.engine.metrics import gradients

    def measure(ens) -> int:
        gradients(engine_net(), members[0].loss, *ens.effective(), data)
        return 1

    return _measured_ensemble(data, members, measure)


def engine_net():
    """The engine benchmarks' MLP, deep ReLU of ``ENGINE_WIDTHS``."""
    from rankbias.engine.nets import NetSpec

    return NetSpec("deep_relu", ENGINE_WIDTHS)


def _measured_ensemble(data, members, measure) -> int:
    """Train the engine benchmark's MLP ensemble, calling ``measure(ensemble) -> count`` at
    every log point; returns the counts' sum."""
    from rankbias.engine.ensemble import train_ensemble

    count = [0]

    def on_log(at, ens, alive):
        count[0] += measure(ens)

    train_ensemble(engine_net(), data, members, on_log=on_log)
    return count[0]


def plain_loop(data, members) -> list[list[tuple]]:
    """What a researcher writes without rankbias: one nn.Sequential and optimizer per run,
    logging the train loss and accuracy at the ensemble's log steps (the same work)."""
    import torch
    from torch import nn

    from rankbias.engine.dynamics import log_steps

    n = len(data.x_train)
    logs = []
    for spec in members:
        torch.manual_seed(spec.seed)
        layers = []
        for i, (a, b) in enumerate(zip(ENGINE_WIDTHS[:-1], ENGINE_WIDTHS[1:])):
            layers += [nn.Linear(a, b, bias=False)] + ([nn.ReLU()] if i < len(ENGINE_WIDTHS) - 2 else [])
        model = nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=spec.lr, weight_decay=spec.wd)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
        usable = n - n % spec.batch
        at, log = set(log_steps(spec.steps, spec.log_points)), []
        for step in range(spec.steps + 1):
            if step in at:
                with torch.no_grad():
                    out = model(data.x_train)
                    log.append((step, float(nn.functional.cross_entropy(out, data.y_train)),
                                float((out.argmax(1) == data.y_train).float().mean())))
            if step == spec.steps:
                break
            start = (step * spec.batch) % usable
            idx = order[start : start + spec.batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
        logs.append(log)
    return logs


# module archs (torch.func ensembles): the digits CNN of galanti.conv_wd and the pointer-task
# attention net of kobayashi.attention_wd, under SGD with momentum
MODULE_STEPS = 100


def module_case(name: str):
    """(NetSpec, Dataset, 64 member DynamicsSpecs) of module case ``name``: 8 seeds x 8 wds."""
    from rankbias.engine.data import make_data, pointer
    from rankbias.engine.dynamics import DynamicsSpec
    from rankbias.engine.nets import NetSpec

    if name == "digits_cnn":
        spec, data, batch = NetSpec("conv", (1, 32, 32, 32, 10), batchnorm=True), make_data({"kind": "digits", "seed": 0}), 16
    else:
        spec, data, batch = NetSpec("attention", (8, 32, 16), heads=4, d_head=8, vocab=16), pointer(2000, seed=0), 32
    members = [DynamicsSpec("sgd", "ce", lr=0.05, wd=wd, batch=batch, steps=MODULE_STEPS, seed=s, log_points=2,
                            optimizer="sgd", momentum=0.9) for s in range(8) for wd in ENGINE_WDS]
    return spec, data, members


def module_plain_loop(spec, data, members) -> list[list[tuple]]:
    """What a researcher writes without rankbias for module runs: one model and
    ``torch.optim.SGD(momentum)`` per run on the same batches, logging train and test loss
    and accuracy at the ensemble's log steps (the ensemble's work)."""
    import torch
    from torch import nn

    from rankbias.engine.dynamics import log_steps
    from rankbias.engine.models import build_model

    n, logs = len(data.x_train), []
    for m in members:
        model = build_model(spec, m.seed, data.shape)
        opt = torch.optim.SGD(model.parameters(), lr=m.lr, weight_decay=m.wd, momentum=m.momentum)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(m.seed))
        at, log = set(log_steps(m.steps, m.log_points)), []
        for step in range(m.steps + 1):
            if step in at:
                model.eval()
                with torch.no_grad():
                    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
                        out = model(x)
                        log.append((step, float(nn.functional.cross_entropy(out, y)),
                                    float((out.argmax(1) == y).float().mean())))
                model.train()
            if step == m.steps:
                break
            start = (step * m.batch) % (n - n % m.batch)
            idx = order[start : start + m.batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
        logs.append(log)
    return logs
