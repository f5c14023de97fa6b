"""Expand a validated matrix file into the runs of one tier.

Each scenario's grid (the cartesian product of its ``grid`` values) gives
cells, each run once per init seed (the tier's count, the scenario's own count,
or its list of seeds); a run is a ``RunConfig`` with its canonical name.  Runs
that several scenarios share are kept once (``Matrix.runs``), while
``Matrix.members`` remembers which runs each scenario scores and
``Matrix.cells`` the grid values of each.  A cell that its
specs reject, or whose batch exceeds the data or whose widths do not fit the
data, is skipped with the reason (benchopt's rule); a scenario none of whose
cells survive is an error in the file.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from rankbias.experiments.config import RunConfig, fit_problem
from rankbias.experiments.spec import MatrixError, MatrixSpec, Scenario, cell_specs


@dataclass
class Matrix:
    tier: str
    runs: dict[str, RunConfig] = field(default_factory=dict)  # canonical name -> config, each once
    members: dict[str, list[str]] = field(default_factory=dict)  # scenario id -> its run names
    skipped: list[tuple[str, dict, str]] = field(default_factory=list)  # (scenario id, cell values, reason)
    cells: dict[str, dict[str, dict]] = field(default_factory=dict)  # scenario id -> {run name: its grid values}


def _cells(scenario: Scenario):
    keys = list(scenario.grid)
    for combo in itertools.product(*(scenario.grid[k] for k in keys)):
        yield dict(zip(keys, combo))


def expand(spec: MatrixSpec, tier: str, source: str = "<matrix>") -> Matrix:
    """The runs of ``tier`` (quick / standard / full)."""
    matrix = Matrix(tier)
    for scenario in spec.scenario:
        if tier not in scenario.tiers:
            continue
        seeds = scenario.seed_list(spec.tiers.get(tier, 1))
        names, reasons, cells = [], [], {}
        for values in _cells(scenario):
            try:
                data, net, dynamics = cell_specs(scenario, values)
                reason = fit_problem(RunConfig(data, net, dynamics))
            except (ValueError, TypeError, KeyError) as err:
                reason = str(err).removeprefix("Invalid NetSpec: ").removeprefix("Invalid DynamicsSpec: ")
                reason = reason.removesuffix(". Fix these fields of the net spec.").removesuffix(
                    ". Fix these fields of the dynamics spec.")
            if reason is not None:
                matrix.skipped.append((scenario.id, values, reason))
                reasons.append(reason)
                continue
            for seed in seeds:
                config = RunConfig(data, net, dynamics, seed=seed)
                matrix.runs.setdefault(config.name(), config)
                names.append(config.name())
                cells[config.name()] = values
        if not names:
            raise MatrixError(
                f"{source}: scenario {scenario.id!r}: every cell is invalid, e.g. {reasons[0]}. "
                f"Fix: set the field it names, in the scenario's data, net or dynamics table or its grid, "
                f"to an allowed value."
            )
        matrix.members[scenario.id] = names
        matrix.cells[scenario.id] = cells
    return matrix
