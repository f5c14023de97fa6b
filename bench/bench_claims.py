"""asv tracking of the science: claims' statistics, effect sizes and verdicts (the
current claims version) beside the kernels' speed, commit by commit; `asv
publish` plots both.

By default the suite tracks a fixed set of claims whose quick-tier runs are
cheap (``TRACKED``, their quick-tier scenarios of the built-in matrix: about 2
minutes of training on 2 cores), so that one commit's ``asv run`` stays within
10 minutes.  ``RANKBIAS_ASV_TIER=quick`` (or ``standard``, ``full``) tracks every
claim of that tier instead (the quick tier trains for about 9 minutes on 2 cores).

``setup_cache`` trains once per commit into a store in asv's cache directory;
every ``track_`` reads its score.
"""

import os

from rankbias.scoring.hypotheses import claims

TIER = os.environ.get("RANKBIAS_ASV_TIER", "")
TRACKED = ("galanti.wd", "galanti.lr", "galanti.steady_batch", "galanti.steady_horizon", "galanti.bound",
           "kuzborskij.span", "kuzborskij.merge", "kuzborskij.gf_deep_linear_merge", "zangrando.spread",
           "zangrando.nc1", "lejegelka.rank1", "lejegelka.invariance", "new.task_rank", "null.wd_flat")
HYPOTHESES = [h for h in claims() if h.kind == "trend" and (TIER or h.id in TRACKED)]
VERDICT_CODE = {"pass": 1.0, "inconclusive": 0.0, "fail": -1.0, "not applicable": float("nan")}


def tracked_matrix():
    """The runs the tracked claims read: a tier of the built-in matrix, or (default) the
    quick-tier scenarios of ``TRACKED``."""
    from rankbias.experiments.matrix import Matrix, expand
    from rankbias.experiments.spec import BUILTIN, load

    matrix = expand(load(BUILTIN), TIER or "quick")
    if TIER:
        return matrix
    read = {sid for h in HYPOTHESES for sid in h.scenarios}
    members = {sid: names for sid, names in matrix.members.items() if sid in read}
    runs = {name: matrix.runs[name] for names in members.values() for name in names}
    return Matrix(matrix.tier, runs, members, [], {sid: matrix.cells[sid] for sid in members})


class ClaimScores:
    """Claims of the built-in matrix (see the module docstring), scored on their runs."""

    timeout = 3600
    params = [[h.id for h in HYPOTHESES]]
    param_names = ["claim"]

    def setup_cache(self):
        from rankbias.scoring.benchmark import run_benchmark

        card = run_benchmark(tracked_matrix(), "claims.sqlite", n_boot=100)  # one worker per core
        tracked = {h.id for h in HYPOTHESES}
        verdicts = [v for v in card.verdicts if v.id in tracked]
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
