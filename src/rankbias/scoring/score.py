"""Score hypotheses on stored runs: verdicts, statistics, effect sizes, seed CIs.

For each hypothesis (``rankbias.scoring.hypotheses``): the runs of its scenarios are
read from the store (one row per run, its last-step metrics as columns); runs
not yet stored, failed or diverged are left out and counted.  Its checks are
evaluated on all runs, then on ``n_boot`` bootstrap resamples of the seeds (a
cluster bootstrap: each resample draws as many seeds as there are, with
replacement, and keeps every run of the drawn seeds; percentile 95% CI,
Efron & Tibshirani 1993, ch. 13).  A criterion check

- passes when its value and both ends of its CI meet the criterion,
- fails when its value and both ends miss it,
- is inconclusive otherwise (the seeds disagree, or the value is NaN, with the
  reason in its note);

a hypothesis passes when every criterion passes, fails when any fails, and is
inconclusive otherwise, or when some of its runs are missing; it is **not run**
when none of its runs is in the store.

The rules are those of the claims version scored (``version``).  From version 3, a
run is untrained when it diverged or its final training loss is above
``HALF_CONSTANT`` of the best constant predictor's (``constant_loss``: ln K for
balanced K-class cross-entropy, ln 2 for the logistic loss, the targets' variance for
MSE); otherwise as version 2.  In version 2:
a run is **untrained** when it diverged, ended within ``CHANCE_MARGIN`` of chance
train accuracy, or (MSE) ended with a train loss >= ``NO_PROGRESS`` of its
initial one; untrained runs are excluded from every statistic and counted per
grid cell, and a cell left with no trained run is dropped (a criterion that
needs it is NaN, hence inconclusive, naming it).  A claim with a test of its
theorem's hypotheses (``Trend.applies``) that its runs fail is **not
applicable**, shown with the test's best value; a hypothesis that ``needs_all``
its scenarios is inconclusive, naming those missing from the matrix.  Version 1
scores untrained runs as they are and notes those at chance.  Each verdict
also reports the range of the decay horizon lr*wd*T of its runs and how many of
its wd > 0 runs passed the stationarity gate ||grad L + wd theta|| / ||grad L||
<= ``GATE`` at their last step, so a verdict read off runs far from
stationarity is visible as such.

A consistency check (``kind`` "consistency", an identity between metrics) is judged on
all its runs at once, without resampling: an identity must hold in every run.

A ``Predictor`` is not judged: it gets Spearman rho between predicted and
measured rank and the mean absolute error of log-rank, each with its CI.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from rankbias.experiments.matrix import Matrix
from rankbias.experiments.provenance import provenance
from rankbias.scoring.hypotheses import CURRENT
from rankbias.scoring.hypotheses.base import GATE, Check, Predictor, RunSet, Trend, spearman
from rankbias.scoring.rules import CHANCE_MARGIN, Policy, _at_chance, policy
from rankbias.scoring.runs import Runs

N_BOOT = 300
UNDEFINED = ("undefined on these runs: a rank correlation over fewer than 3 cells or a constant series, "
             "a ratio with an empty cell, or no run the criterion reads")


@dataclass
class Statistic:
    """One check's value, 95% CI over seeds, criterion and status (pass / fail / inconclusive /
    effect / not applicable); ``note`` says why a criterion's value is NaN."""

    name: str
    value: float
    low: float
    high: float
    op: str | None
    threshold: float | None
    status: str
    note: str = ""


@dataclass
class Verdict:
    id: str
    paper: str
    kind: str
    predicts: str
    verdict: str  # pass | fail | inconclusive | not applicable | scored (predictors) | not run (no run stored)
    statistics: list[Statistic]
    n: int  # runs scored
    seeds: list[int]
    missing: int  # runs of its scenarios not in the store
    excluded: dict  # status -> count (diverged, failed)
    horizon: tuple[float, float]
    stationary: tuple[int, int]  # (passed the gate, runs with wd > 0)
    runs: list[str] = field(default_factory=list)
    note: str = ""
    untrained: int = 0  # v1: done runs at chance (noted only); v2: runs excluded as untrained (diverged included)
    untrained_cells: dict = field(default_factory=dict)  # v2: cell -> runs excluded as untrained
    dropped: list = field(default_factory=list)  # v2: cells left with no trained run
    version: int = 2  # the claims version whose rules scored it
    control: bool = False
    error: BaseException | None = field(default=None, repr=False, compare=False)  # what the hypothesis raised


    @property
    def statistic(self) -> Statistic | None:
        judged = [s for s in self.statistics if s.op is not None]
        return judged[0] if judged else (self.statistics[0] if self.statistics else None)

    @property
    def effect(self) -> Statistic | None:
        effects = [s for s in self.statistics if s.op is None]
        return effects[0] if effects else None

    def to_dict(self) -> dict:
        out = asdict(replace(self, error=None))
        del out["error"]  # its message is the note; the exception itself is for the CLI's --debug
        out["horizon"], out["stationary"] = list(self.horizon), list(self.stationary)
        return out


