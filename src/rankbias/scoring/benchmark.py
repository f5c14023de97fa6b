"""The workflow under every front end: plan a matrix, train what the store lacks, score it.

``run_benchmark`` is what ``rankbias run`` does, as one library call (benchopt's
``run_benchmark`` is the model): a script, a notebook, the asv suites and the CLI
all call it, and only the CLI prints.  ``score_matrix`` scores stored runs without
training (``rankbias score``); ``Scorecard.write`` writes the JSON that both
produce.  The rules of ``rankbias compare`` live here too: which of a
researcher's hypotheses apply to a matrix (``unmatched``), which runs they read
(``runs_read``); ``matchup`` sets the baselines beside each.

    >>> from rankbias.scoring.benchmark import run_benchmark
    >>> card = run_benchmark("quick", store="rankbias.sqlite")      # doctest: +SKIP
    >>> [(v.id, v.verdict) for v in card.verdicts][:2]              # doctest: +SKIP
    [('galanti.wd', 'pass'), ('galanti.batch_epochs', 'pass')]
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rankbias.engine.device import Placement, as_placement
from rankbias.experiments.matrix import Matrix, expand
from rankbias.experiments.logged import runnable, with_logged
from rankbias.experiments.runner import Plan, Progress, train_missing
from rankbias.experiments.spec import MatrixError, MatrixSpec, load, resolve
from rankbias.experiments.store import Store
from rankbias.scoring.hypotheses import CURRENT, introduced, unknown_variants
from rankbias.scoring.hypotheses import claims as claims_of
from rankbias.scoring.score import N_BOOT, Runs, Verdict, applies_to, header, scorecard


@dataclass
class Scorecard:
    """What scoring a matrix gave: the verdicts in order, the runs they read, the metadata
    header (``score.header``), and the plan of the training before it, if any."""

    verdicts: list[Verdict]
    runs: Runs
    meta: dict
    plan: Plan | None = None
    extra: list = field(default_factory=list)  # the researcher's hypotheses among the verdicts
    path: Path | None = None  # where ``write`` put the JSON, if it did

    def to_dict(self) -> dict:
        return {"meta": self.meta, "verdicts": [v.to_dict() for v in self.verdicts]}

    def write(self, path: str | Path) -> Path:
        """The scorecard as JSON, {"meta": header, "verdicts": [...]}, at ``destination(path)``
        (``path`` unless that keeps another scorecard); returns where it went."""
        path = destination(path, self.meta)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float))
        self.path = path
        return path

    def unscored(self) -> list[Verdict]:
        """Verdicts of the researcher's hypotheses whose code raised while scoring."""
        mine = {h.id for h in self.extra}
        return [v for v in self.verdicts if v.id.split("[")[0] in mine and v.error is not None]


def destination(path: str | Path, meta: dict) -> Path:
    """Where a scorecard asked to go to ``path`` goes: ``path``, unless the file there is the
    scorecard of another matrix, tier or claims version (or no scorecard at all), which is
    kept; then beside it, named by all three: ``scorecard-<matrix>-<tier>-v<version>.json``
    for ``scorecard.json``."""
    path = Path(path)
    ours = (meta.get("matrix"), meta.get("tier"), meta.get("claims_version"))
    try:
        old = json.loads(path.read_text())["meta"]
        if (old.get("matrix"), old.get("tier"), old.get("claims_version")) == ours:
            return path
    except FileNotFoundError:
        return path
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not a scorecard: kept too
    matrix = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(ours[0]) or "matrix").stem) or "matrix"
    return path.with_name(f"{path.stem}-{matrix}-{ours[1]}-v{ours[2]}{path.suffix or '.json'}")


def unknown_claims(claims: list[str], version: int) -> list[str]:
    """The ids of ``claims`` that claims version ``version`` does not have."""
    known = {h.id for h in claims_of(version)}
    return [c for c in claims if c not in known]


def score_matrix(matrix: Matrix, store: Store, extra: list | None = None, *, n_boot: int = 0,
                 claims: list[str] | None = None, version: int = CURRENT, target: str = "",
                 processes: int = 1) -> Scorecard:
    """Score the claims of ``version`` that read ``matrix`` (only those in ``claims``, if given)
    and the researcher's ``extra`` hypotheses on the runs ``store`` holds (``n_boot``
    bootstrap resamples over seeds; 0: ``score.N_BOOT``), on ``processes`` local processes
    (1: this one).  Raises ``ValueError`` naming an unknown claim id or a negative ``n_boot``."""
    if n_boot < 0:
        raise ValueError(f"'n_boot' must be an int >= 0 (0: the default {N_BOOT}); got {n_boot}.")
    unknown = unknown_claims(claims or [], version)
    later = [(c, introduced(c)) for c in unknown if (introduced(c) or 0) > version]
    if later:
        raise ValueError(f"'--claim' {later[0][0]} is a claim of claims version {later[0][1]}, not of version "
                         f"{version}. Pass --claims-version {later[0][1]}.")
    if unknown:
        known = ", ".join(h.id for h in claims_of(version))
        raise ValueError(f"unknown claim ids {unknown} for '--claim'; known: {known}. Pick from those.")
    extra = list(extra or [])
    matrix = with_logged(matrix, store)  # the runs of users' own models, beside the matrix's
    runs = Runs(store, matrix)
    baselines = [h for h in baselines_of(matrix, version) if not claims or h.id in claims]
    verdicts = scorecard([*baselines, *extra], runs, n_boot or N_BOOT, version=version, processes=processes)
    meta = header(runs, verdicts, version, target, matrix.tier)
    if not verdicts:
        meta["note"] = (f"nothing to score: no scenario of {target or 'this matrix'} is a claim of claims version "
                        f"{version} or a variant of one (<claim id>.<name>). Score your own hypotheses on these runs "
                        f"with `rankbias compare FILE --matrix {target or 'MATRIX'}`, or list the claims with "
                        f"`rankbias claims`.")
    return Scorecard(verdicts, runs, meta, extra=extra)


