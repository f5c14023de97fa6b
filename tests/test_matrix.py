"""Matrix files: validation with clear errors, expansion, shared runs, skipped cells."""

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.experiments.matrix import expand
from rankbias.experiments.spec import MatrixError, load, parse

EXAMPLE = Path(__file__).parent.parent / "examples" / "matrix_example.toml"

BASE = """
[[scenario]]
id = "s1"
paper = "p"
data = { kind = "mixture", n = 100, dim = 8, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [8, 16, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 50 }
grid = { "dynamics.wd" = [0.0, 0.01] }
"""


def test_example_expands_with_shared_runs_and_skips():
    spec = load(EXAMPLE)
    quick = expand(spec, "quick")
    assert list(quick.members) == ["mine.wd"] and len(quick.runs) == 3 * 2  # 3 wd x 2 seeds
    standard = expand(spec, "standard")
    # mine.wd: 3 wd x 5 seeds; mine.batch: 3 usable batches x 5 seeds, of which B=16 is shared
    assert len(standard.members["mine.wd"]) == 15 and len(standard.members["mine.batch"]) == 15
    assert len(standard.runs) == 15 + 15 - 5
    shared = set(standard.members["mine.wd"]) & set(standard.members["mine.batch"])
    assert len(shared) == 5 and all("batch=16" in n and "wd=0.01" in n for n in shared)
    assert standard.skipped == [("mine.batch", {"dynamics.batch": 1000},
                                 "batch 1000 exceeds the 500 training samples; use a batch in [1, 500]")]


def test_scenario_seeds_override_the_tier():
    spec = parse(BASE + "seeds = 3\n")
    assert len(expand(spec, "quick").runs) == 2 * 3


def test_a_list_of_seeds_trains_those_seeds_in_every_tier():
    spec = parse(BASE + "seeds = [11, 12, 13]\n")
    for tier in ("quick", "full"):
        matrix = expand(spec, tier)
        assert sorted({c.seed for c in matrix.runs.values()}) == [11, 12, 13] and len(matrix.runs) == 2 * 3
    assert {v["dynamics.wd"] for v in matrix.cells["s1"].values()} == {0.0, 0.01}


