"""Baseline hypotheses of Galanti, Siegel, Gupte & Poggio, "SGD and Weight Decay
Secretly Minimize the Rank of Your Neural Network", arXiv 2206.05794.

One ``Trend`` per claim id, its criteria declared below; ``HYPOTHESES`` holds
version 1 of each claim, ``AMENDED`` the forms later versions changed (each with
its ``version``), ``ADDED`` the claims version 3 added (conv and BatchNorm nets).  Ranks are
rank_tol(1e-3) averaged over the hidden square layers of each run; a trend is
judged on the cell means over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rankbias.scoring.hypotheses.base import (Check, Criterion, RunSet, Sweep, Trend, at, cell_means, effect,
                                              hidden_mean, rank_spread, spearman, width_of, widths_of)

CITE = "Galanti, Siegel, Gupte & Poggio 2022, arXiv 2206.05794"
TAIL = 200  # steps the steady-state claims average over


# galanti.wd
WD_RHO = Criterion("rho(rank_tol, wd)", "<=", -0.9)
WD_FULL = Criterion("rank(wd=0) / width", ">=", 0.95)
WD_LOW = Criterion("rank(wd=2e-2) / width", "<=", 0.2)

# galanti.batch_epochs (and galanti.batch_steps in version 1); version 2's batch_steps control
B_RHO = Criterion("rho(rank_tol, B)", ">=", 0.9)
B_RATIO = Criterion("rank(B=4) / rank(B=64)", "<=", 0.5)
B_FLAT = Criterion("(max - min) rank / width over B", "<=", 0.05)

# galanti.lr, galanti.no_wd
LR_RHO = Criterion("rho(rank_tol, lr)", "<=", -0.9)
NO_WD = Criterion("(max - min) rank / width over (B, lr)", "<=", 0.03)

# the steady-state claims: galanti.steady_batch, steady_horizon, bound
STEADY_RHO = Criterion("rho(erank, B)", ">=", 0.9)
STEADY_RATIO = Criterion("erank(B=1) / erank(full)", "<=", 0.5)
HORIZON_RISES = Criterion("rises of erank(B=1)/erank(full) along lr*wd", "<=", 0)
HORIZON_SMALL = Criterion("erank ratio at lr*wd=0.001", ">=", 0.98)
BOUND = Criterion("share of runs with #sigma > 0.05 sigma_1 <= B ln 20 / (lr wd)", ">=", 1.0)

# galanti.test_acc
TEST_GAP = Criterion("|test acc gap| low- vs high-rank runs (train acc >= 0.99)", "<=", 0.02)

# version 3: galanti.wd's level relative to wd = 0; the conv and BatchNorm claims
WD_HALF = Criterion("rank(wd=2e-2) / rank(wd=0)", "<=", 0.5)
CONV_ERANK = Criterion("rho(effective rank, wd), hidden conv kernels", "<=", -0.9)
CONV_TOL = Criterion("rho(rank_tol(5e-2), wd), hidden conv kernels", "<=", -0.9)
CONV_BATCH = Criterion("rho(effective rank, B), hidden conv kernels", ">=", 0.9)
BN_RHO = Criterion("rho(rank_tol, wd), BatchNorm MLP", "<=", -0.9)
CONV_TOLERANCE = 5e-2  # Galanti et al.'s conv plots count singular values above 0.04-0.05 (of ||W||_F here)


def _rank(runs: RunSet):
    return hidden_mean(runs.final, "rank_tol")


def _wd_with(level):
    """galanti.wd's checks, its level criterion ``level(cell means, width)`` (versions differ there)."""
    def checks(runs: RunSet) -> list[Check]:
        f, width = runs.final, width_of(runs.final)
        means = cell_means(f, "wd", _rank(runs))
        return [
            WD_RHO(spearman(means.index, means.values)),
            WD_FULL(at(means, 0.0) / width),
            level(means, width),
            effect("(rank(wd=0) - rank(wd=max)) / width", (means.iloc[0] - means.iloc[-1]) / width),
        ]
    return checks


_wd = _wd_with(lambda means, width: WD_LOW(at(means, 2e-2) / width))
# version 3: the large-wd level relative to the rank at wd = 0
_wd_relative = _wd_with(lambda means, width: WD_HALF(at(means, 2e-2) / at(means, 0.0)))


def _batch(runs: RunSet) -> list[Check]:
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "batch", _rank(runs))
    return [
        B_RHO(spearman(means.index, means.values)),
        B_RATIO(at(means, 4) / at(means, 64)),
        effect("(rank(B=max) - rank(B=min)) / width", (means.iloc[-1] - means.iloc[0]) / width),
    ]


