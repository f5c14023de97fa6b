"""Feature geometry, data span, invariances and merging against direct definitions."""

import numpy as np
import pytest
import torch

from rankbias.engine import geometry as G
from rankbias.engine.data import subspace_tasks
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.nets import NetSpec, build
from reference import train


def test_collapse_on_hand_built_features():
    # two classes, means (0,0) and (2,0); within-class offsets +-(0, 1)
    h = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]])
    y = torch.tensor([0, 0, 1, 1])
    out = G.collapse(h[None], y, 2)
    assert float(out["tcv"][0]) == pytest.approx(1.0)
    assert float(out["cdnv"][0]) == pytest.approx((1 + 1) / (2 * 4.0))
    # Sigma_W = diag(0, 1), Sigma_B = diag(1, 0): tr(Sigma_W Sigma_B^+) = 0 -> perfect NC1 along the means
    assert float(out["nc1"][0]) == pytest.approx(0.0, abs=1e-12)
    collapsed = G.collapse(torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]])[None], y, 2)
    assert float(collapsed["tcv"][0]) == 0.0 and float(collapsed["cdnv"][0]) == 0.0
    # members are measured independently: a stack of both gives both
    both = G.collapse(torch.stack([h, torch.zeros(4, 2) + torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]])]), y, 2)
    assert both["tcv"].tolist() == pytest.approx([1.0, 0.0])


def test_outside_span_of_inputs_in_a_subspace():
    task, _ = subspace_tasks(200, 32, 8, 0.0, seed=0)
    basis = torch.as_tensor(task.extras["basis"])  # (32, 8)
    span = G.span_basis(task.x_train)
    assert span.shape == (8, 32)  # the inputs span exactly their 8-dim subspace
    inside = torch.randn(5, 8, dtype=torch.float64) @ basis.T
    outside = torch.randn(5, 32, dtype=torch.float64)
    outside -= (outside @ basis) @ basis.T
    mix = inside / inside.norm() + outside / outside.norm()
    shares = G.outside_span(torch.stack([inside, outside, mix]), span)
    assert float(shares[0]) < 1e-6
    assert float(shares[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(shares[2]) == pytest.approx(2**-0.5, rel=1e-5)


def test_activation_classes_and_drift():
    pre = torch.tensor([[[1.0, 2.0, -1.0], [1.0, 3.0, 2.0]]])  # units 0 and 1 always active, unit 2 not
    classes = G.activation_classes(pre, relu=True)
    assert classes[0].tolist() == [[0, 1, 2], [1, 0, 2], [2, 2, 0]]
    assert (G.activation_classes(pre, relu=False)[0] == torch.tensor([[0, 1, 1], [1, 0, 1], [1, 1, 0]])).all()
    d0 = torch.zeros(1, 3, 3, dtype=torch.float64)
    d1 = torch.tensor([[[0.1, 0.2, 0.5], [0.2, 0.0, 0.0], [0.5, 0.0, 0.3]]], dtype=torch.float64)
    got = G.drift_by_class(d0, d1, classes, torch.tensor([10.0], dtype=torch.float64))
    assert {k: float(v[0]) for k, v in got.items()} == pytest.approx({"drift_diag": 0.03, "drift_same": 0.02, "drift_other": 0.05})
    # a class with no entries reads NaN
    lone = G.drift_by_class(d0, d1, torch.zeros(1, 3, 3, dtype=torch.int8), torch.tensor([1.0], dtype=torch.float64))
    assert torch.isnan(lone["drift_same"]).all() and torch.isnan(lone["drift_other"]).all()


def test_gradient_flow_conserves_deep_linear_invariants():
    """Le & Jegelka: under gradient flow without wd, D_k of linear layers is conserved."""
    task, _ = subspace_tasks(60, 12, 4, 0.0, seed=1)
    net = build(NetSpec("deep_linear", (12, 10, 10, 1)), seed=0)
    w = G.stacked(net)[0]
    d0 = [G.invariance(a, b) for a, b in zip(w[:-1], w[1:])]
    train(net, task, DynamicsSpec("gf", "logistic", flow_time=10.0, rtol=1e-9, atol=1e-11, log_points=2))
    w1 = G.stacked(net)[0]
    for k, d in enumerate(d0):
        moved = float((G.invariance(w1[k], w1[k + 1]) - d).abs().max())
        assert moved < 1e-5 * float((w1[k] - w[k]).abs().max() + 1), k  # weights moved; D_k did not


def test_trace_matches_the_forward_pass_and_merging_sums_weights():
    net = build(NetSpec("residual_relu", (5, 7, 7, 2), linear_layers=1), seed=0)
    x = torch.randn(4, 5)
    pre, post = G.trace(net.spec, *G.stacked(net), x[None])
    torch.testing.assert_close(post[-1][0], net(x).detach())
    torch.testing.assert_close(pre[0][0], (x @ net.weights()[0].T).detach())
    other = build(NetSpec("residual_relu", (5, 7, 7, 2), linear_layers=1), seed=1)
    summed = G.merged(net, other)
    for p, a, b in zip(summed.parameters(), net.parameters(), other.parameters()):
        torch.testing.assert_close(p, a + b)
    assert np.isfinite(float(summed(x).sum().detach()))


def test_collapse_matches_the_definitions_on_random_features():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (300,), generator=g)
    mu = torch.stack([h[y == c].mean(0) for c in range(5)])
    centered = h - mu[y]
    sigma_w = centered.T @ centered / 300
    between = mu - mu.mean(0)
    nc1 = float(torch.trace(sigma_w @ torch.linalg.pinv(between.T @ between / 5))) / 5
    var = torch.stack([(centered[y == c] ** 2).sum(1).mean() for c in range(5)])
    cdnv = np.mean([float((var[a] + var[b]) / (2 * ((mu[a] - mu[b]) ** 2).sum())) for a in range(5) for b in range(5) if a != b])
    out = G.collapse(h[None], y, 7)  # classes 5, 6 empty: skipped
    got = {k: float(out[k][0]) for k in ("nc1", "cdnv", "tcv")}
    assert got["nc1"] == pytest.approx(nc1, rel=1e-9)
    assert got["cdnv"] == pytest.approx(cdnv, rel=1e-9)
    assert got["tcv"] == pytest.approx(float((centered**2).sum(1).mean()), rel=1e-12)
    torch.testing.assert_close(out["spread"][0], centered.norm(dim=1))


def test_collapse_stays_accurate_in_float32_when_classes_collapse():
    """Means of norm ~100, within-class offsets ~1e-3: a float32 Gram route
    (E||h||^2 - ||mu||^2) would lose every digit of TCV ~1e-6."""
    g = torch.Generator().manual_seed(1)
    y = torch.arange(400) % 4
    means = 100 * torch.randn(4, 16, generator=g, dtype=torch.float64)
    h = means[y] + 1e-3 * torch.randn(400, 16, generator=g, dtype=torch.float64)
    exact = G.collapse(h[None], y, 4)
    fast = G.collapse(h.float()[None], y, 4)
    for name in ("tcv", "nc1", "cdnv"):
        assert float(fast[name][0]) == pytest.approx(float(exact[name][0]), rel=0.05), name
