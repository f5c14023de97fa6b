"""``rankbias`` command line: the only module that prints or sets exit codes."""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankbias import __version__
from rankbias.spectral import ranks
from rankbias.store import DEFAULT_PATH, StoreError
from rankbias.weights import WeightFileError, load_matrices

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Measure and benchmark the low-rank bias of neural networks.")
DEBUG = {"on": False}  # --debug: show the traceback behind an error
console = Console()
if not console.is_terminal:  # piped output: rich would fall back to 80 columns
    console.width = max(console.width, 120)

COLUMNS = ("rank_tol", "rank_rel", "stable_rank", "effective_rank", "gd_rank", "numerical_rank")


def _version(value: bool):
    if value:
        console.print(f"rankbias {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback behind an error message."),
):
    """Measure and benchmark the low-rank bias of neural networks."""
    DEBUG["on"] = debug


@app.command("ranks")
def ranks_cmd(
    path: Path = typer.Argument(..., help="Weight file: .npy, .npz, or a torch .pt/.pth state dict or tensor."),
    tol: float = typer.Option(1e-3, help="rank_tol threshold on sigma_i / ||W||_F."),
    eps: float = typer.Option(1e-3, help="rank_rel threshold on sigma_i / sigma_1."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows instead of a table."),
):
    """Print the rank measures of every weight matrix in a saved file.

    Tensors with 2+ dimensions are measured as (shape[0], prod(shape[1:]))
    matrices (conv kernels as out x in*kh*kw); 1-d tensors (biases) are skipped.
    """
    try:
        matrices = load_matrices(path)
    except WeightFileError as err:
        _fail(str(err))
    if not matrices:
        _fail(f"{path} holds no tensor with 2 or more dimensions: nothing to measure.")
    try:
        rows = [_measure(name, w, tol, eps) for name, w in matrices.items()]
    except (TypeError, ValueError) as err:
        _fail(str(err))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{path}  (rank_tol tol={tol:g}, rank_rel eps={eps:g})")
    for col in ("layer", "shape", *COLUMNS):
        table.add_column(col, justify="left" if col in ("layer", "shape") else "right")
    for row in rows:
        cells = [f"{row[c]:.2f}" if c in ("stable_rank", "effective_rank") else f"{row[c]:.0f}" for c in COLUMNS]
        table.add_row(row["layer"], "x".join(map(str, row["shape"])), *cells)
    console.print(table)


def _measure(name: str, w: np.ndarray, tol: float, eps: float) -> dict:
    matrix = w.reshape(w.shape[0], -1)
    measured = ranks(matrix, COLUMNS, tol=tol, eps=eps)
    return {"layer": name, "shape": list(matrix.shape), **{k: float(v) for k, v in measured.items()}}


TARGET_HELP = "A tier of the built-in claims matrix (quick, standard, full) or a matrix TOML file."
VERSION_HELP = "Claims version: 2 (current) or 1 (on record): the built-in matrix and the rules that score it."


def _version_checked(version: int) -> int:
    from rankbias.hypotheses import CURRENT, VERSIONS

    if version not in VERSIONS:
        _fail(f"'--claims-version' must be one of {list(VERSIONS)}; got {version}. Pass {CURRENT} (the current "
              f"claims) or 1 (version 1, kept on record).")
    return version


def _matrix(target: str, tier: str, version: int):
    """(matrix file, spec, expanded matrix) of a command-line target; exits 2 on a bad one."""
    from rankbias.hypotheses import unknown_variants
    from rankbias.matrix import expand
    from rankbias.spec import TIERS, MatrixError, load, resolve

    if tier not in TIERS:
        _fail(f"'--tier' must be one of {list(TIERS)}; got {tier!r}.")
    if target not in TIERS and not Path(target).exists():
        close = difflib.get_close_matches(target, TIERS, n=1)
        _fail(f"{target!r} is neither a tier of the built-in matrix ({', '.join(TIERS)}) nor a matrix file. "
              + (f"Did you mean {close[0]!r}? " if close else "") + "Pass a tier or the path of a .toml matrix file.")
    path, tier = resolve(target, tier, _version_checked(version))
    try:
        spec = load(path)
        matrix = expand(spec, tier, str(path))
    except MatrixError as err:
        _fail(str(err))
    problems = [f"{path}: scenario {sid!r} key 'id': a scenario named <claim>.<name> is a variant of that claim, "
                f"and claims version {version} has no claim {base!r}. Got {sid!r}. Fix: "
                + (f"name an existing claim before the variant's name, e.g. {close[0]!r}"
                   if close else "use a prefix of your own, e.g. 'mine." + sid.split(".", 1)[1] + "'") + "."
                for sid, base, close in unknown_variants([s.id for s in spec.scenario], version)]
    if problems:
        _fail("\n".join(problems))
    return path, spec, matrix


def _fail(message: str, code: int = 2):
    """Print ``message`` as an error (with the traceback behind it under --debug) and exit with ``code``."""
    if DEBUG["on"] and sys.exc_info()[0] is not None:
        console.print_exception()
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code=code)


