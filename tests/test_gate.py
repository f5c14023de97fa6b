"""Runs to a stationary point: a gated gd or gf run goes on past its budget until
||grad L + wd theta|| / ||grad L|| <= gate, up to its cap, and records its first pass."""

import math

import numpy as np
import torch
import pytest

from rankbias.engine import data as D
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import train_ensemble
from rankbias.engine.metrics import stationarity
from rankbias.engine.nets import NetSpec, build
from rankbias.experiments.config import RunConfig
from rankbias.experiments.runner import run_one
from reference import train

DATA = D.gaussian_mixture(120, 6, 3, 1.0, seed=0)
NET = NetSpec("deep_linear", (6, 8, 3))


def gd(wd, seed=0, steps=400, cap=3000):
    return DynamicsSpec("gd", "ce", lr=0.2, wd=wd, steps=steps, gate=0.1, max_steps=cap, seed=seed, log_points=4)


def test_identity_keeps_the_gate_for_gd_and_gf_and_sgd_ignores_it():
    assert {"gate", "max_steps"} <= set(gd(0.1).identity()) and "max_flow_time" not in gd(0.1).identity()
    sgd = DynamicsSpec("sgd", "ce", lr=0.1, batch=8, steps=10, gate=0.1, max_steps=20)
    assert not sgd.gated and not {"gate", "max_steps"} & set(sgd.identity())
    gf = DynamicsSpec("gf", "ce", wd=0.1, flow_time=2.0, gate=0.1, max_flow_time=4.0, max_steps=7)
    assert gf.gated and {"gate", "max_flow_time"} <= set(gf.identity()) and "max_steps" not in gf.identity()


def test_gated_members_stop_at_the_first_passing_check_after_the_budget():
    members = [gd(0.3, 0), gd(0.01, 1), gd(0.0, 2)]
    wds = [m.wd for m in members]
    seen = []  # every gate check: the stationarity of each member

    def measure(ens):
        values = stationarity(NET, "ce", *ens.effective(), DATA, wds)
        seen.append(values)
        return values

    last = {}
    results = train_ensemble(NET, DATA, members, on_log=lambda at, ens, alive: last.update({r: at for r in alive}),
                             stationarity=measure)
    interval = 400 // 200
    checks = np.array(seen)  # (checks, R); check i was made at step i * interval
    for r in (0, 1):
        passing = np.flatnonzero(checks[:, r] <= 0.1) * interval
        stop = passing[passing >= 400][0]
        assert results[r].status == "done" and results[r].steps == stop == last[r]  # logged where it stopped
        assert results[r].gate_step == passing[0] and results[r].horizon == pytest.approx(0.2 * wds[r] * stop)
        assert results[r].log[-1]["at"] == stop
    assert results[0].steps == 400 < results[1].steps < 3000  # passed before its budget; weaker decay: later
    # no decay: ||grad L|| / ||grad L|| = 1 at every check, never on the gate; trained to the cap
    assert results[2].steps == 3000 and results[2].gate_step is None and np.all(checks[:, 2] == pytest.approx(1.0))


def test_a_gated_gd_run_alone_trains_as_an_ensemble_and_stores_its_first_pass():
    data = dict(kind="mixture", n=120, dim=6, classes=3, std=1.0, seed=0)
    rec = run_one(RunConfig(data, NET, gd(0.3), seed=0))
    final = {name: value for step, layer, name, value in rec.metrics if layer == -1 and step == rec.steps}
    assert rec.status == "done" and 400 <= rec.steps < 3000
    assert final["stationarity"] <= 0.1 and 0 <= final["gate_step"] <= rec.steps


def test_gated_gradient_flow_stops_on_the_gate_and_an_undecayed_flow_runs_to_its_cap():
    spec = DynamicsSpec("gf", "ce", wd=0.3, flow_time=10.0, max_flow_time=200.0, gate=0.1, log_points=4)
    net = build(NET, 0)
    result = train(net, DATA, spec)
    ws = [w.detach().double()[None] for w in net.weights()]
    assert result.status == "done" and 10.0 <= result.steps < 200.0 and result.log[-1]["at"] == result.steps
    assert math.isclose(result.steps / 0.05, round(result.steps / 0.05), abs_tol=1e-6)  # a check time: every 10/200
    assert stationarity(NET, "ce", ws, None, DATA, [0.3])[0] <= 0.1  # float64 weights: measured in float64
    assert result.gate_step <= result.steps and result.horizon == pytest.approx(0.3 * result.steps)
    plain = train(build(NET, 0), DATA, DynamicsSpec("gf", "ce", wd=0.0, flow_time=1.0, max_flow_time=3.0, gate=0.1,
                                                    log_points=3))
    assert plain.steps == 3.0 and plain.gate_step is None and plain.log[-1]["at"] == 3.0


def test_an_ungated_flow_logs_the_same_geometric_times_as_before():
    result = train(build(NET, 0), DATA, DynamicsSpec("gf", "ce", wd=0.1, flow_time=5.0, log_points=5))
    expected = np.unique(np.concatenate([[0.0], np.geomspace(5.0 / 1e3, 5.0, 4)]))
    np.testing.assert_allclose([row["at"] for row in result.log], expected)
    assert result.steps == 5.0 and result.gate_step is None and result.solver["nfe"] > 0


def test_members_past_the_gate_are_retired_and_the_others_step_exactly_as_before(monkeypatch):
    from rankbias.engine import ensemble as E

    members = [gd(0.3, 0), gd(0.01, 1), gd(0.0, 2)]
    wds = [m.wd for m in members]

    def train(stepping):
        live, weights = [], []

        def on_log(at, ens, alive):
            live.append(len(ens.live))
            weights.append([w.clone() for w in ens.effective()[0]])

        results = train_ensemble(NET, DATA, members, on_log=on_log,
                                 stationarity=lambda ens: stationarity(NET, "ce", *ens.effective(), DATA, wds))
        return results, live, weights

    retired = train(True)
    monkeypatch.setattr(E.Ensemble, "retire", lambda self, live: None)  # every member steps to the end
    full = train(False)
    assert retired[1][-1] == 1 and set(full[1]) == {3}  # two stopped early: the last logs stepped one member
    assert [r.steps for r in retired[0]] == [r.steps for r in full[0]] == [400, 624, 3000]
    assert [r.log for r in retired[0]] == [r.log for r in full[0]]  # losses and accuracies, bit for bit
    for a, b in zip(retired[2], full[2]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))  # every member's weights, stopped ones included
