"""The workflow under the CLI: ``run_benchmark`` plans, trains what the store lacks and
scores, as ``rankbias run`` does; a second call trains nothing."""

import json

import pytest

from rankbias.experiments.runner import Progress
from rankbias.scoring.benchmark import load_matrix, run_benchmark, runs_read, score_matrix, unmatched
from rankbias.scoring.matchup import rivals
from reference import TINY_GALANTI_WD

TEXT = TINY_GALANTI_WD.replace('id = "galanti.wd"', 'id = "galanti.wd.tiny"')


def test_run_benchmark_trains_what_is_missing_then_scores_and_resumes(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(TEXT)
    starts, done = [], []
    hooks = Progress(start=lambda total, stored: starts.append((total, stored)), done=done.append)
    card = run_benchmark(str(path), tmp_path / "s.sqlite", device="cpu", processes=1, n_boot=20, progress=hooks,
                         scorecard_path=tmp_path / "card.json")
    total = len(load_matrix(str(path)).runs)
    assert total == 6 and starts == [(6, 0)] and len(done) == 6 and len(card.plan.todo) == 6
    assert [v.id for v in card.verdicts] == ["galanti.wd.tiny"]  # a variant, scored by galanti.wd's criteria
    written = json.loads((tmp_path / "card.json").read_text())
    assert written["meta"]["matrix"] == str(path) and written["meta"]["runs"]["done"] == 6
    again = run_benchmark(str(path), tmp_path / "s.sqlite", device="cpu", processes=1, n_boot=20, progress=hooks)
    assert again.plan.todo == [] and again.plan.done == 6 and starts[-1] == (6, 6) and len(done) == 6
    same = [json.dumps(c.verdicts[0].to_dict(), default=float) for c in (card, again)]  # NaN-safe
    assert same[0] == same[1]


def test_score_matrix_names_a_bad_claim_or_resample_count(tmp_path):
    from rankbias.experiments.store import Store

    path = tmp_path / "m.toml"
    path.write_text(TEXT)
    matrix, store = load_matrix(str(path)), Store(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match=r"unknown claim ids \['galanti.nope'\]"):
        score_matrix(matrix, store, claims=["galanti.nope"])
    with pytest.raises(ValueError, match="'n_boot' must be an int >= 0"):
        score_matrix(matrix, store, n_boot=-1)
    card = score_matrix(matrix, store, n_boot=5)
    assert card.verdicts[0].verdict == "not run" and card.verdicts[0].note.startswith("none of its 6 runs")


def test_compare_rules_live_beside_the_scorer():
    from types import SimpleNamespace as H

    from rankbias.experiments.matrix import Matrix

    matrix = Matrix("quick", {"a": 1, "b": 2, "c": 3}, {"s1": ["a", "b"], "s2": ["c"]})
    mine = [H(id="mine.x", scenarios=("s1",)), H(id="mine.y", scenarios=("nowhere",))]
    assert unmatched(mine, matrix) == ["mine.y"]
    assert sorted(runs_read(mine, matrix).runs) == ["a", "b"]
    baselines = [H(id="b1", scenarios=("s1", "s9")), H(id="b2", scenarios=("s2",))]
    assert [b.id for b in rivals(mine[0], baselines)] == ["b1"]


def test_a_scorecard_never_overwrites_another_matrixs(tmp_path, monkeypatch):
    """`rankbias score` into the default scorecard.json: the same matrix, tier and version
    overwrite it; another matrix's (or a tier's, or a version's) goes beside it, named by them."""
    from typer.testing import CliRunner

    from rankbias.cli import app
    from rankbias.experiments.store import Store

    monkeypatch.chdir(tmp_path)
    Store("s.sqlite").close()

    def score(*argv):
        result = CliRunner().invoke(app, ["score", *argv, "--store", "s.sqlite", "--n-boot", "2"])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "scorecard written to scorecard.json" in score("quick")
    said = score("standard")
    assert "scorecard written to scorecard-standard-standard-v2.json (scorecard.json holds another matrix's" in said
    score("quick", "--claims-version", "1")
    first = json.loads((tmp_path / "scorecard.json").read_text())["meta"]
    assert (first["matrix"], first["tier"], first["claims_version"]) == ("quick", "quick", 2)  # kept
    assert json.loads((tmp_path / "scorecard-quick-quick-v1.json").read_text())["meta"]["claims_version"] == 1
    assert "scorecard written to scorecard.json" in score("quick")  # its own: updated in place
    (tmp_path / "notes.json").write_text("my notes")
    assert "written to notes-quick-quick-v2.json" in score("quick", "--scorecard", "notes.json")
    assert (tmp_path / "notes.json").read_text() == "my notes"
