"""A claim of Huh, Mobahi, Zhang, Cheung, Agrawal & Isola, "The Low-Rank Simplicity
Bias in Deep Networks", TMLR 2023 (arXiv 2103.10427), new in claims version 3.

A deeper linear factorization W_D ... W_1 of one map finds a lower effective rank
(exp of the entropy of its normalized singular values), at initialization and after
training; here on an under-determined regression (n < d), where many maps fit.
"""

from __future__ import annotations

import pandas as pd

from rankbias.scoring.hypotheses.base import Check, Criterion, RunSet, Trend, cell_means, effect, per_run_widths, spearman

CITE = "Huh et al. 2023, TMLR, arXiv 2103.10427"
AT_INIT = Criterion("rho(effective rank of the product, depth) at init", "<=", -0.9)
AT_END = Criterion("rho(effective rank of the product, depth) at T", "<=", -0.9)


def depth(final: pd.DataFrame) -> pd.Series:
    """Per run: the number of factors D of its factorized net."""
    return per_run_widths(final, lambda w: len(w) - 1)


def product_erank(runs: RunSet, first: bool = False) -> pd.Series:
    """Per run: the effective rank of the end-to-end product (the layer after the D
    factors) at its last step, or at step 0 with ``first``."""
    depths, parts = depth(runs.final), []
    for D in sorted(set(depths)):
        h = runs.history("effective_rank", int(D))
        h = h[h.run.isin(depths.index[depths == D])]
        parts.append(h.groupby("run").value.first() if first else h.groupby("run").value.last())
    return pd.concat(parts).reindex(runs.final.index) if parts else pd.Series(index=runs.final.index, dtype=float)


def _depth(runs: RunSet) -> list[Check]:
    f = runs.final.assign(depth=lambda d: depth(d))
    start, end = cell_means(f, "depth", product_erank(runs, first=True)), cell_means(f, "depth", product_erank(runs))
    return [
        AT_INIT(spearman(start.index, start.values)),
        AT_END(spearman(end.index, end.values)),
        effect("effective rank at T, deepest over D = 1", end.iloc[-1] / end.iloc[0]),
    ]


ADDED = [
    Trend("huh.depth", "huh", ("huh.depth",), "deeper linear factorizations have lower effective rank, at init "
          "and after training", _depth, CITE, criteria=(AT_INIT, AT_END), version=3, split_widths=False,
          amendment="Added in version 3."),
]
