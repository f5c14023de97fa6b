"""Baseline hypotheses of Kuzborskij & Abbasi Yadkori, "Low-rank bias, weight
decay, and model merging in neural networks", arXiv 2502.17340.

At a stationary point of GD / GF on L + wd/2 ||theta||^2: parameters align with
-grad L, layer norms are equal (bias-free nets), the first layer lies in the
span of the data, and the sum of two nets trained on orthogonal inputs does as
well as each on its own task.  One ``Trend`` per claim id, criteria declared
below; ``HYPOTHESES`` holds version 1, ``AMENDED`` the forms later versions changed (each
with its ``version``); version 3 makes kuzborskij.alignment a consistency check.
"""

from __future__ import annotations

import math

from rankbias.scoring.hypotheses.base import GATE, Check, Criterion, RunSet, Scatter, Sweep, Trend, at, effect, spearman

CITE = "Kuzborskij & Abbasi Yadkori 2025, arXiv 2502.17340"


ALIGNED = Criterion("min cos(theta, -grad L) for wd > 0, horizon >= 6", ">=", 0.99)
UNALIGNED = Criterion("max cos(theta, -grad L) at wd = 0", "<=", 0.5)
BALANCED = Criterion("max of max_k ||W_k|| / min_k ||W_k|| for wd > 0", "<=", 1.01)
UNBALANCED = Criterion("min norm ratio at wd = 0", ">=", 1.5)
ALIGNED_AT_GATE = Criterion("min cos(theta, -grad L), GD/GF runs with wd > 0 on the gate, horizon >= 6", ">=", 0.99)
BALANCED_AT_GATE = Criterion("max of max_k ||W_k|| / min_k ||W_k||, GD/GF runs with wd > 0 on the gate", "<=", 1.01)
IDENTITY = Criterion("max |cos^2(theta, -grad L) + s^2 - 1|, GD/GF runs with wd > 0 on the gate", "<=", 1e-3)
SPAN_OUT = Criterion("max share of ||W_1|| outside span(X) at wd = 1e-2", "<=", 0.01)
SPAN_RANK_HI = Criterion("max rank_rel(1e-2) of W_1 at wd = 1e-2 minus dim span(X)", "<=", 0)
SPAN_RANK_LO = Criterion("min rank_rel(1e-2) of W_1 at wd = 1e-2 minus dim span(X)", ">=", 0)
SPAN_PLAIN = Criterion("min share outside span(X) at wd = 0", ">=", 0.3)
MERGE_LOSS = Criterion("mean merged / own train loss (worse task)", "<=", 1.02)
MERGE_ACC = Criterion("mean accuracy drop of the merged net (worse task)", "<=", 0.01)
MERGE_WD = Criterion("merge ratio(wd=0) / merge ratio(wd>0)", ">=", 1.1)
OVERLAP_RHO = Criterion("rho(merged accuracy, principal cosine)", "<=", -1.0 + 1e-9)
OVERLAP_DROP = Criterion("accuracy drop at cosine 0", "<=", 0.01)


def _alignment(runs: RunSet) -> list[Check]:
    f = runs.final
    decayed = f[(f["wd"] > 0) & (f["horizon"] >= 6)]
    plain = f[f["wd"] == 0]
    return [
        ALIGNED(decayed["alignment"].min()),
        UNALIGNED(plain["alignment"].max()),
        effect("mean alignment wd > 0 minus wd = 0", decayed["alignment"].mean() - plain["alignment"].mean()),
    ]


def _norms(runs: RunSet) -> list[Check]:
    f = runs.final
    decayed, plain = f[f["wd"] > 0], f[f["wd"] == 0]
    return [
        BALANCED(decayed["norm_ratio"].max()),
        UNBALANCED(plain["norm_ratio"].min()),
        effect("mean norm ratio wd = 0 minus wd > 0", plain["norm_ratio"].mean() - decayed["norm_ratio"].mean()),
    ]


def _full_batch(f):
    """GD and gradient-flow runs: the dynamics whose stationary points the theorem is about."""
    return f[f["kind"].isin(["gd", "gf"])]


def _on_gate(f):
    """GD/GF runs with wd > 0 that ended on the stationarity gate."""
    runs = _full_batch(f)
    return runs[(runs["wd"] > 0) & (runs["stationarity"] <= GATE)]


def _gate_reached(runs: RunSet) -> Check:
    """The theorem's hypothesis: some wd > 0 GD/GF run reached a stationary point (the gate)."""
    runs = _full_batch(runs.final)
    best = runs[runs["wd"] > 0]["stationarity"].min()
    return Check("min ||grad L + wd theta|| / ||grad L|| of wd > 0 GD/GF runs", best, "<=", GATE)


def _share_on_gate(f) -> float:
    decayed = _full_batch(f)
    decayed = decayed[decayed["wd"] > 0]
    return len(_on_gate(f)) / len(decayed) if len(decayed) else math.nan


def _mean(f, column: str) -> float:
    return float(f[column].mean()) if len(f) else math.nan


