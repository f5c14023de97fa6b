"""The SQLite store, one run end to end, its metrics, and ``rankbias train``."""

import sqlite3

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.geometry import stacked
from rankbias.engine.metrics import Tracker
from rankbias.engine.nets import NetSpec, build
from rankbias.engine.data import make_data
from rankbias.experiments.config import RunConfig
from rankbias.experiments.runner import run_one
from rankbias.experiments.store import Store, StoreError

MIXTURE = dict(kind="mixture", n=120, dim=8, classes=3, std=0.5, seed=0, test=30)


def _config(**dyn):
    spec = dict(kind="sgd", loss="ce", lr=0.1, wd=0.01, batch=8, steps=60, log_points=5) | dyn
    return RunConfig(MIXTURE, NetSpec("deep_relu", (8, 16, 16, 3)), DynamicsSpec(**spec), seed=1)


def test_name_is_canonical_sorted_and_names_only_used_fields():
    name = _config().name()
    assert name.startswith("sgd[arch=deep_relu,batch=8,bias=False,data=mixture,data.classes=3,")
    keys = [kv.split("=")[0] for kv in name[4:-1].split(",")]
    assert keys == sorted(keys) and "rtol" not in keys and "flow_time" not in keys
    assert _config().hash() == _config().hash() != _config(lr=0.2).hash()


def test_run_is_stored_whole_and_identical_for_the_same_seed(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rec = run_one(_config(), store)
    assert rec.status == "done" and rec.horizon == pytest.approx(0.1 * 0.01 * 60)
    runs = store.runs()
    assert runs.name.tolist() == [rec.name] and runs.provenance[0]["torch"] == torch.__version__
    m = store.metrics(rec.name)
    assert set(m.layer) == {-1, 0, 1, 2}
    assert {"rank_tol", "stable_rank", "alignment", "train_loss", "test_acc"} <= set(m.name)
    spectra = store.spectra(rec.name)
    assert spectra.sigma[0].dtype == np.float32 and len(spectra) == 3 * m.step.nunique()
    # same seed, same metrics (a rerun replaces the run: no doubled rows)
    again = run_one(_config(), store)
    m2 = store.metrics(again.name)
    assert len(m2) == len(m) and np.array_equal(m2.value.to_numpy(), m.value.to_numpy(), equal_nan=True)


def test_diverged_and_failed_runs_are_recorded_and_the_caller_goes_on(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    diverged = run_one(_config(kind="gd", lr=1e5, batch=None, steps=50), store)
    assert diverged.status == "diverged" and diverged.diverged_at is not None
    bad = RunConfig(MIXTURE, NetSpec("deep_relu", (9, 4, 3)), DynamicsSpec("gd", "ce", lr=0.1, steps=3))
    failed = run_one(bad, store)
    assert failed.status == "failed" and "do not fit the data (8 inputs, 3 outputs); use widths 8,...,3" in failed.error
    assert dict(zip(store.runs().name, store.runs().status)) == {diverged.name: "diverged", failed.name: "failed"}


def test_foreign_and_corrupt_store_files_are_refused(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match="is not an SQLite database"):
        Store(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(StoreError, match=r"of another program \(tables: \['users'\]\)"):
        Store(other)


def test_a_store_path_in_a_missing_folder_or_naming_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(StoreError, match=r"its folder .*nowhere does not exist\. Create it \(mkdir -p"):
        Store(tmp_path / "nowhere" / "s.sqlite")
    assert not (tmp_path / "nowhere").exists()  # nothing was created
    with pytest.raises(StoreError, match=r"is a directory; a store is one SQLite file\. Pass a file path"):
        Store(tmp_path)
    done = CliRunner().invoke(app, ["run", "quick", "--store", str(tmp_path / "nowhere" / "s.sqlite")])
    assert done.exit_code == 2 and "does not exist" in done.output and not (tmp_path / "nowhere").exists()


def test_metrics_on_a_hand_built_net():
    net = build(NetSpec("deep_linear", (4, 4, 4)), seed=0)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0])))
        net.layers[1].weight.copy_(2 * torch.eye(4))
    data = make_data(dict(kind="linear_teacher", n=50, dim=4, outputs=4, seed=0))
    rows, spectra = Tracker(net.spec, "mse", 0.1)(*stacked(net), data)[0]
    got = {(layer, name): value for layer, name, value in rows}
    np.testing.assert_allclose(spectra[0], [3, 2, 1, 0], atol=1e-6)
    assert got[(0, "rank_tol")] == 3 and got[(1, "rank_tol")] == 4
    assert got[(0, "fro")] == pytest.approx(14**0.5, rel=1e-6) and got[(1, "spectral")] == pytest.approx(2.0)
    assert got[(-1, "norm_ratio")] == pytest.approx(4.0 / 14**0.5, rel=1e-6)
    # alignment and stationarity against a direct autograd computation
    params = list(net.parameters())
    loss = 0.5 * ((net(data.x_train) - data.y_train) ** 2).sum(1).mean()
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, params)]).double()
    theta = torch.cat([p.detach().reshape(-1) for p in params]).double()
    assert got[(-1, "alignment")] == pytest.approx(float(-(g @ theta) / (g.norm() * theta.norm())), rel=1e-6)
    assert got[(-1, "stationarity")] == pytest.approx(float((g + 0.1 * theta).norm() / g.norm()), rel=1e-6)


