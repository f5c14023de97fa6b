"""Runs of a user's own model (``logger.RankLogger``) as members of a matrix, for scoring.

A logged run's config holds ``kind = "logged"``, the ``scenario`` it belongs to
and whatever fields the user declared (lr, wd, batch, seed, arch, ...), which
hypotheses read as they read a matrix run's.  ``with_logged`` adds every logged
run a store holds to its scenario in a ``Matrix`` (creating the scenario when the
matrix lacks it), so ``rankbias score`` and ``compare`` read them beside the
matrix's runs; nothing trains them (``runnable`` leaves them out).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rankbias.experiments.matrix import Matrix
from rankbias.experiments.store import Store

KIND = "logged"


@dataclass(frozen=True)
class LoggedRun:
    """A logged run's stored config, where a matrix keeps a ``RunConfig``; ``data`` is None:
    rankbias does not know the data set of a user's model."""

    config: dict
    data: None = None

    @property
    def scenario(self) -> str:
        return self.config["scenario"]


def is_logged(config: dict) -> bool:
    return config.get("kind") == KIND


def with_logged(matrix: Matrix, store: Store) -> Matrix:
    """``matrix`` with every logged run of ``store`` added to its scenario (a copy; the
    grid cell of a logged run is its declared fields but its seed)."""
    runs = store.runs()
    logged = [(name, config) for name, config in zip(runs.name, runs.config) if is_logged(config)]
    if not logged:
        return matrix
    out = dataclasses.replace(matrix, runs=dict(matrix.runs), members={k: list(v) for k, v in matrix.members.items()},
                              cells={k: dict(v) for k, v in matrix.cells.items()})
    for name, config in logged:
        if name in out.runs:
            continue
        run = LoggedRun(config)
        out.runs[name] = run
        out.members.setdefault(run.scenario, []).append(name)
        out.cells.setdefault(run.scenario, {})[name] = {k: v for k, v in config.items()
                                                        if k not in ("kind", "scenario", "seed", "logged")}
    return out


def runnable(matrix: Matrix) -> Matrix:
    """``matrix`` without its logged runs: what a trainer can train."""
    return Matrix(matrix.tier, {n: c for n, c in matrix.runs.items() if not isinstance(c, LoggedRun)})
