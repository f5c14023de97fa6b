"""rankbias export: a store's runs, final rows and metric rows, read back as they were stored."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.experiments import export as export_module
from rankbias.experiments.export import RUNS_COLUMNS, export
from rankbias.experiments.matrix import expand
from rankbias.experiments.runner import run_matrix
from rankbias.experiments.spec import parse
from rankbias.experiments.store import Store
from rankbias.scoring.runs import Runs
from reference import TINY_MATRIX


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "s.sqlite"
    matrix = expand(parse(TINY_MATRIX), "quick")
    store = Store(path)
    run_matrix(matrix, store)
    return store, matrix


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_exported_tables_are_the_stored_ones(stored, tmp_path, fmt):
    store, matrix = stored
    written = export(store, tmp_path / "out", fmt)
    read = {name: (pd.read_csv if fmt == "csv" else pd.read_parquet)(path) for name, (path, _) in written.items()}
    metrics = store.metrics()
    assert written["metrics"][1] == len(read["metrics"]) == len(metrics) > 0
    pd.testing.assert_frame_equal(read["metrics"], metrics, check_dtype=False)
    final = Runs(store, matrix).final  # what scoring reads, row for row
    got = read["final"].set_index("name").loc[final.index]
    for column in ("lr", "wd", "seed", "steps", "horizon", "train_loss_0", "rank_tol@0", "train_acc"):
        pd.testing.assert_series_equal(got[column], final[column], check_dtype=False, check_names=False)
    runs = read["runs"]
    assert sorted(runs.name) == sorted(store.runs().name) and set(runs.status) == {"done"}
    assert {"config.lr", "config.wd", "config.widths", "code", "device"} <= set(runs.columns)


def test_every_runs_column_is_documented(stored, tmp_path):
    written = export(stored[0], tmp_path, "csv")
    documented = {c.strip() for names, _ in RUNS_COLUMNS for c in names.split(",")}
    columns = pd.read_csv(written["runs"][0]).columns
    undocumented = [c for c in columns if c not in documented and not c.startswith("config.")]
    assert undocumented == []


def test_bad_exports_exit_2_with_one_line(stored, tmp_path, monkeypatch):
    store_path = str(stored[0].path)
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    cases = [(["--format", "xlsx"], "'--format' must be one of ['csv', 'parquet']; got 'xlsx'"),
             (["--to", str(a_file)], "is a file; export writes three files into a folder")]
    for argv, fragment in cases:
        result = CliRunner().invoke(app, ["export", "--store", store_path, *argv])
        assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["export", "--store", store_path, "--to", str(tmp_path / "p")])
    assert result.exit_code == 2 and "pip install 'rankbias[export]', or pass --format csv" in " ".join(
        result.output.split())
    assert export_module.FORMATS == ("csv", "parquet")
