"""Claims version 2: each amendment on planted runs, beside what version 1 reads on
the same runs, so reverting an amendment fails its test."""

import json
import time

import pandas as pd
import pytest

from rankbias.engine import data as D
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.scoring.hypotheses import Check, Criterion, RunSet, Trend, claims
from rankbias.scoring.hypotheses import lejegelka, task_rank, zangrando
from rankbias.experiments.matrix import Matrix
from rankbias.engine.nets import NetSpec
from rankbias.experiments.config import RunConfig
from rankbias.experiments.provenance import provenance
from rankbias.scoring.score import Runs, score, scorecard
from rankbias.experiments.store import RunRecord, Store

V1, V2 = {h.id: h for h in claims(1)}, {h.id: h for h in claims(2)}
MIX = dict(kind="mixture", n=400, dim=32, classes=4, std=2.0, seed=0)


def planted(tmp_path, scenario: str, runs: list[tuple[RunConfig, dict, dict]], status="done") -> tuple[Store, Matrix]:
    """A store and matrix holding ``runs``: (config, {metric name or name@layer: last value}, grid cell)."""
    store, matrix = Store(tmp_path / f"{scenario}.sqlite"), Matrix("quick")
    matrix.members[scenario], matrix.cells[scenario] = [], {}
    for config, final, cell in runs:
        rec = RunRecord(config.name(), config.hash(), config.flat(), status, provenance(), time.time(), time.time(),
                        steps=1000, horizon=100.0)
        for label, value in final.items():
            name, _, layer = label.partition("@")
            rec.metrics.append((1000.0, int(layer) if layer else -1, name, float(value)))
        store.write(rec)
        matrix.runs[config.name()] = config
        matrix.members[scenario].append(config.name())
        matrix.cells[scenario][config.name()] = cell
    return store, matrix


def _kuzborskij_run(kind, wd, seed, alignment, stationarity, norm_ratio=1.0):
    dyn = DynamicsSpec(kind, "ce", lr=0.1, wd=wd, batch=16, steps=20000, gate=0.1, max_steps=100000)
    config = RunConfig(MIX, NetSpec("deep_relu", (32, 64, 64, 64, 4)), dyn, seed=seed)
    final = dict(alignment=alignment, stationarity=stationarity, norm_ratio=norm_ratio, train_acc=0.9, gate_step=500)
    return config, final, {"dynamics.wd": wd, "dynamics.kind": kind}


def test_kuzborskij_reads_only_gd_runs_on_the_gate_and_is_not_applicable_without_one(tmp_path):
    runs = [_kuzborskij_run("gd", 3e-2, s, 0.999, 0.05, 1.001) for s in (0, 1)]  # on the gate
    runs += [_kuzborskij_run("gd", 3e-3, s, 0.30, 0.5, 1.3) for s in (0, 1)]  # off the gate: not read
    runs += [_kuzborskij_run("sgd", 3e-2, s, 0.20, 0.9, 1.4) for s in (0, 1)]  # SGD: an effect size only
    runs += [_kuzborskij_run("gd", 0.0, s, 0.70, 1.0, 1.7) for s in (0, 1)]  # wd = 0: reported, no threshold
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    store, matrix = planted(tmp_path / "a", "kuzborskij.alignment", runs)
    matrix.members["kuzborskij.norms"] = matrix.members["kuzborskij.alignment"]  # the same runs, as in the matrix
    data = Runs(store, matrix)
    for claim, value in (("kuzborskij.alignment", 0.999), ("kuzborskij.norms", 1.001)):
        v2 = score(V2[claim], data, n_boot=20)
        assert v2.verdict == "pass" and v2.statistic.value == pytest.approx(value), claim
        assert score(V1[claim], data, n_boot=20, version=1).verdict == "fail"  # version 1 reads every wd > 0 run
    effects = {s.name: s.value for s in score(V2["kuzborskij.alignment"], data, n_boot=20).statistics}
    assert effects["effect: mean cos(theta, -grad L), SGD runs with wd > 0"] == pytest.approx(0.2)
    assert effects["effect: mean cos(theta, -grad L), GD/GF runs at wd = 0 (no prediction)"] == pytest.approx(0.7)
    # no wd > 0 GD run on the gate: the theorem's hypothesis never held
    off = [_kuzborskij_run("gd", wd, s, 0.999, 0.3) for wd in (3e-3, 3e-2) for s in (0, 1)]
    v = score(V2["kuzborskij.alignment"], Runs(*planted(tmp_path / "b", "kuzborskij.alignment", off)), n_boot=20)
    assert v.verdict == "not applicable" and v.statistics[0].value == pytest.approx(0.3)
    assert v.statistics[0].status == "not applicable" and "never met the theorem's hypothesis" in v.note
    # with runs still to come, the verdict is inconclusive, and no status cell says "not applicable" beside it
    store, matrix = planted(tmp_path / "c", "kuzborskij.alignment", off)
    matrix.members["kuzborskij.alignment"].append("never-trained")
    v = score(V2["kuzborskij.alignment"], Runs(store, matrix), n_boot=20)
    assert v.verdict == "inconclusive" and {s.status for s in v.statistics} == {"inconclusive"}


