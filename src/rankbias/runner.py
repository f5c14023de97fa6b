"""Run a matrix tier into a store: what is missing only, with progress.

``run_matrix`` skips every run the store already holds as done or diverged
(a changed config has another canonical name, so stale rows are never
reused), reruns failed ones only when asked, and trains the rest with
``run.run_many`` (ensembles where runs differ only in lr, wd and seed).  Each
run is one store transaction, so an interrupted matrix resumes where it
stopped with no lost or doubled rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rankbias.matrix import Matrix
from rankbias.run import RunConfig, run_many
from rankbias.store import RunRecord, Store


@dataclass
class Plan:
    """The runs of a matrix split by what the store already holds."""

    todo: list[RunConfig]
    done: int
    failed_before: int


def plan(matrix: Matrix, store: Store, retry_failed: bool = False) -> Plan:
    todo, done, failed = [], 0, 0
    for name, config in matrix.runs.items():
        status = store.status(name)
        if status in ("done", "diverged"):
            done += 1
        elif status == "failed" and not retry_failed:
            failed += 1
        else:
            todo.append(config)
    return Plan(todo, done, failed)


def run_matrix(matrix: Matrix, store: Store, retry_failed: bool = False,
               on_done: Callable[[RunRecord], None] | None = None) -> Plan:
    """Train what ``store`` lacks of ``matrix``; returns the plan it followed."""
    steps = plan(matrix, store, retry_failed)
    run_many(steps.todo, store, on_done=on_done)
    return steps
