"""What a hypothesis is, and the run tables it reads.

A hypothesis applies to the runs of some scenarios of the matrix and turns
their measurements into checks.  Two kinds:

- ``Trend``: a claim with criteria, like the papers': ``checks(runs)``
  returns ``Check``s (statistic, comparison, threshold) and effect sizes;
  ``rankbias.scoring.score`` bootstraps them over seeds and gives the verdict.  A
  baseline declares its criteria up front as data (``Trend.criteria``, each a
  ``Criterion`` that makes its ``Check``), so the documentation of a claim
  (``rankbias claims``) is read from the same objects that score it, and a
  check that is not declared is refused when scoring.
- ``Predictor``: a quantitative prediction of a rank per run: ``predict(runs)``
  and ``measure(runs)`` return one value per run; it is scored by Spearman rho
  and the mean absolute error of log-rank over the runs it applies to.

``RunSet`` is what both read: ``final`` has one row per done run (its config
fields, status, horizon, and the run's last-step metrics as columns ``name``
for whole-network metrics and ``name@k`` for layer k), and ``history`` /
``spectrum`` reach the trajectories.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats


GATE = 0.1  # a run is at a stationary point when ||grad L + wd theta|| / ||grad L|| <= GATE


@dataclass(frozen=True)
class Check:
    """One statistic of a claim: ``value op threshold`` is its criterion
    (op one of "<=", ">="); op None marks an effect size, reported but not judged."""

    name: str
    value: float
    op: str | None = None
    threshold: float | None = None

    def holds(self, value: float) -> bool | None:
        """Whether ``value`` meets the criterion; None for NaN or an effect size."""
        if self.op is None or value is None or math.isnan(value):
            return None
        return value <= self.threshold if self.op == "<=" else value >= self.threshold


@dataclass(frozen=True)
class Criterion:
    """A pre-registered criterion ``statistic op threshold``; ``name`` may hold fields
    such as ``{k}`` (one criterion per layer k).  Calling it with a value (and the
    fields) makes its ``Check``."""

    name: str
    op: str
    threshold: float

    def __call__(self, value: float, **fields) -> Check:
        name = re.sub(r"\{(\w+)\}", lambda m: str(fields[m.group(1)]), self.name) if fields else self.name
        return Check(name, float(value), self.op, self.threshold)

    def matches(self, check: Check) -> bool:
        """Whether ``check`` is this criterion (its name filled in, same op and threshold)."""
        pattern = r"-?\d+".join(re.escape(part) for part in re.split(r"\{\w+\}", self.name))
        return check.op == self.op and check.threshold == self.threshold and re.fullmatch(pattern, check.name) is not None

    def text(self) -> str:
        """``name op threshold`` with its fields written as their names (layer k)."""
        name = re.sub(r"\{(\w+)\}", r"\1", self.name)
        return f"{name} {self.op} {self.threshold:g}"


def effect(name: str, value: float) -> Check:
    """An effect size: reported with its CI, not judged."""
    return Check(f"effect: {name}", float(value))


@dataclass
class RunSet:
    """The runs a hypothesis applies to (see the module docstring)."""

    final: pd.DataFrame  # one row per run, indexed by run name
    metrics: pd.DataFrame  # (run, step, layer, name, value) rows of these runs
    spectra: Callable[[str], pd.DataFrame] = field(repr=False, default=None)  # run -> (step, layer, sigma)
    dataset: Callable[[str], object] = field(repr=False, default=None)  # run -> its training data (data.Dataset)
    # (name, layer) -> that metric's rows of ``metrics``, sorted: shared by the RunSets (bootstrap resamples,
    # subsets) that read the same ``metrics``, so each metric is picked out of the table once
    histories: dict = field(repr=False, default_factory=dict)

    def history(self, name: str, layer: int = -1) -> pd.DataFrame:
        """(run, step, value) of metric ``name`` at ``layer`` for every run here, by step."""
        rows = self.histories.get((name, layer))
        if rows is None:
            m = self.metrics
            rows = m[(m.name == name) & (m.layer == layer)][["run", "step", "value"]].sort_values(["run", "step"])
            self.histories[(name, layer)] = rows
        return rows[rows.run.isin(self.final.index)]

    def spectrum(self, run: str, layer: int) -> np.ndarray:
        """Singular values of ``layer`` of ``run`` at its last step."""
        key = ("spectrum", run, layer)  # the spectra are the same for every RunSet that shares ``histories``
        if key not in self.histories:
            df = self.spectra(run)
            self.histories[key] = df[df.layer == layer].sigma.iloc[-1]
        return self.histories[key]

    def subset(self, mask) -> "RunSet":
        return RunSet(self.final[mask], self.metrics, self.spectra, self.dataset, self.histories)


@dataclass
class Trend:
    """A claim with criteria; see the module docstring.  ``checks`` must read only
    ``runs.final`` rows (and their histories), so a bootstrap can resample them.

    The baselines also say: ``criteria`` (declared up front; empty for a user's
    Trend whose Checks carry their own), ``version`` (the claims version that gave
    the claim this form) and ``amendment`` (what that version changed and why),
    ``applies`` (the test of the theorem's hypotheses: a Check that must hold, else
    the verdict is "not applicable"), ``control`` (a control, not a paper's trend),
    ``needs_all`` (inconclusive unless every scenario is in the matrix) and
    ``split_widths`` (a variant with several networks gets a verdict per network)."""

    id: str
    paper: str
    scenarios: tuple[str, ...]
    predicts: str
    checks: Callable[[RunSet], list[Check]]
    cite: str = ""
    kind: str = "trend"
    criteria: tuple[Criterion, ...] = ()
    version: int = 1
    amendment: str = ""
    applies: Callable[[RunSet], Check] | None = None
    control: bool = False
    needs_all: bool = False
    split_widths: bool = True


@dataclass
class Predictor:
    """A predicted rank per run, scored against a measured one; see the module docstring."""

    id: str
    paper: str
    scenarios: tuple[str, ...]
    predicts: str
    predict: Callable[[RunSet], pd.Series]
    measure: Callable[[RunSet], pd.Series]
    cite: str = ""
    kind: str = "predictor"
    version: int = 1
    amendment: str = ""
    needs_all: bool = False
    split_widths: bool = True


@dataclass(frozen=True)
class Sweep:
    """A report plot a paper's module asks for: the measured ``y`` of ``scenario``'s runs
    against their grid column ``x``, the mean over seeds with a min-max band.

    ``y`` names a column of ``Runs.final`` (``name`` or ``name@layer``) or a metric
    averaged over the hidden square layers (``hidden_mean``); ``values`` computes it
    instead where it is no column (e.g. an average over the end of a run).  ``split``
    draws one line per value of that column."""

    scenario: str
    x: str
    y: str
    label: str
    logx: bool = False
    logy: bool = False
    split: str | None = None
    values: Callable[[RunSet], pd.Series] | None = field(default=None, repr=False, compare=False)

    def measured(self, runs: RunSet) -> pd.Series:
        """The plotted quantity, one value per run of ``runs``."""
        if self.values is not None:
            return self.values(runs)
        if "@" in self.y or self.y in runs.final.columns:
            return runs.final[self.y]
        return hidden_mean(runs.final, self.y)


@dataclass(frozen=True)
class Scatter:
    """A report scatter plot a paper's module asks for: one dot per done run, one series
    per entry of ``series``, each (label, scenario, x, y) with x and y a column of
    ``Runs.final`` or a function of the scenario's ``RunSet`` giving one value per run.
    ``diagonal`` draws y = x over that range."""

    file: str
    caption: str
    series: tuple
    xlabel: str
    ylabel: str
    logx: bool = False
    logy: bool = False
    diagonal: tuple[float, float] | None = None


# ----------------------------------------------------------- helpers for claims

def widths_of(widths) -> tuple[int, ...]:
    """A run's ``widths`` as a tuple of ints, from the "32-100-10" form of its name and of
    ``Runs.final`` (the one parser of that form; each distinct string is parsed once)."""
    if isinstance(widths, (tuple, list)):
        return tuple(int(v) for v in widths)
    return _parse_widths(str(widths))


@functools.lru_cache(maxsize=None)
def _parse_widths(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("-"))


def per_run_widths(final: pd.DataFrame, pick: Callable[[tuple[int, ...]], float]) -> pd.Series:
    """``pick(widths)`` of each run of ``final`` (e.g. ``lambda w: w[1]``, the first hidden
    width), a float64 Series on its index.  (``final["widths"].map(...)`` keeps pandas' string
    dtype when the frame is empty, and arithmetic on it then raises.)"""
    return pd.Series([float(pick(widths_of(w))) for w in final["widths"]], index=final.index, dtype=float)


def layer_shapes(widths) -> list[tuple[int, int]]:
    """(out, in) of each layer of a run's ``widths`` (a tuple, or "32-100-10")."""
    w = widths_of(widths)
    return list(zip(w[1:], w[:-1]))


def hidden_square(widths) -> list[int]:
    """Indices of the hidden square layers (neither first nor last, n_k = n_{k-1})."""
    shapes = layer_shapes(widths)
    return [k for k, (o, i) in enumerate(shapes) if 0 < k < len(shapes) - 1 and o == i]


def hidden_mean(final: pd.DataFrame, metric: str) -> pd.Series:
    """Per run: the mean of ``metric`` over its hidden square layers (NaN for a net without one)."""
    out = np.full(len(final), math.nan)
    nets: dict[tuple[int, ...], list[int]] = {}
    for i, widths in enumerate(final["widths"]):
        nets.setdefault(widths_of(widths), []).append(i)
    for widths, rows in nets.items():
        layers = hidden_square(widths)
        if layers:  # one net's rows at once; np.mean per row, as over a list of the row's values
            out[rows] = np.mean(final[[f"{metric}@{k}" for k in layers]].to_numpy(float)[rows], axis=1)
    return pd.Series(out, index=final.index)


def rank_spread(final: pd.DataFrame, by: list[str]) -> float:
    """(max - min) over the cells of columns ``by`` of the mean (over seeds) rank_tol of the
    hidden square layers, relative to the hidden width: 0 when rank ignores ``by``."""
    means = hidden_mean(final, "rank_tol").groupby([final[c] for c in by]).mean()
    return float((means.max() - means.min()) / width_of(final))


def cell_means(final: pd.DataFrame, x: str, y: pd.Series) -> pd.Series:
    """Mean of y over the runs of each value of column x (seeds averaged), sorted by x."""
    return y.groupby(final[x]).mean().sort_index()


def spearman(a, b) -> float:
    """Spearman's rho of two equal-length sequences; NaN if either is constant or too short."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


def width_of(final: pd.DataFrame) -> int:
    """The hidden width of these runs' nets (the first hidden layer's)."""
    return widths_of(final["widths"].iloc[0])[1]


def at(series: pd.Series, key) -> float:
    """series[key], NaN when the cell is missing."""
    return float(series[key]) if key in series.index else math.nan
