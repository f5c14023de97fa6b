"""Progress where long jobs run: on a terminal a bar; in a log file (output not a terminal,
or --plain) one timestamped line per ensemble group with done / total, diverged and
failed counts, rate and ETA."""

import re

from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.cli.views import eta, progress_line
from reference import TINY_MATRIX

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d quick runs: (\d+)/(\d+) runs done \((\d+) trained here, "
                  r"diverged (\d+), failed (\d+)\), [\d.]+ runs/min, ETA \S+$")


def test_a_run_into_a_log_prints_one_line_per_group_and_resumes_counting(tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text(TINY_MATRIX.replace('"dynamics.wd" = [0.0, 0.01, 0.05]',
                                          '"dynamics.wd" = [0.0, 0.01, 0.05], "dynamics.batch" = [4, 8]'))
    args = ["run", str(matrix), "--processes", "1", "--store", str(tmp_path / "s.sqlite"), "--scorecard", ""]
    first = CliRunner().invoke(app, args)  # CliRunner's output is not a terminal: a log
    assert first.exit_code == 0, first.output
    lines = [LINE.match(line) for line in first.output.splitlines()]
    done = [tuple(int(g) for g in m.groups()) for m in lines if m]
    assert [d[:2] for d in done] == [(6, 12), (12, 12)]  # two groups (one per batch size) of 3 wd x 2 seeds
    assert done[-1][2:] == (12, 0, 0) and "quick runs: 12 runs, 0 already stored, 12 to train" in first.output
    again = CliRunner().invoke(app, args)
    assert "quick runs: 12 runs, 12 already stored, 0 to train" in again.output and not any(
        LINE.match(line) for line in again.output.splitlines())
    quiet = CliRunner().invoke(app, [*args, "--quiet"])
    assert "runs, 12 already stored" not in quiet.output


def test_the_progress_line_gives_rate_and_eta():
    line = progress_line("quick runs", 40, 100, 20, 1, 2, elapsed=600.0)
    assert line == ("quick runs: 40/100 runs done (20 trained here, diverged 1, failed 2), 2.00 runs/min, "
                    "ETA 0:30:00")
    assert progress_line("q", 5, 10, 0, 0, 0, elapsed=0.0).endswith("0.00 runs/min, ETA unknown")
    # with the planned work known, the ETA follows its share done, not the run count:
    # 10 of 100 runs in 10 min, but they were 80% of the work
    assert progress_line("q", 10, 100, 10, 0, 0, elapsed=600.0, worked=0.8).endswith("ETA 0:02:30")
    assert eta(600.0, 0.0) == "unknown"


def test_the_eta_weighs_each_stored_run_by_its_planned_work(monkeypatch, capsys):
    """After the longest group (started first), the ETA is the time the rest needs at that
    pace, not the run count's (2:23:23 after 6 min of an 18-min v3 quick tier)."""
    from types import SimpleNamespace

    from rankbias.cli import views

    clock = iter([0.0, 0.0, 600.0])  # made, start, the group stored
    monkeypatch.setattr(views.time, "monotonic", lambda: next(clock))
    hooks = views._line_hooks("q")
    hooks.start(4, 0)
    hooks.planned({"long": 8.0, "a": 1.0, "b": 0.5, "c": 0.5})
    hooks.group([SimpleNamespace(name="long", status="done")])  # 1 run of 4 in 10 min, 80% of the work
    assert capsys.readouterr().out.strip().endswith("1/4 runs done (1 trained here, diverged 0, failed 0), "
                                                    "0.10 runs/min, ETA 0:02:30")


def test_training_plans_each_runs_work_for_the_progress_hooks(tmp_path):
    from rankbias.engine.device import place
    from rankbias.experiments.config import group_work
    from rankbias.experiments.matrix import expand
    from rankbias.experiments.runner import Progress, train_missing
    from rankbias.experiments.spec import load
    from rankbias.experiments.store import Store

    matrix_file = tmp_path / "m.toml"
    matrix_file.write_text(TINY_MATRIX)
    matrix, planned = expand(load(matrix_file), "quick"), []
    train_missing(matrix, Store(tmp_path / "s.sqlite"), place("cpu"), processes=1,
                  progress=Progress(planned=planned.append))
    group = list(matrix.runs.values())  # 3 wd x 2 seeds: one ensemble
    assert planned == [{name: group_work(group) / 6 for name in matrix.runs}] and len(planned[0]) == 6


def test_a_redirected_run_shows_progress_before_it_ends(tmp_path):
    """A real process writing to a file (a batch job's log): a progress line is in the file
    while later groups still train."""
    import os
    import subprocess
    import sys
    import time

    matrix = tmp_path / "m.toml"
    matrix.write_text(TINY_MATRIX.replace("steps = 30", "steps = 3000").replace(
        '"dynamics.wd" = [0.0, 0.01, 0.05]', '"dynamics.wd" = [0.0, 0.01], "dynamics.batch" = [4, 8, 16]'))
    log = tmp_path / "log.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a plain batch job runs
    with open(log, "w") as out:
        job = subprocess.Popen([sys.executable, "-m", "rankbias.cli", "run", str(matrix), "--processes", "1",
                                "--store", str(tmp_path / "s.sqlite"), "--scorecard", ""], stdout=out,
                               stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        seen_while_running = False
        while job.poll() is None:
            lines = [LINE.match(line) for line in log.read_text().splitlines()]
            if any(m and int(m.group(1)) < 12 for m in lines):
                seen_while_running = job.poll() is None
                break
            time.sleep(0.05)
        assert job.wait(timeout=300) == 0, log.read_text()
    assert seen_while_running, log.read_text()