def test_cli_train_prints_final_ranks_and_stores_the_run(tmp_path):
    store = tmp_path / "cli.sqlite"
    args = ["train", "--arch", "mlp", "--widths", "8,16,3", "--dynamics", "sgd", "--lr", "0.1", "--wd", "0.01",
            "--batch", "8", "--steps", "40", "--n", "64", "--test", "16", "--store", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rank_tol" in result.output and "stored as sgd[arch=deep_relu" in result.output
    assert Store(store).runs().status.tolist() == ["done"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--widths", "8,x,3"], "'--widths' must be comma-separated ints"),
        (["--widths", "8,16,3", "--lr", "-1", "--steps", "5", "--batch", "4"], "'lr' must be a finite float > 0 for sgd; got -1.0"),
        (["--widths", "8,16,3", "--arch", "cnn", "--lr", "0.1", "--steps", "5", "--batch", "4"], "'arch' must be one of"),
        (["--widths", "8,16,3", "--data", "cifar", "--lr", "0.1", "--steps", "5", "--batch", "4"], "'--data' must be one of"),
        (["--widths", "8,16,3", "--lr", "0.1", "--steps", "5", "--batch", "400", "--n", "64"], "batch 400 exceeds the 64 training samples; use a batch in [1, 64]"),
    ],
)
def test_cli_train_bad_flags_exit_2_with_the_rule(tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", *args, "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_run_configs_trains_ensembles_and_stores_what_run_one_would(tmp_path):
    from rankbias.experiments.config import ensemble_key
    from rankbias.experiments.runner import run_configs

    configs = [RunConfig(MIXTURE, NetSpec("deep_relu", (8, 16, 16, 3)),
                         DynamicsSpec("sgd", "ce", lr=lr, wd=wd, batch=8, steps=60, log_points=5), seed=s)
               for lr, wd, s in ((0.1, 0.0, 0), (0.05, 0.01, 1), (0.2, 0.03, 2))]
    gf = RunConfig(dict(kind="separable", n=40, dim=6, margin=0.2, seed=0), NetSpec("deep_linear", (6, 5, 1)),
                   DynamicsSpec("gf", "logistic", flow_time=2.0, log_points=3))
    assert len({ensemble_key(c) for c in configs}) == 1 and ensemble_key(gf) is None
    done = []
    many = Store(tmp_path / "many.sqlite")
    run_configs([*configs, gf], many, on_done=done.append)
    assert list(many.runs().status) == ["done"] * 4 and sorted(r.name for r in done) == sorted(many.runs().name)
    one = Store(tmp_path / "one.sqlite")
    for config in configs:
        run_one(config, one)
        a, b = many.metrics(config.name()), one.metrics(config.name())
        assert len(a) == len(b) and list(a.name) == list(b.name)
        np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=2e-3, atol=1e-5)


def test_run_configs_is_deterministic(tmp_path):
    from rankbias.experiments.runner import run_configs

    configs = [RunConfig(MIXTURE, NetSpec("deep_relu", (8, 16, 3)),
                         DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=8, steps=40, log_points=4), seed=s)
               for wd, s in ((0.0, 0), (0.01, 1))]
    stores = [Store(tmp_path / f"{i}.sqlite") for i in range(2)]
    for store in stores:
        run_configs(configs, store)
    a, b = (store.metrics() for store in stores)
    assert len(a) > 0 and np.array_equal(a.value.to_numpy(), b.value.to_numpy(), equal_nan=True)


def test_a_group_with_a_diverging_member_stores_it_as_diverged_and_measures_the_rest():
    from rankbias.experiments.execute import train_group

    group = [_config(lr=lr) for lr in (0.1, 1e5, 0.2)]
    recs = train_group(group)
    assert [r.status for r in recs] == ["done", "diverged", "done"]
    for rec in (recs[0], recs[2]):  # the survivors were measured to the end
        assert max(step for step, *_ in rec.metrics) == 60 and rec.error is None
        assert all(np.isfinite(s).all() for *_, s in rec.spectra)
