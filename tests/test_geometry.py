"""Feature geometry, data span, invariances and merging against direct definitions."""

import numpy as np
import pytest
import torch

from rankbias import geometry as G
from rankbias.data import subspace_tasks
from rankbias.dynamics import DynamicsSpec, train
from rankbias.nets import NetSpec, build


def test_collapse_on_hand_built_features():
    # two classes, means (0,0) and (2,0); within-class offsets +-(0, 1)
    h = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]])
    y = torch.tensor([0, 0, 1, 1])
    out = G.collapse(h, y, 2)
    assert out["tcv"] == pytest.approx(1.0)
    assert out["cdnv"] == pytest.approx((1 + 1) / (2 * 4.0))
    # Sigma_W = diag(0, 1), Sigma_B = diag(1, 0): tr(Sigma_W Sigma_B^+) = 0 -> perfect NC1 along the means
    assert out["nc1"] == pytest.approx(0.0, abs=1e-12)
    collapsed = G.collapse(torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]]), y, 2)
    assert collapsed["tcv"] == 0.0 and collapsed["cdnv"] == 0.0


def test_outside_span_of_inputs_in_a_subspace():
    task, _ = subspace_tasks(200, 32, 8, 0.0, seed=0)
    basis = torch.as_tensor(task.extras["basis"])  # (32, 8)
    span = G.span_basis(task.x_train)
    assert span.shape == (8, 32)  # the inputs span exactly their 8-dim subspace
    inside = torch.randn(5, 8, dtype=torch.float64) @ basis.T
    assert G.outside_span(inside, span) < 1e-6
    outside = torch.randn(5, 32, dtype=torch.float64)
    outside -= (outside @ basis) @ basis.T
    assert G.outside_span(outside, span) == pytest.approx(1.0, abs=1e-6)
    mix = inside / inside.norm() + outside / outside.norm()
    assert G.outside_span(mix, span) == pytest.approx(2**-0.5, rel=1e-5)


def test_activation_classes_and_drift():
    pre = torch.tensor([[1.0, 2.0, -1.0], [1.0, 3.0, 2.0]])  # units 0 and 1 always active, unit 2 not
    classes = G.activation_classes(pre, relu=True)
    assert classes.tolist() == [[0, 1, 2], [1, 0, 2], [2, 2, 0]]
    assert (G.activation_classes(pre, relu=False) == torch.tensor([[0, 1, 1], [1, 0, 1], [1, 1, 0]])).all()
    d0 = torch.zeros(3, 3, dtype=torch.float64)
    d1 = torch.tensor([[0.1, 0.2, 0.5], [0.2, 0.0, 0.0], [0.5, 0.0, 0.3]], dtype=torch.float64)
    assert G.drift_by_class(d0, d1, classes, scale=10.0) == pytest.approx(
        {"drift_diag": 0.03, "drift_same": 0.02, "drift_other": 0.05}
    )


def test_gradient_flow_conserves_deep_linear_invariants():
    """Le & Jegelka: under gradient flow without wd, D_k of linear layers is conserved."""
    task, _ = subspace_tasks(60, 12, 4, 0.0, seed=1)
    net = build(NetSpec("deep_linear", (12, 10, 10, 1)), seed=0)
    w = [x.detach().clone() for x in net.weights()]
    d0 = [G.invariance(a, b) for a, b in zip(w[:-1], w[1:])]
    train(net, task, DynamicsSpec("gf", "logistic", flow_time=10.0, rtol=1e-9, atol=1e-11, log_points=2))
    w1 = [x.detach() for x in net.weights()]
    for k, d in enumerate(d0):
        moved = float((G.invariance(w1[k], w1[k + 1]) - d).abs().max())
        assert moved < 1e-5 * float((w1[k] - w[k]).abs().max() + 1), k  # weights moved; D_k did not


def test_features_match_the_forward_pass_and_merging_sums_weights():
    net = build(NetSpec("residual_relu", (5, 7, 7, 2), linear_layers=1), seed=0)
    x = torch.randn(4, 5)
    feats = G.features(net, x)
    torch.testing.assert_close(feats[-1], net(x))
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
    got = G.collapse(h, y, 7)  # classes 5 and 6 have no samples: skipped
    assert got["nc1"] == pytest.approx(nc1, rel=1e-9)
    assert got["cdnv"] == pytest.approx(cdnv, rel=1e-9)
    assert got["tcv"] == pytest.approx(float((centered**2).sum(1).mean()), rel=1e-12)