def _resamples(final: pd.DataFrame, n_boot: int, seed: int):
    seeds = np.array(sorted(final["seed"].unique()))
    rng = np.random.default_rng(seed)
    by_seed = {s: np.flatnonzero(final["seed"].to_numpy() == s) for s in seeds}  # each seed's rows, in order
    for _ in range(n_boot):
        drawn = rng.choice(seeds, size=len(seeds), replace=True)
        yield final.iloc[np.concatenate([by_seed[s] for s in drawn])]  # the seeds' rows, one block per draw


def _status(check: Check, value: float, low: float, high: float) -> str:
    if check.op is None:
        return "effect"
    marks = [check.holds(v) for v in (value, low, high)]
    if None in marks:
        return "inconclusive"
    return "pass" if all(marks) else "fail" if not any(marks) else "inconclusive"


def _predictor_checks(h: Predictor, runs: RunSet) -> list[Check]:
    predicted, measured = h.predict(runs), h.measure(runs)
    finite = np.isfinite(np.asarray(predicted, dtype=float))
    if len(finite) and not finite.any():  # said, not scored as if it were a prediction
        raise ValueError(f"its predict() gave no finite value on these {len(finite)} runs (all NaN or Inf); "
                         f"check the columns it reads (docs: Runs as tables)")
    logs = np.log(np.clip(measured.to_numpy(float), 1e-12, None)) - np.log(np.clip(predicted.to_numpy(float), 1e-12, None))
    return [Check("rho(predicted, measured)", spearman(predicted, measured)),
            Check("mean |log measured - log predicted|", float(np.mean(np.abs(logs))) if len(logs) else math.nan)]


def _evaluate(h, runs: RunSet) -> list[Check]:
    checks = _predictor_checks(h, runs) if isinstance(h, Predictor) else h.checks(runs)
    undeclared = [c.name for c in checks if c.op is not None and isinstance(h, Trend) and h.criteria
                  and not any(crit.matches(c) for crit in h.criteria)]
    if undeclared:
        raise ValueError(f"checks {undeclared} are not among {h.id}'s declared criteria; declare them in its "
                         f"Trend(criteria=...)")
    return checks


def variant_sets(h: Trend | Predictor, data: Runs) -> list[tuple[str, str, list[str]]]:
    """(verdict id, scenario id, run names) for each variant of h's claim in this matrix:
    the scenarios named ``<h.id>.<name>`` (wider, deeper, real-data or other-init
    versions of a claim), one set per network of a variant when ``h.split_widths``
    (criteria that read one width); such a set's id ends in ``[widths=...]``."""
    out = []
    for sid in data.matrix.members:
        if not sid.startswith(h.id + "."):
            continue
        names = data.names([sid])
        widths = {n: "-".join(map(str, data.matrix.runs[n].net.widths)) for n in names}
        kinds = sorted(set(widths.values()))
        if len(kinds) == 1 or not h.split_widths:
            out.append((sid, sid, names))
        else:
            out.extend((f"{sid}[widths={w}]", sid, [n for n in names if widths[n] == w]) for w in kinds)
    return out


def _interval(h, resamples, point: list[Check]) -> list[Statistic]:
    """Each check's value with its percentile 95% CI over ``resamples`` (RunSets) and its status."""
    boots = [[c.value for c in _evaluate(h, sample)] for sample in resamples]
    values = np.array(boots, dtype=float).reshape(len(boots), len(point))
    out = []
    for j, check in enumerate(point):
        column = values[:, j][~np.isnan(values[:, j])]
        with np.errstate(invalid="ignore"):  # inf among the resamples: a NaN bound, no warning
            low, high = (np.percentile(column, [2.5, 97.5]) if len(column) else (math.nan, math.nan))
        out.append(Statistic(check.name, float(check.value), float(low), float(high), check.op, check.threshold,
                             _status(check, float(check.value), low, high)))
    return out


def _verdict_of(h, statistics: list[Statistic]) -> str:
    if isinstance(h, Predictor):
        return "scored"
    marks = [s.status for s in statistics if s.op is not None]
    return "fail" if "fail" in marks else "pass" if marks and all(m == "pass" for m in marks) else "inconclusive"


