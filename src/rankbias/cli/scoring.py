"""The scoring commands: ``score`` the stored runs against the claims, ``compare``
a researcher's hypotheses with the baselines that read the same scenarios (training
what the store lacks first), and ``report`` them as an HTML page with plots."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.traceback import Traceback

from rankbias.cli.app import (DEBUG, DEVICE_HELP, PROCESSES_HELP, TARGET_HELP, TIER_HELP, VERSION_HELP, app,
                              check_variants, console, device_checked, fail, load_matrix, open_store)
from rankbias.experiments.store import DEFAULT_PATH

VERDICT_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "scored": "cyan", "not applicable": "blue"}
N_BOOT_HELP = "Bootstrap resamples over seeds (0: the default)."


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.3g}"


def _statistics(v) -> str:
    """A verdict's first criterion (a predictor: both its scores) as value [95% CI] vs threshold."""
    shown = v.statistics if v.verdict == "scored" else [v.statistic] if v.statistic else []
    return escape("; ".join(f"{s.name}: {_fmt(s.value)} [{_fmt(s.low)}, {_fmt(s.high)}]"
                            + (f" {s.op} {_fmt(s.threshold)}" if s.op else "") for s in shown) or "-")


def _verdict_table(verdicts, title: str) -> Table:
    """One row per hypothesis: verdict, its first criterion (value [95% CI] vs threshold), effect, runs."""
    from rankbias.scoring.score import GATE

    table = Table(title=title, caption="CI: 95% bootstrap over seeds; horizon: lr*wd*T range; stationary: "
                                       f"wd>0 runs with ||grad L + wd theta|| / ||grad L|| <= {GATE}")
    for col in ("claim", "verdict", "first criterion: value [95% CI]", "effect", "runs/seeds", "horizon", "stat."):
        table.add_column(col, overflow="fold")
    notes = []
    for v in verdicts:
        eff = v.effect if v.verdict != "scored" else None
        style = VERDICT_STYLE.get(v.verdict, "")
        if v.note:
            notes.append(f"{v.id}: {v.note}")
        notes.extend(f"{v.id}: {s.name} is NaN: {s.note}" for s in v.statistics if s.note)
        label = f"{v.id} (control)" if v.control else v.id
        table.add_row(label, f"[{style}]{v.verdict}[/{style}]", _statistics(v), _fmt(eff.value) if eff else "-",
                      f"{v.n}/{len(v.seeds)}", f"{_fmt(v.horizon[0])}-{_fmt(v.horizon[1])}",
                      f"{v.stationary[0]}/{v.stationary[1]}")
    table.notes = notes
    return table


def _head_to_head(mine: list, baselines: list, verdicts) -> Table:
    """Each of ``mine`` beside the baselines that read any of its scenarios, on the same runs."""
    by_id: dict[str, list] = {}
    for v in verdicts:
        by_id.setdefault(v.id.split("[")[0], []).append(v)
    table = Table(title="head to head: your hypotheses and the baselines that read the same scenarios")
    for col in ("hypothesis", "verdict", "criterion or scores: value [95% CI]", "runs/seeds"):
        table.add_column(col, overflow="fold")
    for h in mine:
        rivals = [b for b in baselines if set(b.scenarios) & set(h.scenarios)]
        for k, hyp in enumerate([h, *rivals]):
            for v in by_id.get(hyp.id, []):
                style = VERDICT_STYLE.get(v.verdict, "")
                label = f"[bold]{v.id}[/bold]" if k == 0 else f"  {v.id}"
                table.add_row(label, f"[{style}]{v.verdict}[/{style}]", _statistics(v), f"{v.n}/{len(v.seeds)}")
        table.add_section()
    return table


def score_and_print(matrix, store, extra: list, out: str, n_boot: int | None = None, claims: list | None = None,
                    version: int = 2, target: str = "", keep_going: bool = False):
    """Score the claims of ``version`` (those named in ``claims``, or all that read the matrix) and
    ``extra`` hypotheses on ``store``, print the table (and, with ``extra``, the head-to-head
    view), write JSON (a metadata header and the verdicts) to ``out``, and exit 1 when one of
    ``extra`` could not be scored unless ``keep_going``; returns the verdicts and the ``score.Runs``."""
    from rankbias.scoring.hypotheses import claims as claims_of
    from rankbias.scoring.score import N_BOOT, Runs, applies_to, header, scorecard

    if n_boot is not None and n_boot < 0:
        fail(f"'--n-boot' must be an int >= 0 (0: the default {N_BOOT}); got {n_boot}.")
    known = [h.id for h in claims_of(version)]
    unknown = [c for c in claims or [] if c not in known]
    if unknown:
        fail(f"unknown claim ids {unknown} for '--claim'; known: {', '.join(known)}. Pick from those.")
    data = Runs(store, matrix)
    baselines = [h for h in claims_of(version) if applies_to(h, matrix) and (not claims or h.id in claims)]
    with console.status("scoring (bootstrap over seeds)"):
        verdicts = scorecard([*baselines, *extra], data, n_boot or N_BOOT, version=version)
    meta = header(data, verdicts, version, target, matrix.tier)
    if verdicts:
        table = _verdict_table(verdicts, f"scorecard: claims version {version}, {matrix.tier} tier, "
                                         f"{len(data.final)} stored runs")
        console.print(table)
        for note in table.notes:
            console.print(f"  note: {escape(note)}")
    else:
        meta["note"] = (f"nothing to score: no scenario of {target or 'this matrix'} is a claim of claims version "
                        f"{version} or a variant of one (<claim id>.<name>). Score your own hypotheses on these runs "
                        f"with `rankbias compare FILE --matrix {target or 'MATRIX'}`, or list the claims with "
                        f"`rankbias claims`.")
        console.print(escape(meta["note"]))
    if extra:
        console.print(_head_to_head(extra, baselines, verdicts))
    versions = ", ".join(f"{code} ({n} runs)" for code, n in data.code.value_counts().items())
    console.print(f"runs made by rankbias {escape(versions) or '-'}")
    if out:
        Path(out).write_text(json.dumps({"meta": meta, "verdicts": [v.to_dict() for v in verdicts]}, indent=1,
                                        default=float))
        console.print(f"scorecard written to {out}")
    _raise_unscored([v for v in verdicts if v.id.split("[")[0] in {h.id for h in extra}], keep_going)
    return verdicts, data