def _batch_control(runs: RunSet) -> list[Check]:
    """Version 2 of galanti.batch_steps: a control, flat in B at equal steps; the paper's
    reading (its criteria of galanti.batch_epochs) beside it, not judged."""
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "batch", _rank(runs))
    return [
        B_FLAT(rank_spread(f, ["batch"])),
        effect("paper's reading, rho(rank_tol, B) (paper: >= 0.9)", spearman(means.index, means.values)),
        effect("paper's reading, rank(B=4) / rank(B=64) (paper: <= 0.5)", at(means, 4) / at(means, 64)),
        effect("(rank(B=max) - rank(B=min)) / width", (means.iloc[-1] - means.iloc[0]) / width),
    ]


def _lr(runs: RunSet) -> list[Check]:
    f, width = runs.final, width_of(runs.final)
    means = cell_means(f, "lr", _rank(runs))
    return [
        LR_RHO(spearman(means.index, means.values)),
        effect("(rank(lr=min) - rank(lr=max)) / width", (means.iloc[0] - means.iloc[-1]) / width),
    ]


def _no_wd(runs: RunSet) -> list[Check]:
    spread = rank_spread(runs.final, ["batch", "lr"])
    return [NO_WD(spread), effect("spread", spread)]


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
        STEADY_RHO(spearman(np.arange(len(means)), means.values)),
        STEADY_RATIO(ratio),
        effect("1 - erank(B=1) / erank(full)", 1 - ratio),
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
        HORIZON_RISES(rises),
        HORIZON_SMALL(at(ratio, 0.001)),
        effect("ratio(min lr*wd) - ratio(max lr*wd)", ratio.iloc[0] - ratio.iloc[-1]),
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
    return [BOUND(float(np.mean(held))), effect("max count / bound", worst)]


def _test_acc(runs: RunSet) -> list[Check]:
    f = runs.final
    fit = f[f["train_acc"] >= 0.99]
    rank = hidden_mean(fit, "rank_tol")
    low = rank <= rank.median()
    gap = abs(fit["test_acc"][low].mean() - fit["test_acc"][~low].mean()) if low.any() and (~low).any() else math.nan
    return [TEST_GAP(gap), effect("gap", gap)]


def conv_hidden(widths) -> list[int]:
    """Layer indices of a conv net's hidden kernels: the convs after the first whose input
    and output channels agree (widths = (in channels, block channels..., classes))."""
    chans = widths_of(widths)[:-1]
    return [i for i in range(1, len(chans) - 1) if chans[i] == chans[i + 1]]


def conv_ranks(runs: RunSet) -> pd.DataFrame:
    """Per run: effective rank, rank_tol(5e-2) (#sigma_i > 0.05 ||W||_F, from the stored
    spectra) and rank_tol(1e-3) of the hidden conv kernels, each the mean over the kernels."""
    rows = {}
    for name, row in runs.final.iterrows():
        layers = conv_hidden(row["widths"])
        tol = []
        for k in layers:
            s = np.asarray(runs.spectrum(name, k), float)
            tol.append(float((s > CONV_TOLERANCE * np.sqrt((s**2).sum())).sum()))
        rows[name] = (np.mean([row[f"effective_rank@{k}"] for k in layers]), np.mean(tol),
                      np.mean([row[f"rank_tol@{k}"] for k in layers]))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["erank", "tol", "tol3"]).reindex(runs.final.index)


def _conv_wd(runs: RunSet) -> list[Check]:
    f, ranks = runs.final, conv_ranks(runs)
    erank, tol, tol3 = (cell_means(f, "wd", ranks[c]) for c in ("erank", "tol", "tol3"))
    return [
        CONV_ERANK(spearman(erank.index, erank.values)),
        CONV_TOL(spearman(tol.index, tol.values)),
        effect("effective rank, wd = max over wd = 0", erank.iloc[-1] / erank.iloc[0]),
        effect("rank_tol(1e-3), wd = max over wd = 0 (reported)", tol3.iloc[-1] / tol3.iloc[0]),
    ]


def _conv_batch(runs: RunSet) -> list[Check]:
    f, ranks = runs.final, conv_ranks(runs)
    erank, tol = cell_means(f, "batch", ranks["erank"]), cell_means(f, "batch", ranks["tol"])
    return [
        CONV_BATCH(spearman(erank.index, erank.values)),
        effect("effective rank, B = max over B = min", erank.iloc[-1] / erank.iloc[0]),
        effect("rho(rank_tol(5e-2), B) (reported)", spearman(tol.index, tol.values)),
    ]


def _bn_wd(runs: RunSet) -> list[Check]:
    f = runs.final
    means = cell_means(f, "wd", _rank(runs))
    return [BN_RHO(spearman(means.index, means.values)),
            effect("rank_tol, wd = max over wd = 0", means.iloc[-1] / means.iloc[0])]


