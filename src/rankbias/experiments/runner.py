"""Run a matrix tier into a store: what is missing only, on one of three executors.

``run_matrix`` skips every run the store already holds as done or diverged
(a changed config has another canonical name, so stale rows are never
reused), reruns failed ones only when asked, and ships the rest as groups
(``config.group_configs``: ensembles where runs differ only in lr, wd and seed)
to an executor:

- ``"local"`` (default): in this process, ``execute.train_group`` in a loop;
- ``"process:N"``: a local pool of N spawned processes (``concurrent.futures``),
  each single-threaded so N workers share N cores without oversubscription; the
  groups in flight when a worker dies are retried one by one (``_run_pool``);
  with ``device="cuda"`` on a machine with several GPUs, worker i trains on
  GPU i mod (their number) (``device.Placement.worker``);
- ``"tcp://HOST:PORT"`` or a ``distributed.Client``: an existing Dask cluster
  (the ``[dask]`` extra), each group a task retried up to ``retries`` times if
  its worker dies.  A worker resolves ``device`` itself: with ``cuda``, each
  worker of a dask-cuda cluster (one GPU visible per worker) trains on its own GPU.

Workers only compute; the client is the single writer of the store, one
transaction per group as its results arrive, so concurrent workers cannot lose or
double rows and an interrupted matrix resumes where it stopped.  A group that
keeps failing is stored as failed with its error and the rest goes on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from rankbias.engine.device import Placement, as_placement
from rankbias.experiments.config import RunConfig, group_configs, group_work
from rankbias.experiments.execute import blank_record, train_group
from rankbias.experiments.matrix import Matrix
from rankbias.experiments.store import RunRecord, Store


@dataclass
class Plan:
    """The runs of a matrix split by what the store already holds."""

    todo: list[RunConfig]
    done: int
    failed_before: int


class ExecutorError(RuntimeError):
    """An executor that cannot be used (bad spec, unreachable scheduler)."""


def plan(matrix: Matrix, store: Store, retry_failed: bool = False) -> Plan:
    todo, done, failed = [], 0, 0
    for name, config in matrix.runs.items():
        status = store.status(name)
        if status in ("done", "diverged"):
            done += 1
        elif status == "failed" and not retry_failed:
            failed += 1
        else:
            todo.append(config)
    return Plan(todo, done, failed)


def _failed(group: list[RunConfig], err: BaseException) -> list[RunRecord]:
    """Records that say a whole group failed, and why."""
    records = [blank_record(c, time.time()) for c in group]
    for rec in records:
        rec.error = f"{type(err).__name__}: {err}"
    return records


_worker_device = "auto"  # a pool worker's device, set by _start_worker


def _start_worker(placement: Placement, counter) -> None:
    """A pool worker's setup: one torch thread, and its device (``Placement.worker``)
    from its place in the pool (``counter``, a shared int)."""
    import torch

    global _worker_device
    torch.set_num_threads(1)
    with counter.get_lock():
        index, counter.value = counter.value, counter.value + 1
    _worker_device = placement.worker(index)


def _in_worker(task, group: list[RunConfig]) -> list[RunRecord]:
    return task(group, _worker_device)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children():
    """Set the thread-count variables to 1 while worker processes are spawned, then restore them."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: "1" for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _groups(todo: list[RunConfig]) -> list[list[RunConfig]]:
    """The ensemble groups of ``todo``, the most work first (``config.group_work``): a long
    group started last would leave the other workers idle at the end (Graham's longest-
    processing-time rule)."""
    groups = [[todo[i] for i in members] for members in group_configs(todo)]
    return sorted(groups, key=lambda group: -group_work(group))


def run_matrix(matrix: Matrix, store: Store, retry_failed: bool = False,
               on_done: Callable[[RunRecord], None] | None = None, executor="local", retries: int = 2,
               task: Callable = train_group, device: str | Placement = "auto") -> Plan:
    """Train what ``store`` lacks of ``matrix`` (``plan``) with ``run_configs``; returns the plan it followed."""
    steps = plan(matrix, store, retry_failed)
    run_configs(steps.todo, store, on_done, executor, retries, task, device)
    return steps


def run_configs(configs: list[RunConfig], store: Store, on_done: Callable[[RunRecord], None] | None = None,
                executor="local", retries: int = 2, task: Callable = train_group,
                device: str | Placement = "auto", on_group: Callable[[list[RunRecord]], None] | None = None) -> None:
    """Train ``configs`` on ``executor`` and ``device`` (a ``device.Placement``, or a name that
    ``device.place`` resolves once here) as ensembles where they share an ``ensemble_key``;
    each group's records are written to ``store`` in one transaction as it finishes, then
    ``on_done(record)`` is called per run and ``on_group(records)`` once per group.
    ``task(group, device)`` is the unit of work shipped per group (``execute.train_group``;
    tests pass others)."""
    local = executor == "local" or (isinstance(executor, str) and executor.startswith("process:"))
    placement = as_placement(device, scheduler=not local)

    def deliver(records: list[RunRecord]) -> None:
        store.write_many(records)  # a group's runs land in one transaction
        for rec in records:
            if on_done is not None:
                on_done(rec)
        if on_group is not None:
            on_group(records)

    groups = _groups(configs)
    if executor == "local":
        for group in groups:
            deliver(task(group, placement.worker(0)))
    elif local:
        _run_pool(_workers(executor), groups, deliver, retries, task, placement)
    else:
        _run_dask(executor, groups, deliver, retries, task, placement.name)


