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

``data`` takes the keyword arguments of its generator in ``rankbias.engine.data``
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

import difflib
import inspect
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from rankbias.engine import data as datasets
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.nets import NetSpec

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
            raise _problem(f"'kind' must be one of {sorted(GENERATORS)}; got {kind!r}",
                           _one_of("data kind", kind, sorted(GENERATORS)))
        _typed("data", {k: v for k, v in value.items() if k != "kind"}, _data_fields(kind))
        return value

    @field_validator("net")
    @classmethod
    def _net(cls, value: dict) -> dict:
        return _typed("net", value, _spec_fields(NetSpec))

    @field_validator("dynamics")
    @classmethod
    def _dynamics(cls, value: dict) -> dict:
        return _typed("dynamics", value, _spec_fields(DynamicsSpec))

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict, info: ValidationInfo) -> dict:
        for key, values in value.items():
            section, _, field = key.partition(".")
            if section not in SECTIONS or not field:
                raise _problem(f"grid key {key!r} must be 'data.<key>', 'net.<field>' or 'dynamics.<field>'",
                               "name a field of the data, net or dynamics table, e.g. \"dynamics.wd\"", key, values)
            if not values:
                raise _problem(f"grid key {key!r} has an empty list of values; give at least one value",
                               f"list the values to sweep, e.g. \"{key}\" = [...]", key, values)
            kind = (info.data.get("data") or {}).get("kind")
            if section == "data":
                fields = _data_fields(kind) if kind in GENERATORS else None
            else:
                fields = _spec_fields(NetSpec if section == "net" else DynamicsSpec)
            if fields is not None and field not in fields:
                noun = "key" if section == "data" else "field"
                raise _problem(f"grid key {key!r} names an unknown {section} {noun} {field!r}",
                               "correct its spelling: " + _one_of(f"{section} {noun}", field, sorted(fields)),
                               f"grid.{key}", values)
            for v in values if fields is not None else ():
                _typed(section, {field: v}, fields, grid=True)
        return value


def _problem(rule: str, fix: str, key: str | None = None, value=None) -> PydanticCustomError:
    """A matrix error that carries its own fix and, for one field, the field and its value (``_explain``)."""
    ctx = {"rule": rule, "fix": fix} | ({"key": key, "value": value} if key is not None else {})
    return PydanticCustomError("matrix_rule", "{rule}", ctx)


def _one_of(what: str, got, allowed) -> str:
    close = difflib.get_close_matches(str(got), [str(a) for a in allowed], n=1)
    return (f"did you mean {close[0]!r}? " if close else "") + f"The {what}s are {', '.join(map(str, allowed))}"


def _spec_fields(spec_class) -> dict:
    """Field name -> type of a spec dataclass (NetSpec, DynamicsSpec)."""
    return typing.get_type_hints(spec_class)


def _data_fields(kind: str) -> dict:
    """Key -> type of data kind ``kind``: its generator's parameters (and ``task`` for a subspace task)."""
    hints = typing.get_type_hints(GENERATORS[kind])
    fields = {name: hints.get(name, object) for name in inspect.signature(GENERATORS[kind]).parameters}
    return fields | ({"task": int} if kind == "subspace_task" else {})


_WORDS = {float: ("a number", "0.1"), int: ("an integer", "16"), bool: ("true or false", "true"),
          str: ("a quoted string", '"sgd"')}