def _selected(h, data: Runs, names: list[str], scenarios: tuple[str, ...], as_id: str | None, rules: Policy):
    """(the verdict before any statistic, the runs found, which are excluded, the runs scored)."""
    present = data.final.reindex([n for n in names if n in data.final.index])
    bad = rules.excluded(present, data.dataset)
    used = present[(present.status == "done") & ~bad]
    excluded = present[present.status != "done"].status.value_counts().to_dict()
    decayed = used[used.get("wd", pd.Series(0.0, index=used.index)) > 0]
    gate = int((decayed.get("stationarity", pd.Series(dtype=float)) <= GATE).sum())
    verdict = Verdict(
        as_id or h.id, h.paper, h.kind, h.predicts, "inconclusive", [], len(used),
        sorted(int(s) for s in used["seed"].unique()) if len(used) else [], len(names) - len(present), excluded,
        (float(used.horizon.min()), float(used.horizon.max())) if len(used) else (math.nan, math.nan),
        (gate, len(decayed)), list(used.index), version=rules.version, control=getattr(h, "control", False),
    )
    return verdict, present, bad, used


def _judged(h, verdict: Verdict, runs: RunSet, resamples, rules: Policy, notes: list[str]) -> None:
    """Fill ``verdict``'s statistics and verdict: not applicable when the theorem's test fails,
    else each check with its CI over ``resamples``."""
    test = h.applies(runs) if rules.tests_applicability and getattr(h, "applies", None) is not None else None
    if test is not None and not test.holds(test.value):  # False, or None for NaN (no run to test)
        verdict.verdict, verdict.statistics = "not applicable", [_constant(test, "not applicable")]
        notes.append(f"not applicable: the runs never met the theorem's hypothesis {test.name} {test.op} "
                     f"{test.threshold:g} (best: {test.value:.3g})")
    elif h.kind == "consistency":  # an identity must hold in every run: judged on all of them, not resampled
        verdict.statistics = [_constant(c, _status(c, c.value, c.value, c.value)) for c in _evaluate(h, runs)]
        verdict.verdict = _verdict_of(h, verdict.statistics)
    else:
        verdict.statistics = _interval(h, resamples, _evaluate(h, runs))
        verdict.verdict = _verdict_of(h, verdict.statistics)


def _annotated(verdict: Verdict, used, names: list[str], rules: Policy, notes: list[str]) -> None:
    """Notes on NaN criteria, runs not yet stored (inconclusive) and, in version 1, runs at chance."""
    for stat in verdict.statistics:
        if stat.op is not None and math.isnan(stat.value):
            stat.note = (f"undefined: cells dropped (no trained run): {'; '.join(verdict.dropped)}"
                         if verdict.dropped else UNDEFINED)
    if verdict.missing:
        verdict.verdict = "inconclusive" if verdict.verdict != "scored" else "scored"
        notes.insert(0, f"{verdict.missing} of {len(names)} runs not in the store yet")
        for stat in verdict.statistics:  # the runs to come may meet the theorem's test: no status says otherwise
            if stat.status == "not applicable":
                stat.status = "inconclusive"
    if rules.notes_chance:
        verdict.untrained = _at_chance(used)
        if verdict.untrained:
            notes.append(f"{verdict.untrained} of {len(used)} runs ended within {CHANCE_MARGIN} of chance train "
                         f"accuracy (scored as they are)")
    verdict.note = "; ".join(notes)


def score(h: Trend | Predictor, data: Runs, n_boot: int = N_BOOT, seed: int = 0,
          names: list[str] | None = None, as_id: str | None = None, version: int = CURRENT,
          scenarios: tuple[str, ...] | None = None) -> Verdict:
    """The verdict of one hypothesis on the stored runs of its scenarios, or on ``names``
    of ``scenarios`` (then reported as ``as_id``, e.g. a variant from ``variant_sets``),
    by the rules of claims version ``version`` (``policy``; see the module docstring):
    select the runs, then the statistics with their CIs over seeds, then the verdict."""
    rules = policy(version)
    scenarios = tuple(h.scenarios) if scenarios is None else scenarios
    names = data.names(scenarios) if names is None else names
    verdict, present, bad, used = _selected(h, data, names, scenarios, as_id, rules)
    absent = [sid for sid in scenarios if sid not in data.matrix.members]
    if rules.needs_all and h.needs_all and absent:
        verdict.note = f"scenarios {absent} are not in this matrix; this hypothesis reads all of {list(scenarios)}"
        return verdict
    if not names:
        verdict.note = f"no runs: none of its scenarios {list(scenarios)} is in this matrix"
        return verdict
    if verdict.missing == len(names):  # nothing stored to read: not a verdict on the claim at all
        verdict.verdict, verdict.note = "not run", f"none of its {len(names)} runs is in the store: train them"
        return verdict
    notes = _count_untrained(verdict, data, present, bad, used, scenarios, rules) if rules.counts_cells else []
    if used.empty:
        verdict.note = "; ".join(notes + ["no trained done runs in the store; run the matrix first"])
        return verdict
    runs = data.runset(used)
    resamples = (data.runset(sample, runs) for sample in _resamples(used, n_boot, seed))
    try:
        _judged(h, verdict, runs, resamples, rules, notes)
    except Exception as err:  # a hypothesis that cannot read these runs is reported, not raised
        verdict.note = "; ".join(notes + [f"could not be scored: {type(err).__name__}: {err}"])
        verdict.error = err
        return verdict
    _annotated(verdict, used, names, rules, notes)
    return verdict