def run_one(config: RunConfig, store: Store | None = None, device: str | Placement = "auto") -> RunRecord:
    """Train ``config`` alone on ``device`` in this process and write it to ``store`` (if given);
    returns its record."""
    placement = as_placement(device)
    rec = train_group([config], placement.worker(0))[0]
    if store is not None:
        store.write(rec)
    return rec


def _run_pool(workers: int, groups, deliver, retries: int, task, device: Placement) -> None:
    """Groups on a pool of ``workers`` spawned processes.  A worker that dies breaks the
    pool, and the death cannot be pinned on one of the groups then in flight: they
    become suspects, the rest go on in a fresh pool, and each suspect then runs alone
    in a one-process pool, where a death is its own.  A suspect whose worker dies
    ``retries + 1`` times alone is stored as failed."""
    queue, suspects = list(range(len(groups))), []
    while queue:
        queue, in_flight = _pool_pass(workers, queue, groups, deliver, task, device)
        suspects += in_flight
    for i in suspects:
        for _ in range(retries + 1):
            if not _pool_pass(1, [i], groups, deliver, task, device)[1]:
                break
        else:
            deliver(_failed(groups[i], RuntimeError(f"its worker process died {retries + 1} times running it alone")))


def _pool_pass(workers: int, queue: list[int], groups, deliver, task, device: Placement) -> tuple[list[int], list[int]]:
    """Run ``queue`` (group indices) on a fresh pool, at most one group in flight per worker,
    until it is empty or a worker dies; returns (groups never started, groups in flight
    when the pool broke)."""
    queue = list(queue)
    # spawn, not fork: forking a process that has run OpenMP regions (Numba, torch) kills the child.
    # Each worker gets one thread in every pool (torch, OpenMP, BLAS, Numba) through its
    # environment, read before its imports: spinning idle pool threads of N workers on N
    # cores slowed training 20x in a measurement (189 s vs 7.9 s for one ensemble).
    context = multiprocessing.get_context("spawn")
    with _single_threaded_children(), concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(device, context.Value("i", 0))) as pool:
        running: dict = {}
        broken: list[int] = []
        while (queue or running) and not broken:
            while queue and len(running) < workers:
                i = queue.pop(0)
                running[pool.submit(_in_worker, task, groups[i])] = i
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                try:
                    deliver(future.result())
                except BrokenProcessPool:  # a worker died while this group was in flight
                    broken.append(i)
                except Exception as err:  # the task raised in its worker
                    deliver(_failed(groups[i], err))
        return queue, broken + list(running.values())


def _workers(spec: str) -> int:
    try:
        workers = int(spec.split(":", 1)[1])
    except ValueError:
        workers = 0
    if workers < 1:
        raise ExecutorError(f"executor {spec!r} must be 'process:N' with N >= 1, e.g. 'process:2'.")
    return workers


def _run_dask(executor, groups, deliver, retries: int, task, device: str) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ExecutorError(
            "a Dask scheduler needs dask.distributed: pip install 'rankbias[dask]', or run without --scheduler."
        ) from None
    own = not isinstance(executor, Client)
    if own:
        try:
            client = Client(executor, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {executor!r}: {err}. Check the address "
                f"(tcp://HOST:8786) and that the scheduler is running, or run without --scheduler."
            ) from None
    else:
        client = executor
    try:
        futures = {client.submit(task, g, device, retries=retries, pure=False): g for g in groups}
        for future in as_completed(list(futures)):
            try:
                deliver(future.result())
            except Exception as err:  # the group failed on every try
                deliver(_failed(futures[future], err))
    finally:
        if own:
            client.close()


@dataclass
class Progress:
    """Hooks a caller gives ``train_missing`` to show progress: ``start(total, done)`` once
    with the matrix's run count and how many the store holds, ``planned(work)`` once with
    the estimated work of each run to train {name: its group's ``config.group_work`` shared
    evenly by its runs}, ``done(record)`` per
    trained run, ``group(records)`` once per ensemble group stored; ``scoring()`` when a
    workflow moves on to scoring (``benchmark.run_benchmark``)."""

    start: Callable[[int, int], None] = lambda total, done: None
    done: Callable[[RunRecord], None] = lambda record: None
    scoring: Callable[[], None] = lambda: None
    group: Callable[[list[RunRecord]], None] = lambda records: None
    planned: Callable[[dict[str, float]], None] = lambda work: None


def train_missing(matrix: Matrix, store: Store, placement: Placement, *, retry_failed: bool = False,
                  processes: int = 0, scheduler: str = "", progress: Progress | None = None) -> Plan:
    """Train the runs of ``matrix`` that ``store`` lacks on ``placement``: in ``processes`` local
    workers (0: ``placement.workers``, one per core or per GPU; 1: in this process) or on
    the Dask ``scheduler`` at that address; returns the plan it followed.  What is stored
    is never redone, so an interrupted call resumes.  Raises ``ExecutorError`` for a bad
    executor, ``store.StoreBusy`` while another process trains into ``store``, and
    ``ValueError`` for ``processes`` < 0."""
    if processes < 0:
        raise ValueError(f"'processes' must be an int >= 0 (0: one per core, 1: in this process); got {processes}.")
    progress = progress or Progress()
    with store.writing():  # one trainer per store (Store.writing); the plan is made under the lock
        before = plan(matrix, store, retry_failed)
        progress.start(len(matrix.runs), before.done)
        progress.planned({config.name(): group_work(group) / len(group) for group in _groups(before.todo)
                          for config in group})
        workers = processes or placement.workers
        executor = scheduler or (f"process:{workers}" if workers > 1 else "local")
        run_configs(before.todo, store, progress.done, executor, device=placement, on_group=progress.group)
    return before
