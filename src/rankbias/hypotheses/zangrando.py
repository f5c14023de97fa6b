"""Baseline hypotheses of Zangrando et al., "Neural Rank Collapse: Weight Decay and
Small Within-Class Variability Yield Low-Rank Bias", arXiv 2402.03991.

A layer's distance to rank K (the number of classes) falls as wd grows, in
proportion to the within-class variability of the previous layer's features.
One ``Trend`` per claim id of claims.md; K = the net's output width.
"""

from __future__ import annotations

import math

import numpy as np

from rankbias.hypotheses.base import Check, RunSet, Trend, hidden_square, spearman

CITE = "Zangrando, Deidda, Venturini, Tudisco 2024, arXiv 2402.03991"


def _hidden(f) -> list[int]:
    return hidden_square(f["widths"].iloc[0])


def _wd(runs: RunSet) -> list[Check]:
    f = runs.final
    K = int(f["data.classes"].iloc[0])
    checks = []
    for k in _hidden(f):
        gap = f[f"gap_k@{k}"].groupby(f["wd"]).mean().sort_index()
        checks.append(Check(f"rho(sigma_K+1 / sigma_1 of layer {k}, wd)", spearman(gap.index, gap.values), "<=", -0.9))
    late = f[f["horizon"] >= 12]
    at_k = [float((late[f"rank_rel@{k}"] == K).mean()) for k in _hidden(f)] if len(late) else [math.nan]
    checks.append(Check("share of (run, hidden layer) with rank_rel(1e-2) = K once horizon >= 12",
                        float(np.mean(at_k)), ">=", 1.0))
    k = _hidden(f)[0]
    gap = f[f"gap_k@{k}"].groupby(f["wd"]).mean().sort_index()
    checks.append(Check(f"effect: log10 gap(wd=min) / gap(wd=max), layer {k}",
                        math.log10(gap.iloc[0] / gap.iloc[-1]) if gap.iloc[-1] > 0 else math.inf))
    return checks


def _spread(runs: RunSet) -> list[Check]:
    f = runs.final
    gap = f["gap_k@0"].groupby(f["data.std"]).mean().sort_index()
    return [
        Check("rho(layer-1 sigma_K+1 / sigma_1, within-class std)", spearman(gap.index, gap.values), ">=", 1.0 - 1e-9),
        Check("effect: log10 gap(std=max) / gap(std=min)",
              math.log10(gap.iloc[-1] / gap.iloc[0]) if gap.iloc[0] > 0 else math.inf),
    ]


def _bound(runs: RunSet) -> list[Check]:
    f = runs.final
    cols = [c for c in f.columns if c.startswith("collapse_bound@")]
    values = f[cols].to_numpy(float).ravel()
    values = values[~np.isnan(values)]
    return [Check("share of (run, layer) with the collapse bound ratio <= 1", float((values <= 1).mean()), ">=", 1.0),
            Check("effect: max ratio", float(values.max()) if len(values) else math.nan)]


def _nc1(runs: RunSet) -> list[Check]:
    f = runs.final
    rhos = []
    for k in _hidden(f):
        rhos.append(spearman(f[f"rank_rel@{k}"], f[f"nc1@{k - 1}"]))
    checks = [Check(f"rho(rank_rel of layer {k}, NC1 of layer {k - 1} features)", r, ">=", 0.8)
              for k, r in zip(_hidden(f), rhos)]
    return checks + [Check("effect: mean rho", float(np.nanmean(rhos)) if not np.isnan(rhos).all() else math.nan)]


HYPOTHESES = [
    Trend("zangrando.wd", "zangrando", ("zangrando.wd",), "distance to rank K falls with wd; rank -> K", _wd, CITE),
    Trend("zangrando.spread", "zangrando", ("zangrando.spread",), "layer-1 gap rises with within-class spread",
          _spread, CITE),
    Trend("zangrando.bound", "zangrando", ("zangrando.bound", "zangrando.spread"),
          "wd * dist(W, rank K) <= ||R|| + sum_i ||delta_i|| ||h_i - mu_c(i)||", _bound, CITE),
    Trend("zangrando.nc1", "zangrando", ("zangrando.nc1",), "rank falls with the previous layer's NC1", _nc1, CITE),
]
