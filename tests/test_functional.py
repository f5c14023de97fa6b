"""The torch.func ensemble: every member equals its run alone under torch.optim (float64)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rankbias.engine.data import Dataset, pointer
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import train_ensemble, written_out
from rankbias.engine.models import build_model
from rankbias.engine.nets import NetSpec
from tests.reference import module_loop

STEPS = 50


def _as64(data: Dataset) -> Dataset:
    cast = (lambda t: t) if data.task == "classes" else (lambda t: t.double())
    return Dataset(data.spec, data.task, data.x_train.double(), cast(data.y_train), data.x_test.double(),
                   cast(data.y_test), data.extras)


def _random(kind: str, n: int, dim: int, classes: int, seed: int = 0) -> Dataset:
    """n random inputs (n, dim) with random labels, as a data set of ``kind`` (its input shape)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, dim, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)
    return Dataset({"kind": kind, "classes": classes}, "classes", x, y, x[:0], y[:0])


DATA = {
    "conv2d": lambda: _random("digits", 40, 64, 10),
    "conv1d": lambda: _random("mnist1d", 40, 40, 10),
    "tabular": lambda: _random("mixture", 40, 6, 3),
    "pointer": lambda: _as64(pointer(40, seed=0, length=4, values=5)),
}
ARCHS = {
    "conv2d_bn": (NetSpec("conv", (1, 4, 4, 10), batchnorm=True), "conv2d"),
    "conv1d_residual": (NetSpec("conv", (1, 4, 4, 10), kernel=5, residual=True, bias=True), "conv1d"),
    "bn_mlp": (NetSpec("bn_mlp", (6, 8, 8, 3)), "tabular"),
    "attention": (NetSpec("attention", (4, 8, 5), heads=2, d_head=4, vocab=5), "pointer"),
    "factorized": (NetSpec("factorized", (6, 5, 5, 3)), "tabular"),
    "mlp": (NetSpec("deep_relu", (6, 8, 3)), "tabular"),
}
OPTIMIZERS = {
    "momentum": dict(optimizer="sgd", momentum=0.9),
    "nesterov": dict(optimizer="sgd", momentum=0.8, nesterov=True),
    "adam": dict(optimizer="adam", lr=1e-2),
    "adamw": dict(optimizer="adamw", lr=1e-2, beta1=0.8),
    "rmsprop": dict(optimizer="rmsprop", lr=1e-3, momentum=0.5),
    "sam_sgd": dict(sam=0.05),
    "sam_adam_cosine": dict(optimizer="adam", lr=1e-2, sam=0.1, schedule="cosine"),
    "sgd_step": dict(optimizer="sgd", momentum=0.5, schedule="step", step_every=20, gamma=0.5),
}


def _members(options: dict) -> list[DynamicsSpec]:
    """Two members with their own seed, lr and wd (SGD, B = 8, ``STEPS`` steps)."""
    base = DynamicsSpec("sgd", "ce", lr=options.pop("lr", 0.05), batch=8, steps=STEPS, log_points=2, **options)
    return [dataclasses.replace(base, seed=3, wd=1e-2), dataclasses.replace(base, seed=4, wd=0.0, lr=base.lr / 2)]


def _trained(spec: NetSpec, data: Dataset, members: list[DynamicsSpec]):
    seen = {}
    results = train_ensemble(spec, data, members, on_log=lambda at, ens, alive: seen.update(ens=ens))
    assert [r.status for r in results] == ["done", "done"]
    return seen["ens"]


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("arch", ARCHS)
def test_member_equals_its_torch_optim_run(arch, opt):
    spec, kind = ARCHS[arch]
    data, members = DATA[kind](), _members(dict(OPTIMIZERS[opt]))
    assert not written_out(spec, members)
    ens = _trained(spec, data, members)
    for r, member in enumerate(members):
        alone = module_loop(build_model(spec, member.seed, data.shape).double(), data, member, STEPS)
        want = alone.state_dict()
        got = ens.member(r).state_dict()
        for name, value in want.items():
            if value.is_floating_point():
                scale = value.abs().max().clamp_min(1e-300)
                assert float((got[name] - value).abs().max() / scale) <= 1e-10, (arch, opt, r, name)
            else:
                assert torch.equal(got[name], value), name
        moved = build_model(spec, member.seed, data.shape).double().state_dict()
        assert any(not torch.equal(moved[n], v) for n, v in want.items() if v.is_floating_point()), "nothing trained"


