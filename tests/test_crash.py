"""Crash safety: a real ``rankbias run`` killed with SIGKILL at several points
resumes to exactly the store an uninterrupted run writes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from rankbias.experiments.store import Store

# four ensemble groups (one per batch size) of two seeds each
TEXT = """
[tiers]
quick = 2

[[scenario]]
id = "crash"
paper = "p"
data = { kind = "mixture", n = 96, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 24, 24, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, wd = 0.01, steps = 1000, log_points = 5 }
grid = { "dynamics.batch" = [4, 8, 16, 32] }
"""


def _stored(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _rows(store: Store):
    m = store.metrics().sort_values(["run", "step", "layer", "name"]).reset_index(drop=True)
    runs = store.runs()[["name", "status", "steps", "horizon"]].sort_values("name").reset_index(drop=True)
    return runs, m


def _argv(folder):
    matrix_file, store = folder / "m.toml", folder / "s.sqlite"
    matrix_file.write_text(TEXT)
    return store, [sys.executable, "-m", "rankbias.cli", "run", str(matrix_file), "--store", str(store), "--quiet",
                   "--processes", "1", "--scorecard", ""]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, by the same command in a fresh process: values of float
    noise (~1e-16) depend on BLAS thread counts, which earlier tests may have changed here."""
    store, argv = _argv(tmp_path_factory.mktemp("ref"))
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    return _rows(Store(store))


@pytest.mark.parametrize("kill_after", [0, 2, 6], ids=["before-any-run", "after-one-group", "after-three-groups"])
def test_sigkill_then_resume_gives_the_uninterrupted_store(tmp_path, reference, kill_after):
    store, argv = _argv(tmp_path)
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _stored(store) < kill_after and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if kill_after == 0:
        time.sleep(1.0)  # in the middle of start-up or of the first group
    assert child.poll() is None, "the run finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    kept = _stored(store)
    assert kept >= kill_after and kept % 2 == 0  # whole groups only
    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{8 - kept} runs trained, {kept} already stored" in " ".join(resumed.stdout.split())
    runs, metrics = _rows(Store(store))
    ref_runs, ref_metrics = reference
    assert runs.equals(ref_runs)
    assert not metrics.duplicated(["run", "step", "layer", "name"]).any()
    assert metrics[["run", "step", "layer", "name"]].equals(ref_metrics[["run", "step", "layer", "name"]])
    np.testing.assert_array_equal(metrics.value.to_numpy(), ref_metrics.value.to_numpy())
