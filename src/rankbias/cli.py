"""``rankbias`` command line: the only module that prints or sets exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from rankbias import __version__
from rankbias.spectral import ranks
from rankbias.weights import WeightFileError, load_matrices

app = typer.Typer(add_completion=False, help="Measure and benchmark the low-rank bias of neural networks.")
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
):
    """Measure and benchmark the low-rank bias of neural networks."""


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
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(code=2) from None
    if not matrices:
        console.print(f"[red]error:[/red] {path} holds no tensor with 2 or more dimensions: nothing to measure.")
        raise typer.Exit(code=2)
    try:
        rows = [_measure(name, w, tol, eps) for name, w in matrices.items()]
    except (TypeError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(code=2) from None
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


if __name__ == "__main__":
    app()
