"""A new hypothesis, not a baseline: the low rank reached at large weight decay is
set by the task, not by the width.

Seen while auditing galanti.wd across widths (rank_tol at wd = 2e-2 of 13.7,
14.5, 14.4 and 14.4 at widths 50, 80, 100 and 200), which also explains why the
width-50 variant misses galanti.wd's "rank(2e-2) <= 0.2 width": a width-free
rank is a larger share of a narrow layer.  Criterion, fixed before its runs:
the cell means over seeds of rank_tol (hidden square layers) at wd = 2e-2
differ by at most 20% of the smallest across the widths, (max - min) / min <= 0.2.
"""

from __future__ import annotations

import math

from rankbias.scoring.hypotheses.base import Check, Criterion, RunSet, Trend, effect, hidden_mean, widths_of

WIDTH_FREE = Criterion("(max - min) / min over widths of rank_tol at wd = 2e-2", "<=", 0.2)


def _width_free(runs: RunSet) -> list[Check]:
    f = runs.final
    width = f["widths"].map(lambda w: widths_of(w)[1])
    means = hidden_mean(f, "rank_tol").groupby(width).mean().sort_index()
    spread = (means.max() - means.min()) / means.min() if len(means) > 1 and means.min() > 0 else math.nan
    return [WIDTH_FREE(spread),
            effect("rank_tol at the narrowest / at the widest width",
                   means.iloc[0] / means.iloc[-1] if len(means) else math.nan)]


HYPOTHESES = [
    Trend("new.task_rank", "new", ("new.task_rank",),
          "rank_tol at wd = 2e-2 is set by the task, not the width (widths 50, 80, 100, 200 of galanti.wd's net)",
          _width_free, criteria=(WIDTH_FREE,), version=2, split_widths=False,
          amendment="Added in version 2, a new hypothesis beside the baselines: an audit of galanti.wd across "
                    "widths saw rank_tol 13.7, 14.5, 14.4 and 14.4 at widths 50, 80, 100 and 200 (wd = 2e-2)."),
]
