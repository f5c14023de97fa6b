"""The experiment matrix declared as data: TOML files validated with pydantic.

A matrix file holds one ``[[scenario]]`` table per experiment (a claim of the
built-in matrices ``matrices/claims-v<version>.toml``, or a researcher's own):

    [tiers]                      # seeds per tier (these are the defaults)
    quick = 2
    standard = 5
    full = 5

    [[scenario]]
    id = "galanti.wd"            # unique
    paper = "galanti"            # a baseline paper key, or any label
    tiers = ["quick", "standard", "full"]
    data = { kind = "mixture", n = 1000, dim = 32, classes = 10, std = 1.0, seed = 0, test = 200 }
    net = { arch = "deep_relu", widths = [32, 100, 100, 100, 10] }
    dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 4, epochs = 40 }
    grid = { "dynamics.wd" = [0.0, 1e-3, 5e-3, 1e-2, 2e-2] }
    seeds = 3                    # optional: overrides the tier's count...
    seeds = [11, 12, 13]         # ...or names the init seeds themselves (in every tier)

``data`` takes the keyword arguments of its generator in ``rankbias.data``
(``kind`` names it), ``net`` the fields of ``NetSpec`` and ``dynamics`` those
of ``DynamicsSpec``; ``grid`` maps dotted paths into those three tables to the
values the scenario varies.  Anything else is an error that names the file,
the key, the value, the rule and the fix (``MatrixError``).

A scenario whose id is ``<claim id>.<name>`` is a variant of that claim (other
widths, seeds, data or init) and is scored by the claim's criteria; a matrix
may hold variants only, e.g. a held-out check of a claim (see
examples/heldout.toml).
"""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from rankbias import data as datasets
from rankbias.dynamics import DynamicsSpec
from rankbias.nets import NetSpec

TIERS = ("quick", "standard", "full")
SECTIONS = ("data", "net", "dynamics")
GENERATORS = datasets.GENERATORS


class MatrixError(ValueError):
    """A matrix file that cannot be used; the message says where, what and how to fix it."""


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    paper: str = Field(min_length=1)
    tiers: list[Literal["quick", "standard", "full"]] = Field(default_factory=lambda: list(TIERS), min_length=1)
    data: dict
    net: dict
    dynamics: dict
    grid: dict[str, list] = Field(default_factory=dict)
    seeds: int | list[int] | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value):
        """A count in [1, 100], or a list of distinct init seeds, each an int >= 0."""
        if value is None:
            return value
        if isinstance(value, list):
            bad = [v for v in value if not isinstance(v, int) or isinstance(v, bool) or v < 0]
            if not value:
                raise PydanticCustomError("seed_list", "a list of seeds must hold at least one seed")
            if bad:
                raise PydanticCustomError("seed_list", "a list of seeds must hold ints >= 0; {bad} are not",
                                          {"bad": bad})
            repeated = sorted({v for v in value if value.count(v) > 1})
            if repeated:
                raise PydanticCustomError("seed_list", "a list of seeds must not repeat a seed; {repeated} "
                                          "appear more than once", {"repeated": repeated})
            return value
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            raise PydanticCustomError("seed_list", "'seeds' must be a count in [1, 100] or a list of ints >= 0")
        return value

    def seed_list(self, tier_count: int) -> list[int]:
        """The init seeds of this scenario: its own list, range(its count), or range(the tier's count)."""
        if isinstance(self.seeds, list):
            return list(self.seeds)
        return list(range(self.seeds or tier_count))

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict) -> dict:
        kind = value.get("kind")
        if not isinstance(kind, str) or kind not in GENERATORS:
            raise ValueError(f"'kind' must be one of {sorted(GENERATORS)}; got {kind!r}")
        params = {k for k in inspect.signature(GENERATORS[kind]).parameters}
        unknown = sorted(set(value) - params - {"kind", "task"})
        if unknown:
            raise ValueError(f"unknown keys {unknown} for data kind {kind!r}; allowed: {sorted(params)}")
        return value

    @field_validator("net")
    @classmethod
    def _net(cls, value: dict) -> dict:
        return _known(value, NetSpec, "net")

    @field_validator("dynamics")
    @classmethod
    def _dynamics(cls, value: dict) -> dict:
        return _known(value, DynamicsSpec, "dynamics")

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict) -> dict:
        for key, values in value.items():
            section, _, field = key.partition(".")
            if section not in SECTIONS or not field:
                raise ValueError(f"grid key {key!r} must be 'data.<key>', 'net.<field>' or 'dynamics.<field>'")
            if not values:
                raise ValueError(f"grid key {key!r} has an empty list of values; give at least one value")
        return value


