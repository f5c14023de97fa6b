"""The matrix commands: ``list`` its runs, ``run`` what the store lacks (then score
it), and ``claims``, the claims documented from the matrix and the hypotheses."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rankbias.cli.app import (DEVICE_HELP, PLAIN_HELP, PROCESSES_HELP, SCORECARD_HELP, TARGET_HELP,
                              TIER_HELP, VERSION_HELP, app, at_least, console, fail, load_matrix, new_store,
                              open_store, placed, version_checked)
from rankbias.cli.views import progress_bar, show_scorecard, trained
from rankbias.experiments.store import DEFAULT_PATH


@app.command("list")
def list_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="Store whose run statuses to show, if it exists."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """List a matrix's claims (scenarios), their runs in a tier and their status, and the cells skipped and why."""
    matrix_file, spec, matrix = load_matrix(target, tier, claims_version)
    stored = open_store(store_path).runs().set_index("name").status if Path(store_path).exists() else None
    table = Table(title=f"{matrix_file}: tier {matrix.tier}, {len(matrix.runs)} distinct runs")
    for col in ("scenario", "paper", "runs", "status", "grid"):
        table.add_column(col, overflow="fold")
    papers = {s.id: s.paper for s in spec.scenario}
    grids = {s.id: ", ".join(f"{k}={v}" for k, v in s.grid.items()) for s in spec.scenario}
    for sid, names in matrix.members.items():
        counts = stored.reindex(names).fillna("not run").value_counts().to_dict() if stored is not None else {}
        status = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) if counts else "no store"
        table.add_row(sid, papers[sid], str(len(names)), status, escape(grids[sid]))
    console.print(table)
    for sid, values, reason in matrix.skipped:
        console.print(f"skipped {sid} {values}: {escape(reason)}")


@app.command("run")
def run_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store; runs already in it are not redone."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun runs stored as failed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for scripts)."),
    plain: bool = typer.Option(False, "--plain", help=PLAIN_HELP),
    processes: int = typer.Option(0, "--processes", help=PROCESSES_HELP),
    scheduler: str = typer.Option("", "--scheduler", help="Train on an existing Dask cluster, e.g. tcp://HOST:8786."),
    scorecard: str = typer.Option("scorecard.json", "--scorecard", help=SCORECARD_HELP),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
):
    """Run what is missing of a matrix tier (resuming), with progress, then score it."""
    from rankbias.experiments.runner import ExecutorError
    from rankbias.experiments.store import StoreBusy
    from rankbias.scoring.benchmark import run_benchmark

    _, _, matrix = load_matrix(target, tier, claims_version)
    placement = placed(device, scheduler)
    at_least("--processes", processes, 0, "0: one per core, 1: in this process")
    store = new_store(store_path)
    with progress_bar(f"{matrix.tier} runs", quiet, plain) as hooks:
        try:
            card = run_benchmark(matrix, store, version=claims_version, device=placement, processes=processes,
                                 scheduler=scheduler, retry_failed=retry_failed, progress=hooks, label=target,
                                 scorecard_path=scorecard or None)
        except (ExecutorError, StoreBusy) as err:
            fail(str(err))
    trained(card.plan, store)
    show_scorecard(card, scorecard)


@app.command("claims")
def claims_cmd(
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    scorecard: Path = typer.Option(None, "--scorecard", help="A scorecard JSON of that version: show its verdicts."),
    out: Path = typer.Option(None, "--out", help="Write the Markdown here instead of printing it."),
):
    """Every claim: paper, prediction, setup, criteria, version history and (with --scorecard) verdict."""
    from rich.markdown import Markdown

    from rankbias.scoring.claims_doc import document

    version_checked(claims_version)
    if scorecard is not None and not scorecard.is_file():
        fail(f"'--scorecard' {scorecard} is not a file. Pass the JSON that `rankbias run` or `score` wrote.")
    try:
        text = document(claims_version, scorecard)
    except (ValueError, KeyError) as err:
        fail(f"scorecard {scorecard} cannot be read: {err}")
    if out is not None:
        out.write_text(text)
        console.print(f"claims of version {claims_version} written to {out}")
    else:
        console.print(Markdown(text))
