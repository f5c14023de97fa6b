"""Score hypotheses on stored runs: verdicts, statistics, effect sizes, seed CIs.

For each hypothesis (``rankbias.hypotheses``): the runs of its scenarios are
read from the store (one row per run, its last-step metrics as columns); runs
not yet stored, failed or diverged are left out and counted.  Its checks are
evaluated on all runs, then on ``n_boot`` bootstrap resamples of the seeds (a
cluster bootstrap: each resample draws as many seeds as there are, with
replacement, and keeps every run of the drawn seeds; percentile 95% CI,
Efron & Tibshirani 1993, ch. 13).  A criterion check

- passes when its value and both ends of its CI meet the criterion,
- fails when its value and both ends miss it,
- is inconclusive otherwise (the seeds disagree, or the value is NaN);

a hypothesis passes when every criterion passes, fails when any fails, and is
inconclusive otherwise, or when some of its runs are missing.  Each verdict
also reports the range of the decay horizon lr*wd*T of its runs and how many of
its wd > 0 runs passed the stationarity gate ||grad L + wd theta|| / ||grad L||
<= ``GATE`` at their last step, so a verdict read off runs far from
stationarity is visible as such.

A ``Predictor`` is not judged: it gets Spearman rho between predicted and
measured rank and the mean absolute error of log-rank, each with its CI.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rankbias.hypotheses.base import Check, Predictor, RunSet, Trend, spearman
from rankbias.matrix import Matrix
from rankbias.store import Store

GATE = 0.1
N_BOOT = 300
CHANCE_MARGIN = 0.05


@dataclass
class Statistic:
    """One check's value, 95% CI over seeds, criterion and status (pass / fail / inconclusive / effect)."""

    name: str
    value: float
    low: float
    high: float
    op: str | None
    threshold: float | None
    status: str


@dataclass
class Verdict:
    id: str
    paper: str
    kind: str
    predicts: str
    verdict: str  # pass | fail | inconclusive | scored (predictors)
    statistics: list[Statistic]
    n: int  # runs scored
    seeds: list[int]
    missing: int  # runs of its scenarios not in the store
    excluded: dict  # status -> count (diverged, failed)
    horizon: tuple[float, float]
    stationary: tuple[int, int]  # (passed the gate, runs with wd > 0)
    runs: list[str] = field(default_factory=list)
    note: str = ""
    untrained: int = 0  # done runs that ended within CHANCE_MARGIN of chance train accuracy

    @property
    def statistic(self) -> Statistic | None:
        judged = [s for s in self.statistics if s.op is not None]
        return judged[0] if judged else (self.statistics[0] if self.statistics else None)

    @property
    def effect(self) -> Statistic | None:
        effects = [s for s in self.statistics if s.op is None]
        return effects[0] if effects else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["horizon"], out["stationary"] = list(self.horizon), list(self.stationary)
        return out


class Runs:
    """The stored runs of a matrix, read once: ``final`` (one row per run: config
    fields, status, horizon, last-step metrics as ``name`` / ``name@layer``) and
    the metric rows; spectra are read on demand and cached."""

    def __init__(self, store: Store, matrix: Matrix):
        self.matrix, self.store = matrix, store
        runs = store.runs()
        runs = runs[runs.name.isin(matrix.runs)].set_index("name")
        config = pd.DataFrame(list(runs.config.values), index=runs.index)
        metrics = store.metrics()
        self.metrics = metrics[metrics.run.isin(runs.index)]
        last = self.metrics[self.metrics.step == self.metrics.groupby("run").step.transform("max")]
        label = np.where(last.layer < 0, last.name, last.name + "@" + last.layer.astype(str))
        wide = last.assign(label=label).pivot_table(index="run", columns="label", values="value", aggfunc="last")
        self.final = pd.concat([config, runs[["status", "horizon", "steps"]], wide.reindex(runs.index)], axis=1)
        # the code that made each run: "version@commit" (the commit where the package sat in a git checkout)
        self.code = runs.provenance.map(lambda p: f"{p.get('rankbias')}@{(p.get('git_commit') or 'unknown')[:10]}")
        self.spectra = functools.lru_cache(maxsize=None)(store.spectra)

    def names(self, scenarios) -> list[str]:
        """Run names of ``scenarios`` (in the matrix), each once."""
        seen: dict[str, None] = {}
        for sid in scenarios:
            for name in self.matrix.members.get(sid, []):
                seen.setdefault(name)
        return list(seen)


def _at_chance(done: pd.DataFrame) -> int:
    """How many classification runs ended with train accuracy <= chance + CHANCE_MARGIN
    (chance: 1/K for cross-entropy on K classes, 1/2 for logistic): runs that did not
    train, whose ranks say little.  Informational; no criterion reads it."""
    if "train_acc" not in done or "loss" not in done:
        return 0
    classes = done["widths"].map(lambda w: int(str(w).split("-")[-1]))
    chance = np.where(done["loss"] == "ce", 1.0 / classes, np.where(done["loss"] == "logistic", 0.5, np.nan))
    return int((done["train_acc"].to_numpy(float) <= chance + CHANCE_MARGIN).sum())


def _resamples(final: pd.DataFrame, n_boot: int, seed: int):
    seeds = np.array(sorted(final["seed"].unique()))
    rng = np.random.default_rng(seed)
    by_seed = {s: final[final["seed"] == s] for s in seeds}
    for _ in range(n_boot):
        drawn = rng.choice(seeds, size=len(seeds), replace=True)
        yield pd.concat([by_seed[s] for s in drawn])