def _history(rows: dict[str, list[tuple[float, int, float]]]) -> pd.DataFrame:
    """Metric rows (run, step, layer, name, value) from {name: [(step, layer, value)]} of run "r"."""
    return pd.DataFrame([("r", step, layer, name, value) for name, points in rows.items()
                         for step, layer, value in points], columns=["run", "step", "layer", "name", "value"])


def test_rank1_reads_non_decreasing_only_once_the_loss_has_halved():
    steps = [0, 10, 30, 100, 1000, 10000, 50000]
    ratio = [0.5, 0.5, 0.45, 0.6, 0.8, 0.9, 0.95]  # a dip at step 30, while the loss has not moved
    loss = [0.69, 0.69, 0.69, 0.3, 0.1, 0.01, 0.001]
    rows = {"spectral": [(t, k, r) for t, r in zip(steps, ratio) for k in (0, 1)],
            "fro": [(t, k, 1.0) for t in steps for k in (0, 1)], "train_loss": [(t, -1, v) for t, v in zip(steps, loss)]}
    final = pd.DataFrame({"widths": ["20-30-30-1"], "spectral@0": [0.95], "fro@0": [1.0], "spectral@1": [0.95],
                          "fro@1": [1.0], "adjacent_alignment@0": [0.9999], "adjacent_alignment@1": [0.9999]},
                         index=["r"])
    runs = RunSet(final, _history(rows))
    assert lejegelka.moving_from(runs) == {"r": 100.0}
    assert [c.holds(c.value) for c in V2["lejegelka.rank1"].checks(runs)[:3]] == [True, True, True]
    assert V1["lejegelka.rank1"].checks(runs)[0].value == 2  # one dip per layer in version 1's reading


def _relu_runs(init_scale: float, start: float, end: float, relu: float = 0.3) -> RunSet:
    """One net 20-30-30-30-30-1 ending in 2 linear layers: its last linear square layer (3) goes
    from ``start`` (at T/10 and before) to ``end`` (at T); ReLU layers 1, 2 stay at ``relu``."""
    steps = [0, 100, 2000, 20000]
    last = [start, start, start, end]
    rows = {"spectral": [(t, 3, v) for t, v in zip(steps, last)], "fro": [(t, 3, 1.0) for t in steps]}
    final = {"widths": "20-30-30-30-30-1", "linear_layers": 2, "init_scale": init_scale,
             "spectral@3": end, "fro@3": 1.0, **{f"{m}@{k}": (relu if m == "spectral" else 1.0)
                                                   for k in (1, 2) for m in ("spectral", "fro")}}
    return RunSet(pd.DataFrame([final], index=["r"]), _history(rows))


def test_relu_last_layers_judges_the_last_decade_and_the_level_only_from_a_small_init():
    rising = _relu_runs(1.0, 0.40, 0.55)  # still rising at T, far from rank 1
    checks = {c.name: c for c in V2["lejegelka.relu_last_layers"].checks(rising) if c.op}
    assert all(c.holds(c.value) for c in checks.values()) and lejegelka.LAST_LEVEL.name not in checks
    assert V1["lejegelka.relu_last_layers"].checks(rising)[0].holds(0.55) is False  # version 1: level at T
    falling = {c.name: c for c in V2["lejegelka.relu_last_layers"].checks(_relu_runs(1.0, 0.6, 0.5)) if c.op}
    assert falling[lejegelka.LAST_HOLDS.name].value == pytest.approx(-0.1)
    assert falling[lejegelka.LAST_HOLDS.name].holds(-0.1) is False
    small = {c.name: c for c in V2["lejegelka.relu_last_layers"].checks(_relu_runs(0.15, 0.5, 0.55)) if c.op}
    assert small[lejegelka.LAST_LEVEL.name].value == pytest.approx(0.55)  # judged in the small-init arm