@app.command("list")
def list_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help="Tier of a matrix file: quick, standard or full."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="Store whose run statuses to show, if it exists."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """List a matrix's claims (scenarios), their runs in a tier and their status, and the cells skipped and why."""
    matrix_file, spec, matrix = _matrix(target, tier, claims_version)
    stored = _open_store(store_path).runs().set_index("name").status if Path(store_path).exists() else None
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
    tier: str = typer.Option("quick", help="Tier of a matrix file: quick, standard or full."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store; runs already in it are not redone."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun runs stored as failed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for scripts)."),
    processes: int = typer.Option(0, "--processes", help="Local worker processes: 0 = one per core, 1 = in this process."),
    scheduler: str = typer.Option("", "--scheduler", help="Train on an existing Dask cluster, e.g. tcp://HOST:8786."),
    scorecard: str = typer.Option("scorecard.json", "--scorecard", help="Where the scorecard JSON goes ('' for none)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Run what is missing of a matrix tier (resuming), with progress, then score it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from rankbias.runner import ExecutorError, plan, run_matrix
    from rankbias.store import Store

    if processes < 0:
        _fail(f"'--processes' must be an int >= 0 (0: one per core, 1: in this process); got {processes}.")
    matrix_file, spec, matrix = _matrix(target, tier, claims_version)
    tier = matrix.tier
    try:
        store = Store(store_path)
    except StoreError as err:
        _fail(str(err))
    before = plan(matrix, store, retry_failed)
    counts = {"diverged": 0, "failed": 0}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("diverged {task.fields[diverged]} failed {task.fields[failed]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet) as progress:
        task = progress.add_task(f"{tier} runs", total=len(matrix.runs), completed=before.done, **counts)

        def on_done(rec):
            if rec.status in counts:
                counts[rec.status] += 1
            progress.update(task, advance=1, **counts)

        workers = processes or os.cpu_count() or 1
        executor = scheduler or (f"process:{workers}" if workers > 1 else "local")
        try:
            run_matrix(matrix, store, retry_failed, on_done=on_done, executor=executor)
        except ExecutorError as err:
            progress.stop()
            _fail(str(err))
    console.print(f"{len(before.todo)} runs trained, {before.done} already stored, "
                  f"{before.failed_before} failed before (rerun with --retry-failed); store: {store.path}")
    _score_and_print(matrix, store, [], scorecard, version=claims_version, target=target)


def _score_and_print(matrix, store, extra: list, out: str, n_boot: int | None = None, claims: list | None = None,
                     version: int = 2, target: str = ""):
    """Score the claims of ``version`` (those named in ``claims``, or all that read the matrix) and
    ``extra`` hypotheses on ``store``, print the table, write JSON (a metadata header and the
    verdicts) to ``out``; returns the verdicts and the ``score.Runs``."""
    from rankbias.hypotheses import claims as claims_of
    from rankbias.score import N_BOOT, Runs, applies_to, header, scorecard

    if n_boot is not None and n_boot < 0:
        _fail(f"'--n-boot' must be an int >= 0 (0: the default {N_BOOT}); got {n_boot}.")
    known = [h.id for h in claims_of(version)]
    unknown = [c for c in claims or [] if c not in known]
    if unknown:
        _fail(f"unknown claim ids {unknown} for '--claim'; known: {', '.join(known)}. Pick from those.")
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
    versions = ", ".join(f"{code} ({n} runs)" for code, n in data.code.value_counts().items())
    console.print(f"runs made by rankbias {escape(versions) or '-'}")
    if out:
        Path(out).write_text(json.dumps({"meta": meta, "verdicts": [v.to_dict() for v in verdicts]}, indent=1,
                                        default=float))
        console.print(f"scorecard written to {out}")
    return verdicts, data


VERDICT_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "scored": "cyan", "not applicable": "blue"}


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.3g}"


