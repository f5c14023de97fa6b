"""Scoring: verdicts from criteria and seed CIs, the baselines' checks on planted
runs, user hypotheses from files and entry points, and the CLI."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rankbias.scoring import hypotheses
from rankbias.cli import app
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.scoring.hypotheses import (BASELINES, VERSIONS, Check, HypothesisError, Predictor, RunSet, Trend,
                                 claims, load_entry_points, load_file, unknown_variants)
from rankbias.scoring.hypotheses import galanti, kuzborskij, nulls, zangrando
from rankbias.experiments.matrix import Matrix
from rankbias.engine.nets import NetSpec
from rankbias.experiments.config import RunConfig
from rankbias.experiments.provenance import provenance
from rankbias.scoring.hypotheses.base import spearman
from rankbias.scoring.score import GATE, Runs, header, score, scorecard
from rankbias.experiments.spec import builtin, load
from rankbias.experiments.store import RunRecord, Store

EXAMPLE = "examples/my_hypothesis.py"
DATA = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)
NET = NetSpec("deep_relu", (32, 100, 100, 100, 10))


def plant(tmp_path, scenario: str, cells: dict, rank, acc=lambda wd, s: 1.0) -> tuple[Store, Matrix]:
    """A store holding one done SGD run per (wd, seed) of ``cells`` whose hidden
    layers have rank_tol = rank(wd, seed) and train accuracy acc(wd, seed) at the
    last step, with no training."""
    store, matrix = Store(tmp_path / "planted.sqlite"), Matrix("quick")
    names, matrix.cells[scenario] = [], {}
    for wd in cells["wd"]:
        for seed in cells["seeds"]:
            cfg = RunConfig(DATA, NET, DynamicsSpec("sgd", "ce", wd=wd, lr=0.1, batch=4, epochs=40), seed=seed)
            rec = RunRecord(cfg.name(), cfg.hash(), cfg.flat(), "done", provenance(), time.time(), time.time(),
                            steps=10000, horizon=0.1 * wd * 10000)
            rec.metrics = [(10000.0, k, "rank_tol", float(rank(wd, seed))) for k in range(4)]
            rec.metrics += [(10000.0, -1, "stationarity", 0.05 if wd > 0.01 else 0.5),
                            (10000.0, -1, "train_acc", acc(wd, seed))]
            store.write(rec)
            matrix.runs[cfg.name()] = cfg
            names.append(cfg.name())
            matrix.cells[scenario][cfg.name()] = {"dynamics.wd": wd}
    matrix.members[scenario] = names
    return store, matrix


WDS = [0.0, 1e-3, 5e-3, 1e-2, 2e-2]


def _galanti_wd():
    return next(h for h in BASELINES if h.id == "galanti.wd")


def test_a_planted_trend_passes_with_its_statistics_horizon_and_gate(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1, 2]}, lambda wd, s: ranks[wd] + (s % 2))
    v = score(_galanti_wd(), Runs(store, matrix), n_boot=50)
    assert v.verdict == "pass" and v.n == 15 and v.seeds == [0, 1, 2] and v.missing == 0
    by = {s.name: s for s in v.statistics}
    assert by["rho(rank_tol, wd)"].value == pytest.approx(-1.0) and by["rho(rank_tol, wd)"].status == "pass"
    assert by["rank(wd=0) / width"].value == pytest.approx((99 + 100 + 99) / 3 / 100)
    assert by["rank(wd=2e-2) / width"].low >= 0.12 and by["rank(wd=2e-2) / width"].high <= 0.13
    assert v.effect.name.startswith("effect:") and v.effect.status == "effect"
    assert v.horizon == (0.0, pytest.approx(20.0))
    final = Runs(store, matrix).final
    assert list(final.columns).count("steps") == 1 and (final["steps"] == 10000).all()  # as far as each run went
    assert "budget_steps" not in final  # an epoch budget names no step count
    assert v.stationary == (3, 12)  # wd = 2e-2 runs only are below the gate
    assert GATE == 0.1


def test_version_1_counts_runs_at_chance_accuracy_and_scores_them_as_they_are(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    rank = lambda wd, s: ranks[wd] + (s % 2)  # noqa: E731
    cells = {"wd": WDS, "seeds": [0, 1, 2]}
    (tmp_path / "clean").mkdir(), (tmp_path / "chance").mkdir()
    clean = score(_galanti_wd(), Runs(*plant(tmp_path / "clean", "galanti.wd", cells, rank)), n_boot=50, version=1)
    # 10 classes: chance is 0.1; 0.14 is within the 0.05 margin, 0.16 is not
    acc = lambda wd, s: 0.14 if (wd, s) == (2e-2, 0) else 0.16 if (wd, s) == (1e-2, 1) else 1.0  # noqa: E731
    v = score(_galanti_wd(), Runs(*plant(tmp_path / "chance", "galanti.wd", cells, rank, acc)), n_boot=50, version=1)
    assert clean.untrained == 0 and clean.note == ""
    assert v.untrained == 1 and "1 of 15 runs ended within 0.05 of chance train accuracy" in v.note
    assert [s.value for s in v.statistics] == [s.value for s in clean.statistics] and v.verdict == clean.verdict


def test_version_2_excludes_untrained_runs_counts_them_per_cell_and_drops_empty_cells(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    rank = lambda wd, s: ranks[wd]  # noqa: E731
    cells = {"wd": WDS, "seeds": [0, 1, 2]}
    for d in ("clean", "planted", "dropped"):
        (tmp_path / d).mkdir()
    clean = score(_galanti_wd(), Runs(*plant(tmp_path / "clean", "galanti.wd", cells, rank)), n_boot=50)
    # an untrained run planted in a cell with a rank far off its cell's: excluded, nothing changes but the count
    odd = lambda wd, s: 99 if (wd, s) == (2e-2, 1) else ranks[wd]  # noqa: E731
    chance = lambda wd, s: 0.12 if (wd, s) == (2e-2, 1) else 1.0  # noqa: E731
    store, matrix = plant(tmp_path / "planted", "galanti.wd", cells, odd, chance)
    v = score(_galanti_wd(), Runs(store, matrix), n_boot=50)
    assert v.version == 2 and v.untrained == 1 and v.untrained_cells == {"wd=0.02": 1} and v.dropped == []
    assert [s.value for s in v.statistics] == [s.value for s in clean.statistics] and v.verdict == clean.verdict == "pass"
    assert v.n == 14 and "1 of 15 runs untrained" in v.note and "wd=0.02: 1" in v.note
    # version 1 reads the same runs with the untrained one in: it moves the wd=2e-2 cell past the criterion
    v1 = score(_galanti_wd(), Runs(store, matrix), n_boot=50, version=1)
    assert v1.n == 15 and v1.verdict != "pass" and v1.statistics[2].value == pytest.approx((12 + 12 + 99) / 3 / 100)
    # every run of the wd=2e-2 cell untrained: the cell is dropped and the criterion that needs it is named
    gone = lambda wd, s: 0.1 if wd == 2e-2 else 1.0  # noqa: E731
    d = score(_galanti_wd(), Runs(*plant(tmp_path / "dropped", "galanti.wd", cells, rank, gone)), n_boot=50)
    assert d.dropped == ["wd=0.02"] and d.untrained_cells == {"wd=0.02": 3}
    low = next(s for s in d.statistics if s.name == "rank(wd=2e-2) / width")
    assert np.isnan(low.value) and low.status == "inconclusive" and "wd=0.02" in low.note
    assert d.verdict == "inconclusive"


def test_a_flat_rank_fails_and_disagreeing_seeds_are_inconclusive(tmp_path):
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, lambda wd, s: 99)
    assert score(_galanti_wd(), Runs(store, matrix), n_boot=50).verdict == "fail"
    store.close()
    (tmp_path / "planted.sqlite").unlink()
    # seed 0 falls with wd, seed 1 rises: the bootstrap CI straddles the criterion
    ranks = lambda wd, s: (99 - 4000 * wd) if s == 0 else (10 + 4000 * wd)  # noqa: E731
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, ranks)
    v = score(_galanti_wd(), Runs(store, matrix), n_boot=100)
    rho = v.statistics[0]
    assert rho.low == pytest.approx(-1.0) and rho.high == pytest.approx(1.0) and rho.status == "inconclusive"
    assert v.verdict in ("inconclusive", "fail")


def test_missing_runs_and_unscorable_hypotheses_are_inconclusive_with_a_note(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0]}, lambda wd, s: ranks[wd])
    cfg = RunConfig(DATA, NET, DynamicsSpec("sgd", "ce", wd=0.5, lr=0.1, batch=4, epochs=40), seed=0)
    matrix.runs[cfg.name()] = cfg
    matrix.members["galanti.wd"].append(cfg.name())  # in the matrix, never run
    v = score(_galanti_wd(), Runs(store, matrix), n_boot=20)
    assert v.verdict == "inconclusive" and v.missing == 1 and "1 of 6 runs not in the store" in v.note
    broken = Trend("mine.broken", "mine", ("galanti.wd",), "reads a metric nobody records",
                   lambda runs: [Check("x", runs.final["no_such_metric"].mean(), ">=", 0)])
    v = score(broken, Runs(store, matrix), n_boot=20)
    assert v.verdict == "inconclusive" and "KeyError" in v.note and "no_such_metric" in v.note


def test_a_claim_with_no_stored_run_is_not_run_rather_than_inconclusive(tmp_path):
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0]}, lambda wd, s: 10)
    empty = Store(tmp_path / "empty.sqlite")
    v = score(_galanti_wd(), Runs(empty, matrix), n_boot=20)
    assert v.verdict == "not run" and v.missing == 5 and v.n == 0
    assert "none of its 5 runs is in the store" in v.note
    assert header(Runs(empty, matrix), [v], 2, "quick", "quick")["verdicts"] == {"not run": 1}


def test_a_predictor_with_no_finite_prediction_says_why(tmp_path):
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, lambda wd, s: 10)
    blind = Predictor("mine.blind", "mine", ("galanti.wd",), "nothing", lambda runs: runs.final["lr"] * np.nan,
                      lambda runs: runs.final["rank_tol@1"])
    v = score(blind, Runs(store, matrix), n_boot=5)
    assert v.verdict != "scored" and v.error is not None
    assert "its predict() gave no finite value on these 10 runs" in v.note


def _final(**columns) -> RunSet:
    return RunSet(pd.DataFrame(columns), pd.DataFrame(columns=["run", "step", "layer", "name", "value"]))


def test_kuzborskij_and_zangrando_checks_on_planted_tables():
    runs = _final(wd=[0.0, 3e-3, 3e-2], horizon=[0.0, 6.0, 60.0], alignment=[0.2, 0.995, 0.9999],
                  norm_ratio=[3.1, 1.001, 1.0001])
    assert [c.holds(c.value) for c in kuzborskij._alignment(runs)][:2] == [True, True]
    assert [c.holds(c.value) for c in kuzborskij._norms(runs)][:2] == [True, True]
    bad = _final(wd=[0.0, 3e-3], horizon=[0.0, 6.0], alignment=[0.2, 0.9], norm_ratio=[1.2, 1.05])
    assert [c.holds(c.value) for c in kuzborskij._alignment(bad)][:2] == [False, True]
    assert [c.holds(c.value) for c in kuzborskij._norms(bad)][:2] == [False, False]
    z = _final(**{"widths": ["32-64-64-64-4"] * 3, "wd": [3e-3, 1e-2, 3e-2], "horizon": [12.0, 40.0, 120.0],
                  "data.classes": [4] * 3, "gap_k@1": [1e-3, 1e-4, 1e-5], "gap_k@2": [2e-3, 1e-4, 3e-5],
                  "rank_rel@1": [4, 4, 4], "rank_rel@2": [5, 4, 4]})
    checks = zangrando._wd(z)
    assert [c.value for c in checks[:2]] == pytest.approx([-1.0, -1.0])
    assert checks[2].value == pytest.approx(5 / 6) and checks[2].holds(checks[2].value) is False
    assert checks[3].value == pytest.approx(2.0)


def test_horizon_null_predicts_the_isotonic_fit():
    f = pd.DataFrame({"widths": ["32-100-100-100-10"] * 4, "horizon": [0.0, 1.0, 2.0, 3.0],
                      "rank_tol@1": [99, 50, 60, 10], "rank_tol@2": [99, 50, 60, 10]},
                     index=list("abcd"))
    runs = RunSet(f, pd.DataFrame())
    predicted = nulls._isotonic(runs)
    np.testing.assert_allclose(predicted.values, [99, 55, 55, 10])  # pools the violating pair


@pytest.mark.parametrize("version", VERSIONS)
def test_every_claim_of_each_versions_matrix_has_a_hypothesis_and_back(version):
    scenarios = load(builtin(version)).scenario
    quick = {s.id for s in scenarios if "quick" in s.tiers}
    ids = {h.id for h in claims(version) if h.paper != "null"}
    variants = {sid for sid in quick if any(sid.startswith(i + ".") for i in ids)}
    read = {sid for h in claims(version) for sid in h.scenarios} | variants
    assert read == quick  # every scenario is read by a claim
    if version < 3:
        assert ids == quick - variants  # one hypothesis per claim id, one scenario per claim, plus variants
    else:  # version 3: wd = 0 runs of kuzborskij in a scenario of their own; a claim on new.task_rank's runs
        assert quick - variants - ids == {"kuzborskij.no_wd"} and ids - quick == {"new.collapse_rank"}
    for h in claims(version):
        assert h.scenarios and set(h.scenarios) <= quick
        assert h.cite or h.paper in ("null", "new")
        assert h.version <= version and (h.version == 1 or h.amendment)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_full_tier_scenario_is_scored_as_a_variant_of_a_claim(version):
    full_only = {s.id for s in load(builtin(version)).scenario if s.tiers == ["full"]}
    assert full_only  # wider, deeper and real-data versions of claims
    assert not unknown_variants(full_only, version)
    for sid in full_only:
        assert any(sid.startswith(h.id + ".") for h in claims(version)), sid


FALLS = {0.0: 0.99, 1e-3: 0.8, 5e-3: 0.5, 1e-2: 0.2, 2e-2: 0.1}  # rank / width by wd
SLOWER = {0.0: 0.99, 1e-3: 0.9, 5e-3: 0.7, 1e-2: 0.5, 2e-2: 0.3}  # still falling, but ends above 0.2


def test_a_variant_is_scored_once_per_network_with_its_own_width(tmp_path):
    store, matrix = Store(tmp_path / "variants.sqlite"), Matrix("full")
    for sid, widths in (("galanti.wd", [100]), ("galanti.wd.width", [50, 200])):
        matrix.members[sid] = []
        for width in widths:
            net = NetSpec("deep_relu", (32, width, width, width, 10))
            for wd in WDS:
                for seed in (0, 1):
                    cfg = RunConfig(DATA, net, DynamicsSpec("sgd", "ce", wd=wd, lr=0.1, batch=4, epochs=40), seed=seed)
                    rec = RunRecord(cfg.name(), cfg.hash(), cfg.flat(), "done", provenance(), time.time(), time.time(),
                                    steps=10000, horizon=0.1 * wd * 10000)
                    rank = width * (FALLS[wd] if width != 50 else SLOWER[wd])
                    rec.metrics = [(10000.0, k, "rank_tol", rank) for k in range(4)]
                    rec.metrics += [(10000.0, -1, "train_acc", 1.0)]
                    store.write(rec)
                    matrix.runs[cfg.name()] = cfg
                    matrix.members[sid].append(cfg.name())
    verdicts = {v.id: v for v in scorecard([_galanti_wd()], Runs(store, matrix), n_boot=20)}
    assert list(verdicts) == ["galanti.wd", "galanti.wd.width[widths=32-200-200-200-10]",
                              "galanti.wd.width[widths=32-50-50-50-10]"]
    wide, narrow = verdicts["galanti.wd.width[widths=32-200-200-200-10]"], verdicts["galanti.wd.width[widths=32-50-50-50-10]"]
    assert wide.n == narrow.n == 10 and wide.verdict == "pass" and narrow.verdict == "fail"
    assert narrow.statistics[2].value == pytest.approx(0.3)  # rank / its own width, not the other's
    assert [s.status for s in narrow.statistics[:3]] == ["pass", "pass", "fail"]


def test_the_example_file_loads_two_hypotheses_and_bad_files_are_explained(tmp_path):
    found = load_file(EXAMPLE)
    assert [h.id for h in found] == ["mine.noise_ratio", "mine.noise_ratio_rank"]
    assert [h.kind for h in found] == ["trend", "predictor"]
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(HypothesisError, match="defines no Trend or Predictor at module level"):
        load_file(empty)
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(HypothesisError, match=r"raised RuntimeError: boom\. Fix the file"):
        load_file(raising)
    with pytest.raises(HypothesisError, match="must be an existing .py file"):
        load_file(tmp_path / "absent.py")


def test_entry_points_register_hypotheses(monkeypatch):
    class EP:
        name, value = "mine", "pkg:hyps"

        def load(self):
            return [galanti.HYPOTHESES[0], "not a hypothesis"]

    monkeypatch.setattr(hypotheses.importlib.metadata, "entry_points",
                        lambda group: [EP()] if group == "rankbias.hypotheses" else [])
    assert load_entry_points() == [galanti.HYPOTHESES[0]]


def test_cli_compare_scores_a_file_beside_the_baselines(tmp_path):
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, _ = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, lambda wd, s: ranks[wd])
    store.close()
    out = tmp_path / "cmp.json"
    args = ["compare", EXAMPLE, "--store", str(tmp_path / "planted.sqlite"), "--out", str(out), "--n-boot", "20",
            "--no-train"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "head to head: your hypotheses and the baselines that read the same scenarios" in flat
    assert "mean |log measured - log" in flat and "rho(rank_tol, B): nan [nan, nan] >= 0.9" in flat  # MAE; NaN CIs
    from rankbias import __version__

    assert f"runs made by rankbias {__version__}@" in result.output  # the code version is shown
    card = json.loads(out.read_text())
    assert card["meta"]["claims_version"] == 2 and card["meta"]["runs"] == {"in_matrix": 164, "stored": 10, "done": 10}
    assert card["meta"]["tier"] == "quick" and card["meta"]["matrix"] == "quick" and card["meta"]["verdicts"]["pass"] >= 1
    verdicts = {v["id"]: v for v in card["verdicts"]}
    assert verdicts["galanti.wd"]["verdict"] == "pass" and verdicts["galanti.wd"]["n"] == 10
    mine = verdicts["mine.noise_ratio"]  # wd > 0 runs of galanti.wd; the other sweeps are not stored
    assert mine["verdict"] == "inconclusive" and "not in the store" in mine["note"]
    assert verdicts["mine.noise_ratio"]["statistics"][0]["value"] == pytest.approx(1.0)
    assert verdicts["mine.noise_ratio_rank"]["verdict"] == "scored"
    missing = CliRunner().invoke(app, ["compare", EXAMPLE, "--store", str(tmp_path / "none.sqlite"), "--no-train"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = CliRunner().invoke(app, ["compare", str(tmp_path / "nope.py"), "--store", str(tmp_path / "planted.sqlite")])
    assert bad.exit_code == 2 and "must be an existing .py file" in " ".join(bad.output.split())
    assert "Traceback" not in bad.output


def test_a_nan_criterion_says_why(tmp_path):
    ranks = {0.0: 99, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": [0.0, 2e-2], "seeds": [0, 1]}, lambda wd, s: ranks[wd])
    v = score(_galanti_wd(), Runs(store, matrix), n_boot=20)
    rho = v.statistics[0]  # a rank correlation over 2 cells is undefined
    assert rho.name == "rho(rank_tol, wd)" and np.isnan(rho.value) and rho.status == "inconclusive"
    assert "fewer than 3 cells" in rho.note and v.verdict == "inconclusive"
    assert all(s.note == "" for s in v.statistics[1:])  # the defined ones carry no note


def test_scoring_reads_the_store_once_and_then_never(tmp_path):
    """``Runs`` reads final rows, metric rows and spectra up front: a closed store (its file
    gone) still scores, spectra included, and gives the verdict the open one gave."""
    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, lambda wd, s: ranks[wd])
    name = next(iter(matrix.runs))
    rec = RunRecord(name, matrix.runs[name].hash(), matrix.runs[name].flat(), "done", provenance(), 0.0, 0.0)
    rec.spectra = [(10000.0, 0, np.linspace(3, 1, 8).astype(np.float32))]
    rec.metrics = [(10000.0, k, "rank_tol", 99.0) for k in range(4)]
    store.write(rec)  # replaces the planted row, now with a spectrum
    data = Runs(store, matrix)
    before = score(_galanti_wd(), data, n_boot=30)
    store.close()
    (tmp_path / "planted.sqlite").unlink()
    after = score(_galanti_wd(), data, n_boot=30)
    assert json.dumps(after.to_dict(), default=float) == json.dumps(before.to_dict(), default=float)
    assert after.verdict in ("pass", "fail", "inconclusive")
    np.testing.assert_array_equal(data.runset(data.final).spectrum(name, 0), np.linspace(3, 1, 8).astype(np.float32))


def test_each_claims_version_scores_by_its_own_policy():
    from rankbias.scoring.rules import V1, V2, policy

    assert policy(1) is V1 and policy(2).version == 2 and policy(3).version == 3
    assert (V1.excludes_untrained, V1.counts_cells, V1.needs_all, V1.tests_applicability, V1.notes_chance) == (
        False, False, False, False, True)
    assert (V2.excludes_untrained, V2.counts_cells, V2.needs_all, V2.tests_applicability, V2.notes_chance) == (
        True, True, True, True, False)
    present = pd.DataFrame({"status": ["done", "diverged", "done"], "train_acc": [0.9, 0.9, 0.1],
                            "loss": ["ce"] * 3, "widths": ["4-8-3"] * 3})
    assert list(V1.excluded(present)) == [False, True, False]  # v1 keeps the run at chance (1/3 + 0.05)
    assert list(V2.excluded(present)) == [False, True, True]


def test_head_to_head_scores_each_baseline_on_the_runs_both_read(tmp_path):
    from types import SimpleNamespace

    from rankbias.scoring.matchup import pairings

    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1]}, lambda wd, s: ranks[wd])
    data = Runs(store, matrix)
    base = score(_galanti_wd(), data, n_boot=10)
    mine = Trend("mine.small_wd", "mine", ("galanti.wd",), "rank falls with wd",
                 lambda runs: [Check("rho", spearman(runs.final["wd"], runs.final["rank_tol@1"]), "<=", -0.9),
                               Check("count", float(len(runs.final)), ">=", 1)])
    few = [n for n in data.names(["galanti.wd"]) if "wd=0.02" not in n]  # yours read 8 of the 10 runs
    card = SimpleNamespace(verdicts=[base, score(mine, data, n_boot=10, names=few)], extra=[mine], runs=data,
                           meta={"claims_version": 2})
    (verdict, [pair]), = pairings(card, [_galanti_wd()], n_boot=10)
    assert verdict.n == 8 and pair.baseline == "galanti.wd" and (pair.shared, pair.alone) == (8, 10)
    assert pair.verdict.n == 8 and set(pair.verdict.runs) == set(few)  # the baseline on exactly those
    assert [s.name for s in verdict.statistics] == ["rho", "count"]
    card.verdicts[1].runs = []  # read nothing the baseline reads
    (_, [pair]), = pairings(card, [_galanti_wd()], n_boot=10)
    assert pair.shared == 0 and pair.verdict is None


def test_a_scorecard_on_worker_processes_equals_the_serial_one(tmp_path):
    from rankbias.scoring import pool

    ranks = {0.0: 99, 1e-3: 98, 5e-3: 70, 1e-2: 20, 2e-2: 12}
    store, matrix = plant(tmp_path, "galanti.wd", {"wd": WDS, "seeds": [0, 1, 2]}, lambda wd, s: ranks[wd] + (s % 2))
    runs = Runs(store, matrix)

    def broken(r):
        raise KeyError("no such column")

    mine = Trend("my.flat", "me", ("galanti.wd",), "flat", lambda r: [Check("n", float(len(r.final)), ">=", 1)])
    raising = Trend("my.broken", "me", ("galanti.wd",), "raises", broken)
    hypotheses = [_galanti_wd(), next(h for h in BASELINES if h.id == "null.wd_flat"), mine, raising]
    serial = scorecard(hypotheses, runs, n_boot=40)
    tasks = [(h, None, None, None) for h in hypotheses]
    assert pool.sendable(tasks, 2) == [0, 1]  # the researcher's stay here
    parallel = scorecard(hypotheses, runs, n_boot=40, processes=2)
    assert [v.to_dict() for v in parallel] == [v.to_dict() for v in serial]
    assert serial[0].verdict == "pass" and serial[2].statistics[0].value == 15
    assert parallel[3].error is not None and parallel[3].error.__traceback__ is not None  # kept for --debug
