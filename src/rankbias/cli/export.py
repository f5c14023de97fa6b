"""``rankbias export``: a store's tables as CSV or Parquet files."""

from __future__ import annotations

import typer
from rich.markup import escape

from rankbias.cli.app import app, console, fail, open_store
from rankbias.experiments.store import DEFAULT_PATH


@app.command("export")
def export_cmd(
    to: str = typer.Option("rankbias-export", "--to", help="Folder the three files go to (created if missing)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet (needs pyarrow: the export extra) or csv."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store to read."),
):
    """Write a store's runs, final rows and metric rows to runs/final/metrics.<format> for a notebook
    (columns: docs, "Results", Export)."""
    from rankbias.experiments.export import ExportError, export

    store = open_store(store_path)
    try:
        written = export(store, to, fmt)
    except ExportError as err:
        fail(str(err))
    finally:
        store.close()
    for name, (path, rows) in written.items():
        console.print(f"{name:8s} {rows:>9,} rows -> {escape(str(path))}")
