"""What the commands show: the progress bar of training and the scorecard tables.

Shared by the matrix and scoring commands, so neither imports the other; the
work itself is ``rankbias.scoring.benchmark``'s.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import time

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.traceback import Traceback

from rankbias.cli.app import DEBUG, console, err_console, fail

VERDICT_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "scored": "cyan", "not applicable": "blue",
                 "not run": "dim"}


def progress_line(label: str, done: int, total: int, trained: int, diverged: int, failed: int,
                  elapsed: float, worked: float | None = None) -> str:
    """One plain line of progress: done / total runs, what this call trained, the diverged and
    failed counts, the rate of this call's training (runs per minute) and the ETA (``eta``)."""
    rate = trained / elapsed * 60 if elapsed > 0 and trained else 0.0
    return (f"{label}: {done}/{total} runs done ({trained} trained here, diverged {diverged}, failed {failed}), "
            f"{rate:.2f} runs/min, ETA {eta(elapsed, worked, total - done, rate)}")


def eta(elapsed: float, worked: float | None, left: int = 0, rate: float = 0.0) -> str:
    """Time left: elapsed x (1 - worked) / worked, where ``worked`` is the share of this call's
    planned work stored so far (``experiments.config.group_work``: runs differ in cost by orders of
    magnitude, so the run rate misleads while the longest groups, started first, train);
    without it, ``left`` runs at ``rate`` runs per minute; "unknown" before anything is done."""
    if worked is not None and worked > 0 and elapsed > 0:
        return str(datetime.timedelta(seconds=round(elapsed * (1 - worked) / worked)))
    if worked is None and rate > 0:
        return str(datetime.timedelta(seconds=round(left / rate * 60)))
    return "unknown"


class _Work:
    """The share of a call's planned work done, from ``runner.Progress.planned``'s estimates."""

    def __init__(self):
        self.left: dict[str, float] = {}
        self.total = self.done = 0.0  # total stays 0 until planned: no share

    def plan(self, work: dict[str, float]) -> None:
        self.left, self.total, self.done = dict(work), sum(work.values()), 0.0

    def stored(self, name: str) -> None:
        self.done += self.left.pop(name, 0.0)

    @property
    def share(self) -> float | None:
        return self.done / self.total if self.total > 0 else None


def _stamped(text: str) -> None:
    now = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
    console.print(f"{now} {escape(text)}", highlight=False, soft_wrap=True)


BIG_MATRIX = 2**22  # entries (2048 x 2048) from which measuring one matrix takes seconds: shown as it runs


@contextlib.contextmanager
def measuring(name: str, shape: tuple[int, ...], index: int, count: int):
    """Around measuring matrix ``index`` of ``count`` in a weight file: for one of ``BIG_MATRIX``
    entries or more, a spinner on a terminal, or timestamped start and end lines in a log."""
    if math.prod(shape) < BIG_MATRIX:
        yield
        return
    text = f"measuring {name} ({'x'.join(map(str, shape))}), matrix {index} of {count}"
    if console.is_terminal:
        with console.status(escape(text)):
            yield
        return
    _stamped(text)
    started = time.monotonic()
    yield
    _stamped(f"measured {name} in {time.monotonic() - started:.1f} s")


@contextlib.contextmanager
def progress_bar(label: str, quiet: bool = False, plain: bool = False):
    """Progress of training as ``runner.Progress`` hooks: a rich bar with ETA and diverged /
    failed counts on a terminal; where the output is not a terminal (a log file, a batch
    job) or with ``plain``, one timestamped line per ensemble group stored
    (``progress_line``); nothing with ``quiet``."""
    from rankbias.experiments.runner import Progress as Hooks

    if quiet:
        yield Hooks()
    elif plain or not console.is_terminal:
        yield _line_hooks(label)
    else:
        with _bar_hooks(label) as hooks:
            yield hooks


