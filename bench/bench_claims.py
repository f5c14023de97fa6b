"""asv tracking of the science: each claim's statistic, effect size and verdict
(the current claims version) on the quick tier of the built-in matrix, so `asv
run` shows the claims beside the kernels' speed commit by commit and `asv
publish` plots both.

``setup_cache`` trains the quick tier once per commit (about 9 minutes on 2 cores) into a
store in asv's cache directory; every ``track_`` reads its score.
"""

import os

from rankbias.hypotheses import BASELINES

CLAIMS = [h.id for h in BASELINES if h.kind == "trend"]
VERDICT_CODE = {"pass": 1.0, "inconclusive": 0.0, "fail": -1.0, "not applicable": float("nan")}


class ClaimScores:
    """Quick tier of the built-in claims matrix, scored against the baselines."""

    timeout = 1800
    params = [CLAIMS]
    param_names = ["claim"]

    def setup_cache(self):
        from rankbias.matrix import expand
        from rankbias.runner import run_matrix
        from rankbias.score import Runs, scorecard
        from rankbias.spec import BUILTIN, load
        from rankbias.store import Store

        matrix = expand(load(BUILTIN), "quick")
        store = Store("claims.sqlite")
        workers = os.cpu_count() or 1
        run_matrix(matrix, store, executor=f"process:{workers}" if workers > 1 else "local")
        verdicts = scorecard([h for h in BASELINES if h.kind == "trend"], Runs(store, matrix), n_boot=100)
        return {v.id: {"statistic": v.statistic.value if v.statistic else float("nan"),
                       "effect": v.effect.value if v.effect else float("nan"),
                       "verdict": VERDICT_CODE[v.verdict]} for v in verdicts}

    def track_statistic(self, scores, claim):
        """The claim's first criterion statistic (e.g. Spearman rho)."""
        return scores[claim]["statistic"]

    def track_effect(self, scores, claim):
        """The claim's effect size."""
        return scores[claim]["effect"]

    def track_verdict(self, scores, claim):
        """1 pass, 0 inconclusive, -1 fail; NaN (no value) when not applicable."""
        return scores[claim]["verdict"]

    track_statistic.unit = "statistic"
    track_effect.unit = "effect"
    track_verdict.unit = "verdict"