@pytest.mark.parametrize("spec", [NetSpec("deep_relu", (6, 8, 8, 3)), NetSpec("residual_relu", (6, 8, 8, 3), bias=True),
                                  NetSpec("shallow_relu", (6, 8, 1), fixed_outer=True), NetSpec("deep_linear", (6, 1)),
                                  NetSpec("factorized", (6, 5, 5, 3))], ids=lambda s: s.arch)
def test_the_wide_pass_gives_vmaps_losses_and_gradients_bit_for_bit(spec):
    """MLPs and factorized maps train through their ``wide`` pass (autograd of the summed
    losses), which replaced vmap(grad) for them: the same numbers, in a quarter of the time
    for the small nets of the claims (measured)."""
    from torch.func import functional_call, grad_and_value, vmap

    from rankbias.engine.functional import FuncEnsemble

    data = DATA["tabular"]()
    if spec.widths[-1] == 1:  # one output: +-1 labels for the logistic loss
        sign = (2.0 * (data.y_train > 0) - 1).double()
        data = Dataset(data.spec, "binary", data.x_train, sign, data.x_test, sign[:0])
    loss = "ce" if data.task == "classes" else "logistic"
    members = [dataclasses.replace(m, optimizer="adam", loss=loss) for m in _members({})]
    ens = FuncEnsemble(spec, members, data, STEPS)
    assert hasattr(ens.base, "wide")  # the route under test
    x, y = data.x_train[:8].expand(2, -1, -1), data.y_train[:8].expand(2, -1)
    grads, losses = ens._gradients(loss, ens.params, ens.buffers, x, y)
    want, want_losses = vmap(grad_and_value(ens.loss_fn(loss)))(ens.params, ens.fixed, ens.buffers, x, y)
    assert torch.equal(losses, want_losses) and grads.keys() == want.keys()
    assert all(torch.equal(grads[n], want[n]) for n in want)
    outputs = vmap(lambda p, f, b, xs: functional_call(ens.base, (p, f, b), (xs,)))(ens.params, ens.fixed, ens.buffers, x)
    assert torch.equal(ens.forward(x), outputs)


def test_plain_sgd_on_an_mlp_keeps_the_written_out_trainer():
    spec, members = ARCHS["mlp"][0], _members({})
    assert written_out(spec, members)
    assert not written_out(spec, _members(dict(momentum=0.9)))
    assert not written_out(ARCHS["bn_mlp"][0], members)


def test_a_diverging_member_is_frozen_and_the_other_goes_on():
    spec, kind = ARCHS["bn_mlp"]
    data = DATA[kind]()
    base = DynamicsSpec("sgd", "ce", lr=1e-2, batch=8, steps=STEPS, log_points=2, optimizer="adam")
    members = [dataclasses.replace(base, seed=1), dataclasses.replace(base, seed=2, lr=1e30)]
    results = train_ensemble(spec, data, members)
    assert results[0].status == "done" and results[1].status == "diverged"
    assert results[0].log[-1]["at"] == STEPS


def test_the_example_matrix_declares_module_runs_that_train(tmp_path):
    from pathlib import Path

    from rankbias.experiments.execute import train_group
    from rankbias.experiments.matrix import expand
    from rankbias.experiments.spec import load

    matrix = expand(load(Path(__file__).resolve().parents[1] / "examples" / "modules.toml"), "quick")
    assert sorted(matrix.members) == ["mine.attention_momentum", "mine.cnn_adamw_sam"]
    assert len(matrix.runs) == 2 * 6 + 2 * 3
    config = next(c for c in matrix.runs.values() if c.net.arch == "attention")
    short = dataclasses.replace(config, dynamics=dataclasses.replace(config.dynamics, steps=5, log_points=2))
    (rec,) = train_group([short], "cpu")
    assert rec.status == "done" and rec.solver["layers"][0] == "qk0"
    assert {name for _, _, name, _ in rec.metrics} >= {"imbalance", "feature_rank", "max_abs", "effective_rank"}
