"""A claim of Xie & Li, "Implicit Bias of AdamW: l-infinity Norm Constrained
Optimization", arXiv 2404.04454 (2024), new in claims version 3.

Full-batch AdamW with decoupled weight decay wd, where it converges, reaches a KKT
point of the loss under ||theta||_inf <= 1 / wd; on separable data (logistic loss,
which keeps pushing the margin) the constraint binds: max_i |theta_i| wd -> 1.  Only
runs that settled are read: the parameters moved by <= 1e-2 of their norm over the
last 10% of steps (``moved`` at the last of 11 evenly spaced log points).
"""

from __future__ import annotations

import math

from rankbias.scoring.hypotheses.base import Check, Criterion, RunSet, Trend, effect

CITE = "Xie & Li 2024, arXiv 2404.04454"
SETTLED = 1e-2  # a run settled when ||theta_T - theta_0.9T|| / ||theta_T|| <= SETTLED
BOUND_LOW = Criterion("min max_i |theta_i| wd over runs that settled", ">=", 0.95)
BOUND_HIGH = Criterion("max max_i |theta_i| wd over runs that settled", "<=", 1.01)


def _linf(runs: RunSet) -> list[Check]:
    f = runs.final
    settled = f[f["moved"] <= SETTLED]
    scaled = settled["max_abs"] * settled["wd"]
    return [
        BOUND_LOW(float(scaled.min()) if len(scaled) else math.nan),
        BOUND_HIGH(float(scaled.max()) if len(scaled) else math.nan),
        effect("share of runs that settled (moved <= 1e-2 over the last 10% of steps)",
               len(settled) / len(f) if len(f) else math.nan),
        effect("max relative movement over the last 10% of steps", float(f["moved"].max()) if len(f) else math.nan),
    ]


ADDED = [
    Trend("xie.adamw_linf", "xie", ("xie.adamw_linf",),
          "full-batch AdamW settles at ||theta||_inf = 1 / wd on separable data", _linf, CITE,
          criteria=(BOUND_LOW, BOUND_HIGH), version=3, amendment="Added in version 3."),
]