def _verdict_table(verdicts, title: str) -> Table:
    """One row per hypothesis: verdict, its first criterion (value [95% CI] vs threshold), effect, runs."""
    from rankbias.score import GATE

    table = Table(title=title, caption="CI: 95% bootstrap over seeds; horizon: lr*wd*T range; stationary: "
                                       f"wd>0 runs with ||grad L + wd theta|| / ||grad L|| <= {GATE}")
    for col in ("claim", "verdict", "first criterion: value [95% CI]", "effect", "runs/seeds", "horizon", "stat."):
        table.add_column(col, overflow="fold")
    notes = []
    for v in verdicts:
        st, eff = v.statistic, v.effect
        style = VERDICT_STYLE.get(v.verdict, "")
        crit = f" {st.op} {_fmt(st.threshold)}" if st and st.op else ""
        value = f"{escape(st.name)}: {_fmt(st.value)} [{_fmt(st.low)}, {_fmt(st.high)}]{crit}" if st else "-"
        if v.note:
            notes.append(f"{v.id}: {v.note}")
        notes.extend(f"{v.id}: {s.name} is NaN: {s.note}" for s in v.statistics if s.note)
        label = f"{v.id} (control)" if v.control else v.id
        table.add_row(label, f"[{style}]{v.verdict}[/{style}]", value, _fmt(eff.value) if eff else "-",
                      f"{v.n}/{len(v.seeds)}", f"{_fmt(v.horizon[0])}-{_fmt(v.horizon[1])}",
                      f"{v.stationary[0]}/{v.stationary[1]}")
    table.notes = notes
    return table


