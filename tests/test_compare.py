"""rankbias compare as a researcher uses it: a hypothesis file that declares the
scenarios it needs, trained before scoring and resumed; errors in its code stop
the command unless asked to keep going; the head-to-head view."""

import json

from typer.testing import CliRunner

from rankbias.cli import app
from reference import TINY_GALANTI_WD

BASE = TINY_GALANTI_WD

HYPOTHESIS = '''
from rankbias.scoring.hypotheses import Check, Trend
from rankbias.scoring.hypotheses.base import hidden_mean

MATRIX = """
[[scenario]]
id = "mine.deeper"
paper = "mine"
data = { kind = "mixture", n = 60, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 8, 8, 8, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 20, log_points = 2 }
grid = { "dynamics.wd" = [0.0, 0.05] }
"""

deeper = Trend("mine.deeper", "mine", ("mine.deeper", "galanti.wd"), "a deeper net reaches lower rank",
               lambda runs: [Check("runs read", float(len(runs.final)), ">=", 1.0)])
'''


def _files(tmp_path, hypothesis=HYPOTHESIS):
    matrix, mine = tmp_path / "m.toml", tmp_path / "mine.py"
    matrix.write_text(BASE)
    mine.write_text(hypothesis)
    return str(matrix), str(mine)


def test_compare_trains_the_scenarios_a_file_declares_then_resumes(tmp_path):
    matrix, mine = _files(tmp_path)
    store, out = str(tmp_path / "s.sqlite"), tmp_path / "cmp.json"
    args = ["compare", mine, "--matrix", matrix, "--store", store, "--processes", "1", "--quiet", "--n-boot", "10",
            "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "10 runs trained, 0 already stored" in " ".join(first.output.split())  # 2 x 2 declared + 3 x 2 of galanti.wd
    verdicts = {v["id"]: v for v in json.loads(out.read_text())["verdicts"]}
    deeper = verdicts["mine.deeper"]  # it read every run of both scenarios (untrained ones counted apart)
    assert deeper["verdict"] == "pass" and deeper["n"] + deeper["untrained"] == 10 and deeper["missing"] == 0
    assert "galanti.wd" in verdicts  # the baseline that reads the same scenario, scored beside it
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 runs trained, 10 already stored" in " ".join(again.output.split())


def test_an_error_in_a_hypothesis_stops_compare_unless_asked_to_keep_going(tmp_path):
    broken = HYPOTHESIS.replace('lambda runs: [Check("runs read", float(len(runs.final)), ">=", 1.0)]',
                                'lambda runs: [Check("x", runs.final["no_such_metric"].mean(), ">=", 0)]')
    matrix, mine = _files(tmp_path, broken)
    store = str(tmp_path / "s.sqlite")
    args = ["compare", mine, "--matrix", matrix, "--store", store, "--processes", "1", "--quiet", "--n-boot", "5"]
    stopped = CliRunner().invoke(app, args)
    flat = " ".join(stopped.output.split())
    assert stopped.exit_code == 1 and "1 hypotheses could not be scored: mine.deeper" in flat
    assert "KeyError" in flat and "Traceback" not in stopped.output
    debug = CliRunner().invoke(app, ["--debug", *args])
    assert debug.exit_code == 1 and "traceback of mine.deeper" in debug.output and "no_such_metric" in debug.output
    kept = CliRunner().invoke(app, [*args, "--keep-going"])
    assert kept.exit_code == 0 and "note: 1 hypotheses could not be scored" in " ".join(kept.output.split())


def test_a_declared_scenario_that_clashes_or_is_malformed_is_refused(tmp_path):
    clash = HYPOTHESIS.replace('id = "mine.deeper"', 'id = "galanti.wd"')
    matrix, mine = _files(tmp_path, clash)
    result = CliRunner().invoke(app, ["compare", mine, "--matrix", matrix, "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and "scenarios ['galanti.wd'] are already in the matrix" in " ".join(result.output.split())
    typo = HYPOTHESIS.replace('"dynamics.wd"', '"dynamics.wdd"')
    matrix, mine = _files(tmp_path, typo)
    result = CliRunner().invoke(app, ["compare", mine, "--matrix", matrix, "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and "mine.py (MATRIX): scenario 'mine.deeper'" in " ".join(result.output.split())
