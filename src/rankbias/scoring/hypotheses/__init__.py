"""Hypotheses about the low-rank bias: the four papers' baselines, the nulls,
and a researcher's own, from a file or an entry point.

The claims are versioned, never tuned: ``claims(version)`` is what a claims
version scores (version 1: one hypothesis per claim of the four papers plus the
nulls; version 2: the same with its amendments, each with its reason, plus a
new hypothesis, ``new.task_rank``; version 3: its amendments, a consistency check
in place of kuzborskij.alignment, and new claims on conv nets, BatchNorm,
attention, factorized maps, SAM and AdamW); earlier versions stay scorable.
``BASELINES`` is the current version's list.

A researcher's hypothesis is a ``Trend`` or a ``Predictor``
(``rankbias.scoring.hypotheses.base``) defined at module level in a Python file
(``load_user``, ``rankbias compare FILE``), which may also declare the
scenarios it needs (``MATRIX``), or registered by an installed package under
the entry-point group ``rankbias.scoring.hypotheses`` (``load_entry_points``); see
examples/my_hypothesis.py.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
from pathlib import Path

from rankbias.scoring.hypotheses import (andriushchenko, galanti, huh, kobayashi, kuzborskij, lejegelka, nulls,
                                         task_rank, xie, zangrando)
from rankbias.scoring.hypotheses.base import Check, Criterion, Predictor, RunSet, Trend, effect

# every module of claims, in the order their claims are listed
MODULES = (galanti, kuzborskij, zangrando, lejegelka, nulls, task_rank, kobayashi, andriushchenko, xie, huh)
PAPERS = MODULES  # (an older name)
VERSIONS = (1, 2, 3)
CURRENT = 2
GROUP = "rankbias.hypotheses"

__all__ = ["BASELINES", "CURRENT", "Check", "Criterion", "HypothesisError", "Predictor", "RunSet", "Trend", "VERSIONS",
           "claims", "consistency", "effect", "introduced", "load_entry_points", "load_file", "load_user"]


def _forms() -> list:
    """Every form of every claim: each module's version-1 ``HYPOTHESES``, the forms later
    versions gave them (``AMENDED``) and the claims they added (``ADDED``), in module order."""
    return [h for m in MODULES for part in ("HYPOTHESES", "AMENDED", "ADDED") for h in getattr(m, part, ())]


def claims(version: int = CURRENT) -> list:
    """The hypotheses and consistency checks claims version ``version`` scores, in order: each
    claim in the order it first appeared, in its latest form of a version <= ``version``."""
    if version not in VERSIONS:
        raise ValueError(f"claims version must be one of {list(VERSIONS)}; got {version!r}")
    forms = [h for h in _forms() if h.version <= version]
    order = list(dict.fromkeys(h.id for h in forms))
    return [max((h for h in forms if h.id == cid), key=lambda h: h.version) for cid in order]


def consistency(version: int = CURRENT) -> list:
    """The consistency checks of claims version ``version``: identities between metrics, shown
    apart from the claims and never counted as evidence for a paper."""
    return [h for h in claims(version) if h.kind == "consistency"]


def introduced(claim_id: str) -> int | None:
    """The claims version that first has ``claim_id``; None for an id no version has."""
    versions = [h.version for h in _forms() if h.id == claim_id]
    return min(versions) if versions else None


def sweeps() -> list:
    """The report plots the papers' modules declare (``SWEEPS``, ``base.Sweep``), in module order."""
    return [s for module in MODULES for s in getattr(module, "SWEEPS", ())]


def scatters() -> list:
    """The report scatter plots the papers' modules declare (``SCATTERS``, ``base.Scatter``)."""
    return [s for module in MODULES for s in getattr(module, "SCATTERS", ())]


def spectra_plots() -> list[tuple[str, str]]:
    """(file, scenario) of each spectra-over-training plot the papers' modules declare (``SPECTRA``)."""
    return [s for module in MODULES for s in getattr(module, "SPECTRA", ())]


def history(claim_id: str) -> list:
    """Every version of one claim, oldest first (one entry per version that changed it)."""
    return sorted((h for h in _forms() if h.id == claim_id), key=lambda h: h.version)


BASELINES = claims(CURRENT)


def unknown_variants(scenario_ids, version: int = CURRENT) -> list[tuple[str, str, list[str]]]:
    """Scenario ids that read as a variant of a claim (``<paper>.<claim>.<name>`` with a
    baseline paper key) whose claim ``version`` does not have: (id, the claim it names,
    close claim ids)."""
    ids = [h.id for h in claims(version)]
    papers = {h.id.split(".")[0] for v in VERSIONS for h in claims(v)}
    out = []
    for sid in scenario_ids:
        parts = sid.split(".")
        if len(parts) >= 3 and parts[0] in papers and not any(sid == c or sid.startswith(c + ".") for c in ids):
            base = ".".join(parts[:2])
            out.append((sid, base, difflib.get_close_matches(base, ids, n=3)))
    return out


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
    return load_user(path)[0]


def load_user(path: str | Path) -> tuple[list, str | None]:
    """(hypotheses, needed) of the Python file ``path``: its module-level ``Trend`` /
    ``Predictor`` objects as ``load_file`` finds them, and its ``MATRIX``, TOML text of
    the scenarios they need beyond the matrix they are compared on (None if it has none)."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise HypothesisError(f"hypothesis file {path} must be an existing .py file. Pass the path of one.")
    spec = importlib.util.spec_from_file_location(f"rankbias_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: report it as the file's error (its traceback under --debug)
        raise HypothesisError(f"hypothesis file {path} raised {type(err).__name__}: {err}. Fix the file.") from err
    found = _collect(vars(module).values())
    if not found:
        raise HypothesisError(
            f"hypothesis file {path} defines no Trend or Predictor at module level. "
            f"Define one, e.g. `mine = Trend(...)` (see examples/my_hypothesis.py)."
        )
    for h in found:
        clash = _baseline_clash(h.id)
        if clash:
            raise HypothesisError(f"hypothesis file {path}: {type(h).__name__} id {h.id!r} is {clash}. Give yours an "
                                  f"id of your own, e.g. 'mine.{h.id.split('.', 1)[-1]}'.")
    needed = getattr(module, "MATRIX", None)
    if needed is not None and not isinstance(needed, str):
        raise HypothesisError(f"hypothesis file {path}: MATRIX must be TOML text of [[scenario]] tables; got a "
                              f"{type(needed).__name__}. Write it as a string, e.g. MATRIX = \"\"\"[[scenario]] ...\"\"\".")
    return found, needed


def _baseline_clash(hid: str) -> str:
    """What a baseline id ``hid`` already names (a consistency check or a claim of some version), or ''."""
    forms = [h for h in _forms() if h.id == hid]
    if not forms:
        return ""
    if any(h.kind == "consistency" for h in forms):
        version = min(h.version for h in forms if h.kind == "consistency")
        return f"a consistency check of claims version {version} (an identity between metrics), not a claim"
    return f"the id of a baseline claim (claims version {min(h.version for h in forms)})"


def load_entry_points() -> list:
    """Hypotheses registered by installed packages under the entry-point group ``rankbias.scoring.hypotheses``:
    each entry point names a Trend, a Predictor, or a list of them."""
    found = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        try:
            found.extend(_collect([ep.load()]))
        except Exception as err:
            raise HypothesisError(f"entry point {ep.name} = {ep.value} failed to load: {err}. "
                                  f"Fix or uninstall the package that registers it.") from err
    return found
