"""Hypotheses about the low-rank bias: the four papers' baselines, the nulls,
and a researcher's own, from a file or an entry point.

``BASELINES`` holds one hypothesis per claim id of claims.md plus the nulls.
A new hypothesis is a ``Trend`` or a ``Predictor`` (``rankbias.hypotheses.base``)
defined at module level in a Python file (``load_file``, ``rankbias compare
FILE``) or registered by an installed package under the entry-point group
``rankbias.hypotheses`` (``load_entry_points``); see examples/my_hypothesis.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from rankbias.hypotheses import galanti, kuzborskij, lejegelka, nulls, zangrando
from rankbias.hypotheses.base import Check, Predictor, RunSet, Trend

BASELINES = [*galanti.HYPOTHESES, *kuzborskij.HYPOTHESES, *zangrando.HYPOTHESES, *lejegelka.HYPOTHESES,
             *nulls.HYPOTHESES]
GROUP = "rankbias.hypotheses"

__all__ = ["BASELINES", "Check", "HypothesisError", "Predictor", "RunSet", "Trend", "load_entry_points", "load_file"]


class HypothesisError(ValueError):
    """A hypothesis file or entry point that cannot be used; the message says why and how to fix it."""


def _collect(objects) -> list:
    found = []
    for obj in objects:
        if isinstance(obj, (Trend, Predictor)):
            found.append(obj)
        elif isinstance(obj, (list, tuple)):
            found.extend(o for o in obj if isinstance(o, (Trend, Predictor)))
    return found


def load_file(path: str | Path) -> list:
    """Every ``Trend`` / ``Predictor`` defined at module level in the Python file ``path``
    (lists of them too), in definition order."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise HypothesisError(f"hypothesis file {path} must be an existing .py file. Pass the path of one.")
    spec = importlib.util.spec_from_file_location(f"rankbias_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: report it as the file's error
        raise HypothesisError(f"hypothesis file {path} raised {type(err).__name__}: {err}. Fix the file.") from None
    found = _collect(vars(module).values())
    if not found:
        raise HypothesisError(
            f"hypothesis file {path} defines no Trend or Predictor at module level. "
            f"Define one, e.g. `mine = Trend(...)` (see examples/my_hypothesis.py)."
        )
    return found


def load_entry_points() -> list:
    """Hypotheses registered by installed packages under the entry-point group ``rankbias.hypotheses``:
    each entry point names a Trend, a Predictor, or a list of them."""
    found = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        try:
            found.extend(_collect([ep.load()]))
        except Exception as err:
            raise HypothesisError(f"entry point {ep.name} = {ep.value} failed to load: {err}. "
                                  f"Fix or uninstall the package that registers it.") from None
    return found
