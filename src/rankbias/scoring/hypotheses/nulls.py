"""Null hypotheses: rival explanations each paper's claims should beat.

- ``null.wd_flat``: rank does not depend on wd (on galanti.wd's runs).
- ``null.batch_flat``: rank does not depend on B (on galanti.batch_epochs').
- ``null.horizon_alone``: rank is set by the horizon lr*wd*T alone, a rival
  explanation of Galanti's trends at fixed epochs, where T = epochs * N / B
  carries the batch effect.  As a trend: rank falls with the horizon across
  every Galanti SGD sweep (rho <= -0.9), and runs of equal horizon agree
  within 0.03 of the width.  As a predictor: rank = an isotonic (non-increasing)
  fit of rank on the horizon over the same runs (in-sample, its best case).
"""

from __future__ import annotations

import math

import pandas as pd
from sklearn.isotonic import IsotonicRegression

from dataclasses import replace

from rankbias.scoring.hypotheses.base import (Check, Criterion, Predictor, RunSet, Trend, effect, hidden_mean, rank_spread,
                                      spearman, width_of)

GALANTI_SGD = ("galanti.wd", "galanti.batch_epochs", "galanti.batch_steps", "galanti.lr", "galanti.no_wd")


FLAT_WD = Criterion("(max - min) rank / width over wd", "<=", 0.03)
FLAT_BATCH = Criterion("(max - min) rank / width over batch", "<=", 0.03)
HORIZON_RHO = Criterion("rho(rank_tol, horizon) over horizons", "<=", -0.9)
HORIZON_SPREAD = Criterion("max rank spread among runs of equal horizon / width", "<=", 0.03)


def _flat(column: str, criterion: Criterion):
    def checks(runs: RunSet) -> list[Check]:
        spread = rank_spread(runs.final, [column])
        return [criterion(spread), effect("spread", spread)]
    return checks


def _horizon(runs: RunSet) -> list[Check]:
    f = runs.final
    rank = hidden_mean(f, "rank_tol")
    horizon = f["horizon"].round(9)
    by_h = rank.groupby(horizon)
    spread = float((by_h.max() - by_h.min()).max() / width_of(f)) if len(f) else math.nan
    means = by_h.mean()
    return [
        HORIZON_RHO(spearman(means.index, means.values)),
        HORIZON_SPREAD(spread),
        effect("rho over runs", spearman(f["horizon"], rank)),
    ]


def _measured(runs: RunSet) -> pd.Series:
    return hidden_mean(runs.final, "rank_tol")


def _isotonic(runs: RunSet) -> pd.Series:
    f = runs.final
    fit = IsotonicRegression(increasing=False).fit(f["horizon"], _measured(runs))
    return pd.Series(fit.predict(f["horizon"]), index=f.index)


HYPOTHESES = [
    Trend("null.wd_flat", "null", ("galanti.wd",), "rank does not depend on wd", _flat("wd", FLAT_WD),
          criteria=(FLAT_WD,)),
    Trend("null.batch_flat", "null", ("galanti.batch_epochs",), "rank does not depend on B", _flat("batch", FLAT_BATCH),
          criteria=(FLAT_BATCH,)),
    Trend("null.horizon_alone", "null", GALANTI_SGD, "rank is set by the horizon lr*wd*T alone", _horizon,
          criteria=(HORIZON_RHO, HORIZON_SPREAD)),
    Predictor("null.horizon_isotonic", "null", GALANTI_SGD,
              "rank = non-increasing function of lr*wd*T (in-sample isotonic fit)", _isotonic, _measured),
]

AMENDED = [replace(h, version=2, needs_all=True,
                   amendment="Reads exactly the scenarios it names; with one missing from the matrix its verdict is "
                             "inconclusive, naming it. In version 1 a null's verdict changed with which scenarios a "
                             "matrix happened to hold.")
           for h in HYPOTHESES]