def _first_pass(f) -> float:
    return float(f["gate_step"].median()) if "gate_step" in f and len(f) else math.nan


def _alignment_at_gate(runs: RunSet) -> list[Check]:
    f = runs.final
    gated = _on_gate(f)
    full = _full_batch(f)
    sgd = f[(f["kind"] == "sgd") & (f["wd"] > 0)]
    return [
        ALIGNED_AT_GATE(gated[gated["horizon"] >= 6]["alignment"].min()),
        effect("share of wd > 0 GD/GF runs on the gate", _share_on_gate(f)),
        effect("mean cos(theta, -grad L), GD/GF runs at wd = 0 (no prediction)", _mean(full[full["wd"] == 0], "alignment")),
        effect("mean cos(theta, -grad L), SGD runs with wd > 0", _mean(sgd, "alignment")),
        effect("median step of the first gate pass, GD runs with wd > 0", _first_pass(full[(full["wd"] > 0) &
                                                                                          (full["kind"] == "gd")])),
    ]


def _norms_at_gate(runs: RunSet) -> list[Check]:
    f = runs.final
    full = _full_batch(f)
    sgd = f[(f["kind"] == "sgd") & (f["wd"] > 0)]
    return [
        BALANCED_AT_GATE(_on_gate(f)["norm_ratio"].max()),
        effect("share of wd > 0 GD/GF runs on the gate", _share_on_gate(f)),
        effect("mean norm ratio, GD/GF runs at wd = 0 (no prediction)", _mean(full[full["wd"] == 0], "norm_ratio")),
        effect("mean norm ratio, SGD runs with wd > 0", _mean(sgd, "norm_ratio")),
    ]


def _identity(runs: RunSet) -> list[Check]:
    """Version 3's consistency check: cos^2(theta, -g) + s^2 - 1 = s^2 cos^2(theta, g + wd theta)
    (g = grad L, s = ||g + wd theta|| / ||g||), zero once the norm is stationary."""
    f = runs.final
    gated = _on_gate(f)
    error = (gated["alignment"] ** 2 + gated["stationarity"] ** 2 - 1).abs()
    return [
        IDENTITY(float(error.max()) if len(error) else math.nan),
        effect("share of wd > 0 GD/GF runs on the gate (the runs read)", _share_on_gate(f)),
        effect("median |cos^2 + s^2 - 1| of the runs read", float(error.median()) if len(error) else math.nan),
    ]


def _span(runs: RunSet) -> list[Check]:
    f = runs.final
    top, plain = f[f["wd"] == f["wd"].max()], f[f["wd"] == 0]
    dim = int(f["data.k"].iloc[0])
    return [
        SPAN_OUT(top["outside_span@0"].max()),
        SPAN_RANK_HI(top["rank_rel@0"].max() - dim),
        SPAN_RANK_LO(top["rank_rel@0"].min() - dim),
        SPAN_PLAIN(plain["outside_span@0"].min()),
        effect("share outside at wd = 0 minus wd = 1e-2", plain["outside_span@0"].mean() - top["outside_span@0"].mean()),
    ]


def _merge(runs: RunSet) -> list[Check]:
    f = runs.final
    return [
        MERGE_LOSS(f["merge_ratio"].mean()),
        MERGE_ACC(f["merge_acc_drop"].mean()),
        effect("merged / own loss - 1", f["merge_ratio"].mean() - 1),
    ]


def _merge_needs_wd(runs: RunSet) -> list[Check]:
    f = runs.final
    ratio = f["merge_ratio"].groupby(f["wd"]).mean()
    gain = at(ratio, 0.0) / ratio[ratio.index > 0].mean() if (ratio.index > 0).any() else math.nan
    return [MERGE_WD(gain), effect("ratio of ratios", gain)]


def _merge_overlap(runs: RunSet) -> list[Check]:
    f = runs.final
    acc = f["merged_acc"].groupby(f["data.cosine"]).mean().sort_index()
    drop = f["merge_acc_drop"][f["data.cosine"] == 0].mean()
    return [
        OVERLAP_RHO(spearman(acc.index, acc.values)),
        OVERLAP_DROP(drop),
        effect("merged acc(cos=0) - merged acc(cos=max)", acc.iloc[0] - acc.iloc[-1]),
    ]


def _gf_merge(runs: RunSet) -> list[Check]:
    f = runs.final
    return [MERGE_LOSS(f["merge_ratio"].mean()), effect("merged / own loss - 1", f["merge_ratio"].mean() - 1)]


SWEEPS = [
    Sweep("kuzborskij.alignment", "wd", "alignment", "cos(theta, -grad L)", split="kind"),
    Sweep("kuzborskij.alignment.deep_linear", "wd", "alignment", "cos(theta, -grad L)", split="kind"),
    Sweep("kuzborskij.span", "wd", "outside_span@0", "share of ||W_1|| outside span(X)"),
]