def _words(annotation) -> tuple[str, str]:
    """How to say a field's type to a user, with an example value."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: say X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        return "a list of integers", "[32, 64, 10]"
    return _WORDS.get(annotation, (f"a {getattr(annotation, '__name__', annotation)}", "..."))


MAX_STEPS, MAX_EPOCHS = 100_000_000, 1_000_000  # caps on a budget: past them, a typo rather than a plan
# what a number means, checked when a matrix loads, in a scenario's tables and its grid values:
# "section.key" -> (lowest allowed, whether the lowest is allowed itself, highest or None, what it counts)
LIMITS = {
    "data.n": (1, True, None, "training samples"), "data.test": (0, True, None, "test samples"),
    "data.dim": (1, True, None, "input dimensions"), "data.classes": (2, True, None, "classes; a task needs two"),
    "data.std": (0, False, None, "the clusters' standard deviation"), "data.outputs": (1, True, None, "outputs"),
    "data.k": (1, True, None, "subspace dimensions"), "data.rank": (1, True, None, "the teacher's rank"),
    "data.units": (1, True, None, "the teacher's hidden units"), "data.length": (2, True, None, "tokens per sequence"),
    "data.values": (2, True, None, "token values"), "data.margin": (0, True, None, "the margin"),
    "dynamics.lr": (0, False, None, "the learning rate"), "dynamics.wd": (0, True, None, "the weight decay"),
    "dynamics.batch": (1, True, None, "samples per step"), "dynamics.steps": (1, True, MAX_STEPS, "optimizer steps"),
    "dynamics.max_steps": (1, True, MAX_STEPS, "optimizer steps"), "dynamics.epochs": (1, True, MAX_EPOCHS, "epochs"),
    "dynamics.log_points": (2, True, 10_000, "log points"), "dynamics.flow_time": (0, False, None, "the flow time"),
}


def _limit_problem(where: str, key: str, value):
    """A ``_problem`` when ``value`` of ``where`` ("section.key") is a number outside its ``LIMITS``, else None."""
    if where not in LIMITS or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    low, inclusive, high, what = LIMITS[where]
    inside = math.isfinite(value) and (value >= low if inclusive else value > low) and (high is None or value <= high)
    if inside:
        return None
    bound = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high:,}" if high is not None else "")
    example = low if inclusive else (0.1 if isinstance(value, float) else low + 1)
    return _problem(f"'{where}' ({what}) must be a finite number {bound}", f"use a value {bound}, e.g. {key} = "
                    f"{example}", where, value)


def _typed(section: str, values: dict, fields: dict, grid: bool = False) -> dict:
    """Check every key of ``values`` is a field of ``section`` and of that field's type (TOML's
    types taken strictly: "0.1" in quotes is not a number)."""
    for key, value in values.items():
        where = f"{section}.{key}"
        if key not in fields:
            noun = "key" if section == "data" else "field"
            raise _problem(f"unknown {section} {noun} {key!r}",
                           "remove it or correct its spelling: " + _one_of(f"{section} {noun}", key, sorted(fields)),
                           where, value)
        annotation = fields[key]
        if annotation is object:
            continue
        try:
            TypeAdapter(annotation).validate_python(tuple(value) if isinstance(value, list) else value, strict=True)
        except ValidationError:
            words, example = _words(annotation)
            rule = f"{'each grid value of ' if grid else ''}'{where}' must be {words}"
            raise _problem(rule, f"write it as {words}, e.g. {key} = {example}", ("grid." if grid else "") + where,
                           value) from None
        problem = _limit_problem(where, key, value)
        if problem is not None:
            raise problem
    return values


class MatrixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: dict[Literal["quick", "standard", "full"], Annotated[int, Field(ge=1, le=100)]] = Field(
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


CLAIMS_VERSIONS = (1, 2, 3)  # as rankbias.scoring.hypotheses.VERSIONS; each version's matrix file never changes
CURRENT_CLAIMS = 2  # as rankbias.scoring.hypotheses.CURRENT: what a command without --claims-version scores


def builtin(version: int = CURRENT_CLAIMS) -> Path:
    """The built-in matrix of the claims of claims version ``version``."""
    return Path(__file__).parent / "matrices" / f"claims-v{version}.toml"


BUILTIN = builtin()  # the current claims matrix


def resolve(target: str, tier: str, version: int = CURRENT_CLAIMS) -> tuple[Path, str]:
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


def extend(spec: MatrixSpec, text: str, source: str) -> MatrixSpec:
    """``spec`` with the scenarios of matrix TOML ``text`` (named ``source`` in errors) added;
    the tiers stay ``spec``'s.  A scenario id both hold is an error."""
    extra = parse(text, source)
    clash = sorted({s.id for s in spec.scenario} & {s.id for s in extra.scenario})
    if clash:
        raise MatrixError(f"{source}: scenarios {clash} are already in the matrix. Fix: give yours ids of your "
                          f"own, e.g. 'mine.{clash[0].split('.')[-1]}', or a claim's variant, '{clash[0]}.<name>'.")
    return spec.model_copy(update={"scenario": [*spec.scenario, *extra.scenario]})


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
        ctx = problem.get("ctx") or {}
        fix = ctx.get("fix") or _FIXES.get(problem["type"], "see the format in rankbias.experiments.spec")
        if "key" in ctx:  # a rule about one field inside a table: name the field and its value
            where = where.rsplit(" key ", 1)[0] + f" key '{ctx['key']}'" if " key " in where else ctx["key"]
            got = ctx["value"]
        lines.append(f"{source}: {where}: {rule}. Got {got!r}. Fix: {fix}.")
    return "\n".join(lines)


_FIXES = {
    "extra_forbidden": "remove the key or correct its spelling (see the format in rankbias.experiments.spec)",
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
