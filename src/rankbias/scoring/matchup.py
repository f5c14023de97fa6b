"""The head-to-head of ``rankbias compare``: a researcher's hypothesis beside each baseline
that reads its scenarios, on the runs both scored.

A baseline's own verdict reads its own runs (e.g. every trained run of a sweep),
and a researcher's may read fewer (those its checks can use): set side by side
as they are, the two would differ in their runs before they differ in their
claims.  ``pairings`` scores each rival baseline again on the runs both
verdicts read (``score.score`` with those names), or says that they share none.
Each still reads its own measure (a Trend's checks, a Predictor's ``measure``):
shared runs are not a shared quantity, and the view says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from rankbias.scoring.score import N_BOOT, Verdict, score


@dataclass
class Pairing:
    """A baseline beside one of the researcher's verdicts: ``shared`` runs both read, and the
    baseline's verdict on exactly those (None when they share none); ``alone`` its runs."""

    baseline: str
    shared: int
    alone: int
    verdict: Verdict | None


def rivals(h, baselines: list) -> list:
    """The baselines that read any of ``h``'s scenarios: what a head-to-head view sets beside it."""
    return [b for b in baselines if set(b.scenarios) & set(h.scenarios)]


def pairings(card, baselines: list, n_boot: int = 0, version: int | None = None) -> list[tuple[Verdict, list[Pairing]]]:
    """For each verdict of the researcher's hypotheses in ``card`` (a ``benchmark.Scorecard``;
    variants included), each rival baseline scored on the runs both read."""
    by_id = {v.id: v for v in card.verdicts}
    version = card.meta.get("claims_version") if version is None else version
    out = []
    for h in card.extra:
        for mine in (v for v in card.verdicts if v.id == h.id or v.id.startswith(h.id + "[")):
            rows = []
            for b in rivals(h, baselines):
                theirs = by_id.get(b.id)
                own = set(theirs.runs) if theirs is not None else set()
                shared = [name for name in mine.runs if name in own]
                verdict = (score(b, card.runs, n_boot or N_BOOT, names=shared, version=version,
                                 scenarios=tuple(b.scenarios)) if shared else None)
                rows.append(Pairing(b.id, len(shared), len(own), verdict))
            out.append((mine, rows))
    return out