def _status(check: Check, value: float, low: float, high: float) -> str:
    if check.op is None:
        return "effect"
    marks = [check.holds(v) for v in (value, low, high)]
    if None in marks:
        return "inconclusive"
    return "pass" if all(marks) else "fail" if not any(marks) else "inconclusive"


def _predictor_checks(h: Predictor, runs: RunSet) -> list[Check]:
    predicted, measured = h.predict(runs), h.measure(runs)
    logs = np.log(np.clip(measured.to_numpy(float), 1e-12, None)) - np.log(np.clip(predicted.to_numpy(float), 1e-12, None))
    return [Check("rho(predicted, measured)", spearman(predicted, measured)),
            Check("mean |log measured - log predicted|", float(np.mean(np.abs(logs))) if len(logs) else math.nan)]


def _evaluate(h, runs: RunSet) -> list[Check]:
    return _predictor_checks(h, runs) if isinstance(h, Predictor) else h.checks(runs)


def variant_sets(h: Trend | Predictor, data: Runs) -> list[tuple[str, list[str]]]:
    """(verdict id, run names) for each variant of h's claim in this matrix: the
    scenarios named ``<h.id>.<name>`` (the full tier's wider, deeper and real-data
    versions of a claim), one set per network of a variant, as criteria read one
    width; such a set's id ends in ``[widths=...]``."""
    out = []
    for sid in data.matrix.members:
        if not sid.startswith(h.id + "."):
            continue
        names = data.names([sid])
        widths = {n: "-".join(map(str, data.matrix.runs[n].net.widths)) for n in names}
        kinds = sorted(set(widths.values()))
        if len(kinds) == 1:
            out.append((sid, names))
        else:
            out.extend((f"{sid}[widths={w}]", [n for n in names if widths[n] == w]) for w in kinds)
    return out


def score(h: Trend | Predictor, data: Runs, n_boot: int = N_BOOT, seed: int = 0,
          names: list[str] | None = None, as_id: str | None = None) -> Verdict:
    """The verdict of one hypothesis on the stored runs of its scenarios, or on
    ``names`` (then reported as ``as_id``, e.g. a variant from ``variant_sets``)."""
    names = data.names(h.scenarios) if names is None else names
    present = data.final.reindex([n for n in names if n in data.final.index])
    done = present[present.status == "done"]
    excluded = present[present.status != "done"].status.value_counts().to_dict()
    decayed = done[done.get("wd", pd.Series(0.0, index=done.index)) > 0]
    gate = int((decayed.get("stationarity", pd.Series(dtype=float)) <= GATE).sum())
    verdict = Verdict(
        as_id or h.id, h.paper, h.kind, h.predicts, "inconclusive", [], len(done),
        sorted(int(s) for s in done["seed"].unique()) if len(done) else [], len(names) - len(present), excluded,
        (float(done.horizon.min()), float(done.horizon.max())) if len(done) else (math.nan, math.nan),
        (gate, len(decayed)), list(done.index),
    )
    if not names:
        verdict.note = f"no runs: none of its scenarios {list(h.scenarios)} is in this matrix"
        return verdict
    if done.empty:
        verdict.note = "no done runs in the store; run the matrix first"
        return verdict
    metrics = data.metrics[data.metrics.run.isin(done.index)]
    try:
        point = _evaluate(h, RunSet(done, metrics, data.spectra))
        boots = [[c.value for c in _evaluate(h, RunSet(sample, metrics, data.spectra))]
                 for sample in _resamples(done, n_boot, seed)]
    except Exception as err:  # a hypothesis that cannot read these runs is reported, not raised
        verdict.note = f"could not be scored: {type(err).__name__}: {err}"
        return verdict
    values = np.array(boots, dtype=float).reshape(len(boots), len(point))
    for j, check in enumerate(point):
        column = values[:, j][~np.isnan(values[:, j])]
        with np.errstate(invalid="ignore"):  # inf among the resamples: a NaN bound, no warning
            low, high = (np.percentile(column, [2.5, 97.5]) if len(column) else (math.nan, math.nan))
        verdict.statistics.append(Statistic(check.name, float(check.value), float(low), float(high), check.op,
                                            check.threshold, _status(check, float(check.value), low, high)))
    if isinstance(h, Predictor):
        verdict.verdict = "scored"
    else:
        marks = [s.status for s in verdict.statistics if s.op is not None]
        verdict.verdict = "fail" if "fail" in marks else "pass" if marks and all(m == "pass" for m in marks) else "inconclusive"
    notes = []
    if verdict.missing:
        verdict.verdict = "inconclusive" if verdict.verdict != "scored" else "scored"
        notes.append(f"{verdict.missing} of {len(names)} runs not in the store yet")
    verdict.untrained = _at_chance(done)
    if verdict.untrained:
        notes.append(f"{verdict.untrained} of {len(done)} runs ended within {CHANCE_MARGIN} of chance train "
                     f"accuracy (scored as they are)")
    verdict.note = "; ".join(notes)
    return verdict


def scorecard(hypotheses, data: Runs, n_boot: int = N_BOOT, seed: int = 0) -> list[Verdict]:
    """Verdicts of ``hypotheses`` on ``data``, in order, each followed by those of
    its claim's variants in the matrix (``variant_sets``)."""
    out = []
    for h in hypotheses:
        out.append(score(h, data, n_boot, seed))
        out.extend(score(h, data, n_boot, seed, names, vid) for vid, names in variant_sets(h, data))
    return out
