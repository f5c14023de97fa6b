"""``rankbias ranks``: the rank measures of every weight matrix in a saved file, and
(``--explain``) what each measure counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from rankbias.cli.app import app, console, fail
from rankbias.linalg.spectral import MEASURES, ranks
from rankbias.linalg.weights import WeightFileError, load_matrices

COLUMNS = ("rank_tol", "rank_rel", "stable_rank", "effective_rank", "gd_rank", "numerical_rank")


def explain() -> str:
    """What each rank measure counts: its formula from its kernel's docstring and its
    reference from ``rank_cpu``'s, so the text is the code's own."""
    from rankbias.kernels import rank_cpu

    refs = {}
    for line in rank_cpu.__doc__.split("References:")[1].split("\n- ")[1:]:
        name, _, text = line.partition(":")
        refs[name.strip()] = " ".join(text.split()).split(": ")[0]  # the citation, not its restated formula
    out = []
    for name in MEASURES:
        formula = " ".join(getattr(rank_cpu, name).__doc__.split("\n\n")[0].split())
        formula = re.split(r"\.?\s+s \(batch|\.\s+->", formula)[0].rstrip(".")
        out.append(f"{name}: {formula}." + (f" ({refs[name]})" if name in refs else ""))
    out.append("rank_tol reads sigma_i / ||W||_F and rank_rel sigma_i / sigma_1; as ||W||_F >= sigma_1, rank_tol <= "
               "rank_rel at tol = eps. gd_rank counts the values above a noise bulk estimated from the median "
               "singular value, omega(beta) median(sigma) with beta = min(m, n) / max(m, n) (omega ~ 1.6 at beta = "
               "0.1); when no value stands out of that bulk (e.g. a 10 x 100 layer whose 10 values are alike) it is 0.")
    return "\n\n".join(out)


@app.command("ranks")
def ranks_cmd(
    path: Path = typer.Argument(None, help="Weight file: .npy, .npz, or a torch .pt/.pth state dict or tensor."),
    tol: float = typer.Option(1e-3, help="rank_tol threshold on sigma_i / ||W||_F."),
    eps: float = typer.Option(1e-3, help="rank_rel threshold on sigma_i / sigma_1."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows instead of a table."),
    show_explain: bool = typer.Option(False, "--explain", help="Print what each rank measure counts, and exit."),
):
    """Print the rank measures of every weight matrix in a saved file (--explain: their formulas).

    Tensors with 2+ dimensions are measured as (shape[0], prod(shape[1:]))
    matrices (conv kernels as out x in*kh*kw); 1-d tensors (biases) are skipped.
    """
    if show_explain:
        console.print(escape(explain()))
        return
    if path is None:
        fail("a weight file is needed: pass its path, e.g. `rankbias ranks mlp.pt`, or --explain for the measures.")
    try:
        matrices = load_matrices(path)
    except WeightFileError as err:
        fail(str(err))
    if not matrices:
        fail(f"{path} holds no tensor with 2 or more dimensions: nothing to measure.")
    try:
        rows = [_measure(name, w, tol, eps) for name, w in matrices.items()]
    except (TypeError, ValueError) as err:
        fail(str(err))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{path}  (rank_tol tol={tol:g}, rank_rel eps={eps:g})",
                  caption="what each measure counts: rankbias ranks --explain")
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
