"""``rankbias train``: one configuration, trained, stored and shown."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from rankbias.cli.app import DEVICE_HELP, app, console, fail, new_store, placed
from rankbias.experiments.store import DEFAULT_PATH

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
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
):
    """Train one configuration, store it, and print its final per-layer ranks."""
    from rankbias.experiments.config import config_of
    from rankbias.experiments.runner import run_one
    from rankbias.experiments.store import last_step

    placement = placed(device)  # before anything is built or written
    try:
        shape = tuple(int(w) for w in widths.split(","))
    except ValueError:
        fail(f"'--widths' must be comma-separated ints like 32,100,10; got {widths!r}.")
    try:
        config = config_of(widths=shape, arch=arch, dynamics=dynamics, loss=loss, lr=lr, wd=wd, batch=batch,
                           steps=steps, epochs=epochs, flow_time=flow_time, data_kind=data, n=n, test=test, std=std,
                           margin=margin, data_seed=data_seed, seed=seed, init_scale=init_scale)
    except ValueError as err:
        fail(str(err))
    store = new_store(store_path)
    with console.status(f"training {escape(config.name())}"):
        rec = run_one(config, store, placement)
    if rec.status == "failed":  # not bad input (that is refused above): the run itself raised
        fail(f"the run failed: {rec.error}. It is stored as failed in {store.path}.", code=1)
    final = last_step(store.metrics(rec.name)).pivot(index="layer", columns="name", values="value")
    _show(rec, final, store)


def _show(rec, final, store) -> None:
    """The run's final per-layer ranks, its losses and where it is stored."""
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
