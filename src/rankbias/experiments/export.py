"""``rankbias export``: a store's runs, final rows and metric rows as files for a notebook.

Three tables, written with pandas as CSV or Parquet (Parquet needs pyarrow,
the ``export`` extra), one file each in a folder:

- ``runs``: one row per stored run (``RUNS_COLUMNS``), its config flattened into
  ``config.<field>`` columns;
- ``final``: one row per run, its last-step measurements (``tables.final_table``,
  ``tables.FINAL_COLUMNS``);
- ``metrics``: every metric row (``METRICS_COLUMNS``), long format.

Spectra stay in the store (``Store.spectra``): one array per row does not fit a
flat file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rankbias.experiments.store import Store
from rankbias.experiments.tables import code_of, final_table

FORMATS = ("csv", "parquet")
RUNS_COLUMNS = (
    ("name", "the run's canonical name (config.RunConfig.name)"),
    ("hash", "sha256 of its config, 16 hex digits"),
    ("status", "done, diverged or failed"),
    ("error", "why a failed run failed"),
    ("diverged_at", "the step (or flow time) where its loss stopped being finite"),
    ("steps", "how far it went: optimizer steps, or flow time for gradient flow"),
    ("horizon", "lr x wd x steps"),
    ("started, finished", "unix times of its group's start and end"),
    ("code", "rankbias version @ git commit of the code that trained it"),
    ("device", "the torch device it trained on"),
    ("config.<field>", "each field of its config (the columns of final without the measurements)"),
)
METRICS_COLUMNS = (
    ("run", "the run's name"),
    ("step", "the log point: optimizer step, or flow time for gradient flow"),
    ("layer", "the layer, counted from 0 (solver[\"layers\"] names them); -1 for a whole-network metric"),
    ("name", "the metric (docs: engine, \"What is measured\")"),
    ("value", "its value, float64"),
)


class ExportError(ValueError):
    """An export that cannot be written; the message says why and what to do."""


def export(store: Store, folder: str | Path, fmt: str = "parquet") -> dict[str, tuple[Path, int]]:
    """Write ``store``'s runs, final rows and metric rows into ``folder`` (created if missing) as
    ``fmt`` ("csv" or "parquet"); returns {table: (file, rows)}.  Raises ``ExportError`` for
    an unknown format, a folder that is a file, or Parquet without pyarrow."""
    if fmt not in FORMATS:
        raise ExportError(f"'--format' must be one of {list(FORMATS)}; got {fmt!r}. Pass csv or parquet.")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (pandas writes Parquet through it)
        except ImportError:
            raise ExportError("writing Parquet needs pyarrow, which is not installed. Install it with "
                              "pip install 'rankbias[export]', or pass --format csv.") from None
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} is a file; export writes three files into a folder. Pass a folder path.")
    folder.mkdir(parents=True, exist_ok=True)
    runs = store.runs().set_index("name")
    metrics = store.metrics()
    tables = {"runs": _runs_table(runs).reset_index(), "final": final_table(runs, metrics).reset_index(names="name"),
              "metrics": metrics}
    written = {}
    for name, table in tables.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
        written[name] = (path, len(table))
    return written


def _runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (``Store.runs``, indexed by name) flat: ``RUNS_COLUMNS``."""
    config = pd.DataFrame(list(runs.config.values), index=runs.index).add_prefix("config.")
    code = runs.provenance.map(code_of)
    device = runs.provenance.map(lambda p: p.get("device"))
    table = runs[["hash", "status", "error", "diverged_at", "steps", "horizon", "started", "finished"]]
    return pd.concat([table, code.rename("code"), device.rename("device"), config], axis=1)
