"""GD / SGD / gradient flow against hand-computed and closed-form references."""

import numpy as np
import pytest
import scipy.linalg
import torch

from rankbias.engine import data as D
from rankbias.engine.dynamics import DynamicsSpec, log_steps
from rankbias.engine.losses import loss_and_grad, loss_per_sample
from rankbias.engine.nets import NetSpec, build
from reference import batch_indices, train


def _linear(d=6, k=3, seed=0):
    return build(NetSpec("deep_linear", (d, k)), seed=seed)


def test_one_gd_step_is_w_minus_lr_grad_plus_wd_w():
    data = D.linear_teacher(40, 6, 3, seed=1)
    net = _linear()
    W0 = net.weights()[0].detach().clone()
    X, Y = data.x_train, data.y_train
    grad = (W0 @ X.T @ X - Y.T @ X) / len(X)  # d/dW of mean ||W x - y||^2 / 2
    train(net, data, DynamicsSpec("gd", "mse", lr=0.3, wd=0.05, steps=1))
    torch.testing.assert_close(net.weights()[0].detach(), W0 - 0.3 * (grad + 0.05 * W0))


def test_zero_gradient_leaves_pure_exponential_decay():
    data = D.linear_teacher(20, 6, 3, seed=2)
    zero = D.Dataset(data.spec, "regression", torch.zeros_like(data.x_train), torch.zeros_like(data.y_train),
                     data.x_test, data.y_test)
    net = _linear()
    W0 = net.weights()[0].detach().clone()
    result = train(net, zero, DynamicsSpec("gd", "mse", lr=0.1, wd=0.2, steps=50))
    torch.testing.assert_close(net.weights()[0].detach(), W0 * (1 - 0.1 * 0.2) ** 50)
    assert result.horizon == pytest.approx(0.1 * 0.2 * 50)


def test_gradient_flow_matches_the_closed_form_linear_solution():
    data = D.linear_teacher(50, 6, 3, seed=3)
    net = _linear()
    W0 = net.weights()[0].detach().double().numpy()
    X, Y = data.x_train.double().numpy(), data.y_train.double().numpy()
    wd, t = 0.1, 4.0
    C = X.T @ X / len(X) + wd * np.eye(6)
    W_star = (Y.T @ X / len(X)) @ np.linalg.inv(C)
    expected = W_star + (W0 - W_star) @ scipy.linalg.expm(-C * t)
    result = train(net, data, DynamicsSpec("gf", "mse", wd=wd, flow_time=t, log_points=4))
    np.testing.assert_allclose(net.weights()[0].detach().double().numpy(), expected, atol=1e-6)
    assert result.status == "done" and result.horizon == pytest.approx(wd * t)
    assert result.solver["method"] == "dopri5" and result.solver["nfe"] > 0
    losses = [row["train_loss"] for row in result.log]
    assert all(a >= b - 1e-12 for a, b in zip(losses, losses[1:]))  # a gradient flow never climbs


def test_sgd_batches_are_without_replacement_per_epoch():
    gen = torch.Generator().manual_seed(0)
    batches = batch_indices(10, 3, gen)
    first = torch.cat([next(batches) for _ in range(3)])
    second = torch.cat([next(batches) for _ in range(3)])
    assert len(set(first.tolist())) == 9 and len(set(second.tolist())) == 9
    assert not torch.equal(first, second)


