"""Rank over training, the figure this field draws first: for one claim, each rank measure
of one layer against the step, one line per grid cell (the mean over seeds) inside the
min-max band of its seeds, read from the metric rows logged at every log point.

The layer is the first hidden layer whose input and output widths agree (the one the
sweeps read), else layer 1 of a deeper net, else layer 0; the caption names it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rankbias.scoring.hypotheses.base import RunSet, hidden_square, widths_of

MEASURES = ("rank_tol", "rank_rel", "stable_rank", "effective_rank", "gd_rank", "numerical_rank")


def layer_of(final: pd.DataFrame) -> int:
    """The layer a claim's trajectories show (module docstring)."""
    widths = final["widths"].iloc[0]
    square = hidden_square(widths)
    return square[0] if square else 1 if len(widths_of(widths)) > 2 else 0


def draw(fig, runs: RunSet, cells: dict[str, str], title: str) -> int:
    """Draw the trajectories of ``runs`` (labelled by their grid ``cells``, run -> label) on
    ``fig``; returns the layer drawn."""
    layer = layer_of(runs.final)
    axes = fig.subplots(2, 3, sharex=True).flat
    for ax, measure in zip(axes, MEASURES):
        rows = runs.history(measure, layer)
        rows = rows.assign(cell=rows.run.map(cells).fillna("(outside the grid)"))
        for cell, group in rows.groupby("cell", sort=True):
            stats = group.groupby("step").value.agg(["mean", "min", "max"]).sort_index()
            steps = stats.index.to_numpy(dtype=float)
            line = ax.plot(steps, stats["mean"], lw=1.2, label=str(cell))[0]
            ax.fill_between(steps, stats["min"], stats["max"], alpha=0.2, color=line.get_color(), lw=0)
        ax.set_xscale("symlog", linthresh=1.0)  # log points are geometric in the step, from step 0
        ax.set_title(measure, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes)[-3:]:
        ax.set_xlabel("step", fontsize=8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95), title="cell (mean; "
                   "band: min-max over seeds)", title_fontsize=7)
    fig.suptitle(f"{title}: rank measures of layer {layer} over training", fontsize=10)
    return layer


def cells_of(data, names: list[str]) -> dict[str, str]:
    """Each run's grid cell label, e.g. "wd=0.01", in the first scenario of the matrix holding it."""
    scenarios = list(data.matrix.members)
    return {name: data.cell(name, scenarios) for name in names}


def steps_logged(runs: RunSet) -> np.ndarray:
    """The distinct steps at which ``runs`` logged anything (for callers deciding to draw)."""
    return np.unique(runs.metrics[runs.metrics.run.isin(runs.final.index)].step.to_numpy())