@app.command("score")
def score_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help="Tier of a matrix file: quick, standard or full."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("scorecard.json", "--out", help="Where the scorecard JSON goes ('' for none)."),
    n_boot: int = typer.Option(0, "--n-boot", help="Bootstrap resamples over seeds (0: the default)."),
    claim: list[str] = typer.Option([], "--claim", help="Score only this claim id (repeatable)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Score the stored runs of a matrix tier against the baseline hypotheses (no training)."""
    _, _, matrix = _matrix(target, tier, claims_version)
    _score_and_print(matrix, _open_store(store_path), [], out, n_boot, claim, claims_version, target)


@app.command("compare")
def compare_cmd(
    hypothesis_file: Path = typer.Argument(..., help="A Python file defining Trend / Predictor objects."),
    target: str = typer.Option("quick", "--matrix", help=TARGET_HELP),
    tier: str = typer.Option("quick", help="Tier of a matrix file: quick, standard or full."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: str = typer.Option("", "--out", help="Write the comparison as JSON here."),
    n_boot: int = typer.Option(0, "--n-boot", help="Bootstrap resamples over seeds (0: the default)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Score your own hypotheses beside the baselines on the same stored runs.

    Hypotheses registered by installed packages under the entry-point group
    'rankbias.hypotheses' are scored too."""
    from rankbias.hypotheses import HypothesisError, load_entry_points, load_file

    _, _, matrix = _matrix(target, tier, claims_version)
    try:
        mine = load_file(hypothesis_file) + load_entry_points()
    except HypothesisError as err:
        _fail(str(err))
    unknown = [h.id for h in mine if not set(h.scenarios) & set(matrix.members)]
    if unknown:
        _fail(f"hypotheses {unknown} apply to no scenario of this matrix; their 'scenarios' must name some of "
              f"{sorted(matrix.members)}.")
    _score_and_print(matrix, _open_store(store_path), mine, out, n_boot, version=claims_version, target=target)


@app.command("report")
def report_cmd(
    target: str = typer.Argument("quick", help=TARGET_HELP),
    tier: str = typer.Option("quick", help="Tier of a matrix file: quick, standard or full."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store with the runs."),
    out: Path = typer.Option(Path("report"), "--out", help="Directory for index.html and the plots."),
    n_boot: int = typer.Option(0, "--n-boot", help="Bootstrap resamples over seeds (0: the default)."),
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
):
    """Write a static HTML report: the scorecard and plots of the stored runs."""
    from rankbias import report

    _, _, matrix = _matrix(target, tier, claims_version)
    verdicts, data = _score_and_print(matrix, _open_store(store_path), [], "", n_boot, version=claims_version,
                                      target=target)
    with console.status("plotting"):
        page = report.write(out, verdicts, data, f"{target} ({matrix.tier} tier)")
    console.print(f"report written to {page}")


@app.command("claims")
def claims_cmd(
    claims_version: int = typer.Option(2, "--claims-version", help=VERSION_HELP),
    scorecard: Path = typer.Option(None, "--scorecard", help="A scorecard JSON of that version: show its verdicts."),
    out: Path = typer.Option(None, "--out", help="Write the Markdown here instead of printing it."),
):
    """Every claim: paper, prediction, setup, criteria, version history and (with --scorecard) verdict."""
    from rich.markdown import Markdown

    from rankbias.claims_doc import document

    _version_checked(claims_version)
    if scorecard is not None and not scorecard.is_file():
        _fail(f"'--scorecard' {scorecard} is not a file. Pass the JSON that `rankbias run` or `score` wrote.")
    try:
        text = document(claims_version, scorecard)
    except (ValueError, KeyError) as err:
        _fail(f"scorecard {scorecard} cannot be read: {err}")
    if out is not None:
        out.write_text(text)
        console.print(f"claims of version {claims_version} written to {out}")
    else:
        console.print(Markdown(text))


def _open_store(path: str):
    from rankbias.store import Store

    if not Path(path).exists():
        _fail(f"store file {path} does not exist. Run `rankbias run` first, or pass --store PATH.")
    try:
        return Store(path)
    except StoreError as err:
        _fail(str(err))


ARCH_ALIASES = {"mlp": "deep_relu"}


def _data_spec(kind: str, widths: tuple[int, ...], n: int, std: float, margin: float, seed: int, test: int) -> dict:
    """The data spec for ``kind``, its input and output widths taken from the net's."""
    d_in, d_out = widths[0], widths[-1]
    if kind == "mixture":
        return dict(kind=kind, n=n, dim=d_in, classes=d_out, std=std, seed=seed, test=test)
    if kind == "separable":
        return dict(kind=kind, n=n, dim=d_in, margin=margin, seed=seed, test=test)
    if kind == "linear_teacher":
        return dict(kind=kind, n=n, dim=d_in, outputs=d_out, seed=seed, test=test)
    if kind == "mnist1d":
        return dict(kind=kind, n=n, seed=seed, test=test)
    if kind == "digits":
        return dict(kind=kind, seed=seed, test=test)
    raise ValueError(
        f"'--data' must be one of mixture, separable, linear_teacher, mnist1d, digits; got {kind!r}. Pick one of those."
    )


@app.command("train")
def train_cmd(
    widths: str = typer.Option(..., help="Layer widths d_in,hidden...,d_out, e.g. 32,100,100,10."),
    arch: str = typer.Option("deep_relu", help="shallow_relu, deep_linear, deep_relu (alias mlp) or residual_relu."),
    dynamics: str = typer.Option("sgd", help="gd, sgd or gf (gradient flow)."),
    loss: str = typer.Option("", help="ce, logistic or mse; default: ce for classes, logistic for separable, mse for regression."),
    lr: float = typer.Option(None, help="Step size (gd, sgd)."),
    wd: float = typer.Option(0.0, help="Weight decay, PyTorch convention (grad + wd W)."),
    batch: int = typer.Option(None, help="SGD batch size."),
    steps: int = typer.Option(None, help="Optimizer steps (gd, sgd)."),
    epochs: int = typer.Option(None, help="SGD epochs (instead of --steps)."),
    flow_time: float = typer.Option(None, "--flow-time", help="Gradient-flow time (gf)."),
    data: str = typer.Option("mixture", help="mixture, separable, linear_teacher, mnist1d or digits."),
    n: int = typer.Option(1000, help="Training samples."),
    test: int = typer.Option(200, help="Held-out samples."),
    std: float = typer.Option(1.0, help="Mixture within-class std per coordinate (class means on the sphere of radius sqrt(d))."),
    margin: float = typer.Option(0.1, help="Separable data's margin."),
    data_seed: int = typer.Option(0, "--data-seed", help="Seed of the data set."),
    seed: int = typer.Option(0, help="Seed of the init and of SGD's sampling."),
    init_scale: float = typer.Option(1.0, "--init-scale", help="Multiplies PyTorch's default init."),
    store_path: str = typer.Option(DEFAULT_PATH, "--store", help="SQLite store the run is written to."),
):
    """Train one configuration, store it, and print its final per-layer ranks."""
    from rankbias.dynamics import DynamicsSpec
    from rankbias.nets import NetSpec
    from rankbias.run import RunConfig, fit_problem, run_one
    from rankbias.store import Store

    try:
        shape = tuple(int(w) for w in widths.split(","))
    except ValueError:
        _fail(f"'--widths' must be comma-separated ints like 32,100,10; got {widths!r}.")
    try:
        default_loss = {"separable": "logistic", "linear_teacher": "mse"}.get(data, "ce")
        config = RunConfig(
            _data_spec(data, shape, n, std, margin, data_seed, test),
            NetSpec(ARCH_ALIASES.get(arch, arch), shape, init_scale=init_scale),
            DynamicsSpec(dynamics, loss or default_loss, wd=wd, lr=lr, steps=steps, epochs=epochs, batch=batch,
                         flow_time=flow_time, seed=seed),
            seed=seed,
        )
        store = Store(store_path)
    except (ValueError, StoreError) as err:
        _fail(str(err))
    problem = fit_problem(config)
    if problem is not None:
        _fail(f"this run does not fit its data: {problem}.")
    with console.status(f"training {escape(config.name())}"):
        rec = run_one(config, store)
    if rec.status == "failed":  # not bad input (that is refused above): the run itself raised
        _fail(f"the run failed: {rec.error}. It is stored as failed in {store.path}.", code=1)
    metrics = store.metrics(rec.name)
    last = metrics[metrics.step == metrics.step.max()]
    final = last.pivot(index="layer", columns="name", values="value")
    table = Table(title=f"{rec.status} at {rec.diverged_at if rec.diverged_at is not None else rec.steps:g}, "
                        f"horizon lr*wd*T = {rec.horizon:g}")
    cols = ("fro", "rank_tol", "rank_rel", "stable_rank", "effective_rank")
    for col in ("layer", *cols):
        table.add_column(col, justify="right")
    for layer, row in final[final.index >= 0].iterrows():
        table.add_row(str(layer), *(f"{row[c]:.3g}" for c in cols))
    console.print(table)
    summary = final.loc[-1] if -1 in final.index else {}
    shown = {k: f"{summary[k]:.4g}" for k in ("train_loss", "train_acc", "test_acc", "alignment") if k in summary}
    console.print(" ".join(f"{k}={v}" for k, v in shown.items()))
    console.print(f"stored as {escape(rec.name)} in {store.path}", soft_wrap=True)  # names stay whole


if __name__ == "__main__":
    app()