def test_sgd_budget_in_epochs_and_steps_and_determinism():
    data = D.gaussian_mixture(100, 8, 3, 0.5, seed=4, test=20)
    spec = NetSpec("deep_relu", (8, 16, 3))
    by_epochs = train(build(spec, 0), data, DynamicsSpec("sgd", "ce", lr=0.1, wd=0.01, batch=16, epochs=3))
    assert by_epochs.steps == 3 * (100 // 16) and by_epochs.horizon == pytest.approx(0.1 * 0.01 * 18)
    a = train(build(spec, 0), data, DynamicsSpec("sgd", "ce", lr=0.1, wd=0.01, batch=16, steps=18))
    assert a.log == by_epochs.log  # same seed, same steps: identical trajectory
    b = train(build(spec, 0), data, DynamicsSpec("sgd", "ce", lr=0.1, wd=0.01, batch=16, steps=18, seed=1))
    assert a.log[-1]["train_loss"] != b.log[-1]["train_loss"]
    assert [row["at"] for row in a.log] == log_steps(18, 20)
    assert {"train_loss", "train_acc", "test_loss", "test_acc"} <= set(a.log[-1])


def test_on_log_sees_every_log_point():
    data = D.separable(30, 5, 0.5, seed=5)
    seen = []
    train(build(NetSpec("deep_linear", (5, 4, 1)), 0), data, DynamicsSpec("gd", "logistic", lr=0.1, steps=100, log_points=6),
          on_log=lambda at, net: seen.append(at))
    assert seen == log_steps(100, 6) and seen[0] == 0 and seen[-1] == 100


def test_a_diverging_run_is_reported_not_raised():
    data = D.gaussian_mixture(50, 8, 3, 0.5, seed=6)
    result = train(build(NetSpec("deep_relu", (8, 32, 32, 3)), 0), data,
                   DynamicsSpec("gd", "ce", lr=1e5, wd=0.01, steps=100))
    assert result.status == "diverged" and 0 < result.diverged_at < 100
    assert result.horizon == pytest.approx(1e5 * 0.01 * result.diverged_at)


@pytest.mark.parametrize("loss", ["ce", "logistic", "mse"])
def test_closed_form_loss_gradient_equals_autograd(loss):
    g = torch.Generator().manual_seed(0)
    out = (3 * torch.randn(5, 7, 1 if loss == "logistic" else 4, generator=g)).requires_grad_(True)  # (R, B, k)
    y = {"ce": torch.randint(0, 4, (5, 7), generator=g), "logistic": torch.randint(0, 2, (5, 7), generator=g) * 2.0 - 1,
         "mse": torch.randn(5, 7, 4, generator=g)}[loss]
    per_sample, grad = loss_and_grad(loss, out.detach(), y)
    (expected,) = torch.autograd.grad(loss_per_sample(loss, out, y).sum(), out)
    torch.testing.assert_close(per_sample, loss_per_sample(loss, out, y).detach())
    torch.testing.assert_close(grad, expected)


def test_log_steps_are_geometric_unique_and_include_both_ends():
    steps = log_steps(20000, 20)
    assert steps[0] == 0 and steps[-1] == 20000 and steps == sorted(set(steps))
    ratios = np.diff(np.log(steps[2:]))
    assert ratios.max() < 2 * ratios.mean() + 1e-9


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="adam", loss="ce", lr=0.1, steps=1), r"'kind' must be one of \['gd', 'sgd', 'gf'\]; got 'adam'"),
        (dict(kind="gd", loss="hinge", lr=0.1, steps=1), r"'loss' must be one of .*got 'hinge'"),
        (dict(kind="gd", loss="ce", lr=-0.1, steps=1), r"'lr' must be a finite float > 0 for gd; got -0\.1"),
        (dict(kind="gd", loss="ce", lr=0.1, wd=-1.0, steps=1), r"'wd' must be a finite float >= 0; got -1\.0"),
        (dict(kind="gd", loss="ce", lr=0.1), r"'steps' must be an int > 0 for gd; got None"),
        (dict(kind="sgd", loss="ce", lr=0.1, batch=4, steps=5, epochs=2), r"exactly one of 'steps' and 'epochs'"),
        (dict(kind="sgd", loss="ce", lr=0.1, steps=5), r"'batch' must be an int > 0 for sgd; got None"),
        (dict(kind="gf", loss="ce"), r"'flow_time' must be a float > 0 for gf; got None"),
        (dict(kind="gd", loss="ce", lr=0.1, steps=10, max_steps=20), r"'gate' must be a finite float > 0 when 'max_steps'"),
        (dict(kind="gd", loss="ce", lr=0.1, steps=10, gate=0.1), r"'max_steps' must be set and >= the budget 10"),
        (dict(kind="gd", loss="ce", lr=0.1, steps=10, gate=0.1, max_steps=5), r"'max_steps' must be .* got 5"),
        (dict(kind="gf", loss="ce", flow_time=2.0, gate=0.1), r"'max_flow_time' must be set and >= the budget 2\.0"),
        (dict(kind="gf", loss="ce", flow_time=2.0, gate=-1.0, max_flow_time=4.0), r"'gate' must be a finite float > 0"),
    ],
)
def test_spec_errors_name_field_rule_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicsSpec(**kwargs)


def test_batch_larger_than_the_data_is_refused():
    data = D.gaussian_mixture(20, 4, 2, 0.5, seed=7)
    with pytest.raises(ValueError, match=r"'batch' must be <= the 20 training samples; got 64"):
        train(build(NetSpec("deep_relu", (4, 8, 2)), 0), data, DynamicsSpec("sgd", "ce", lr=0.1, batch=64, steps=3))


def test_gradient_flow_with_a_frozen_outer_layer_keeps_it_fixed():
    a, _ = D.subspace_tasks(40, 16, 4, 0.0, seed=8)
    net = build(NetSpec("shallow_relu", (16, 32, 1), fixed_outer=True), seed=0)
    outer = net.weights()[1].detach().clone()
    result = train(net, a, DynamicsSpec("gf", "logistic", wd=1e-2, flow_time=5.0, log_points=3))
    assert result.status == "done" and result.log[-1]["train_loss"] < result.log[0]["train_loss"]
    assert net.weights()[0].dtype == torch.float32 and torch.equal(net.weights()[1], outer)