def _count_untrained(verdict: Verdict, data: Runs, present, bad, used, scenarios, rules: Policy) -> list[str]:
    """From version 2 (``Policy.counts_cells``): fill ``verdict``'s untrained counts per cell and
    its dropped cells; return the notes."""
    cells = {n: data.cell(n, scenarios) for n in present.index}
    counts = pd.Series([cells[n] for n in present.index[bad.to_numpy()]], dtype=object).value_counts()
    verdict.untrained, verdict.untrained_cells = int(bad.sum()), {str(k): int(v) for k, v in counts.items()}
    verdict.dropped = sorted({cells[n] for n in present.index} - {cells[n] for n in used.index})
    notes = []
    if verdict.untrained:
        notes.append(f"{verdict.untrained} of {len(present)} runs untrained ({rules.untrained_rule()}) and "
                     f"excluded: " + ", ".join(f"{c}: {k}" for c, k in verdict.untrained_cells.items()))
    if verdict.dropped:
        notes.append(f"cells dropped (no trained run): {'; '.join(verdict.dropped)}")
    return notes


def _constant(check: Check, status: str) -> Statistic:
    """A statistic read once, not bootstrapped (e.g. the test of a theorem's hypotheses)."""
    value = float(check.value)
    return Statistic(check.name, value, value, value, check.op, check.threshold, status)


def applies_to(h, matrix: Matrix) -> bool:
    """Whether ``h`` reads any scenario of ``matrix``: one of its own, or a variant of its claim."""
    return any(sid in h.scenarios or sid.startswith(h.id + ".") for sid in matrix.members)


def scorecard(hypotheses, data: Runs, n_boot: int = N_BOOT, seed: int = 0, version: int = CURRENT,
              processes: int = 1) -> list[Verdict]:
    """Verdicts of ``hypotheses`` on ``data`` by claims version ``version``'s rules, in order,
    each followed by those of its claim's variants in the matrix (``variant_sets``); a claim
    whose own scenarios are absent but whose variants are present gets its variants' only.
    ``processes`` > 1 scores them on that many local workers (``pool.score_on_workers``),
    with the same verdicts."""
    tasks = []  # (hypothesis, names, as_id, scenarios) of each verdict, as score() takes them
    for h in hypotheses:
        variants = variant_sets(h, data)
        if not variants or any(sid in data.matrix.members for sid in h.scenarios):
            tasks.append((h, None, None, None))
        tasks.extend((h, names, vid, (sid,)) for vid, sid, names in variants)
    if processes > 1 and len(tasks) > 1:
        from rankbias.scoring.pool import score_on_workers

        return score_on_workers(score, tasks, data, n_boot, seed, version, processes)
    return [score(h, data, n_boot, seed, names, as_id, version, scenarios) for h, names, as_id, scenarios in tasks]


def header(data: Runs, verdicts: list[Verdict], version: int, target: str, tier: str) -> dict:
    """The scorecard's metadata: what was scored, by which claims version and code, when, and
    how many runs it read."""
    prov = provenance()
    stored = data.final.status.value_counts().to_dict()
    return {
        "matrix": target, "tier": tier, "claims_version": version,
        "rankbias": prov["rankbias"], "git_commit": prov["git_commit"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "store": str(data.store_path),
        "runs": {"in_matrix": len(data.matrix.runs), "stored": int(len(data.final)),
                 **{str(k): int(v) for k, v in stored.items()}},
        "verdicts": _counts([v.verdict for v in verdicts if v.kind != "consistency"]),
        **({"consistency": _counts([v.verdict for v in verdicts if v.kind == "consistency"])}
           if any(v.kind == "consistency" for v in verdicts) else {}),
        "made_by": {code: int(n) for code, n in data.code.value_counts().items()},
    }


def _counts(values: list[str]) -> dict[str, int]:
    return {k: int(v) for k, v in pd.Series(values, dtype=object).value_counts().items()}
