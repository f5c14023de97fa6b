"""Baseline hypotheses of Le & Jegelka, "Training invariances and the low-rank
phenomenon: beyond linear networks", arXiv 2201.11968.

No weight decay, logistic loss, separable data: deep linear layers tend to rank
1 and adjacent layers align; so do the last linear layers of ReLU nets (with or
without skips), not the ReLU layers; D_k = W_{k+1}^T W_{k+1} - W_k W_k^T is
conserved by gradient flow, on stably-active neurons only after a ReLU.
sigma_1 / ||W||_F is read as spectral / fro of the stored spectra.
"""

from __future__ import annotations

import numpy as np

from rankbias.hypotheses.base import Check, RunSet, Trend, layer_shapes

CITE = "Le & Jegelka 2022, arXiv 2201.11968"
FLOAT_NOISE = 1e-6  # "non-decreasing" allows drops of this size only


def _ratio(f, k):
    return f[f"spectral@{k}"] / f[f"fro@{k}"]


def _rank1(runs: RunSet) -> list[Check]:
    f = runs.final
    layers = [k for k, (o, i) in enumerate(layer_shapes(f["widths"].iloc[0])) if min(o, i) > 1]
    drops, first = 0, []
    for k in layers:
        spec, fro = runs.history("spectral", k), runs.history("fro", k)
        ratio = spec.assign(value=spec.value.to_numpy() / fro.value.to_numpy())
        for _, h in ratio.groupby("run"):
            v = h[h.step > 0].value.to_numpy()  # checkpoints after the init
            drops += int((np.diff(v) < -FLOAT_NOISE).sum())
            first.append(v[0])
    final = min(_ratio(f, k).min() for k in layers)
    pairs = [c for c in f.columns if c.startswith("adjacent_alignment@")]
    return [
        Check("drops of sigma_1/||W_k||_F between checkpoints", drops, "<=", 0),
        Check("min final sigma_1/||W_k||_F", final, ">=", 0.9),
        Check("min final |v_{k+1}^T u_k|", float(f[pairs].min().min()), ">=", 0.999),
        Check("effect: mean final - first checkpoint ratio",
              float(np.mean([_ratio(f, k).mean() for k in layers]) - np.mean(first))),
    ]


def _invariance(runs: RunSet) -> list[Check]:
    f = runs.final
    relu_pair, linear_pair = 0, 1  # ReLU -> linear -> linear: D_0 sits after the ReLU, D_1 between linear layers
    linear = f[[f"drift_diag@{linear_pair}", f"drift_same@{linear_pair}", f"drift_other@{linear_pair}"]].max(axis=1)
    conserved = f[[f"drift_diag@{relu_pair}", f"drift_same@{relu_pair}"]].max(axis=1)  # NaN-skipping max
    other = f[f"drift_other@{relu_pair}"]
    return [
        Check("max drift of D between linear layers", float(linear.max()), "<=", 1e-3),
        Check("max drift of diagonal and same-pattern entries after the ReLU", float(conserved.max()), "<=", 1e-3),
        Check("min drift of other pairs after the ReLU", float(other.min()), ">=", 0.05),
        Check("min other / conserved drift", float((other / conserved).min()), ">=", 100),
        Check("effect: log10 other / conserved", float(np.log10((other / conserved).median()))),
    ]


def _relu_last(runs: RunSet) -> list[Check]:
    f = runs.final
    last, gaps = [], []
    for _, row in f.iterrows():
        shapes = layer_shapes(row["widths"])
        depth, linear = len(shapes), int(row["linear_layers"])
        square = [k for k, (o, i) in enumerate(shapes) if o == i]
        tail = [k for k in square if k >= depth - linear]
        relu = [k for k in square if k < depth - linear]
        r = {k: row[f"spectral@{k}"] / row[f"fro@{k}"] for k in square}
        last.append(min(r[k] for k in tail))
        gaps.append(min(r[k] for k in tail) - max(r[k] for k in relu))
    last, gaps = np.array(last), np.array(gaps)
    return [
        Check("min sigma_1/||W||_F of the last linear square layers", float(last.min()), ">=", 0.9),
        Check("share of runs where they exceed every ReLU layer", float((gaps > 0).mean()), ">=", 1.0),
        Check("effect: mean last-linear minus max ReLU-layer ratio", float(gaps.mean())),
    ]


HYPOTHESES = [
    Trend("lejegelka.rank1", "lejegelka", ("lejegelka.rank1",), "deep linear layers -> rank 1; adjacent layers align",
          _rank1, CITE),
    Trend("lejegelka.invariance", "lejegelka", ("lejegelka.invariance",),
          "D_k conserved on linear layers; after a ReLU only on diagonal and same-pattern pairs", _invariance, CITE),
    Trend("lejegelka.relu_last_layers", "lejegelka", ("lejegelka.relu_last_layers",),
          "last linear layers of ReLU nets -> rank 1, ReLU layers need not", _relu_last, CITE),
]
