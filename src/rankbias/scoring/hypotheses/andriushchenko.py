"""A claim of Andriushchenko, Bahri, Mobahi & Flammarion, "Sharpness-Aware Minimization
Leads to Low-Rank Features", arXiv 2305.16292 (2023), new in claims version 3.

SAM (ascent to theta + r g / ||g||, then the SGD step with the gradient there) lowers
the rank of the features a network computes: the fewest principal components holding
99% of the variance of a hidden layer's outputs over the training set
(``feature_rank``, ``rankbias.engine.probes``) falls as the radius r grows.  The share
of ReLUs active on some training input is reported beside it (the paper's mechanism
prunes units).
"""

from __future__ import annotations

from rankbias.scoring.hypotheses.base import Check, Criterion, RunSet, Sweep, Trend, cell_means, effect, spearman

CITE = "Andriushchenko, Bahri, Mobahi & Flammarion 2023, arXiv 2305.16292"
SAM_RHO = Criterion("rho(feature rank of the hidden layer, SAM radius r)", "<=", -0.9)


def _sam(runs: RunSet) -> list[Check]:
    f = runs.final
    rank = cell_means(f, "sam", f["feature_rank@0"])
    active = cell_means(f, "sam", f["active_share@0"])
    return [
        SAM_RHO(spearman(rank.index, rank.values)),
        effect("feature rank, r = max over r = 0", rank.iloc[-1] / rank.iloc[0]),
        effect("share of active ReLUs, r = max minus r = 0 (reported)", active.iloc[-1] - active.iloc[0]),
    ]


SWEEPS = [Sweep("andriushchenko.sam", "sam", "feature_rank@0", "feature rank of the hidden layer (99% variance)")]

ADDED = [
    Trend("andriushchenko.sam", "andriushchenko", ("andriushchenko.sam",), "feature rank falls with the SAM radius",
          _sam, CITE, criteria=(SAM_RHO,), version=3, amendment="Added in version 3."),
]
