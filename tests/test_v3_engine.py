"""What claims version 3's setups need from the engine: PyTorch's MSE, the new data sets,
a normal init, float64 GD to an absolute gate, evenly spaced log points with ``moved``,
and the attention layer formed at its readout only."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rankbias.engine.data import make_data
from rankbias.engine.dynamics import DynamicsSpec, log_steps
from rankbias.engine.functional import Stacked
from rankbias.engine.losses import loss_and_grad, loss_value
from rankbias.engine.models import build_model
from rankbias.engine.nets import NetSpec
from rankbias.engine.probes import ModuleTracker
from rankbias.experiments.config import RunConfig
from rankbias.experiments.execute import train_group


def test_mse_mean_is_torchs_mse_loss_with_its_gradient():
    out, y = torch.randn(7, 3, dtype=torch.float64, requires_grad=True), torch.randn(7, 3, dtype=torch.float64)
    assert float(loss_value("mse_mean", out.detach(), y)) == pytest.approx(float(F.mse_loss(out.detach(), y)), rel=1e-14)
    per_sample, grad = loss_and_grad("mse_mean", out.detach().clone(), y)
    (F.mse_loss(out, y, reduction="sum") / 3).backward()  # d (sum of per-sample losses) / d out
    torch.testing.assert_close(grad, out.grad, rtol=1e-14, atol=0)
    torch.testing.assert_close(per_sample, ((out - y) ** 2).mean(1).detach(), rtol=1e-14, atol=0)


def test_diagonal_target_gives_a_linear_map_the_loss_frobenius_squared():
    data = make_data(dict(kind="diagonal_target", n=5, low=0.2, high=1.0, seed=3))
    W = torch.randn(5, 5, dtype=torch.float64)
    D = torch.diag(torch.linspace(0.2, 1.0, 5, dtype=torch.float64))
    loss = loss_value("mse_mean", data.x_train.double() @ W.T, data.y_train.double())
    assert float(loss) == pytest.approx(float(((W - D) ** 2).sum()), rel=1e-6)


def test_the_teachers_have_the_stated_rank_and_form():
    low = make_data(dict(kind="low_rank_teacher", n=48, dim=64, outputs=16, rank=4, seed=0))
    T = low.extras["teacher"]
    assert np.linalg.matrix_rank(T) == 4 and T.shape == (16, 64)
    np.testing.assert_allclose(low.y_train.numpy(), low.x_train.double().numpy() @ T.T, rtol=1e-5, atol=1e-5)
    relu = make_data(dict(kind="relu_teacher", n=200, dim=20, units=4, seed=0))
    w = relu.extras["teacher"]
    expected = np.maximum(relu.x_train.double().numpy() @ w.T, 0).sum(1, keepdims=True)
    np.testing.assert_allclose(relu.y_train.numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'rank' must be in"):
        make_data(dict(kind="low_rank_teacher", n=8, dim=4, outputs=3, rank=5, seed=0))


def test_init_std_draws_normal_weights_and_only_for_module_archs():
    model = build_model(NetSpec("factorized", (200, 200, 200), init_std=0.1), seed=0)
    w = torch.cat([p.flatten() for p in model.parameters()])
    assert float(w.std()) == pytest.approx(0.1, rel=0.02) and float(w.abs().max()) > 0.35  # not U(-b, b)
    default = build_model(NetSpec("factorized", (200, 200, 200)), seed=0)
    assert float(torch.cat([p.flatten() for p in default.parameters()]).abs().max()) <= 1 / math.sqrt(200)
    with pytest.raises(ValueError, match="'init_std' must be a finite float > 0"):
        NetSpec("deep_relu", (4, 4, 2), init_std=0.1)


def test_float64_gd_runs_to_the_absolute_gate_and_finds_the_soft_thresholded_spectrum():
    wd = 0.5
    config = RunConfig(dict(kind="diagonal_target", n=5, low=0.2, high=1.0, seed=0),
                       NetSpec("factorized", (5, 5, 5), init_std=0.1),
                       DynamicsSpec("gd", "mse_mean", wd=wd, lr=0.05, steps=1000, gate=1e-7, gate_measure="absolute",
                                    max_steps=200000, dtype="float64"), seed=1)
    (rec,) = train_group([config], device="cpu")
    assert rec.status == "done"
    gate = [v for _, _, name, v in rec.metrics if name == "gate_step"]
    assert gate and rec.steps == gate[0] >= 1000  # stopped at its first passing check after the budget
    last = max(a for a, _, _ in rec.spectra)
    product = rec.solver["layers"].index("product")
    s = next(sig for a, layer, sig in rec.spectra if a == last and layer == product)
    expected = np.maximum(np.linspace(1.0, 0.2, 5) - wd / 2, 0)
    np.testing.assert_allclose(s, expected, atol=1e-6)
    with pytest.raises(ValueError, match="'gate_measure' must be one of"):
        DynamicsSpec("gd", "mse", lr=0.1, steps=10, gate_measure="absolute")
    with pytest.raises(ValueError, match="'dtype' must be \"float64\""):
        DynamicsSpec("gd", "mse", lr=0.1, steps=10, dtype="float16")


def test_linear_log_points_and_moved_read_the_last_interval():
    assert log_steps(60000, 11, spacing="linear") == list(range(0, 60001, 6000))
    assert log_steps(100, 3) == [0, 1, 10, 100]  # geometric, as before
    spec = NetSpec("factorized", (3, 2))
    data = make_data(dict(kind="low_rank_teacher", n=6, dim=3, outputs=2, rank=1, seed=0))
    models = [build_model(spec, s, data.shape) for s in (0, 1)]
    tracker = ModuleTracker("mse_mean", [0.0, 0.0])
    first = tracker(Stacked(models, spec, data.shape), data)
    assert all(name != "moved" for _, name, _ in first[0][0])
    before = torch.cat([p.detach().flatten() for p in models[1].parameters()])
    with torch.no_grad():
        models[1].layers[0].weight.mul_(1.5)
    after = torch.cat([p.detach().flatten() for p in models[1].parameters()])
    rows = dict(((layer, name), v) for layer, name, v in tracker(Stacked(models, spec, data.shape), data)[1][0])
    assert rows[(-1, "moved")] == pytest.approx(float((after - before).norm() / after.norm()), rel=1e-6)


def _full_attention(model, x):
    """The textbook layer over every position, then read at the readout position."""
    h = model.embed[x.long()] + model.position  # (N, L, d)
    q, k, v = (torch.einsum("nld,hde->nhle", h, w) for w in (model.query, model.key, model.value))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(model.spec.d_head), -1)
    h = h + torch.einsum("nhle,hed->nld", att @ v, model.out)
    return model.unembed(h[:, model.readout])


@pytest.mark.parametrize("readout", [0, 3])
def test_attention_formed_at_its_readout_equals_the_layer_over_every_position(readout):
    spec = NetSpec("attention", (5, 8, 6), heads=2, d_head=4, vocab=6, readout=readout)
    data = make_data(dict(kind="pointer", n=40, seed=0, length=5, values=6))
    model = build_model(spec, seed=2).double()
    torch.testing.assert_close(model(data.x_train.double()), _full_attention(model, data.x_train), rtol=1e-12,
                               atol=1e-12)


def test_the_wide_attention_pass_gives_each_members_own_logits():
    spec = NetSpec("attention", (5, 8, 6), heads=2, d_head=4, vocab=6, readout=2, bias=True)
    data = make_data(dict(kind="pointer", n=40, seed=0, length=5, values=6))
    models = [build_model(spec, seed=s).double() for s in (1, 2, 3)]
    stacked = Stacked(models, spec, data.shape)
    x = torch.stack([data.x_train.double()[i::3][:13] for i in range(3)])  # (3, 13, 5): each member its own inputs
    wide = stacked.base.wide(stacked.state, x)
    torch.testing.assert_close(wide, torch.stack([m(xs) for m, xs in zip(models, x)]), rtol=1e-12, atol=1e-12)


def test_sgd_members_that_differ_only_in_a_gate_they_ignore_train_as_one_ensemble():
    from rankbias.engine.ensemble import train_ensemble

    data = make_data(dict(kind="mixture", n=40, dim=4, classes=2, std=0.5, seed=0))
    gated = DynamicsSpec("sgd", "ce", lr=0.1, wd=1e-2, batch=8, steps=20, gate=0.1, max_steps=100, log_points=2)
    plain = DynamicsSpec("sgd", "ce", lr=0.1, wd=0.0, batch=8, steps=20, log_points=2)
    results = train_ensemble(NetSpec("deep_relu", (4, 6, 2)), data, [gated, plain])
    assert [r.status for r in results] == ["done", "done"] and [r.steps for r in results] == [20, 20]
    with pytest.raises(ValueError, match="members must share 'gate'"):  # GD reads its gate
        train_ensemble(NetSpec("deep_relu", (4, 6, 2)), data,
                       [DynamicsSpec("gd", "ce", lr=0.1, steps=20, gate=0.1, max_steps=100),
                        DynamicsSpec("gd", "ce", lr=0.1, steps=20)])