SCATTERS = [
    Scatter("merging.png", "merged vs individual accuracy, one dot per run",
            tuple((sid.split(".")[1], sid, "own_acc", "merged_acc") for sid in
                  ("kuzborskij.merge_needs_wd", "kuzborskij.merge_overlap", "kuzborskij.gf_deep_linear_merge")),
            "individual nets' mean train accuracy", "merged net's mean train accuracy", diagonal=(0.5, 1.0)),
]

HYPOTHESES = [
    Trend("kuzborskij.alignment", "kuzborskij", ("kuzborskij.alignment",), "cos(theta, -grad L) -> 1 with wd",
          _alignment, CITE, criteria=(ALIGNED, UNALIGNED)),
    Trend("kuzborskij.norms", "kuzborskij", ("kuzborskij.norms",), "layer norms equalize with wd", _norms, CITE,
          criteria=(BALANCED, UNBALANCED)),
    Trend("kuzborskij.span", "kuzborskij", ("kuzborskij.span",), "W_1 lies in span(X); rank <= dim span(X)",
          _span, CITE, criteria=(SPAN_OUT, SPAN_RANK_HI, SPAN_RANK_LO, SPAN_PLAIN)),
    Trend("kuzborskij.merge", "kuzborskij", ("kuzborskij.merge",), "merged net as good as each on its task",
          _merge, CITE, criteria=(MERGE_LOSS, MERGE_ACC)),
    Trend("kuzborskij.merge_needs_wd", "kuzborskij", ("kuzborskij.merge_needs_wd",), "merging is worse without wd",
          _merge_needs_wd, CITE, criteria=(MERGE_WD,)),
    Trend("kuzborskij.merge_overlap", "kuzborskij", ("kuzborskij.merge_overlap",),
          "merged accuracy falls as the subspaces overlap", _merge_overlap, CITE, criteria=(OVERLAP_RHO, OVERLAP_DROP)),
    Trend("kuzborskij.gf_deep_linear_merge", "kuzborskij", ("kuzborskij.gf_deep_linear_merge",),
          "gradient flow, deep linear: merged ~ individual", _gf_merge, CITE, criteria=(MERGE_LOSS,)),
]

_AT_GATE = ("Criteria read GD and gradient-flow runs with wd > 0 that ended on the stationarity gate (the theorem "
            "concerns stationary points of the L2-regularized objective); GD runs go on past 20k steps until the "
            "gate passes, up to 100k, and the first pass is recorded; SGD runs and wd = 0 values are reported as "
            "effect sizes; a deep linear arm (32-64-64-4, GD lr 0.1 and GF) is added; an arch with no wd > 0 GD/GF "
            "run on the gate is 'not applicable'. Version 1 read SGD runs, none of which ever passed the gate, and "
            "its wd = 0 thresholds tested what the paper does not predict")
AMENDED = [
    Trend("kuzborskij.alignment", "kuzborskij", ("kuzborskij.alignment",),
          "at a stationary point of GD/GF with wd > 0: cos(theta, -grad L) = 1", _alignment_at_gate, CITE,
          criteria=(ALIGNED_AT_GATE,), version=2, applies=_gate_reached,
          amendment=_AT_GATE + " (directional convergence makes the wd = 0 alignment rise on its own)."),
    Trend("kuzborskij.norms", "kuzborskij", ("kuzborskij.norms",),
          "at a stationary point of GD/GF with wd > 0: equal layer norms (bias-free nets)", _norms_at_gate, CITE,
          criteria=(BALANCED_AT_GATE,), version=2, applies=_gate_reached,
          amendment=_AT_GATE + " (the wd = 0 norm ratio is the initialization's width ratio)."),
]

AMENDED += [
    Trend("kuzborskij.alignment", "kuzborskij", ("kuzborskij.alignment",),
          "consistency: cos^2(theta, -grad L) + s^2 = 1 once the norm is stationary (s the stationarity)",
          _identity, CITE, kind="consistency", criteria=(IDENTITY,), version=3, applies=_gate_reached,
          amendment="A consistency check, shown beside the claims and never counted as evidence: for every GD run "
                    "cos = sqrt(1 - s^2) to 2.5e-6, so 'on the gate (s <= 0.1) and cos >= 0.99' was true by "
                    "construction; alignment at a stationary point is the stationarity equation itself. It now "
                    "checks that identity (within 1e-3) on the wd > 0 GD/GF runs on the gate."),
    Trend("kuzborskij.norms", "kuzborskij", ("kuzborskij.norms", "kuzborskij.no_wd"),
          "at a stationary point of GD/GF with wd > 0: equal layer norms (bias-free nets)", _norms_at_gate, CITE,
          criteria=(BALANCED_AT_GATE,), version=3, applies=_gate_reached,
          amendment="wd = 0 runs stop at version 1's budget (20k steps) in their own scenario, kuzborskij.no_wd: "
                    "the gate cannot pass at wd = 0, and they ran to the 100k cap for nothing. Their values stay "
                    "reported, not judged."),
]
