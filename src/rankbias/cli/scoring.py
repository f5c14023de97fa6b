"""The scoring commands: ``score`` the stored runs against the claims, ``compare``
a researcher's hypotheses with the baselines that read the same scenarios (training
what the store lacks first), and ``report`` them as an HTML page with plots."""

from __future__ import annotations

from pathlib import Path

import typer

from rankbias.cli.app import (DEVICE_HELP, PLAIN_HELP, PROCESSES_HELP, SCORECARD_HELP, TARGET_HELP,
                              TIER_HELP, VERSION_HELP, app, at_least, check_variants, console, fail,
                              load_matrix, new_store, open_store, placed)
from rankbias.cli.views import progress_bar, show_scorecard, trained
from rankbias.experiments.matrix import expand
from rankbias.experiments.store import DEFAULT_PATH

N_BOOT_HELP = "Bootstrap resamples over seeds (0: the default)."


def _scored(matrix, store, extra=(), n_boot: int = 0, claims=None, version: int = 2, target: str = ""):
    """``benchmark.score_matrix`` under a spinner; exits 2 on a bad claim id or --n-boot."""
    from rankbias.scoring.benchmark import score_matrix

    at_least("--n-boot", n_boot, 0, "0: the default")
    try:
        with console.status("scoring (bootstrap over seeds)"):
            return score_matrix(matrix, store, list(extra), n_boot=n_boot, claims=claims, version=version,
                                target=target)
    except ValueError as err:
        fail(str(err))


@app.command("score")
def score_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("scorecard.json", "--scorecard", "--out", help=SCORECARD_HELP),
    n_boot: int = typer.Option(0, "--n-boot", help=N_BOOT_HELP),
    claim: list[str] = typer.Option([], "--claim", help="Score only this claim id (repeatable)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Score the stored runs of a matrix tier against the baseline hypotheses (no training)."""
    _, _, matrix = load_matrix(target, tier, claims_version)
    card = _scored(matrix, open_store(store_path), (), n_boot, claim, claims_version, target)
    if out:
        card.write(out)
    show_scorecard(card, out)


@app.command("compare")
def compare_cmd(
    hypothesis_file: Path = typer.Argument(..., help="A Python file defining Trend / Predictor objects."),
    target: str = typer.Option("quick", "--matrix", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("", "--scorecard", "--out", help="Where the scorecard JSON of the comparison goes "
                                                             "('' for none; one of another matrix is kept)."),
    n_boot: int = typer.Option(0, "--n-boot", help=N_BOOT_HELP),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    train: bool = typer.Option(True, "--train/--no-train", help="Train the runs your hypotheses read that the "
                                                                "store lacks before scoring (resumes)."),
    processes: int = typer.Option(0, "--processes", help=PROCESSES_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for scripts)."),
    plain: bool = typer.Option(False, "--plain", help=PLAIN_HELP),
    keep_going: bool = typer.Option(False, "--keep-going", help="Exit 0 even if some of your hypotheses cannot be "
                                                                "scored (their errors stay in the scorecard)."),
):
    """Score your own hypotheses beside the baselines on the same runs.

    The file may declare scenarios its hypotheses need beyond the matrix, as TOML
    text in a module-level MATRIX; the runs they read that the store lacks are
    trained first. Hypotheses registered by installed packages under the
    entry-point group 'rankbias.hypotheses' are scored too."""
    from rankbias.experiments.spec import MatrixError, extend
    from rankbias.scoring.benchmark import baselines_of, runs_read, unmatched
    from rankbias.scoring.matchup import pairings
    from rankbias.scoring.hypotheses import HypothesisError, load_entry_points, load_user

    path, spec, matrix = load_matrix(target, tier, claims_version)
    try:
        mine, needed = load_user(hypothesis_file)
        mine += load_entry_points()
    except HypothesisError as err:
        fail(str(err))
    if needed is not None:
        try:
            spec = extend(spec, needed, f"{hypothesis_file} (MATRIX)")
            matrix = expand(spec, matrix.tier, str(path))
        except MatrixError as err:
            fail(str(err))
        check_variants(spec, claims_version, f"{hypothesis_file} (MATRIX)")
    matrix = with_logged_runs(matrix, store_path)
    unknown = unmatched(mine, matrix)
    if unknown:
        fail(f"hypotheses {unknown} apply to no scenario of this matrix; their 'scenarios' must name some of "
             f"{sorted(matrix.members)}, or the file's MATRIX must declare them.")
    store = (_train(runs_read(mine, matrix), store_path, processes, device, quiet, plain) if train
             else open_store(store_path))
    card = _scored(matrix, store, mine, n_boot, version=claims_version, target=target)
    if out:
        card.write(out)
    with console.status("scoring the baselines on the runs yours read"):
        pairs = pairings(card, baselines_of(matrix, claims_version), n_boot, claims_version)
    show_scorecard(card, out, pairs, keep_going)


def with_logged_runs(matrix, store_path: str):
    """``matrix`` with the logged runs (users' own models) of the store at ``store_path``, if it exists."""
    from rankbias.experiments.logged import with_logged

    return with_logged(matrix, open_store(store_path)) if Path(store_path).is_file() else matrix


def _train(matrix, store_path: str, processes: int, device: str, quiet: bool, plain: bool):
    """Train what the store lacks of ``matrix`` with a progress bar; returns the store."""
    from rankbias.experiments.runner import ExecutorError, train_missing
    from rankbias.experiments.store import StoreBusy

    placement = placed(device)
    at_least("--processes", processes, 0, "0: one per core, 1: in this process")
    store = new_store(store_path)
    with progress_bar("runs your hypotheses read", quiet, plain) as hooks:
        try:
            plan = train_missing(matrix, store, placement, processes=processes, progress=hooks)
        except (ExecutorError, StoreBusy) as err:
            fail(str(err))
    trained(plan, store)
    return store


@app.command("report")
def report_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: Path = typer.Option(Path("report"), "--out", help="Directory for index.html and the plots."),
    n_boot: int = typer.Option(0, "--n-boot", help=N_BOOT_HELP),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Write a static HTML report: the scorecard and plots of the stored runs."""
    from rankbias.scoring import report

    _, _, matrix = load_matrix(target, tier, claims_version)
    card = _scored(matrix, open_store(store_path), (), n_boot, version=claims_version, target=target)
    show_scorecard(card)
    with console.status("plotting"):
        page = report.write(out, card.verdicts, card.runs, f"{target} ({matrix.tier} tier)")
    console.print(f"report written to {page}")
