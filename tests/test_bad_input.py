"""Bad input at the command line: every case exits 2 with one error that names
what, where, the value and the fix, and shows no traceback unless --debug."""

import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from rankbias.cli import app

GOOD = """
[[scenario]]
id = "s1"
paper = "p"
data = { kind = "mixture", n = 60, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 8, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 10, log_points = 2 }
grid = { "dynamics.wd" = [0.0, 0.01] }
"""


def _matrix(tmp, text):
    path = tmp / "m.toml"
    path.write_text(text)
    return str(path)


def _junk_store(tmp):
    path = tmp / "junk.sqlite"
    path.write_bytes(b"not a database" * 400)
    return str(path)


def _foreign_store(tmp):
    path = tmp / "foreign.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER)")
    return str(path)


def _future_store(tmp):
    path = tmp / "future.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '99')")
    return str(path)


def _hypothesis(tmp, body):
    path = tmp / "h.py"
    path.write_text(body)
    return str(path)


def _weights(tmp):
    path = tmp / "w.npy"
    np.save(path, np.array([np.nan, 1.0]).reshape(1, 2))
    return str(path)


# (id, argv builder, fragment the one-paragraph error must contain)
CASES = [
    ("bad toml", lambda t: ["list", _matrix(t, "[[scenario]\nid = 1")], "is not valid TOML"),
    ("unknown key", lambda t: ["list", _matrix(t, GOOD.replace('paper = "p"', 'paper = "p"\ncolour = 1'))],
     "key 'colour': Extra inputs are not permitted. Got 1. Fix: remove the key"),
    ("wrong type", lambda t: ["list", _matrix(t, GOOD.replace('id = "s1"', "id = 3"))],
     "key 'id': Input should be a valid string. Got 3"),
    ("negative lr", lambda t: ["list", _matrix(t, GOOD.replace("lr = 0.1", "lr = -0.1"))],
     "key 'dynamics.lr': 'dynamics.lr' (the learning rate) must be a finite number > 0. Got -0.1"),
    ("batch above data", lambda t: ["list", _matrix(t, GOOD.replace("batch = 8", "batch = 500"))],
     "batch 500 exceeds the 60 training samples; use a batch in [1, 60]"),
    ("empty grid", lambda t: ["list", _matrix(t, GOOD.replace("[0.0, 0.01]", "[]"))],
     "grid key 'dynamics.wd' has an empty list of values"),
    ("unknown data kind", lambda t: ["list", _matrix(t, GOOD.replace('"mixture"', '"imagenet"'))],
     "'kind' must be one of"),
    ("widths misfit", lambda t: ["list", _matrix(t, GOOD.replace("[6, 8, 3]", "[7, 8, 3]"))],
     "widths 7-8-3 do not fit the data (6 inputs, 3 outputs)"),
    ("duplicate ids", lambda t: ["list", _matrix(t, GOOD + GOOD)], "scenario ids must be unique"),
    ("missing matrix file", lambda t: ["run", str(t / "nope.toml")], "is neither a tier of the built-in matrix "
     "(quick, standard, full) nor a matrix file. Pass a tier or the path of a .toml matrix file."),
    ("misspelt tier", lambda t: ["run", "quik"], "'quik' is neither a tier of the built-in matrix (quick, standard, "
     "full) nor a matrix file. Did you mean 'quick'?"),
    ("a number in quotes", lambda t: ["run", _matrix(t, GOOD.replace("lr = 0.1", 'lr = "0.1"'))],
     "key 'dynamics.lr': 'dynamics.lr' must be a number. Got '0.1'. Fix: write it as a number, e.g. lr = 0.1."),
    ("grid typo", lambda t: ["run", _matrix(t, GOOD.replace('"dynamics.wd"', '"dynamics.wdd"'))],
     "grid key 'dynamics.wdd' names an unknown dynamics field 'wdd'. Got [0.0, 0.01]. Fix: correct its spelling: "
     "did you mean 'wd'?"),
    ("train batch above data", lambda t: ["train", "--widths", "6,8,3", "--lr", "0.1", "--steps", "5", "--batch", "400",
                                          "--n", "64", "--store", str(t / "s.sqlite")],
     "this run does not fit its data: batch 400 exceeds the 64 training samples; use a batch in [1, 64]."),
    ("unknown tier", lambda t: ["run", "--tier", "nightly", _matrix(t, GOOD)], "'--tier' must be one of"),
    ("negative processes", lambda t: ["run", _matrix(t, GOOD), "--processes", "-2"], "'--processes' must be an int >= 0"),
    ("corrupt store", lambda t: ["run", _matrix(t, GOOD), "--store", _junk_store(t)], "is not an SQLite database"),
    ("foreign store", lambda t: ["score", "quick", "--store", _foreign_store(t)], "an SQLite database of another program"),
    ("future store", lambda t: ["score", "quick", "--store", _future_store(t)], "has schema version 99"),
    ("missing store", lambda t: ["score", "quick", "--store", str(t / "none.sqlite")], "does not exist"),
    ("unreachable scheduler", lambda t: ["run", _matrix(t, GOOD), "--store", str(t / "s.sqlite"), "--quiet",
                                         "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
    ("bad pool spec", lambda t: ["run", _matrix(t, GOOD), "--store", str(t / "s.sqlite"), "--quiet",
                                 "--scheduler", "process:zero"], "must be 'process:N' with N >= 1"),
    ("unknown claim id", lambda t: ["score", "quick", "--store", _empty_store(t), "--claim", "galanti.nope"],
     "unknown claim ids ['galanti.nope']"),
    ("negative n-boot", lambda t: ["score", "quick", "--store", _empty_store(t), "--n-boot", "-1"],
     "'--n-boot' must be an int >= 0"),
    ("hypothesis raises", lambda t: ["compare", _hypothesis(t, "1 / 0\n"), "--store", _empty_store(t)],
     "raised ZeroDivisionError: division by zero. Fix the file"),
    ("hypothesis file empty", lambda t: ["compare", _hypothesis(t, "x = 1\n"), "--store", _empty_store(t)],
     "defines no Trend or Predictor"),
    ("hypothesis of no scenario", lambda t: ["compare", _hypothesis(t, NOWHERE), "--store", _empty_store(t)],
     "apply to no scenario of this matrix"),
    ("repeated seeds", lambda t: ["run", _matrix(t, GOOD + "seeds = [3, 4, 3]\n")],
     "scenario 's1' (#1) key 'seeds': a list of seeds must not repeat a seed; [3] appear more than once. "
     "Got [3, 4, 3]. Fix: write a count"),
    ("negative seed", lambda t: ["list", _matrix(t, GOOD + "seeds = [-1]\n")],
     "key 'seeds': a list of seeds must hold ints >= 0; [-1] are not"),
    ("fractional seed", lambda t: ["list", _matrix(t, GOOD + "seeds = [0.5]\n")], "[0.5] are not. Got [0.5]"),
    ("unknown claims version", lambda t: ["score", "quick", "--store", _empty_store(t), "--claims-version", "4"],
     "'--claims-version' must be one of [1, 2, 3]; got 4. Pass 2"),
    ("a version-3 claim asked of version 2", lambda t: ["score", "quick", "--store", _empty_store(t), "--claim",
                                                        "kobayashi.factor", "--claims-version", "2"],
     "'--claim' kobayashi.factor is a claim of claims version 3, not of version 2. Pass --claims-version 3."),
    ("a consistency check named as a claim", lambda t: ["compare", _hypothesis(t, NOWHERE.replace(
        '"mine.x"', '"kuzborskij.alignment"')), "--store", _empty_store(t)],
     "Trend id 'kuzborskij.alignment' is a consistency check of claims version 3 (an identity between metrics), "
     "not a claim. Give yours an id of your own, e.g. 'mine.alignment'."),
    ("a baseline's id", lambda t: ["compare", _hypothesis(t, NOWHERE.replace('"mine.x"', '"galanti.wd"')), "--store",
                                   _empty_store(t)], "Trend id 'galanti.wd' is the id of a baseline claim"),
    ("variant of no claim", lambda t: ["run", _matrix(t, GOOD.replace('id = "s1"', 'id = "galanti.wdd.heldout"'))],
     "m.toml: scenario 'galanti.wdd.heldout' key 'id': a scenario named <claim>.<name> is a variant of that claim, "
     "and claims version 2 has no claim 'galanti.wdd'. Got 'galanti.wdd.heldout'. Fix: name an existing claim "
     "before the variant's name, e.g. 'galanti.wd'."),
    ("variant of a version-2 claim under version 1", lambda t: ["list", _matrix(t, GOOD.replace(
        'id = "s1"', 'id = "new.task_rank.wide"')), "--claims-version", "1"],
     "claims version 1 has no claim 'new.task_rank'"),
    ("scorecard of another version", lambda t: ["claims", "--claims-version", "1", "--scorecard", _scorecard(t)],
     "scored claims version 2, not 1"),
    ("bad weight file", lambda t: ["ranks", _weights(t)], "must be finite"),
    ("bad widths", lambda t: ["train", "--widths", "32,a,10"], "'--widths' must be comma-separated ints"),
    ("bad train dynamics", lambda t: ["train", "--widths", "6,8,3", "--dynamics", "adam", "--store",
                                      str(t / "s.sqlite")], "'kind' must be one of ['gd', 'sgd', 'gf']"),
    ("cuda without a GPU", lambda t: ["run", _matrix(t, GOOD), "--device", "cuda", "--store", str(t / "s.sqlite")],
     "device 'cuda' needs a CUDA GPU, but this torch"),
    ("unknown device", lambda t: ["train", "--widths", "6,8,3", "--lr", "0.1", "--steps", "5", "--batch", "8",
                                  "--device", "tpu", "--store", str(t / "s.sqlite")],
     "'device' must be auto, cpu, cuda or cuda:N; got 'tpu'. Pass one of those"),
]

CONV = """
[[scenario]]
id = "c1"
paper = "p"
data = { kind = "digits", seed = 0 }
net = { arch = "conv", widths = [1, 4, 10], batchnorm = true }
dynamics = { kind = "sgd", loss = "ce", lr = 0.01, batch = 16, steps = 10, log_points = 2, optimizer = "adamw" }
grid = { "dynamics.wd" = [0.0, 0.01] }
"""
TABULAR = 'kind = "mixture", n = 60, dim = 64, classes = 10, std = 0.5, seed = 0'


def _conv(tmp, old, new):
    assert old in CONV
    return ["list", _matrix(tmp, CONV.replace(old, new))]


# the engine's architectures and optimizers (one line each, naming the field, the value and the rule)
CASES += [
    ("unknown arch", lambda t: _conv(t, 'arch = "conv"', 'arch = "vgg"'), "'arch' must be one of ['shallow_relu'"),
    ("unknown optimizer", lambda t: _conv(t, '"adamw"', '"lion"'),
     "'optimizer' must be one of ['sgd', 'adam', 'adamw', 'rmsprop']; got 'lion'"),
    ("unknown hyper-parameter", lambda t: _conv(t, 'optimizer = "adamw"', 'optimizer = "adamw", amsgrad = true'),
     "key 'dynamics.amsgrad': unknown dynamics field 'amsgrad'"),
    ("another optimizer's hyper-parameter", lambda t: _conv(t, '"adamw"', '"adamw", momentum = 0.9'),
     "optimizer 'adamw' takes ['beta1', 'beta2', 'eps']; got ['momentum']"),
    ("conv on tabular data", lambda t: _conv(t, 'kind = "digits", seed = 0', TABULAR),
     "a conv net needs signals or images, and data kind 'mixture' is tabular"),
    ("attention without a sequence task", lambda t: _conv(
        t, 'arch = "conv", widths = [1, 4, 10], batchnorm = true',
        'arch = "attention", widths = [64, 8, 10], heads = 2, d_head = 4, vocab = 10'),
     "an attention net needs a sequence task (pointer); got data kind 'digits'"),
    ("negative SAM radius", lambda t: _conv(t, '"dynamics.wd" = [0.0, 0.01]', '"dynamics.sam" = [-0.1]'),
     "'sam' (SAM's radius) must be a finite float >= 0; got -0.1"),
    ("beta outside [0, 1)", lambda t: _conv(t, '"adamw"', '"adamw", beta2 = 1.0'), "'beta2' must be in [0, 1); got 1.0"),
    ("nesterov without momentum", lambda t: _conv(t, '"adamw"', '"sgd", nesterov = true'),
     "'nesterov' needs 'momentum' > 0"),
    ("zero seeds in a tier", lambda t: ["list", _matrix(t, "[tiers]\nquick = 0\n" + GOOD)],
     "tiers.quick: Input should be greater than or equal to 1. Got 0"),
]



def _array(tmp, name, array=None, text=None):
    path = tmp / name
    np.save(path, array) if text is None else path.write_text(text)
    return str(path)


# numbers checked for their meaning when a matrix file loads: (id, the edit of GOOD, the line's fragment)
MEANINGS = [
    ("zero samples", ("n = 60", "n = 0"), "key 'data.n': 'data.n' (training samples) must be a finite number >= 1. "
                                          "Got 0. Fix: use a value >= 1, e.g. n = 1."),
    ("negative std", ("std = 0.5", "std = -1.0"), "'data.std' (the clusters' standard deviation) must be a finite "
                                                  "number > 0. Got -1.0"),
    ("one class", ("classes = 3", "classes = 1"), "'data.classes' (classes; a task needs two) must be a finite number "
                                                  ">= 2. Got 1"),
    ("more log points than steps", ("log_points = 2", "log_points = 50"),
     "log_points 50 exceeds the 10 steps of the budget; use log_points in [2, 10]"),
    ("a budget past the cap", ("steps = 10", "steps = 100000000000000"),
     "'dynamics.steps' (optimizer steps) must be a finite number >= 1 and <= 100,000,000. Got 100000000000000"),
    ("infinite std", ("std = 0.5", "std = inf"), "Got inf"),
    ("a negative grid value", ("[0.0, 0.01]", "[0.0, -0.01]"),
     "key 'dynamics.wd': 'dynamics.wd' (the weight decay) must be a finite number >= 0. Got -0.01"),
]
CASES += [(name, lambda t, edit=edit: ["list", _matrix(t, GOOD.replace(*edit))], fragment)
          for name, edit, fragment in MEANINGS]
# weight files that are not what they say
CASES += [
    ("an empty weight matrix", lambda t: ["ranks", _array(t, "e.npy", np.zeros((0, 0), np.float32))],
     "tensor 'e' (shape (0, 0)): The 'A' parameter of ranks must not be empty"),
    ("a text file named .npy", lambda t: ["ranks", _array(t, "t.npy", text="hello world\n")],
     "t.npy is not a .npy file: it does not start with NumPy's .npy header"),
]

NOWHERE = """
from rankbias.scoring.hypotheses import Check, Trend
mine = Trend("mine.x", "mine", ("no.such.scenario",), "nothing", lambda runs: [Check("x", 1.0, ">=", 0)])
"""


def _scorecard(tmp):
    path = tmp / "card.json"
    path.write_text('{"meta": {"claims_version": 2}, "verdicts": []}')
    return str(path)


def _empty_store(tmp):
    from rankbias.experiments.store import Store

    path = tmp / "empty.sqlite"
    Store(path).close()
    return str(path)


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_error(tmp_path, argv, fragment):
    result = CliRunner().invoke(app, argv(tmp_path))
    flat = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "error:" in flat and fragment in flat
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_behind_the_error(tmp_path):
    argv = ["--debug", "score", "quick", "--store", _foreign_store(tmp_path)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "Traceback" in result.output and "StoreError" in result.output
