"""Baseline hypotheses of Zangrando et al., "Neural Rank Collapse: Weight Decay and
Small Within-Class Variability Yield Low-Rank Bias", arXiv 2402.03991.

A layer's distance to rank K (the number of classes) falls as wd grows, in
proportion to the within-class variability of the previous layer's features.
One ``Trend`` per claim id, criteria declared below (``HYPOTHESES``: version 1,
``AMENDED``: the claims version 2 changed); K = the net's output width.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rankbias.engine import geometry
from rankbias.scoring.hypotheses.base import (Check, Criterion, RunSet, Scatter, Sweep, Trend, effect, hidden_square,
                                              spearman)

CITE = "Zangrando, Deidda, Venturini, Tudisco 2024, arXiv 2402.03991"


GAP_WD = Criterion("rho(sigma_K+1 / sigma_1 of layer {k}, wd)", "<=", -0.9)
AT_K = Criterion("share of (run, hidden layer) with rank_rel(1e-2) = K once horizon >= 12", ">=", 1.0)
GAP_SPREAD = Criterion("rho(layer-1 sigma_K+1 / sigma_1, within-class std)", ">=", 1.0 - 1e-9)
BOUND = Criterion("share of (run, layer) with the collapse bound ratio <= 1", ">=", 1.0)
NC1_RANK = Criterion("rho(rank_rel of layer {k}, NC1 of layer {j} features)", ">=", 0.8)
NC1_GAP = Criterion("rho(sigma_K+1 / sigma_1 of W_{k}, NC1 of W_{k}'s input) over the spread cells", ">=", 0.8)


def _hidden(f) -> list[int]:
    return hidden_square(f["widths"].iloc[0])


def _wd(runs: RunSet) -> list[Check]:
    f = runs.final
    K = int(f["data.classes"].iloc[0])
    checks = []
    for k in _hidden(f):
        gap = f[f"gap_k@{k}"].groupby(f["wd"]).mean().sort_index()
        checks.append(GAP_WD(spearman(gap.index, gap.values), k=k))
    late = f[f["horizon"] >= 12]
    at_k = [float((late[f"rank_rel@{k}"] == K).mean()) for k in _hidden(f)] if len(late) else [math.nan]
    checks.append(AT_K(float(np.mean(at_k))))
    k = _hidden(f)[0]
    gap = f[f"gap_k@{k}"].groupby(f["wd"]).mean().sort_index()
    checks.append(effect(f"log10 gap(wd=min) / gap(wd=max), layer {k}",
                         math.log10(gap.iloc[0] / gap.iloc[-1]) if gap.iloc[-1] > 0 else math.inf))
    return checks


def _spread(runs: RunSet) -> list[Check]:
    f = runs.final
    gap = f["gap_k@0"].groupby(f["data.std"]).mean().sort_index()
    return [
        GAP_SPREAD(spearman(gap.index, gap.values)),
        effect("log10 gap(std=max) / gap(std=min)", math.log10(gap.iloc[-1] / gap.iloc[0]) if gap.iloc[0] > 0 else math.inf),
    ]


def _bound(runs: RunSet) -> list[Check]:
    f = runs.final
    cols = [c for c in f.columns if c.startswith("collapse_bound@")]
    values = f[cols].to_numpy(float).ravel()
    values = values[~np.isnan(values)]
    return [BOUND(float((values <= 1).mean())), effect("max ratio", float(values.max()) if len(values) else math.nan)]


def _nc1(runs: RunSet) -> list[Check]:
    f = runs.final
    rhos = []
    for k in _hidden(f):
        rhos.append(spearman(f[f"rank_rel@{k}"], f[f"nc1@{k - 1}"]))
    checks = [NC1_RANK(r, k=k, j=k - 1) for k, r in zip(_hidden(f), rhos)]
    return checks + [effect("mean rho", float(np.nanmean(rhos)) if not np.isnan(rhos).all() else math.nan)]


def input_nc1(runs: RunSet) -> pd.Series:
    """Per run (row of ``runs.final``, repeated rows included): NC1 of its training inputs,
    the features W_1 reads, from its data set."""
    def one(name):
        d = runs.dataset(name)
        return float(geometry.collapse(d.x_train[None], d.y_train, d.outputs)["nc1"][0])
    values = {name: one(name) for name in set(runs.final.index)}
    return pd.Series([values[name] for name in runs.final.index], index=runs.final.index, dtype=float)


def _nc1_spread(runs: RunSet) -> list[Check]:
    """Version 2: over the spread cells, rho between W_k's tail ratio sigma_K+1 / sigma_1 and
    NC1 of W_k's input features, k = 1 (the data's) and 2 (layer 1's output), 1-based."""
    f = runs.final
    inputs = {1: input_nc1(runs), 2: f["nc1@0"]}
    rhos = []
    for k, nc1 in inputs.items():
        cells = pd.DataFrame({"gap": f[f"gap_k@{k - 1}"], "nc1": nc1}).groupby(f["data.std"]).mean()
        rhos.append(spearman(cells["nc1"], cells["gap"]))
    return [NC1_GAP(r, k=k) for k, r in zip(inputs, rhos)] + [effect("mean rho", float(np.nanmean(rhos)))]


def _nc1_learned(runs: RunSet) -> list[Check]:
    """Version 3: as version 2, for W_2 only (1-based; its input, layer 1's features, is learned)."""
    f = runs.final
    cells = pd.DataFrame({"gap": f["gap_k@1"], "nc1": f["nc1@0"]}).groupby(f["data.std"]).mean()
    rho = spearman(cells["nc1"], cells["gap"])
    return [NC1_GAP(rho, k=2), effect("rho for W_1 (input: the data; reported)", _nc1_spread(runs)[0].value)]


SWEEPS = [
    Sweep("zangrando.wd", "wd", "gap_k", "sigma_K+1 / sigma_1, hidden square layers", logx=True, logy=True),
    Sweep("zangrando.spread", "data.std", "gap_k@0", "sigma_K+1 / sigma_1, first layer", logx=True, logy=True),
]

SCATTERS = [
    Scatter("rank_vs_nc1.png", "zangrando.nc1: tail ratio sigma_K+1 / sigma_1 of W_1 and W_2 against the NC1 of "
            "their input features, one dot per run",
            # W_1 reads the data, W_2 layer 1's features
            (("W_1", "zangrando.nc1", input_nc1, "gap_k@0"), ("W_2", "zangrando.nc1", "nc1@0", "gap_k@1")),
            "NC1 of the layer's input features", "sigma_K+1 / sigma_1", logx=True, logy=True),
]

HYPOTHESES = [
    Trend("zangrando.wd", "zangrando", ("zangrando.wd",), "distance to rank K falls with wd; rank -> K", _wd, CITE,
          criteria=(GAP_WD, AT_K)),
    Trend("zangrando.spread", "zangrando", ("zangrando.spread",), "layer-1 gap rises with within-class spread",
          _spread, CITE, criteria=(GAP_SPREAD,)),
    Trend("zangrando.bound", "zangrando", ("zangrando.bound", "zangrando.spread"),
          "wd * dist(W, rank K) <= ||R|| + sum_i ||delta_i|| ||h_i - mu_c(i)||", _bound, CITE, criteria=(BOUND,)),
    Trend("zangrando.nc1", "zangrando", ("zangrando.nc1",), "rank falls with the previous layer's NC1", _nc1, CITE,
          criteria=(NC1_RANK,)),
]

AMENDED = [
    Trend("zangrando.nc1", "zangrando", ("zangrando.nc1",),
          "a layer's distance to rank K rises with the within-class variability (NC1) of its input features",
          _nc1_spread, CITE, criteria=(NC1_GAP,), version=2,
          amendment="Read on zangrando.spread's runs, where the input spread moves NC1, with the continuous tail "
                    "ratio sigma_K+1 / sigma_1: rho over the spread cells >= 0.8 for W_1 (input: the data) and "
                    "W_2 (input: layer 1's features). Version 1's wd sweep moved NC1 by 6% while rank_rel "
                    "saturated at K in every run, so rho was undefined."),
]

AMENDED += [
    Trend("zangrando.nc1", "zangrando", ("zangrando.nc1",),
          "a layer's distance to rank K rises with the within-class variability (NC1) of its learned input features",
          _nc1_learned, CITE, criteria=(NC1_GAP,), version=3,
          amendment="Reads W_2 and deeper only (layers whose input features are learned): W_1's input is the data, "
                    "whose NC1 rises with the spread by construction, so its criterion repeated zangrando.spread."),
]