def test_cli_list_prints_runs_and_skips():
    result = CliRunner().invoke(app, ["list", str(EXAMPLE), "--tier", "standard"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps the title
    assert "25 distinct runs" in text and "mine.batch" in text
    assert ("skipped mine.batch {'dynamics.batch': 1000}: batch 1000 exceeds the 500 training samples; use a batch "
            "in [1, 500]") in " ".join(result.output.split())


@pytest.mark.parametrize(
    "text,match",
    [
        ("[[scenario]\nid = 1", r"is not valid TOML: .*Fix the syntax"),
        ("", r"<matrix>: scenario: Field required\. Got \{\}\. Fix: add the key"),
        (BASE.replace('paper = "p"', 'paper = "p"\ncolour = "red"'), r"scenario 's1' \(#1\) key 'colour': Extra inputs are not permitted\. Got 'red'\. Fix: remove the key"),
        (BASE.replace('id = "s1"', "id = 3"), r"key 'id': Input should be a valid string\. Got 3"),
        (BASE.replace('id = "s1"', 'id = "has space"'), r"key 'id': String should match pattern"),
        (BASE + "tiers = ['nightly']\n", r"key 'tiers\.0': Input should be 'quick', 'standard' or 'full'\. Got 'nightly'"),
        (BASE + "seeds = 0\n", r"key 'seeds': 'seeds' must be a count in \[1, 100\].*Got 0\. Fix: write a count, e\.g\. seeds = 3"),
        (BASE + "seeds = [11, 12, 11]\n", r"key 'seeds': a list of seeds must not repeat a seed; \[11\] appear more than once\. Got \[11, 12, 11\]\. Fix: .*seeds = \[11, 12, 13\]"),
        (BASE + "seeds = [3, -1]\n", r"key 'seeds': a list of seeds must hold ints >= 0; \[-1\] are not\. Got \[3, -1\]"),
        (BASE + "seeds = [1.5, 2]\n", r"key 'seeds': a list of seeds must hold ints >= 0; \[1\.5\] are not"),
        (BASE + "seeds = []\n", r"key 'seeds': a list of seeds must hold at least one seed\. Got \[\]"),
        (BASE.replace('kind = "mixture"', 'kind = "imagenet"'), r"key 'data': 'kind' must be one of \['cifar10', 'diagonal_target', 'digits'.*got 'imagenet'"),
        (BASE.replace("seed = 0 }", "seed = 0, colour = 1 }"), r"key 'data.colour': unknown data key 'colour'\. Got 1\. "
         r"Fix: remove it or correct its spelling: .*The data keys are classes, dim, n, radius, seed, std, test\."),
        (BASE.replace('arch = "deep_relu"', 'arch = "deep_relu", depth = 3'), r"key 'net.depth': unknown net field 'depth'"),
        (BASE.replace('lr = 0.1', 'lr = 0.1, dampening = 0.9'), r"key 'dynamics.dampening': unknown dynamics field"),
        (BASE.replace('lr = 0.1', 'lr = "0.1"'), r"key 'dynamics.lr': 'dynamics.lr' must be a number\. Got '0\.1'\. "
         r"Fix: write it as a number, e\.g\. lr = 0\.1\."),
        (BASE.replace("std = 0.5", 'std = "big"'), r"key 'data.std': 'data.std' must be a number\. Got 'big'"),
        (BASE.replace("[8, 16, 3]", '[8, "16", 3]'), r"key 'net.widths': 'net.widths' must be a list of integers\. "
         r"Got \[8, '16', 3\]\. Fix: write it as a list of integers, e\.g\. widths = \[32, 64, 10\]"),
        (BASE.replace('"dynamics.wd"', '"dynamics.wdd"'), r"key 'grid.dynamics.wdd': grid key 'dynamics.wdd' names an "
         r"unknown dynamics field 'wdd'\. Got \[0\.0, 0\.01\]\. Fix: correct its spelling: did you mean 'wd'\?"),
        (BASE.replace('"dynamics.wd" = [0.0, 0.01]', '"dynamics.batch" = [4, 8.5]'), r"key 'grid.dynamics.batch': "
         r"each grid value of 'dynamics.batch' must be an integer\. Got 8\.5"),
        (BASE.replace('kind = "mixture"', 'kind = "mixtur"'), r"'kind' must be one of .* Fix: did you mean 'mixture'\?"),
        (BASE.replace('"dynamics.wd" = [0.0, 0.01]', '"optimizer.wd" = [0.0]'), r"grid key 'optimizer\.wd' must be 'data\.<key>'"),
        (BASE.replace('"dynamics.wd" = [0.0, 0.01]', '"dynamics.wd" = []'), r"grid key 'dynamics\.wd' has an empty list of values"),
        (BASE + BASE, r"scenario ids must be unique; \['s1'\] appear more than once"),
        ("[tiers]\nquick = 'two'\n" + BASE, r"tiers\.quick: Input should be a valid integer"),
    ],
)
def test_malformed_files_name_where_what_and_the_fix(text, match):
    with pytest.raises(MatrixError, match=match):
        parse(text)


@pytest.mark.parametrize(
    "edit,match",
    [
        (("steps = 50", "steps = 50, log_points = 60"), r"scenario 's1': every cell is invalid, e\.g\. log_points 60 exceeds the 50 steps of the budget; use log_points in \[2, 50\]"),
        (("batch = 8", "batch = 500"), r"every cell is invalid, e\.g\. batch 500 exceeds the 100 training samples"),
        (("widths = [8, 16, 3]", "widths = [9, 16, 3]"), r"widths 9-16-3 do not fit the data \(8 inputs, 3 outputs\)"),
    ],
)
def test_a_scenario_with_no_valid_cell_is_a_file_error(edit, match):
    with pytest.raises(MatrixError, match=match):
        expand(parse(BASE.replace(*edit)), "quick")


def test_cli_list_bad_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace('kind = "sgd"', 'kind = "adam"'))
    result = CliRunner().invoke(app, ["list", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'kind' must be one of ['gd', 'sgd', 'gf']" in " ".join(result.output.split())
    missing = CliRunner().invoke(app, ["list", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "is neither a tier of the built-in matrix" in " ".join(missing.output.split())


@settings(max_examples=40, deadline=None)
@given(
    wds=st.lists(st.sampled_from([0.0, 1e-3, 1e-2, 1e-1]), min_size=1, max_size=4, unique=True),
    batches=st.lists(st.integers(1, 150), min_size=1, max_size=4, unique=True),
    seeds=st.integers(1, 4),
)
def test_expansion_counts_and_names_are_consistent(wds, batches, seeds):
    grid = f'grid = {{ "dynamics.wd" = {wds!r}, "dynamics.batch" = {batches!r} }}\nseeds = {seeds}\n'
    text = BASE.replace('grid = { "dynamics.wd" = [0.0, 0.01] }', grid)
    usable = [b for b in batches if b <= 100]
    if not usable:
        with pytest.raises(MatrixError, match="every cell is invalid"):
            expand(parse(text), "quick")
        return
    matrix = expand(parse(text), "quick")
    assert len(matrix.runs) == len(wds) * len(usable) * seeds == len(matrix.members["s1"])
    assert len(matrix.skipped) == len(wds) * (len(batches) - len(usable))
    for name, config in matrix.runs.items():
        assert config.name() == name and name.startswith("sgd[")


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=3), max_leaves=8)


def _toml_value(v) -> str:
    """A TOML literal for v (None has none: it becomes an empty inline table)."""
    if v is None:
        return "{}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"


FIELDS = ["id", "paper", "tiers", "seeds", "data.n", "data.std", "data.kind", "net.widths", "net.arch",
          "dynamics.lr", "dynamics.batch", "dynamics.steps", "dynamics.kind", "grid", "colour"]


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_any_single_edit_is_accepted_or_explained(field, value):
    """Whatever one key of a good scenario is set to, the file either expands or
    raises MatrixError naming the file: never another exception."""
    raw = tomllib.loads(BASE)
    scenario = raw["scenario"][0]
    section, _, key = field.partition(".")
    if key:
        scenario[section][key] = value
    else:
        scenario[section] = value
    text = "\n".join(f"{k} = {_toml_value(v)}" for k, v in scenario.items())
    try:
        expand(parse("[[scenario]]\n" + text, "edited.toml"), "quick", "edited.toml")
    except MatrixError as err:
        assert str(err).startswith("edited.toml") and "Fix" in str(err)


def test_the_heldout_example_is_variants_of_claims_on_listed_seeds():
    from rankbias.scoring.hypotheses import claims, unknown_variants

    spec = load(EXAMPLE.parent / "heldout.toml")
    ids = [s.id for s in spec.scenario]
    assert not unknown_variants(ids) and all(any(i.startswith(h.id + ".") for h in claims()) for i in ids)
    for tier in ("quick", "standard"):
        assert {c.seed for c in expand(spec, tier).runs.values()} == {11, 12, 13}
