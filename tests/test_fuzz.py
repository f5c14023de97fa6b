"""Fuzz the two readers of user files: the matrix loader (``rankbias list``) and ``rankbias
ranks``.  Generated TOML documents and arrays, valid or not, must each give a result (exit 0)
or one clean error (exit 2, "error:", no traceback), on a fixed budget of examples."""

import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rankbias.cli import app

BUDGET = settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# keys a matrix file has, and some it does not: the loader must name every unknown one
DATA_KEYS = ["kind", "n", "dim", "classes", "std", "seed", "test", "margin", "outputs", "colour"]
NET_KEYS = ["arch", "widths", "bias", "kernel", "heads", "d_head", "vocab", "batchnorm", "depth"]
DYN_KEYS = ["kind", "loss", "lr", "wd", "batch", "steps", "epochs", "log_points", "optimizer", "momentum", "beta2",
            "sam", "gate", "max_steps", "flow_time", "speed"]
scalars = st.one_of(st.integers(-3, 10**15), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.sampled_from(["mixture", "deep_relu", "sgd", "gd", "ce", "adamw", "conv", "pointer", "", "é"]))
values = st.one_of(scalars, st.lists(st.one_of(st.integers(-2, 300), st.floats(-1, 1e3)), max_size=6))


def _toml(v) -> str:
    """A value as TOML (inline tables, arrays, nan / inf)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(x)}' for k, x in v.items()) + " }"
    return "[" + ", ".join(_toml(x) for x in v) + "]"


def _table(keys):
    return st.dictionaries(st.sampled_from(keys), values, max_size=6)


VALID = {"id": "s", "paper": "p",
         "data": {"kind": "mixture", "n": 40, "dim": 4, "classes": 3, "std": 0.5, "seed": 0},
         "net": {"arch": "deep_relu", "widths": [4, 6, 3]},
         "dynamics": {"kind": "sgd", "loss": "ce", "lr": 0.1, "batch": 8, "steps": 10, "log_points": 2},
         "grid": {"dynamics.wd": [0.0, 0.01]}}


@st.composite
def mutated(draw):
    """The valid scenario with one key of one table set to a generated value (or removed)."""
    scenario = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    table = draw(st.sampled_from(["data", "net", "dynamics", "grid"]))
    keys = {"data": DATA_KEYS, "net": NET_KEYS, "dynamics": DYN_KEYS, "grid": ["dynamics.wd", "net.widths"]}[table]
    key = draw(st.sampled_from(keys))
    if draw(st.booleans()) and key in scenario[table]:
        del scenario[table][key]
    else:
        scenario[table][key] = draw(values if table != "grid" else st.lists(scalars, max_size=3))
    return scenario


scenarios = st.one_of(mutated(), st.just(VALID), st.fixed_dictionaries(
    {"id": st.one_of(st.just("s"), st.text(max_size=4)), "paper": st.sampled_from(["p", ""])},
    optional={"data": _table(DATA_KEYS), "net": _table(NET_KEYS), "dynamics": _table(DYN_KEYS),
              "grid": st.dictionaries(st.sampled_from(["dynamics.wd", "dynamics.lr", "net.widths", "data.n", "x"]),
                                      st.lists(scalars, max_size=3), max_size=2),
              "seeds": st.one_of(st.integers(-1, 200), st.lists(st.integers(-1, 5), max_size=3))}))


@BUDGET
@given(tiers=st.dictionaries(st.sampled_from(["quick", "standard", "nightly"]), st.integers(-1, 200), max_size=2),
       scenario_list=st.lists(scenarios, max_size=2))
def test_any_matrix_document_loads_or_gives_one_clean_error(tmp_path, tiers, scenario_list):
    lines = ["[tiers]"] + [f"{k} = {v}" for k, v in tiers.items()] if tiers else []
    for sc in scenario_list:
        lines.append("[[scenario]]")
        lines += [f'"{k}" = {_toml(v)}' for k, v in sc.items()]
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["list", str(path)])
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 2), result.output  # an uncaught exception exits 1
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.lstrip().startswith("error:"), result.output


dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.bool_, np.complex64, np.uint8])
shapes = st.lists(st.integers(0, 6), min_size=0, max_size=4)
fills = st.sampled_from(["normal", "nan", "inf", "huge", "tiny", "zero"])


@BUDGET
@given(shape=shapes, dtype=dtypes, fill=fills, seed=st.integers(0, 2**16))
def test_any_array_gives_ranks_or_one_clean_error(tmp_path, shape, dtype, fill, seed):
    rng = np.random.default_rng(seed)
    base = {"normal": lambda s: rng.standard_normal(s), "nan": lambda s: np.full(s, np.nan),
            "inf": lambda s: np.full(s, np.inf), "huge": lambda s: rng.standard_normal(s) * 1e300,
            "tiny": lambda s: rng.standard_normal(s) * 1e-300, "zero": np.zeros}[fill](tuple(shape))
    with np.errstate(all="ignore"):
        array = np.asarray(base).astype(dtype)
    path = tmp_path / "w.npy"
    np.save(path, array)
    result = CliRunner().invoke(app, ["ranks", str(path), "--json"])
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 2), (shape, dtype, fill, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.lstrip().startswith("error:"), result.output


@BUDGET
@given(blob=st.binary(max_size=300), suffix=st.sampled_from([".npy", ".npz", ".pt", ".safetensors", ".ckpt"]))
def test_any_bytes_under_a_weight_suffix_give_one_clean_error(tmp_path, blob, suffix):
    path = tmp_path / f"w{suffix}"
    path.write_bytes(blob)
    result = CliRunner().invoke(app, ["ranks", str(path)])
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 2), (blob[:40], suffix, result.output)
    assert "Traceback" not in result.output