def test_zangrando_nc1_reads_the_tail_ratio_against_the_input_features_nc1_over_spread_cells():
    stds = [0.1, 0.3, 1.0, 2.0, 4.0]
    sets = {s: D.gaussian_mixture(80, 8, 4, s, seed=0) for s in stds}
    final = pd.DataFrame({"data.std": stds, "gap_k@0": [1e-4, 1e-3, 1e-2, 5e-2, 0.2],
                          "gap_k@1": [2e-4, 5e-4, 3e-3, 1e-2, 3e-2], "nc1@0": [0.01, 0.05, 0.2, 0.5, 1.5],
                          "widths": ["8-16-16-4"] * 5}, index=[f"r{s}" for s in stds])
    runs = RunSet(final, pd.DataFrame(), dataset=lambda name: sets[final.loc[name, "data.std"]])
    inputs = zangrando.input_nc1(runs)
    assert inputs.is_monotonic_increasing  # the inputs' NC1 rises with the within-class spread
    checks = V2["zangrando.nc1"].checks(runs)
    assert [c.name for c in checks[:2]] == [zangrando.NC1_GAP.name.format(k=1), zangrando.NC1_GAP.name.format(k=2)]
    assert [c.value for c in checks[:2]] == pytest.approx([1.0, 1.0])
    resampled = RunSet(pd.concat([final, final.iloc[:2]]), pd.DataFrame(), dataset=runs.dataset)  # a bootstrap draw
    assert [c.value for c in V2["zangrando.nc1"].checks(resampled)[:2]] == pytest.approx([1.0, 1.0])
    with pytest.raises(KeyError):  # version 1 reads rank_rel of the hidden square layers, absent here
        V1["zangrando.nc1"].checks(runs)


def test_batch_steps_is_a_control_that_passes_when_flat_and_shows_the_papers_reading(tmp_path):
    net = NetSpec("deep_relu", (32, 100, 100, 100, 10))
    data = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)
    runs = []
    for batch in (1, 4, 16, 64, 256):
        for seed in (0, 1):
            config = RunConfig(data, net, DynamicsSpec("sgd", "ce", lr=0.1, wd=1e-2, batch=batch, steps=20000), seed=seed)
            at_chance = batch == 1  # the B = 1 cell never trains: it would set rho's sign
            final = {**{f"rank_tol@{k}": (60 if at_chance else 10 + (batch == 256)) for k in range(4)},
                     "train_acc": 0.1 if at_chance else 1.0}
            runs.append((config, final, {"dynamics.batch": batch}))
    data_ = Runs(*planted(tmp_path, "galanti.batch_steps", runs))
    v2 = score(V2["galanti.batch_steps"], data_, n_boot=20)
    assert v2.control and v2.verdict == "pass" and v2.dropped == ["batch=1"] and v2.untrained_cells == {"batch=1": 2}
    assert v2.statistic.value == pytest.approx(0.01)
    reading = [s for s in v2.statistics if s.name.startswith("effect: paper's reading")]
    assert len(reading) == 2 and all(s.op is None for s in reading)
    assert score(V1["galanti.batch_steps"], data_, n_boot=20, version=1).verdict == "fail"


def test_a_null_needs_every_scenario_it_names(tmp_path):
    ranks = {0.0: 99, 1e-2: 20, 2e-2: 12}
    net = NetSpec("deep_relu", (32, 100, 100, 100, 10))
    data = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)
    runs = [(RunConfig(data, net, DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=4, epochs=40), seed=s),
             {**{f"rank_tol@{k}": r for k in range(4)}, "train_acc": 1.0}, {"dynamics.wd": wd})
            for wd, r in ranks.items() for s in (0, 1)]
    data_ = Runs(*planted(tmp_path, "galanti.wd", runs))
    v2 = score(V2["null.horizon_alone"], data_, n_boot=20)
    assert v2.verdict == "inconclusive" and v2.statistics == [] and "galanti.batch_epochs" in v2.note
    assert "galanti.wd" not in v2.note.split("not in this matrix")[0]
    v1 = score(V1["null.horizon_alone"], data_, n_boot=20, version=1)
    assert v1.statistics and "not in this matrix" not in v1.note  # version 1 scored whatever was there