def baselines_of(matrix: Matrix, version: int = CURRENT) -> list:
    """The claims of ``version`` that read some scenario of ``matrix``."""
    return [h for h in claims_of(version) if applies_to(h, matrix)]


def unmatched(mine: list, matrix: Matrix) -> list[str]:
    """Ids of the hypotheses in ``mine`` that read no scenario of ``matrix``."""
    return [h.id for h in mine if not set(h.scenarios) & set(matrix.members)]


def runs_read(mine: list, matrix: Matrix) -> Matrix:
    """The part of ``matrix`` that the hypotheses in ``mine`` read (what ``compare`` trains)."""
    read = {sid for h in mine for sid in h.scenarios if sid in matrix.members}
    return runnable(Matrix(matrix.tier, {name: matrix.runs[name] for sid in read for name in matrix.members[sid]}))


def variant_problems(spec: MatrixSpec, version: int, source) -> list[str]:
    """One line for every scenario of ``spec`` that reads as a variant (<claim>.<name>) of a
    claim that claims version ``version`` lacks, with a fix."""
    return [f"{source}: scenario {sid!r} key 'id': a scenario named <claim>.<name> is a variant of that claim, "
            f"and claims version {version} has no claim {base!r}. Got {sid!r}. Fix: "
            + (f"name an existing claim before the variant's name, e.g. {close[0]!r}"
               if close else "use a prefix of your own, e.g. 'mine." + sid.split(".", 1)[1] + "'") + "."
            for sid, base, close in unknown_variants([s.id for s in spec.scenario], version)]


def load_matrix(target: str = "quick", tier: str = "quick", version: int = CURRENT) -> Matrix:
    """The expanded matrix of ``target``: a tier of the built-in claims matrix of ``version``
    (quick, standard, full) or a matrix TOML file read at ``tier``; raises
    ``spec.MatrixError`` for a bad file or a variant of a claim ``version`` lacks."""
    path, tier = resolve(target, tier, version)
    spec = load(path)
    problems = variant_problems(spec, version, path)
    if problems:
        raise MatrixError("\n".join(problems))
    return expand(spec, tier, str(path))


def run_benchmark(target: str | Matrix = "quick", store: str | Path | Store = "rankbias.sqlite", *,
                  tier: str = "quick", version: int = CURRENT, device: str | Placement = "auto",
                  processes: int = 0, scheduler: str = "", retry_failed: bool = False, n_boot: int = 0,
                  progress: Progress | None = None, label: str | None = None,
                  scorecard_path: str | Path | None = None) -> Scorecard:
    """Train what a store lacks of a matrix, then score every claim of a claims version on it.

    What ``rankbias run`` does.  Training resumes: stored runs are never redone
    (failed ones only with ``retry_failed``), and each ensemble group lands in the
    store in one transaction.

    Parameters
    ----------
    target : str or Matrix
        A tier of the built-in claims matrix (quick, standard, full), the path of
        a matrix TOML file (read at ``tier``), or an expanded ``Matrix``.
    store : str, Path or Store
        The SQLite store, created if missing.
    tier : str
        The tier of a matrix file.
    version : int
        The claims version whose matrix and rules are used.
    device : str or Placement
        auto, cpu, cuda or cuda:N, placed once (``device.place``).
    processes : int
        Local workers: 0 for one per core (or per GPU), 1 for this process.  Scoring
        then runs on as many processes (0: one per core, at most 8).
    scheduler : str
        The address of a Dask scheduler to train on instead, e.g. tcp://HOST:8786.
    retry_failed : bool
        Train the runs stored as failed again.
    n_boot : int
        Bootstrap resamples over seeds (0: ``score.N_BOOT``).
    progress : runner.Progress or None
        Hooks: the counts at the start, each finished run, the start of scoring.
    label : str or None
        What the scorecard's header calls the matrix (default: ``target`` if a name).
    scorecard_path : str, Path or None
        Where to write the scorecard's JSON, if anywhere.

    Returns
    -------
    Scorecard
        The verdicts, the runs they read, the header, and ``plan``: what was
        trained and what the store already held.
    """
    matrix = target if isinstance(target, Matrix) else load_matrix(target, tier, version)
    placement = as_placement(device, scheduler=bool(scheduler))
    store = store if isinstance(store, Store) else Store(store)
    progress = progress or Progress()
    plan = train_missing(matrix, store, placement, retry_failed=retry_failed, processes=processes,
                         scheduler=scheduler, progress=progress)
    progress.scoring()
    label = label if label is not None else target if isinstance(target, str) else ""
    scorers = 1 if scheduler else processes or min(8, os.cpu_count() or 1)  # as many as trained
    card = score_matrix(matrix, store, n_boot=n_boot, version=version, target=label, processes=scorers)
    card.plan = plan
    if scorecard_path:
        card.write(scorecard_path)
    return card