def _known(value: dict, spec_class, section: str) -> dict:
    fields = {f.name for f in dataclasses.fields(spec_class)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise ValueError(f"unknown {section} fields {unknown}; allowed: {sorted(fields)}")
    return value


class MatrixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: dict[Literal["quick", "standard", "full"], int] = Field(
        default_factory=lambda: {"quick": 2, "standard": 5, "full": 5}
    )
    scenario: list[Scenario] = Field(min_length=1)

    @field_validator("scenario")
    @classmethod
    def _unique(cls, value: list[Scenario]) -> list[Scenario]:
        ids = [s.id for s in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"scenario ids must be unique; {repeated} appear more than once")
        return value


CLAIMS_VERSIONS = (1, 2)  # as rankbias.hypotheses.VERSIONS; each version's matrix file never changes


def builtin(version: int = CLAIMS_VERSIONS[-1]) -> Path:
    """The built-in matrix of the claims of claims version ``version``."""
    return Path(__file__).parent / "matrices" / f"claims-v{version}.toml"


BUILTIN = builtin()  # the current claims matrix


def resolve(target: str, tier: str, version: int = CLAIMS_VERSIONS[-1]) -> tuple[Path, str]:
    """(matrix file, tier) for a command-line target: a tier name means the
    built-in matrix of claims version ``version`` at that tier, anything else a
    matrix file at ``tier``."""
    if target in TIERS:
        return builtin(version), target
    return Path(target), tier


def load(path: str | Path) -> MatrixSpec:
    """Read and validate a matrix file; raise ``MatrixError`` with a one-paragraph reason."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise MatrixError(f"cannot read matrix file {path}: {err.strerror}. Pass the path of a .toml matrix file.") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<matrix>") -> MatrixSpec:
    """Validate matrix TOML ``text``; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MatrixError(f"{source} is not valid TOML: {err}. Fix the syntax at that line.") from None
    try:
        return MatrixSpec.model_validate(raw)
    except ValidationError as err:
        raise MatrixError(_explain(err, raw, source)) from None


def _explain(err: ValidationError, raw: dict, source: str) -> str:
    """One line per problem: file, key path (with the scenario's id), value, rule, fix."""
    lines = []
    for problem in err.errors():
        loc = list(problem["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "scenario" and isinstance(loc[1], int):
            scenarios = raw.get("scenario", [])
            sid = scenarios[loc[1]].get("id", "?") if loc[1] < len(scenarios) and isinstance(scenarios[loc[1]], dict) else "?"
            where = f"scenario {sid!r} (#{loc[1] + 1}) key '{'.'.join(str(p) for p in loc[2:]) or '(table)'}'"
        rule = problem["msg"].removeprefix("Value error, ")
        got = problem.get("input")
        fix = _FIXES.get(problem["type"], "correct the value as the rule says")
        lines.append(f"{source}: {where}: {rule}. Got {got!r}. Fix: {fix}.")
    return "\n".join(lines)


_FIXES = {
    "extra_forbidden": "remove the key or correct its spelling (see the format in rankbias.spec)",
    "missing": "add the key",
    "literal_error": "use one of the allowed values",
    "string_type": "write the value as a quoted string",
    "int_type": "write the value as an integer",
    "int_parsing": "write the value as an integer",
    "list_type": "write the value as a list, e.g. [1, 2]",
    "dict_type": "write the value as an inline table, e.g. { key = 1 }",
    "greater_than_equal": "use a larger value",
    "seed_list": "write a count, e.g. seeds = 3, or distinct ints >= 0, e.g. seeds = [11, 12, 13]",
    "less_than_equal": "use a smaller value",
    "too_short": "give at least one entry",
    "string_pattern_mismatch": "use letters, digits, '.', '_' and '-' only",
}


def cell_specs(scenario: Scenario, values: dict) -> tuple[dict, NetSpec, DynamicsSpec]:
    """The (data spec, NetSpec, DynamicsSpec) of one grid cell: fixed tables with
    the cell's ``values`` ({dotted path: value}) applied.  Raises ValueError or
    TypeError for a cell the specs reject."""
    tables = {name: dict(getattr(scenario, name)) for name in SECTIONS}
    for key, value in values.items():
        section, _, field = key.partition(".")
        tables[section][field] = value
    if "widths" in tables["net"]:
        tables["net"]["widths"] = tuple(tables["net"]["widths"])
    return tables["data"], NetSpec(**tables["net"]), DynamicsSpec(**tables["dynamics"])
