"""Baseline hypotheses of Galanti, Siegel, Gupte & Poggio, "SGD and Weight Decay
Secretly Minimize the Rank of Your Neural Network", arXiv 2206.05794.

One ``Trend`` per claim id of claims.md; criteria as written there.  Ranks
are rank_tol(1e-3) averaged over the hidden square layers of each run; a trend
is judged on the cell means over seeds.
"""

from __future__ import annotations

import math

import numpy as np

from rankbias.hypotheses.base import Check, RunSet, Trend, at, cell_means, hidden_mean, rank_spread, spearman, width_of

CITE = "Galanti, Siegel, Gupte & Poggio 2022, arXiv 2206.05794"
TAIL = 200  # steps the steady-state claims average over


def _rank(runs: RunSet):
    return hidden_mean(runs.final, "rank_tol")


def _wd(runs: RunSet) -> list[Check]:
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "wd", _rank(runs))
    return [
        Check("rho(rank_tol, wd)", spearman(means.index, means.values), "<=", -0.9),
        Check("rank(wd=0) / width", at(means, 0.0) / width, ">=", 0.95),
        Check("rank(wd=2e-2) / width", at(means, 2e-2) / width, "<=", 0.2),
        Check("effect: (rank(wd=0) - rank(wd=max)) / width", (means.iloc[0] - means.iloc[-1]) / width),
    ]


def _batch(runs: RunSet) -> list[Check]:
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "batch", _rank(runs))
    return [
        Check("rho(rank_tol, B)", spearman(means.index, means.values), ">=", 0.9),
        Check("rank(B=4) / rank(B=64)", at(means, 4) / at(means, 64), "<=", 0.5),
        Check("effect: (rank(B=max) - rank(B=min)) / width", (means.iloc[-1] - means.iloc[0]) / width),
    ]


def _lr(runs: RunSet) -> list[Check]:
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "lr", _rank(runs))
    return [
        Check("rho(rank_tol, lr)", spearman(means.index, means.values), "<=", -0.9),
        Check("effect: (rank(lr=min) - rank(lr=max)) / width", (means.iloc[0] - means.iloc[-1]) / width),
    ]


def _no_wd(runs: RunSet) -> list[Check]:
    spread = rank_spread(runs.final, ["batch", "lr"])
    return [Check("(max - min) rank / width over (B, lr)", spread, "<=", 0.03), Check("effect: spread", spread)]


def tail_erank(runs: RunSet):
    """Per run: the mean effective rank of layer 0 over its last ``TAIL`` steps."""
    h = runs.history("effective_rank", 0)
    last = h.groupby("run").step.transform("max")
    return h[h.step > last - TAIL].groupby("run").value.mean().reindex(runs.final.index)


def _full(f):
    return f["data.n"].astype(int)


def _steady_batch(runs: RunSet) -> list[Check]:
    f = runs.final.assign(B=lambda d: np.where(d["batch"] == _full(d), math.inf, d["batch"]))
    means = cell_means(f, "B", tail_erank(runs))
    ratio = at(means, 1) / at(means, math.inf)
    return [
        Check("rho(erank, B)", spearman(np.arange(len(means)), means.values), ">=", 0.9),
        Check("erank(B=1) / erank(full)", ratio, "<=", 0.5),
        Check("effect: 1 - erank(B=1) / erank(full)", 1 - ratio),
    ]


def _steady_horizon(runs: RunSet) -> list[Check]:
    f = runs.final
    erank = tail_erank(runs)
    rate = f["lr"] * f["wd"]
    small = erank[f["batch"] == 1].groupby(rate[f["batch"] == 1]).mean()
    full = erank[f["batch"] == _full(f)].groupby(rate[f["batch"] == _full(f)]).mean()
    ratio = (small / full).sort_index()
    rises = int((np.diff(ratio.values) > 0).sum()) if len(ratio) > 1 else math.nan
    return [
        Check("rises of erank(B=1)/erank(full) along lr*wd", rises, "<=", 0),
        Check("erank ratio at lr*wd=0.001", at(ratio, 0.001), ">=", 0.98),
        Check("effect: ratio(min lr*wd) - ratio(max lr*wd)", ratio.iloc[0] - ratio.iloc[-1]),
    ]


def _bound(runs: RunSet) -> list[Check]:
    f = runs.final
    held, worst = [], 0.0
    for name, row in f.iterrows():
        s = runs.spectrum(name, 0)
        count = int((s > 0.05 * s[0]).sum())
        bound = row["batch"] * math.log(20) / (row["lr"] * row["wd"])
        held.append(count <= bound)
        worst = max(worst, count / bound)
    return [
        Check("share of runs with #sigma > 0.05 sigma_1 <= B ln 20 / (lr wd)", float(np.mean(held)), ">=", 1.0),
        Check("effect: max count / bound", worst),
    ]


def _test_acc(runs: RunSet) -> list[Check]:
    f = runs.final
    fit = f[f["train_acc"] >= 0.99]
    rank = hidden_mean(fit, "rank_tol")
    low = rank <= rank.median()
    gap = abs(fit["test_acc"][low].mean() - fit["test_acc"][~low].mean()) if low.any() and (~low).any() else math.nan
    return [Check("|test acc gap| low- vs high-rank runs (train acc >= 0.99)", gap, "<=", 0.02),
            Check("effect: gap", gap)]


HYPOTHESES = [
    Trend("galanti.wd", "galanti", ("galanti.wd",), "rank non-increasing in wd; full at wd=0", _wd, CITE),
    Trend("galanti.batch_epochs", "galanti", ("galanti.batch_epochs",), "rank increases with B at fixed epochs",
          _batch, CITE),
    Trend("galanti.batch_steps", "galanti", ("galanti.batch_steps",), "rank increases with B at fixed steps (control)",
          _batch, CITE),
    Trend("galanti.lr", "galanti", ("galanti.lr",), "rank decreases with lr", _lr, CITE),
    Trend("galanti.no_wd", "galanti", ("galanti.no_wd",), "no wd, no bias: rank flat over B and lr", _no_wd, CITE),
    Trend("galanti.steady_batch", "galanti", ("galanti.steady_batch",),
          "SGD iterate's erank increases with B toward the ridge solution", _steady_batch, CITE),
    Trend("galanti.steady_horizon", "galanti", ("galanti.steady_horizon",), "the batch effect grows with lr*wd",
          _steady_horizon, CITE),
    Trend("galanti.bound", "galanti", ("galanti.bound",), "#sigma_i > 0.05 sigma_1 <= B ln(20) / (lr wd)", _bound, CITE),
    Trend("galanti.test_acc", "galanti", ("galanti.test_acc",), "low rank costs test accuracy only marginally",
          _test_acc, CITE),
]