def _line_hooks(label: str):
    from rankbias.experiments.runner import Progress as Hooks

    state = {"total": 0, "done": 0, "trained": 0, "diverged": 0, "failed": 0, "since": time.monotonic()}
    work = _Work()

    def start(total: int, done: int) -> None:
        state.update(total=total, done=done, since=time.monotonic())
        _stamped(f"{label}: {total} runs, {done} already stored, {total - done} to train")

    def group(records) -> None:
        for rec in records:
            state["done"] += 1
            state["trained"] += 1
            work.stored(rec.name)
            if rec.status in ("diverged", "failed"):
                state[rec.status] += 1
        _stamped(progress_line(label, state["done"], state["total"], state["trained"], state["diverged"],
                               state["failed"], time.monotonic() - state["since"], work.share))

    return Hooks(start=start, group=group, scoring=lambda: _stamped("scoring (bootstrap over seeds)"),
                 planned=work.plan)


@contextlib.contextmanager
def _bar_hooks(label: str):
    from rankbias.experiments.runner import Progress as Hooks

    counts = {"diverged": 0, "failed": 0}
    work, since = _Work(), time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("diverged {task.fields[diverged]} failed {task.fields[failed]}"),
               TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"))
    with Progress(*columns, console=console) as bar:
        task: dict = {}

        def start(total: int, done: int) -> None:
            task["id"] = bar.add_task(label, total=total, completed=done, eta="unknown", **counts)

        def done(rec) -> None:
            if rec.status in counts:
                counts[rec.status] += 1
            work.stored(rec.name)
            bar.update(task["id"], advance=1, eta=eta(time.monotonic() - since, work.share), **counts)

        def scoring() -> None:
            if "id" in task:
                bar.update(task["id"], description="scoring (bootstrap over seeds)")

        yield Hooks(start, done, scoring, planned=work.plan)


def trained(plan, store) -> None:
    """The line after training: what was trained, already stored, failed before."""
    console.print(f"{len(plan.todo)} runs trained, {plan.done} already stored, "
                  f"{plan.failed_before} failed before (rerun with --retry-failed); store: {store.path}")


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.3g}"


def _statistics(v, every: bool = False) -> str:
    """A verdict's first criterion (a predictor: both its scores; ``every``: all its statistics,
    one per line) as value [95% CI] vs threshold."""
    shown = v.statistics if every or v.verdict == "scored" else [v.statistic] if v.statistic else []
    return escape(("\n" if every else "; ").join(f"{s.name}: {_fmt(s.value)} [{_fmt(s.low)}, {_fmt(s.high)}]"
                                                  + (f" {s.op} {_fmt(s.threshold)}" if s.op else "") for s in shown)
                  or "-")


def verdict_table(verdicts, title: str) -> Table:
    """One row per hypothesis: verdict, its first criterion (value [95% CI] vs threshold), effect, runs."""
    from rankbias.scoring.score import GATE

    table = Table(title=title, caption="CI: 95% bootstrap over seeds; horizon: lr*wd*T range; stationary: "
                                       f"wd>0 runs with ||grad L + wd theta|| / ||grad L|| <= {GATE}")
    for col in ("claim", "verdict", "first criterion: value [95% CI]", "effect", "runs/seeds", "horizon", "stat."):
        table.add_column(col, overflow="fold")
    notes = []
    for v in verdicts:
        eff = v.effect if v.verdict != "scored" else None
        style = VERDICT_STYLE.get(v.verdict, "")
        if v.note:
            notes.append(f"{v.id}: {v.note}")
        notes.extend(f"{v.id}: {s.name} is NaN: {s.note}" for s in v.statistics if s.note)
        label = f"{v.id} (control)" if v.control else v.id
        table.add_row(label, f"[{style}]{v.verdict}[/{style}]", _statistics(v), _fmt(eff.value) if eff else "-",
                      f"{v.n}/{len(v.seeds)}", f"{_fmt(v.horizon[0])}-{_fmt(v.horizon[1])}",
                      f"{v.stationary[0]}/{v.stationary[1]}")
    table.notes = notes
    return table


