"""The stored runs of a matrix as tables, read once: what scoring reads instead of the store.

``Runs(store, matrix)`` is the one place storage enters scoring (rliable's
scoring functions are pure functions of arrays; here, of these tables):
``final`` holds one row per run, ``metrics`` every metric row, and the spectra
of every run are read with them, so no bootstrap resample touches SQLite.
"""

from __future__ import annotations

import functools
import json

import pandas as pd

from rankbias.engine.data import make_data
from rankbias.experiments.matrix import Matrix
from rankbias.experiments.store import Store
from rankbias.experiments.tables import code_of, final_table
from rankbias.scoring.hypotheses.base import RunSet

_NO_SPECTRA = pd.DataFrame(columns=["step", "layer", "sigma"])


class Runs:
    """The stored runs of a matrix, read once: ``final`` (one row per run,
    ``experiments.tables.final_table``: config fields, status, horizon, ``steps``,
    last-step metrics as ``name`` / ``name@layer``, ``train_loss_0``) and the metric
    rows; spectra are read with them (one query), data sets regenerated on demand and cached.  Nothing
    reads the store after this: scoring and its bootstrap are pure functions of it.
    ``widths`` keeps its "32-100-10" form (hypothesis files read it); ``base.widths_of``
    parses it."""

    def __init__(self, store: Store, matrix: Matrix):
        self.matrix, self.store_path = matrix, store.path
        runs = store.runs()
        runs = runs[runs.name.isin(matrix.runs)].set_index("name")
        metrics = store.metrics()
        self.metrics = metrics[metrics.run.isin(runs.index)]
        self.final = final_table(runs, self.metrics)
        # the code that made each run: "version@commit" (the commit where the package sat in a git checkout)
        self.code = runs.provenance.map(code_of)
        spectra = store.spectra_of(list(runs.index))  # run -> (step, layer, sigma)
        self.spectra = lambda name: spectra.get(name, _NO_SPECTRA)
        build = functools.lru_cache(maxsize=None)(lambda spec: make_data(json.loads(spec)))
        self.dataset = lambda name: build(json.dumps(_data_of(matrix, name), sort_keys=True))

    def names(self, scenarios) -> list[str]:
        """Run names of ``scenarios`` (in the matrix), each once."""
        seen: dict[str, None] = {}
        for sid in scenarios:
            for name in self.matrix.members.get(sid, []):
                seen.setdefault(name)
        return list(seen)

    def cell(self, name: str, scenarios) -> str:
        """The grid cell of run ``name`` in the first of ``scenarios`` that holds it, e.g. "batch=1"."""
        for sid in scenarios:
            values = self.matrix.cells.get(sid, {}).get(name)
            if values is not None:
                return ", ".join(f"{_short(k)}={_value(v)}" for k, v in values.items()) or "(the one cell)"
        return "(outside the grid)"

    def runset(self, final: pd.DataFrame, like: RunSet | None = None) -> RunSet:
        """``final``'s runs as a ``RunSet``; ``like``: a RunSet whose metric rows (and their
        histories, picked out once) hold these runs' (a bootstrap resample of it)."""
        if like is not None:
            return RunSet(final, like.metrics, self.spectra, self.dataset, like.histories)
        return RunSet(final, self.metrics[self.metrics.run.isin(final.index)], self.spectra, self.dataset)


def _data_of(matrix: Matrix, name: str) -> dict:
    """The data spec of run ``name``; a logged run (a user's own model) has none."""
    data = matrix.runs[name].data
    if data is None:
        raise ValueError(f"run {name} was logged from a user's own model: rankbias does not know its data set, so "
                         f"a hypothesis that reads the data cannot score it. Score it with one that reads metrics.")
    return data


def _short(key: str) -> str:
    return key.removeprefix("dynamics.").removeprefix("net.")


def _value(v) -> str:
    return "-".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}" if isinstance(v, float) else str(v)
