"""The matrix commands: ``list`` its runs, ``run`` what the store lacks (then score
it), and ``claims``, the claims documented from the matrix and the hypotheses."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rankbias.cli.app import DEVICE_HELP, PROCESSES_HELP, TARGET_HELP, TIER_HELP, VERSION_HELP, app, console, \
    device_checked, fail, load_matrix, open_store, version_checked
from rankbias.experiments.store import DEFAULT_PATH, StoreError


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


def train_missing(matrix, store_path: str, *, retry_failed: bool = False, quiet: bool = False, processes: int = 0,
                  scheduler: str = "", label: str = "", device: str = "cpu"):
    """Train the runs of ``matrix`` that the store at ``store_path`` lacks, with a progress bar
    and ETA, on ``device`` (checked by ``device_checked``) in ``processes`` local workers (0: one
    per core, or one per GPU) or a Dask ``scheduler``; return the store.  What is already
    stored is never redone, so an interrupted call resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from rankbias.experiments.runner import ExecutorError, plan, run_matrix
    from rankbias.experiments.store import Store

    if processes < 0:
        fail(f"'--processes' must be an int >= 0 (0: one per core, 1: in this process); got {processes}.")
    try:
        store = Store(store_path)
    except StoreError as err:
        fail(str(err))
    before = plan(matrix, store, retry_failed)
    counts = {"diverged": 0, "failed": 0}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("diverged {task.fields[diverged]} failed {task.fields[failed]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet) as progress:
        task = progress.add_task(label or f"{matrix.tier} runs", total=len(matrix.runs), completed=before.done, **counts)

        def on_done(rec):
            if rec.status in counts:
                counts[rec.status] += 1
            progress.update(task, advance=1, **counts)

        workers = processes or _default_workers(device)
        executor = scheduler or (f"process:{workers}" if workers > 1 else "local")
        try:
            run_matrix(matrix, store, retry_failed, on_done=on_done, executor=executor, device=device)
        except ExecutorError as err:
            progress.stop()
            fail(str(err))
    console.print(f"{len(before.todo)} runs trained, {before.done} already stored, "
                  f"{before.failed_before} failed before (rerun with --retry-failed); store: {store.path}")
    return store


def _default_workers(device: str) -> int:
    """One worker per core on the CPU, per GPU on a bare cuda, one on a pinned cuda:N."""
    if device == "cuda":
        import torch

        return torch.cuda.device_count()
    return 1 if device.startswith("cuda:") else os.cpu_count() or 1


@app.command("run")
def run_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store; runs already in it are not redone."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun runs stored as failed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for scripts)."),
    processes: int = typer.Option(0, "--processes", help=PROCESSES_HELP),
    scheduler: str = typer.Option("", "--scheduler", help="Train on an existing Dask cluster, e.g. tcp://HOST:8786."),
    scorecard: str = typer.Option("scorecard.json", "--scorecard", help="Where the scorecard JSON goes ('' for none)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
):
    """Run what is missing of a matrix tier (resuming), with progress, then score it."""
    from rankbias.cli.scoring import score_and_print

    _, _, matrix = load_matrix(target, tier, claims_version)
    device = device_checked(device, scheduler)
    store = train_missing(matrix, store_path, retry_failed=retry_failed, quiet=quiet, processes=processes,
                          scheduler=scheduler, device=device)
    score_and_print(matrix, store, [], scorecard, version=claims_version, target=target)


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