def head_to_head(pairs) -> Table:
    """Each of the researcher's verdicts, every criterion, beside each rival baseline scored on
    the runs both read (``matchup.pairings``), or a line saying they share none."""
    table = Table(title="head to head: your hypotheses and the baselines that read the same scenarios, "
                        "each baseline scored on the runs both read",
                  caption="each reads its own measure: shared runs are not a shared quantity")
    for col in ("hypothesis", "verdict", "criteria or scores: value [95% CI]", "runs/seeds"):
        table.add_column(col, overflow="fold")
    for mine, rows in pairs:
        table.add_row(f"[bold]{escape(mine.id)}[/bold]", _styled(mine.verdict), _statistics(mine, every=True),
                      f"{mine.n}/{len(mine.seeds)}")
        for p in rows:
            if p.verdict is None:
                table.add_row(f"  {escape(p.baseline)}", "-", f"shares no run with yours (yours read {mine.n}, "
                                                              f"it reads {p.alone})", "0")
            else:
                table.add_row(f"  {escape(p.baseline)}", _styled(p.verdict.verdict), _statistics(p.verdict, every=True),
                              f"{p.verdict.n}/{len(p.verdict.seeds)} (of its {p.alone})")
        table.add_section()
    return table


def _styled(verdict: str) -> str:
    style = VERDICT_STYLE.get(verdict, "")
    return f"[{style}]{verdict}[/{style}]" if style else verdict


def show_scorecard(card, out: str = "", pairs: list | None = None, keep_going: bool = False) -> None:
    """Print a ``benchmark.Scorecard`` (with the researcher's hypotheses: the head-to-head view
    of ``pairs``, ``matchup.pairings``), say where its JSON went (``out``), and exit 1 when one
    of the researcher's hypotheses could not be scored, unless ``keep_going``."""
    meta, runs = card.meta, card.runs
    claims = [v for v in card.verdicts if v.kind != "consistency"]
    checks = [v for v in card.verdicts if v.kind == "consistency"]
    if claims:
        table = verdict_table(claims, f"scorecard: claims version {meta['claims_version']}, "
                                      f"{meta['tier']} tier, {len(runs.final)} stored runs")
        console.print(table)
        for note in table.notes:
            console.print(f"  note: {escape(note)}")
    elif not checks:
        console.print(escape(meta["note"]))
    if checks:
        table = verdict_table(checks, "consistency checks: identities between the metrics, not evidence for a paper")
        console.print(table)
        for note in table.notes:
            console.print(f"  note: {escape(note)}")
        for v in checks:
            if v.verdict == "fail":
                err_console.print(f"[bold red]CONSISTENCY CHECK FAILED: {escape(v.id)}[/bold red]: a metric breaks "
                                  f"the identity it must satisfy ({_statistics(v)}); the measurements of these runs "
                                  f"are suspect until it is explained.")
    if pairs:
        console.print(head_to_head(pairs))
    versions = ", ".join(f"{code} ({n} runs)" for code, n in runs.code.value_counts().items())
    console.print(f"runs made by rankbias {escape(versions) or '-'}")
    if card.path is not None:
        kept = f" ({out} holds another matrix's scorecard, kept)" if str(card.path) != str(out) else ""
        console.print(f"scorecard written to {escape(str(card.path))}{escape(kept)}")
    _raise_unscored(card.unscored(), keep_going)


def _raise_unscored(broken, keep_going: bool) -> None:
    """A researcher's hypotheses whose code raised while scoring: their tracebacks under --debug,
    and exit 1 unless ``keep_going`` (they are in the scorecard either way, the error as their note).
    A baseline that cannot read a store's runs keeps the error as its note only."""
    if not broken:
        return
    if DEBUG["on"]:
        for v in broken:
            console.print(f"traceback of {v.id}:")
            console.print(Traceback.from_exception(type(v.error), v.error, v.error.__traceback__))
    message = (f"{len(broken)} hypotheses could not be scored: {', '.join(v.id for v in broken)} (their notes say "
               f"why). Fix them (--debug shows each traceback), or pass --keep-going to exit 0 with the rest scored.")
    if keep_going:
        console.print(f"note: {escape(message)}")
    else:
        fail(message, code=1)
