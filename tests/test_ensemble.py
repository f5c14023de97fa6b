"""An ensemble member follows its solo run; divergence stays with its member."""

import pytest
import torch

from rankbias.engine import data as D
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import train_ensemble
from rankbias.engine.nets import NetSpec, build
from reference import train

DATA = D.gaussian_mixture(200, 8, 3, 0.5, seed=0, test=40)


@pytest.mark.parametrize(
    "spec",
    [
        NetSpec("deep_relu", (8, 16, 16, 3)),
        NetSpec("residual_relu", (8, 12, 12, 12, 3), linear_layers=2),
        NetSpec("deep_relu", (8, 16, 3), bias=True),
    ],
)
def test_each_member_matches_its_solo_run(spec):
    members = [DynamicsSpec("sgd", "ce", lr=lr, wd=wd, batch=8, steps=150, seed=seed, log_points=6)
               for lr, wd, seed in ((0.1, 0.0, 0), (0.05, 0.02, 1), (0.2, 0.1, 2), (0.1, 0.5, 3))]
    nets = {}
    results = train_ensemble(spec, DATA, members, on_log=lambda at, ens, alive: nets.update({r: ens.member(r) for r in alive}))
    for r, member in enumerate(members):
        solo_net = build(spec, member.seed)
        solo = train(solo_net, DATA, member)
        assert results[r].status == solo.status == "done" and results[r].steps == solo.steps == 150
        assert results[r].horizon == pytest.approx(solo.horizon)
        assert [row["at"] for row in results[r].log] == [row["at"] for row in solo.log]
        for a, b in zip(results[r].log, solo.log):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-6)
        for wa, wb in zip(nets[r].weights(), solo_net.weights()):  # the last log point is the end
            torch.testing.assert_close(wa, wb, rtol=1e-4, atol=1e-5)


def test_gd_members_match_and_the_outer_layer_can_be_fixed():
    a, _ = D.subspace_tasks(60, 16, 4, 0.0, seed=1)
    spec = NetSpec("shallow_relu", (16, 32, 1), fixed_outer=True)
    members = [DynamicsSpec("gd", "logistic", lr=0.5, wd=wd, steps=80, seed=s) for s, wd in ((0, 0.0), (1, 1e-2))]
    nets = {}
    train_ensemble(spec, a, members, on_log=lambda at, ens, alive: nets.update({r: ens.member(r) for r in alive}))
    for r, member in enumerate(members):
        solo = build(spec, member.seed)
        train(solo, a, member)
        torch.testing.assert_close(nets[r].weights()[0], solo.weights()[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(nets[r].weights()[1], build(spec, member.seed).weights()[1])  # never trained


def test_deep_linear_mse_members_match_their_solo_runs():
    data = D.linear_teacher(64, 6, 4, seed=2, test=16)
    spec = NetSpec("deep_linear", (6, 10, 10, 4))
    members = [DynamicsSpec("sgd", "mse", lr=0.05, wd=wd, batch=16, steps=60, seed=s) for s, wd in ((0, 0.0), (1, 0.05))]
    nets = {}
    train_ensemble(spec, data, members, on_log=lambda at, ens, alive: nets.update({r: ens.member(r) for r in alive}))
    for r, member in enumerate(members):
        solo = build(spec, member.seed)
        train(solo, data, member)
        for wa, wb in zip(nets[r].weights(), solo.weights()):
            torch.testing.assert_close(wa, wb, rtol=1e-4, atol=1e-5)


def test_a_diverging_member_is_frozen_and_the_others_go_on():
    spec = NetSpec("deep_relu", (8, 32, 32, 3))
    members = [DynamicsSpec("gd", "ce", lr=lr, wd=0.01, steps=60, seed=0) for lr in (0.1, 1e5, 0.2)]
    results = train_ensemble(spec, DATA, members)
    assert [r.status for r in results] == ["done", "diverged", "done"]
    assert 0 < results[1].diverged_at < 60 and results[1].steps == results[1].diverged_at
    solo = train(build(spec, 0), DATA, members[2])
    assert results[2].log[-1]["train_loss"] == pytest.approx(solo.log[-1]["train_loss"], rel=1e-4)


@pytest.mark.parametrize(
    "members,match",
    [
        ([DynamicsSpec("sgd", "ce", lr=0.1, batch=8, steps=5), DynamicsSpec("sgd", "ce", lr=0.1, batch=16, steps=5)],
         r"members must share 'batch'; got \['16', '8'\]"),
        ([DynamicsSpec("gf", "ce", flow_time=1.0)], r"'kind' must be gd or sgd; got 'gf'"),
        ([DynamicsSpec("sgd", "ce", lr=0.1, batch=512, steps=5)], r"'batch' must be <= the 200 training samples"),
    ],
)
def test_ensemble_errors(members, match):
    with pytest.raises(ValueError, match=match):
        train_ensemble(NetSpec("deep_relu", (8, 16, 3)), DATA, members)


def test_float32_updates_round_once_per_step():
    """Regression: ``V.baddbmm_(h^T, e)`` rounded V once per sample on a CPU for a one-column
    layer, losing ~1% of every small update to a biased rounding; Le & Jegelka's conserved
    W_3^T W_3 - W_2 W_2^T then drifted 1e-2 in 40k GD steps instead of 2e-4.  Each float32
    member stays within float32 noise of the per-run torch.optim loop."""
    data = D.make_data({"kind": "separable", "n": 100, "dim": 20, "margin": 0.5, "seed": 0, "constant_feature": True})
    spec = NetSpec("deep_relu", (21, 40, 40, 1), linear_layers=2)
    member = DynamicsSpec("gd", "logistic", lr=0.02, steps=2000, seed=0, log_points=2)
    nets = {}
    train_ensemble(spec, data, [member], on_log=lambda at, ens, alive: nets.update({r: ens.member(r) for r in alive}))
    solo = build(spec, 0)
    train(solo, data, member)
    for wa, wb in zip(nets[0].weights(), solo.weights()):
        assert float((wa - wb).detach().norm() / wb.detach().norm()) < 2e-6  # biased rounding: 1.5e-5 on the last


def test_the_fused_update_is_taken_only_where_it_equals_the_product_added_once():
    """Where ``_rounds_once`` lets a layer use ``baddbmm_``, V after a step is bit for bit what
    bmm then add_ gives on the step's own data (wide layers, narrow ones, a full batch)."""
    from rankbias.engine.ensemble import Ensemble

    data = D.make_data({"kind": "mixture", "n": 400, "dim": 32, "classes": 4, "std": 1.0, "seed": 0})
    spec = NetSpec("deep_relu", (32, 100, 100, 4))
    for batch in (16, 400):  # a wide layer fuses at B = 16 on MKL, not at B = 400
        x, y = data.x_train[:batch].expand(8, batch, 32), data.y_train[:batch].expand(8, batch)
        lr, wd = torch.full((8,), 0.1), torch.full((8,), 1e-3)
        probed, plain = Ensemble(spec, list(range(8))), Ensemble(spec, list(range(8)))
        plain._rounds_once = lambda k, b: False
        for _ in range(3):
            probed.step("ce", x, y, lr, wd, 1 - 1e-4)
            plain.step("ce", x, y, lr, wd, 1 - 1e-4)
        assert all(torch.equal(a, b) for a, b in zip(probed.V, plain.V))
        assert len(probed._once) == 3  # every layer was probed at this batch size
