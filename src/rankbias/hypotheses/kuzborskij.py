"""Baseline hypotheses of Kuzborskij & Abbasi Yadkori, "Low-rank bias, weight
decay, and model merging in neural networks", arXiv 2502.17340.

At a stationary point of GD / GF on L + wd/2 ||theta||^2: parameters align with
-grad L, layer norms are equal (bias-free nets), the first layer lies in the
span of the data, and the sum of two nets trained on orthogonal inputs does as
well as each on its own task.  One ``Trend`` per claim id of claims.md.
"""

from __future__ import annotations

import math

from rankbias.hypotheses.base import Check, RunSet, Trend, at, spearman

CITE = "Kuzborskij & Abbasi Yadkori 2025, arXiv 2502.17340"


def _alignment(runs: RunSet) -> list[Check]:
    f = runs.final
    decayed = f[(f["wd"] > 0) & (f["horizon"] >= 6)]
    plain = f[f["wd"] == 0]
    return [
        Check("min cos(theta, -grad L) for wd > 0, horizon >= 6", decayed["alignment"].min(), ">=", 0.99),
        Check("max cos(theta, -grad L) at wd = 0", plain["alignment"].max(), "<=", 0.5),
        Check("effect: mean alignment wd > 0 minus wd = 0", decayed["alignment"].mean() - plain["alignment"].mean()),
    ]


def _norms(runs: RunSet) -> list[Check]:
    f = runs.final
    decayed, plain = f[f["wd"] > 0], f[f["wd"] == 0]
    return [
        Check("max of max_k ||W_k|| / min_k ||W_k|| for wd > 0", decayed["norm_ratio"].max(), "<=", 1.01),
        Check("min norm ratio at wd = 0", plain["norm_ratio"].min(), ">=", 1.5),
        Check("effect: mean norm ratio wd = 0 minus wd > 0", plain["norm_ratio"].mean() - decayed["norm_ratio"].mean()),
    ]


def _span(runs: RunSet) -> list[Check]:
    f = runs.final
    top, plain = f[f["wd"] == f["wd"].max()], f[f["wd"] == 0]
    dim = int(f["data.k"].iloc[0])
    return [
        Check("max share of ||W_1|| outside span(X) at wd = 1e-2", top["outside_span@0"].max(), "<=", 0.01),
        Check("max rank_rel(1e-2) of W_1 at wd = 1e-2 minus dim span(X)", top["rank_rel@0"].max() - dim, "<=", 0),
        Check("min rank_rel(1e-2) of W_1 at wd = 1e-2 minus dim span(X)", top["rank_rel@0"].min() - dim, ">=", 0),
        Check("min share outside span(X) at wd = 0", plain["outside_span@0"].min(), ">=", 0.3),
        Check("effect: share outside at wd = 0 minus wd = 1e-2",
              plain["outside_span@0"].mean() - top["outside_span@0"].mean()),
    ]


def _merge(runs: RunSet) -> list[Check]:
    f = runs.final
    return [
        Check("mean merged / own train loss (worse task)", f["merge_ratio"].mean(), "<=", 1.02),
        Check("mean accuracy drop of the merged net (worse task)", f["merge_acc_drop"].mean(), "<=", 0.01),
        Check("effect: merged / own loss - 1", f["merge_ratio"].mean() - 1),
    ]


def _merge_needs_wd(runs: RunSet) -> list[Check]:
    f = runs.final
    ratio = f["merge_ratio"].groupby(f["wd"]).mean()
    gain = at(ratio, 0.0) / ratio[ratio.index > 0].mean() if (ratio.index > 0).any() else math.nan
    return [Check("merge ratio(wd=0) / merge ratio(wd>0)", gain, ">=", 1.1), Check("effect: ratio of ratios", gain)]


def _merge_overlap(runs: RunSet) -> list[Check]:
    f = runs.final
    acc = f["merged_acc"].groupby(f["data.cosine"]).mean().sort_index()
    drop = f["merge_acc_drop"][f["data.cosine"] == 0].mean()
    return [
        Check("rho(merged accuracy, principal cosine)", spearman(acc.index, acc.values), "<=", -1.0 + 1e-9),
        Check("accuracy drop at cosine 0", drop, "<=", 0.01),
        Check("effect: merged acc(cos=0) - merged acc(cos=max)", acc.iloc[0] - acc.iloc[-1]),
    ]


def _gf_merge(runs: RunSet) -> list[Check]:
    f = runs.final
    return [Check("mean merged / own train loss (worse task)", f["merge_ratio"].mean(), "<=", 1.02),
            Check("effect: merged / own loss - 1", f["merge_ratio"].mean() - 1)]


HYPOTHESES = [
    Trend("kuzborskij.alignment", "kuzborskij", ("kuzborskij.alignment",), "cos(theta, -grad L) -> 1 with wd",
          _alignment, CITE),
    Trend("kuzborskij.norms", "kuzborskij", ("kuzborskij.norms",), "layer norms equalize with wd", _norms, CITE),
    Trend("kuzborskij.span", "kuzborskij", ("kuzborskij.span",), "W_1 lies in span(X); rank <= dim span(X)",
          _span, CITE),
    Trend("kuzborskij.merge", "kuzborskij", ("kuzborskij.merge",), "merged net as good as each on its task",
          _merge, CITE),
    Trend("kuzborskij.merge_needs_wd", "kuzborskij", ("kuzborskij.merge_needs_wd",), "merging is worse without wd",
          _merge_needs_wd, CITE),
    Trend("kuzborskij.merge_overlap", "kuzborskij", ("kuzborskij.merge_overlap",),
          "merged accuracy falls as the subspaces overlap", _merge_overlap, CITE),
    Trend("kuzborskij.gf_deep_linear_merge", "kuzborskij", ("kuzborskij.gf_deep_linear_merge",),
          "gradient flow, deep linear: merged ~ individual", _gf_merge, CITE),
]