def _raise_unscored(verdicts, keep_going: bool) -> None:
    """A researcher's hypotheses whose code raised while scoring: their tracebacks under --debug,
    and exit 1 unless ``keep_going`` (they are in the scorecard either way, the error as their note).
    A baseline that cannot read a store's runs keeps the error as its note only."""
    broken = [v for v in verdicts if v.error is not None]
    if not broken:
        return
    if DEBUG["on"]:
        for v in broken:
            console.print(f"traceback of {v.id}:")
            console.print(Traceback.from_exception(type(v.error), v.error, v.error.__traceback__))
    message = (f"{len(broken)} hypotheses could not be scored: {', '.join(v.id for v in broken)} (their notes say "
               f"why). Fix them (--debug shows each traceback), or pass --keep-going to exit 0 with the rest scored.")
    if keep_going:
        console.print(f"note: {escape(message)}")
    else:
        fail(message, code=1)


@app.command("score")
def score_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("scorecard.json", "--out", help="Where the scorecard JSON goes ('' for none)."),
    n_boot: int = typer.Option(0, "--n-boot", help=N_BOOT_HELP),
    claim: list[str] = typer.Option([], "--claim", help="Score only this claim id (repeatable)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Score the stored runs of a matrix tier against the baseline hypotheses (no training)."""
    _, _, matrix = load_matrix(target, tier, claims_version)
    score_and_print(matrix, open_store(store_path), [], out, n_boot, claim, claims_version, target)


@app.command("compare")
def compare_cmd(
    hypothesis_file: Path = typer.Argument(..., help="A Python file defining Trend / Predictor objects."),
    target: str = typer.Option("quick", "--matrix", help=TARGET_HELP),
    tier: str = typer.Option("quick", help=TIER_HELP),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("", "--out", help="Write the comparison as JSON here."),
    n_boot: int = typer.Option(0, "--n-boot", help=N_BOOT_HELP),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    train: bool = typer.Option(True, "--train/--no-train", help="Train the runs your hypotheses read that the "
                                                                "store lacks before scoring (resumes)."),
    processes: int = typer.Option(0, "--processes", help=PROCESSES_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for scripts)."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Exit 0 even if some of your hypotheses cannot be "
                                                                "scored (their errors stay in the scorecard)."),
):
    """Score your own hypotheses beside the baselines on the same runs.

    The file may declare scenarios its hypotheses need beyond the matrix, as TOML
    text in a module-level MATRIX; the runs they read that the store lacks are
    trained first. Hypotheses registered by installed packages under the
    entry-point group 'rankbias.hypotheses' are scored too."""
    from rankbias.cli.matrix import train_missing
    from rankbias.scoring.hypotheses import HypothesisError, load_entry_points, load_user
    from rankbias.experiments.matrix import Matrix, expand
    from rankbias.experiments.spec import MatrixError, extend

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
    unknown = [h.id for h in mine if not set(h.scenarios) & set(matrix.members)]
    if unknown:
        fail(f"hypotheses {unknown} apply to no scenario of this matrix; their 'scenarios' must name some of "
             f"{sorted(matrix.members)}, or the file's MATRIX must declare them.")
    if train:
        read = {sid for h in mine for sid in h.scenarios if sid in matrix.members}
        runs = {name: matrix.runs[name] for sid in read for name in matrix.members[sid]}
        store = train_missing(Matrix(matrix.tier, runs), store_path, quiet=quiet, processes=processes,
                              label="runs your hypotheses read", device=device_checked(device))
    else:
        store = open_store(store_path)
    score_and_print(matrix, store, mine, out, n_boot, version=claims_version, target=target, keep_going=keep_going)


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
    verdicts, data = score_and_print(matrix, open_store(store_path), [], "", n_boot, version=claims_version,
                                     target=target)
    with console.status("plotting"):
        page = report.write(out, verdicts, data, f"{target} ({matrix.tier} tier)")
    console.print(f"report written to {page}")