def test_task_rank_compares_the_rank_across_widths(tmp_path):
    data = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)
    runs = []
    for width, rank in ((50, 13.7), (80, 14.5), (100, 14.4), (200, 14.4)):
        net = NetSpec("deep_relu", (32, width, width, width, 10))
        for s in (0, 1):
            config = RunConfig(data, net, DynamicsSpec("sgd", "ce", lr=0.1, wd=2e-2, batch=4, epochs=40), seed=s)
            runs.append((config, {**{f"rank_tol@{k}": rank for k in range(4)}, "train_acc": 1.0},
                         {"net.widths": [32, width, width, width, 10]}))
    v = score(task_rank.HYPOTHESES[0], Runs(*planted(tmp_path, "new.task_rank", runs)), n_boot=20)
    assert v.verdict == "pass" and v.statistic.value == pytest.approx((14.5 - 13.7) / 13.7)
    assert v.untrained_cells == {} and len(v.seeds) == 2


def test_a_check_that_is_not_declared_is_refused_and_every_baseline_declares_its_criteria(tmp_path):
    declared = Criterion("x", ">=", 0)
    sneaky = Trend("mine.sneaky", "mine", ("galanti.wd",), "adds a criterion after the fact",
                   lambda runs: [declared(1.0), Check("y", 1.0, "<=", 2.0)], criteria=(declared,))
    runs = [(RunConfig(MIX, NetSpec("deep_relu", (32, 8, 4)), DynamicsSpec("gd", "ce", lr=0.1, steps=10), seed=s),
             {"train_acc": 1.0}, {}) for s in (0, 1)]
    v = score(sneaky, Runs(*planted(tmp_path, "galanti.wd", runs)), n_boot=5)
    assert v.verdict == "inconclusive" and "['y'] are not among mine.sneaky's declared criteria" in v.note
    for version in (1, 2):
        for h in claims(version):
            assert h.kind == "predictor" or h.criteria, h.id


def test_a_matrix_of_variants_only_is_scored_by_the_claims_criteria(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    net = NetSpec("deep_relu", (32, 80, 80, 80, 10))
    data = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)
    runs = [(RunConfig(data, net, DynamicsSpec("sgd", "ce", lr=0.1, wd=wd, batch=4, epochs=40), seed=s),
             {**{f"rank_tol@{k}": r * 0.8 for k in range(4)}, "train_acc": 1.0}, {"dynamics.wd": wd})
            for wd, r in ranks.items() for s in (11, 12)]
    store, matrix = planted(tmp_path, "galanti.wd.heldout", runs)
    verdicts = scorecard([V2["galanti.wd"]], Runs(store, matrix), n_boot=20)
    assert [v.id for v in verdicts] == ["galanti.wd.heldout"] and verdicts[0].verdict == "pass"
    assert verdicts[0].seeds == [11, 12] and verdicts[0].n == 10


def test_the_cli_scores_either_version_and_says_which(tmp_path):
    from typer.testing import CliRunner

    from rankbias.cli import app
    from rankbias.experiments.matrix import expand
    from rankbias.experiments.spec import builtin, load

    quick = expand(load(builtin(2)), "quick")
    runs = []
    for name in quick.members["galanti.batch_steps"]:
        config, batch = quick.runs[name], quick.runs[name].dynamics.batch
        final = {**{f"rank_tol@{k}": (70 if batch == 1 else 10) for k in range(4)}, "train_acc": 0.1 if batch == 1 else 1}
        runs.append((config, final, {"dynamics.batch": batch}))
    planted(tmp_path, "galanti.batch_steps", runs)[0].close()
    cards = {}
    for version in (1, 2):
        out = tmp_path / f"v{version}.json"
        result = CliRunner().invoke(app, ["score", "quick", "--store", str(tmp_path / "galanti.batch_steps.sqlite"),
                                          "--claim", "galanti.batch_steps", "--claims-version", str(version),
                                          "--n-boot", "20", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"claims version {version}" in " ".join(result.output.split())
        cards[version] = json.loads(out.read_text())
    assert [c["meta"]["claims_version"] for c in cards.values()] == [1, 2]
    assert cards[1]["verdicts"][0]["verdict"] == "fail" and cards[2]["verdicts"][0]["verdict"] == "pass"
    assert cards[2]["verdicts"][0]["dropped"] == ["batch=1"] and cards[2]["verdicts"][0]["control"] is True
