"""The scoring rules of each claims version: which runs are untrained, and what a verdict enforces.

Version 1 scores every done run and notes those at chance.  Version 2: a run is
**untrained** when it diverged, ended within ``CHANCE_MARGIN`` of chance train
accuracy, or (MSE) ended with a train loss >= ``NO_PROGRESS`` of its initial one.
Version 3: when it diverged or its final training loss is above ``HALF_CONSTANT``
of the best constant predictor's (``constant_loss``: ln K for balanced K-class
cross-entropy, ln 2 for the logistic loss, the targets' variance for MSE).  From
version 2, untrained runs are excluded and counted per cell, a claim whose
theorem's hypothesis fails is "not applicable", and a hypothesis that needs all
its scenarios is inconclusive without them (``Policy``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from rankbias.scoring.hypotheses.base import per_run_widths

CHANCE_MARGIN = 0.05
NO_PROGRESS = 0.95  # an MSE run is untrained when its final loss is >= this share of its initial loss
HALF_CONSTANT = 0.5  # version 3: untrained above this share of the best constant predictor's loss


def _chance(final: pd.DataFrame) -> np.ndarray:
    """Chance train accuracy of each classification run (1/K for cross-entropy on K
    classes, 1/2 for logistic); NaN for regression."""
    classes = per_run_widths(final, lambda w: w[-1])
    return np.where(final["loss"] == "ce", 1.0 / classes, np.where(final["loss"] == "logistic", 0.5, np.nan))


def _at_chance(done: pd.DataFrame) -> int:
    """Version 1's note: how many classification runs ended with train accuracy <= chance +
    CHANCE_MARGIN (runs that did not train).  Informational; no criterion reads it."""
    if "train_acc" not in done or "loss" not in done:
        return 0
    return int((done["train_acc"].to_numpy(float) <= _chance(done) + CHANCE_MARGIN).sum())


def untrained(present: pd.DataFrame) -> pd.Series:
    """Version 2's rule, per run (bool): it diverged, or ended within CHANCE_MARGIN of
    chance train accuracy (classification), or (MSE) its final train loss is >=
    NO_PROGRESS times its initial one."""
    out = present["status"] == "diverged"
    if "train_acc" in present and "loss" in present:
        out |= pd.Series(present["train_acc"].to_numpy(float) <= _chance(present) + CHANCE_MARGIN, index=present.index)
    if "train_loss" in present and "train_loss_0" in present and "loss" in present:
        out |= (present["loss"] == "mse") & (present["train_loss"] >= NO_PROGRESS * present["train_loss_0"])
    return out


def constant_loss(loss: str, data) -> float:
    """The training loss of the best constant output on ``data`` (a ``Dataset``) under ``loss``:
    the entropy of the empirical class frequencies (ce), the binary entropy of the labels
    (logistic), or the loss of the targets' mean (mse: 0.5 sum_j Var(y_j); mse_mean:
    mean_j Var(y_j))."""
    y = data.y_train.cpu().double()
    if loss in ("ce", "logistic"):
        labels = y.long() if loss == "ce" else (y > 0).long()
        p = torch.bincount(labels.reshape(-1)).double() / labels.numel()
        p = p[p > 0]
        return float(-(p * p.log()).sum())
    var = y.reshape(len(y), -1).var(0, unbiased=False)
    return float(0.5 * var.sum() if loss == "mse" else var.mean())


def untrained_by_loss(present: pd.DataFrame, dataset) -> pd.Series:
    """Version 3's rule, per run (bool): it diverged, or its final training loss is above
    ``HALF_CONSTANT`` times the best constant predictor's (``constant_loss``); ``dataset``
    maps a run name to its training data.  A logged run (no data set known) is judged by
    divergence only."""
    out = present["status"] == "diverged"
    if "train_loss" not in present or present.empty:
        return out
    cache: dict = {}

    def limit(name: str) -> float:
        row = present.loc[name]
        try:
            data = dataset(name)
        except ValueError:  # a logged run: rankbias does not know its data set
            return math.inf
        key = (row["loss"], json.dumps(data.spec, sort_keys=True))
        if key not in cache:
            cache[key] = HALF_CONSTANT * constant_loss(row["loss"], data)
        return cache[key]

    limits = pd.Series([limit(n) for n in present.index], index=present.index, dtype=float)
    return out | (present["train_loss"].astype(float) > limits)


@dataclass(frozen=True)
class Policy:
    """The scoring rules of one claims version (see the module docstring): which runs are
    excluded, whether untrained runs are counted per cell, whether a hypothesis that
    ``needs_all`` its scenarios and its theorem's test (``Trend.applies``) are enforced,
    and whether runs at chance are only noted (version 1)."""

    version: int
    excludes_untrained: bool
    counts_cells: bool
    needs_all: bool
    tests_applicability: bool
    notes_chance: bool
    by_loss: bool = False  # version 3's untrained rule (the loss against a constant predictor's)

    def excluded(self, present: pd.DataFrame, dataset=None) -> pd.Series:
        """Per run (bool): left out of every statistic; ``dataset`` (run name -> its training
        data) serves version 3's rule."""
        if not self.excludes_untrained:
            return present["status"] == "diverged"
        return untrained_by_loss(present, dataset) if self.by_loss else untrained(present)

    def untrained_rule(self) -> str:
        """The untrained rule in words, for notes."""
        if self.by_loss:
            return f"diverged, or ended above {HALF_CONSTANT} of the best constant predictor's training loss"
        return f"diverged, or ended within {CHANCE_MARGIN} of chance accuracy / {NO_PROGRESS} of the initial MSE"


V1 = Policy(1, excludes_untrained=False, counts_cells=False, needs_all=False, tests_applicability=False,
            notes_chance=True)
V2 = Policy(2, excludes_untrained=True, counts_cells=True, needs_all=True, tests_applicability=True,
            notes_chance=False)


V3 = replace(V2, version=3, by_loss=True)


def policy(version: int) -> Policy:
    """The rules of claims version ``version``: version 1's, 2's, or from version 3 on version 3's."""
    return V1 if version < 2 else V2 if version == 2 else replace(V3, version=version)
