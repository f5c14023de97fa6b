"""Running a matrix: only what is missing, resumable, no lost or doubled rows."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.experiments.matrix import expand
from rankbias.experiments.config import STEP_COST, group_work, steps, work
from rankbias.experiments.runner import _groups, plan, run_matrix, run_one
from rankbias.experiments.spec import parse
from rankbias.experiments.store import RunRecord, Store
from reference import TINY_MATRIX

TEXT = TINY_MATRIX


def _rows(store):
    m = store.metrics()
    return m.sort_values(["run", "step", "layer", "name"]).reset_index(drop=True)


def test_an_interrupted_matrix_resumes_to_the_same_store(tmp_path):
    matrix = expand(parse(TEXT), "quick")
    assert len(matrix.runs) == 6
    whole = Store(tmp_path / "whole.sqlite")
    run_matrix(matrix, whole)
    # "interrupted": only half the runs made it to the store before the stop
    partial = Store(tmp_path / "partial.sqlite")
    for config in list(matrix.runs.values())[::2]:
        run_one(config, partial)
    resumed = plan(matrix, partial)
    assert resumed.done == 3 and len(resumed.todo) == 3
    run_matrix(matrix, partial)
    a, b = _rows(whole), _rows(partial)
    assert len(a) == len(b) and list(a.run) == list(b.run)
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=2e-3, atol=1e-5)  # solo vs ensemble runs
    assert not b.duplicated(["run", "step", "layer", "name"]).any()
    assert plan(matrix, partial).todo == []  # nothing left: a third call trains nothing


def test_failed_runs_wait_for_retry_failed(tmp_path):
    matrix = expand(parse(TEXT), "quick")
    store = Store(tmp_path / "s.sqlite")
    name = next(iter(matrix.runs))
    store.write(RunRecord(name, "h", {}, "failed", {}, 0.0, 0.0, error="RuntimeError: worker died"))
    assert plan(matrix, store).failed_before == 1 and len(plan(matrix, store).todo) == 5
    assert len(plan(matrix, store, retry_failed=True).todo) == 6
    run_matrix(matrix, store, retry_failed=True)
    assert store.status(name) == "done"


def test_cli_run_resumes_and_refuses_bad_input(tmp_path):
    matrix_file = tmp_path / "m.toml"
    matrix_file.write_text(TEXT)
    store = str(tmp_path / "s.sqlite")
    scorecard = tmp_path / "sc.json"
    first = CliRunner().invoke(app, ["run", str(matrix_file), "--store", store, "--quiet", "--processes", "1",
                                     "--scorecard", str(scorecard)])
    assert first.exit_code == 0, first.output
    card = json.loads(scorecard.read_text())  # scenario "s" is no claim's: nothing to score, and it says so
    assert card["verdicts"] == [] and "nothing to score" in card["meta"]["note"] and "rankbias compare" in first.output
    assert card["meta"]["runs"] == {"in_matrix": 6, "stored": 6, "done": 6}
    assert "6 runs trained, 0 already stored" in " ".join(first.output.split())
    again = CliRunner().invoke(app, ["run", str(matrix_file), "--store", store, "--quiet", "--scorecard", ""])
    assert "0 runs trained, 6 already stored" in " ".join(again.output.split())
    bad_tier = CliRunner().invoke(app, ["run", str(matrix_file), "--tier", "huge"])
    assert bad_tier.exit_code == 2 and "'--tier' must be one of" in bad_tier.output
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"x" * 4096)
    bad_store = CliRunner().invoke(app, ["run", str(matrix_file), "--store", str(junk)])
    assert bad_store.exit_code == 2 and "is not an SQLite database" in " ".join(bad_store.output.split())
    bad_procs = CliRunner().invoke(app, ["run", str(matrix_file), "--processes", "-1"])
    assert bad_procs.exit_code == 2 and "'--processes' must be an int >= 0" in bad_procs.output


def _store_after(tmp_path, name, executor):
    store = Store(tmp_path / f"{name}.sqlite")
    run_matrix(expand(parse(TEXT + GF), "quick"), store, executor=executor)
    return _rows(store), store


GF = """
[[scenario]]
id = "flow"
paper = "p"
data = { kind = "separable", n = 40, dim = 5, margin = 0.2, seed = 0 }
net = { arch = "deep_linear", widths = [5, 6, 1] }
dynamics = { kind = "gf", loss = "logistic", flow_time = 2.0, log_points = 3 }
"""


def test_process_pool_and_dask_store_exactly_what_local_does(tmp_path):
    from distributed import Client, LocalCluster

    local, _ = _store_after(tmp_path, "local", "local")
    assert local.run.nunique() == 8  # 6 ensemble runs + 2 gradient-flow runs
    pooled, _ = _store_after(tmp_path, "pool", "process:2")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster, Client(cluster) as client:
        dasked, _ = _store_after(tmp_path, "dask", client)
    for other in (pooled, dasked):
        assert list(other.run) == list(local.run) and list(other.name) == list(local.name)
        np.testing.assert_allclose(other.value.to_numpy(), local.value.to_numpy(), rtol=1e-6, atol=1e-9)


def test_bad_executors_are_refused_clearly(tmp_path):
    import pytest

    from rankbias.experiments.runner import ExecutorError

    matrix = expand(parse(TEXT), "quick")
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(ExecutorError, match=r"must be 'process:N' with N >= 1"):
        run_matrix(matrix, store, executor="process:zero")
    with pytest.raises(ExecutorError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:1'.*Check the address"):
        run_matrix(matrix, store, executor="tcp://127.0.0.1:1")
    assert len(store.runs()) == 0  # nothing half-written


def test_a_worker_that_dies_once_is_retried_and_the_matrix_completes(tmp_path, monkeypatch):
    import crashy

    monkeypatch.setenv("RANKBIAS_TEST_MARKER", str(tmp_path / "died"))
    store = Store(tmp_path / "s.sqlite")
    run_matrix(expand(parse(TEXT), "quick"), store, executor="process:2", task=crashy.die_once)
    assert (tmp_path / "died").exists()  # a worker did die
    runs = store.runs()
    assert len(runs) == 6 and set(runs.status) == {"done"}
    reference = Store(tmp_path / "ref.sqlite")
    run_matrix(expand(parse(TEXT), "quick"), reference)
    np.testing.assert_allclose(_rows(store).value.to_numpy(), _rows(reference).value.to_numpy(), rtol=1e-6, atol=1e-9)


def test_a_group_that_keeps_killing_its_worker_is_stored_as_failed_and_the_rest_goes_on(tmp_path):
    import crashy

    store = Store(tmp_path / "s.sqlite")
    # two ensemble groups: s (B = 8) holds the poisoned wd = 0.05, t (B = 16) does not
    text = TEXT.replace('"dynamics.wd" = [0.0, 0.01, 0.05]', '"dynamics.wd" = [0.05]') + TEXT.replace(
        'id = "s"', 'id = "t"').replace("batch = 8", "batch = 16").replace("0.01, 0.05]", "0.01]")
    run_matrix(expand(parse(text), "quick"), store, executor="process:2", task=crashy.die_on_wd, retries=1)
    runs = store.runs().set_index("name")
    poisoned = runs[[c["wd"] == 0.05 for c in runs.config]]
    assert len(poisoned) == 2 and set(poisoned.status) == {"failed"}
    assert all("its worker process died 2 times running it alone" in e for e in poisoned.error)
    healthy = runs[[c["wd"] != 0.05 for c in runs.config]]
    assert len(healthy) == 4 and set(healthy.status) == {"done"}


def test_dask_reschedules_the_group_of_a_worker_that_died(tmp_path, monkeypatch):
    import crashy
    from distributed import Client, LocalCluster

    monkeypatch.setenv("RANKBIAS_TEST_MARKER", str(tmp_path / "died"))
    store = Store(tmp_path / "s.sqlite")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster, Client(cluster) as client:
        run_matrix(expand(parse(TEXT + GF), "quick"), store, executor=client, task=crashy.die_once)
    assert (tmp_path / "died").exists()  # a worker did die
    runs = store.runs()
    assert len(runs) == 8 and set(runs.status) == {"done"}


def test_cli_run_trains_the_seeds_a_scenario_lists(tmp_path):
    matrix_file = tmp_path / "m.toml"
    matrix_file.write_text(TEXT + "seeds = [11, 12]\n")
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(matrix_file), "--store", str(store), "--quiet", "--processes", "1",
                                      "--scorecard", ""])
    assert result.exit_code == 0, result.output
    seeds = sorted(config["seed"] for config in Store(store).runs().config)
    assert seeds == [11, 11, 11, 12, 12, 12]  # 3 wd x the 2 listed seeds, none of the tier's 0, 1


def test_the_groups_with_the_most_work_start_first():
    """Longest-processing-time order: a scenario declared last but 100x longer trains first."""
    text = TINY_MATRIX + TINY_MATRIX.replace('id = "s"', 'id = "long"').replace("steps = 30", "steps = 3000")
    matrix = expand(parse(text, "<test>"), "quick")
    groups = _groups(list(matrix.runs.values()))
    assert [g[0].dynamics.steps for g in groups] == [3000, 30]
    loads = [group_work(g) for g in groups]
    assert loads == sorted(loads, reverse=True) and loads[0] == pytest.approx(100 * loads[1])
    # a group's cost is its runs' arithmetic plus a fixed cost per step, once per group
    assert loads[1] == pytest.approx(sum(map(work, groups[1])) + STEP_COST * steps(groups[1][0]))


def test_a_second_process_on_a_busy_store_is_refused_and_nothing_is_doubled(tmp_path):
    """Two real `rankbias run` processes on one store: the second is refused with one line while
    the first trains; every run is stored once, trained once."""
    import subprocess
    import sys
    import time

    matrix_file = tmp_path / "m.toml"
    matrix_file.write_text(TEXT.replace("steps = 30", "steps = 60000"))  # seconds of training: the second comes in
    store = tmp_path / "s.sqlite"
    argv = [sys.executable, "-m", "rankbias.cli", "run", str(matrix_file), "--store", str(store), "--processes", "1",
            "--quiet", "--scorecard", ""]
    first = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = tmp_path / "s.sqlite.lock"
    deadline = time.time() + 120
    while not (lock.exists() and "pid" in lock.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    overlapped = first.poll() is None  # the first still training when the second was answered
    out_first = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out_first
    assert overlapped, "the first run ended before the second started: give it more steps"
    assert second.returncode == 2
    said = " ".join((second.stdout + second.stderr).split())
    assert f"store {store} is being trained into by another rankbias process (pid {first.pid}" in said, said
    assert "Traceback" not in said
    assert "6 runs trained, 0 already stored" in " ".join(out_first.split())
    runs = Store(store).runs()
    assert len(runs) == 6 and runs.name.is_unique and set(runs.status) == {"done"}
