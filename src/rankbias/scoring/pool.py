"""Score a scorecard's verdicts on local worker processes.

Each worker (spawned, one torch thread) reads the store's runs once
(``runs.Runs``) and scores the built-in claims it is sent, by id; a researcher's
own hypotheses, which a fresh process could not import, and any verdict whose
hypothesis raised (so that its traceback is kept for ``--debug``) are scored in
this process.  Every verdict's bootstrap draws from its own seed, so the
scorecard equals the serial one (``score.scorecard`` with ``processes=1``).
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import sys

from rankbias.experiments.store import Store
from rankbias.scoring.hypotheses import claims
from rankbias.scoring.runs import Runs

_runs: Runs | None = None  # a worker's copy of the runs, read once by _start
_known: dict = {}


def _start(store_path, matrix, version: int) -> None:
    import torch

    global _runs, _known
    torch.set_num_threads(1)
    _runs = Runs(Store(store_path), matrix)
    _known = {h.id: h for h in claims(version)}


def _verdict(score, claim_id: str, names, as_id, scenarios, n_boot: int, seed: int, version: int):
    return score(_known[claim_id], _runs, n_boot, seed, names, as_id, version, scenarios)


def sendable(tasks: list[tuple], version: int) -> list[int]:
    """Indices of the ``tasks`` a worker can score: those of claims of ``version`` (by id), and
    none when a spawned process could not start here (``spawnable``)."""
    known = {h.id: h for h in claims(version)}
    return [i for i, (h, *_) in enumerate(tasks) if known.get(h.id) == h] if spawnable() else []


def spawnable() -> bool:
    """Whether a spawned process can start: it runs this program's main module again, which
    it cannot when that was read from stdin (``python - < script``) rather than a file."""
    path = getattr(sys.modules["__main__"], "__file__", None)
    return path is None or os.path.exists(path)


def score_on_workers(score, tasks: list[tuple], data: Runs, n_boot: int, seed: int, version: int,
                     processes: int) -> list:
    """The verdicts of ``tasks`` ((hypothesis, names, as_id, scenarios), as ``score`` (``score.score``)
    takes them), in order, scored on ``processes`` spawned workers where they can be."""
    sent = sendable(tasks, version)
    out: list = [None] * len(tasks)
    if sent:
        context = multiprocessing.get_context("spawn")
        try:
            with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context, initializer=_start,
                                                        initargs=(data.store_path, data.matrix, version)) as pool:
                futures = {pool.submit(_verdict, score, tasks[i][0].id, *tasks[i][1:], n_boot, seed, version): i
                           for i in sent}
                for i in set(range(len(tasks))) - set(sent):
                    out[i] = score(*_args(tasks[i], data, n_boot, seed, version))
                for future in concurrent.futures.as_completed(futures):
                    out[futures[future]] = future.result()
        except concurrent.futures.process.BrokenProcessPool:  # no worker could start
            pass
    for i, task in enumerate(tasks):  # what no worker scored, and each verdict that raised (its traceback kept)
        if out[i] is None or out[i].error is not None:
            out[i] = score(*_args(task, data, n_boot, seed, version))
    return out


def _args(task: tuple, data: Runs, n_boot: int, seed: int, version: int) -> tuple:
    h, names, as_id, scenarios = task
    return h, data, n_boot, seed, names, as_id, version, scenarios
