"""The device check, run as a lent GPU runs it but with the CPU on both sides: the
same code on the same device must agree with itself exactly, and a planted
difference must show."""

import json
import sqlite3

from bench import device_check

TINY = """
[[scenario]]
id = "galanti.wd.tiny"
paper = "galanti"
data = { kind = "mixture", n = 60, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 10, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 10, steps = 30, log_points = 3 }
grid = { "dynamics.wd" = [0.0, 0.05] }
"""


def test_the_check_agrees_with_itself_on_one_device(tmp_path):
    matrix = tmp_path / "tiny.toml"
    matrix.write_text(TINY)
    out = tmp_path / "check"
    summary = device_check.main(["--target", str(matrix), "--gpu", "cpu", "--cpu-processes", "1",
                                 "--members", "8", "--steps", "10", "--out", str(out)])
    assert summary["rank_tol_pairs"] == 4 * 2 and summary["rank_tol_equal"] == summary["rank_tol_pairs"]
    assert summary["verdicts"] == summary["verdicts_same"] == 1 and summary["verdicts_differ"] == {}
    assert summary["cpu_s"] > 0 and summary["gpu_s"] > 0 and summary["ensemble_gpu_s"] > 0
    assert json.loads((out / "summary.json").read_text()) == summary
    # 4 runs (2 weight decays x 2 seeds) x 2 layers; a final rank that differs on one side counts
    with sqlite3.connect(out / "gpu.sqlite") as db:
        db.execute("UPDATE metrics SET value = value + 1 WHERE name = 'rank_tol' AND layer = 0 "
                   "AND step = (SELECT MAX(step) FROM metrics)")
    equal, pairs = device_check.rank_agreement(out / "cpu.sqlite", out / "gpu.sqlite")
    assert (equal, pairs) == (4, 8)  # layer 0 of each of the 4 runs
