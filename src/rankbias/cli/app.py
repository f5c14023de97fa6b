"""The ``rankbias`` app and what its commands share: the console, one way to fail
(a one-line error, exit code 2, the traceback only under --debug), and loading a
matrix or a store from the command line."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from rankbias import __version__

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Measure and benchmark the low-rank bias of neural networks.")
DEBUG = {"on": False}  # --debug: show the traceback behind an error
console = Console()
err_console = Console(stderr=True)
if not console.is_terminal:  # piped output: rich would fall back to 80 columns
    console.width = max(console.width, 120)

TARGET_HELP = "A tier of the built-in claims matrix (quick, standard, full) or a matrix TOML file."
VERSION_HELP = ("Claims version: 2 (current), 1 (on record) or 3 (the follow-ups' claims on conv, BatchNorm, "
                "attention, SAM, AdamW): the built-in matrix and the rules that score it.")
SCORECARD_HELP = ("Where the scorecard JSON goes ('' for none); a file there that holds the scorecard of another "
                  "matrix, tier or claims version is kept, and this one goes beside it, named by all three.")
TIER_HELP = "Tier of a matrix file: quick, standard or full."
DEVICE_HELP = ("Torch device to train on: auto (a GPU when torch sees one and numba-cuda runs there, "
               "else the CPU), cpu, cuda or cuda:N.")
PLAIN_HELP = ("Progress as timestamped lines, one per ensemble group, as when the output is not a terminal "
              "(a log file).")
PROCESSES_HELP = ("Local worker processes: 0 = one per core (with a GPU device: one per GPU), "
                  "1 = in this process. With --device cuda, worker i trains on GPU i.")


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


def fail(message: str, code: int = 2):
    """Print ``message`` as an error (with the traceback behind it under --debug) and exit with ``code``."""
    if DEBUG["on"] and sys.exc_info()[0] is not None:
        console.print_exception()
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code=code)


def placed(name: str, scheduler: str = ""):
    """The ``device.Placement`` of ``name``, after printing the one line that says which device
    and why; exits 2 naming what is missing otherwise.  With a Dask ``scheduler`` only the
    name is checked here: each worker resolves it on its own machine."""
    from rankbias.engine.device import DeviceError, place

    try:
        placement = place(name, scheduler=bool(scheduler))
    except DeviceError as err:
        fail(str(err))
    console.print(placement.line)
    return placement


def at_least(option: str, value: int, minimum: int, meaning: str) -> int:
    """``value`` of the command-line ``option`` if it is >= ``minimum``; exits 2 otherwise."""
    if value < minimum:
        fail(f"'{option}' must be an int >= {minimum} ({meaning}); got {value}.")
    return value


def version_checked(version: int) -> int:
    """``version`` if it is a claims version; exits 2 otherwise."""
    from rankbias.scoring.hypotheses import CURRENT, VERSIONS

    if version not in VERSIONS:
        fail(f"'--claims-version' must be one of {list(VERSIONS)}; got {version}. Pass {CURRENT} (the current "
             f"claims), 1 (kept on record) or 3 (the newest).")
    return version


def load_matrix(target: str, tier: str, version: int):
    """(matrix file, spec, expanded matrix) of a command-line target; exits 2 on a bad one."""
    from rankbias.experiments.matrix import expand
    from rankbias.experiments.spec import TIERS, MatrixError, load, resolve

    if tier not in TIERS:
        fail(f"'--tier' must be one of {list(TIERS)}; got {tier!r}.")
    if target not in TIERS and not Path(target).exists():
        close = difflib.get_close_matches(target, TIERS, n=1)
        fail(f"{target!r} is neither a tier of the built-in matrix ({', '.join(TIERS)}) nor a matrix file. "
             + (f"Did you mean {close[0]!r}? " if close else "") + "Pass a tier or the path of a .toml matrix file.")
    path, tier = resolve(target, tier, version_checked(version))
    try:
        spec = load(path)
        matrix = expand(spec, tier, str(path))
    except MatrixError as err:
        fail(str(err))
    check_variants(spec, version, path)
    return path, spec, matrix


def check_variants(spec, version: int, source) -> None:
    """Exit 2 naming every scenario of ``spec`` that reads as a variant of a claim ``version`` lacks."""
    from rankbias.scoring.benchmark import variant_problems

    problems = variant_problems(spec, version, source)
    if problems:
        fail("\n".join(problems))


def new_store(path: str):
    """The store at ``path``, created if missing; exits 2 if it is not a rankbias store."""
    from rankbias.experiments.store import Store, StoreError

    try:
        return Store(path)
    except StoreError as err:
        fail(str(err))


def open_store(path: str):
    """The existing store at ``path``; exits 2 if it is missing or not a rankbias store."""
    from rankbias.experiments.store import Store, StoreError

    if not Path(path).exists():
        fail(f"store file {path} does not exist. Run `rankbias run` first, or pass --store PATH.")
    try:
        return Store(path)
    except StoreError as err:
        fail(str(err))
