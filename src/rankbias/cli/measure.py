"""``rankbias ranks``: the rank measures of every weight matrix in a saved file, and
(``--explain``) what each measure counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from rankbias.cli.app import app, console, fail
from rankbias.cli.views import measuring
from rankbias.linalg.measures import explain
from rankbias.linalg.spectral import ranks
from rankbias.linalg.weights import WeightFileError, load_matrices, split_heads

COLUMNS = ("rank_tol", "rank_rel", "stable_rank", "effective_rank", "gd_rank", "numerical_rank")


@app.command("ranks")
def ranks_cmd(
    path: Path = typer.Argument(None, help="Weight file: .npy, .npz, .safetensors, or a torch .pt/.pth/.ckpt state "
                                           "dict, checkpoint or tensor."),
    tol: float = typer.Option(1e-3, help="rank_tol threshold on sigma_i / ||W||_F."),
    eps: float = typer.Option(1e-3, help="rank_rel threshold on sigma_i / sigma_1."),
    heads: int = typer.Option(0, help="Split attention layers (nn.MultiheadAttention's in_proj_weight, or "
                                      "q/k/v/o_proj) into per-head W_Q W_K^T and W_V W_O products; 0: off."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows instead of a table."),
    show_explain: bool = typer.Option(False, "--explain", help="Print what each rank measure counts, and exit."),
):
    """Print the rank measures of every weight matrix in a saved file (--explain: their formulas).

    Tensors with 2+ dimensions are measured as (shape[0], prod(shape[1:]))
    matrices (conv kernels as out x in*kh*kw); 1-d tensors (biases) are skipped.
    A checkpoint's model weights are read from its state_dict (or model) entry.
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
    if heads < 0:
        fail(f"'--heads' must be an int >= 0 (0: no split); got {heads}. Pass the attention layers' head count.")
    if heads:
        try:
            matrices = split_heads({n: w.reshape(w.shape[0], math.prod(w.shape[1:])) for n, w in matrices.items()},
                                    heads)
        except ValueError as err:
            fail(f"cannot split the attention layers into {heads} heads: {err}. Pass the layers' head count.")
    rows = []
    for i, (name, w) in enumerate(matrices.items()):
        try:
            with measuring(name, (w.shape[0], math.prod(w.shape[1:])), i + 1, len(matrices)):
                rows.append(_measure(name, w, tol, eps))
        except (TypeError, ValueError) as err:
            fail(f"{path}: tensor {name!r} (shape {tuple(w.shape)}): {err}")
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
    matrix = w.reshape(w.shape[0], math.prod(w.shape[1:]))  # (out, in k ...); -1 cannot size an empty tensor
    measured = ranks(matrix, COLUMNS, tol=tol, eps=eps)
    return {"layer": name, "shape": list(matrix.shape), **{k: float(v) for k, v in measured.items()}}