SWEEPS = [
    Sweep("galanti.wd", "wd", "rank_tol", "rank_tol(1e-3), hidden square layers"),
    Sweep("galanti.batch_epochs", "batch", "rank_tol", "rank_tol(1e-3), hidden square layers", logx=True),
    Sweep("galanti.batch_steps", "batch", "rank_tol", "rank_tol(1e-3), hidden square layers", logx=True),
    Sweep("galanti.lr", "lr", "rank_tol", "rank_tol(1e-3), hidden square layers", logx=True),
    Sweep("galanti.steady_batch", "batch", "erank_tail", "effective rank, mean of last 200 steps", logx=True,
          values=tail_erank),
]
# (file, scenario): a hidden layer's singular values over training at the sweep's smallest and largest wd
SPECTRA = [("spectra.png", "galanti.wd")]

HYPOTHESES = [
    Trend("galanti.wd", "galanti", ("galanti.wd",), "rank non-increasing in wd; full at wd=0", _wd, CITE,
          criteria=(WD_RHO, WD_FULL, WD_LOW)),
    Trend("galanti.batch_epochs", "galanti", ("galanti.batch_epochs",), "rank increases with B at fixed epochs",
          _batch, CITE, criteria=(B_RHO, B_RATIO)),
    Trend("galanti.batch_steps", "galanti", ("galanti.batch_steps",), "rank increases with B at fixed steps (control)",
          _batch, CITE, criteria=(B_RHO, B_RATIO)),
    Trend("galanti.lr", "galanti", ("galanti.lr",), "rank decreases with lr", _lr, CITE, criteria=(LR_RHO,)),
    Trend("galanti.no_wd", "galanti", ("galanti.no_wd",), "no wd, no bias: rank flat over B and lr", _no_wd, CITE,
          criteria=(NO_WD,)),
    Trend("galanti.steady_batch", "galanti", ("galanti.steady_batch",),
          "SGD iterate's erank increases with B toward the ridge solution", _steady_batch, CITE,
          criteria=(STEADY_RHO, STEADY_RATIO)),
    Trend("galanti.steady_horizon", "galanti", ("galanti.steady_horizon",), "the batch effect grows with lr*wd",
          _steady_horizon, CITE, criteria=(HORIZON_RISES, HORIZON_SMALL)),
    Trend("galanti.bound", "galanti", ("galanti.bound",), "#sigma_i > 0.05 sigma_1 <= B ln(20) / (lr wd)", _bound, CITE,
          criteria=(BOUND,)),
    Trend("galanti.test_acc", "galanti", ("galanti.test_acc",), "low rank costs test accuracy only marginally",
          _test_acc, CITE, criteria=(TEST_GAP,)),
]

_CONV = ("Galanti et al.'s public code trains conv nets and ranks conv kernels reshaped to (out, in k k); "
         "added in version 3")
ADDED = [
    Trend("galanti.conv_wd", "galanti", ("galanti.conv_wd",),
          "the hidden conv kernels' rank is non-increasing in wd", _conv_wd, CITE, criteria=(CONV_ERANK, CONV_TOL),
          version=3, amendment=_CONV + "."),
    Trend("galanti.conv_batch", "galanti", ("galanti.conv_batch",),
          "the hidden conv kernels' rank rises with B at fixed epochs", _conv_batch, CITE, criteria=(CONV_BATCH,),
          version=3, amendment=_CONV + "; its one-seed pilot went the other way, kept as registered."),
    Trend("galanti.bn_wd", "galanti", ("galanti.bn_wd",),
          "a BatchNorm MLP's hidden rank is non-increasing in wd (the analysis assumes nothing of the "
          "architecture)", _bn_wd, CITE, criteria=(BN_RHO,), version=3,
          amendment="Added in version 3: Galanti et al.'s default net is an MLP with BatchNorm."),
]

AMENDED = [
    Trend("galanti.wd", "galanti", ("galanti.wd",), "rank non-increasing in wd; full at wd=0; the large-wd rank "
          "at most half the wd = 0 rank", _wd_relative, CITE, criteria=(WD_RHO, WD_FULL, WD_HALF), version=3,
          amendment="The level criterion rank(wd = max) <= 0.2 width becomes rank(wd = max) <= 0.5 rank(wd = 0); "
                    "rho and 'full at wd = 0' unchanged. The large-wd rank is set by the task, not by the width, "
                    "so a width-relative level failed at width 50 for that reason alone."),
    Trend("galanti.batch_steps", "galanti", ("galanti.batch_steps",),
          "control: at equal steps rank is flat in B (the batch effect at fixed epochs comes from T = epochs N / B)",
          _batch_control, CITE, criteria=(B_FLAT,), version=2, control=True,
          amendment="Scored as the control it was set up as: flat in B at equal steps, (max - min) rank / width "
                    "<= 0.05 over trained runs; the paper's 'increases with B' shown beside it. Version 1 scored "
                    "it with the paper's criterion, so a control that behaved as predicted read 'fail'."),
]
