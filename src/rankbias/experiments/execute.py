"""Train one group of runs and return their records: the unit of work executors ship.

``train_group`` trains runs that share an ``ensemble_key`` as one ensemble
(``ensemble.train_ensemble``, the engine's one GD / SGD trainer: a single run is
an ensemble of one) and gradient-flow runs one by one (``dynamics.flow``), on
the torch device it is given; it measures at every log point (``metrics.Tracker``)
and returns one ``store.RunRecord`` per run.  It writes nothing: the runner is
the only writer of the store.  A run that raises is recorded as failed with its
error instead of propagating, so a matrix goes on.  Data, weights and metrics
stay on the device; only the rows stored at log points come back.

A run on a ``subspace_pair`` data set trains a twin, from the same init, on the
partner task, and records at its last step how the merged net
(``geometry.merged``: every parameter summed) does on both tasks: rows
``merge_ratio`` (max over the tasks of merged / own train loss),
``merge_acc_drop`` (max of own - merged train accuracy), ``merged_acc`` and
``own_acc`` (mean merged / own train accuracy), Kuzborskij & Abbasi Yadkori 2025.
"""

from __future__ import annotations

import contextlib
import time

import torch

from rankbias.engine import ensemble, geometry, probes
from rankbias.engine.allocator import retain_freed_memory
from rankbias.engine.data import Dataset, make_data
from rankbias.engine.device import resolve
from rankbias.engine.dynamics import as_float64, flow
from rankbias.engine.losses import accuracy, loss_value
from rankbias.engine.metrics import Tracker, stationarity
from rankbias.engine.functional import Stacked
from rankbias.engine.models import build_model
from rankbias.engine.nets import MLP_ARCHS, build
from rankbias.experiments.config import RunConfig, check_fit
from rankbias.experiments.provenance import provenance
from rankbias.experiments.store import RunRecord


def blank_record(config: RunConfig, started: float, device: torch.device | None = None) -> RunRecord:
    """A record for ``config`` (to train on ``device``) that reads "failed" until a result fills it in."""
    return RunRecord(config.name(), config.hash(), config.flat(), "failed", provenance(device), started, started)


def train_group(group: list[RunConfig], device="auto") -> list[RunRecord]:
    """Train one group (one run, or runs that share an ``ensemble_key``) on ``device`` (a
    ``torch.device``, or a name that ``device.resolve`` resolves here, as a Dask worker
    does) and return its records without touching any store.

    A group that runs out of GPU memory is split in half and retried; a single run that
    still does not fit is recorded as failed with a line saying how to make it fit."""
    where = device if isinstance(device, torch.device) else resolve(device)
    retain_freed_memory()  # gradient flow too (engine.allocator)
    try:
        if group[0].dynamics.kind == "gf":
            return [_train_flow(config, where) for config in group]
        return _train_ensemble(group, where)
    except torch.OutOfMemoryError:
        if where.type == "cuda":
            torch.cuda.empty_cache()
        if len(group) == 1:
            rec = blank_record(group[0], time.time(), where)
            rec.error = (f"OutOfMemoryError: this run alone does not fit in the memory of {where}; "
                         f"train it with --device cpu, or with smaller widths or data")
            return [rec]
        half = len(group) // 2
        return train_group(group[:half], where) + train_group(group[half:], where)


@contextlib.contextmanager
def _recording(recs: list[RunRecord]):
    """Around a group's training: an exception marks each of ``recs`` failed with its error
    (recorded, not raised: a matrix goes on past a failed run), except running out of GPU
    memory, which ``train_group`` handles; each record's finish time is set on the way out."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except Exception as err:
        for rec in recs:
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
    for rec in recs:
        rec.finished = time.time()


def _train_flow(config: RunConfig, device: torch.device) -> RunRecord:
    """A gradient-flow run (``dynamics.flow``, float64 on ``device``), measured and recorded."""
    rec = blank_record(config, time.time(), device)
    with _recording([rec]):
        check_fit(config)
        dataset = make_data(config.data).to(device)
        net = build_model(config.net, config.seed, dataset.shape, device)
        spec = config.dynamics
        if config.net.arch in MLP_ARCHS:
            tracker = Tracker(config.net, spec.loss, spec.wd)

            def on_log(at, model):
                _record_point(rec, at, *tracker(*geometry.stacked(model), dataset)[0])
        else:
            modules = probes.ModuleTracker(spec.loss, [spec.wd])

            def on_log(at, model):
                _record_point(rec, at, *modules(Stacked([model], config.net, dataset.shape), dataset)[0])

        _record_result(rec, flow(net, dataset, spec, on_log=on_log))
        if config.net.arch not in MLP_ARCHS:
            rec.solver = {**rec.solver, "layers": probes.layer_names(config.net, dataset)}
        partner = dataset.extras.get("partner")
        if partner is not None and rec.status == "done":  # the twin on the partner task, from the same init
            twin = build(config.net, config.seed, device)
            _merge_twins([rec], [spec.flow_time], [net], [flow(twin, partner, spec)], [twin], dataset, partner,
                         spec.loss)
    return rec


def _train_ensemble(group: list[RunConfig], device: torch.device) -> list[RunRecord]:
    """Train ``group`` (runs sharing an ``ensemble_key``) as one ensemble on ``device``;
    see ``train_group``."""
    started = time.time()
    recs = [blank_record(c, started, device) for c in group]
    with _recording(recs):
        check_fit(group[0])
        dataset = make_data(group[0].data).to(device)
        if group[0].dynamics.dtype == "float64":
            dataset = as_float64(dataset)
        wds = [c.dynamics.wd for c in group]
        specs = [c.dynamics for c in group]
        if not ensemble.written_out(group[0].net, specs):
            _train_modules(group, recs, dataset, specs)
            return recs
        tracker = Tracker(group[0].net, group[0].dynamics.loss, wds)
        final: dict = {}

        def on_log(at, ens, alive):
            final["ensemble"] = ens  # its weights at the end are the runs' final ones
            weights, biases = ens.effective()
            # a diverged member's weights may be huge or non-finite: zero them so the
            # batched measurements of the others go on (its rows are dropped below)
            dead = torch.ones(len(group), dtype=torch.bool, device=device)
            dead[alive] = False
            weights = [w.masked_fill(dead[:, None, None], 0.0) for w in weights]
            for r, (rows, spectra) in enumerate(tracker(weights, biases, dataset)):
                if r in alive:
                    _record_point(recs[r], at, rows, spectra)

        results = ensemble.train_ensemble(group[0].net, dataset, specs, on_log=on_log,
                                 stationarity=_stationarity_of(group[0], dataset, wds))
        for rec, result in zip(recs, results):
            _record_result(rec, result)
        partner = dataset.extras.get("partner")
        if partner is not None:  # each run's twin on the partner task, from the same init
            twins: dict = {}
            twin_results = ensemble.train_ensemble(group[0].net, partner, specs,
                                                   on_log=lambda at, e, a: twins.update(e=e),
                                                   stationarity=_stationarity_of(group[0], partner, wds))
            members = range(len(group))
            _merge_twins(recs, [rec.steps for rec in recs], [final["ensemble"].member(r) for r in members],
                         twin_results, [twins["e"].member(r) for r in members], dataset, partner,
                         group[0].dynamics.loss)
    return recs


def _train_modules(group: list[RunConfig], recs: list[RunRecord], dataset: Dataset, specs: list) -> None:
    """Train ``group`` as one ``functional.FuncEnsemble`` (any module arch, any optimizer),
    measured by ``probes.ModuleTracker``; each record's ``solver["layers"]`` names its layers."""
    tracker = probes.ModuleTracker(specs[0].loss, [s.wd for s in specs])

    def on_log(at, ens, alive):
        for r, (rows, spectra) in enumerate(tracker(ens, dataset, alive)):
            if r in alive:
                _record_point(recs[r], at, rows, spectra)

    absolute = specs[0].gate_measure == "absolute"
    results = ensemble.train_ensemble(group[0].net, dataset, specs, on_log=on_log,
                                      stationarity=lambda ens: tracker.stationarity(ens, dataset, absolute))
    names = probes.layer_names(group[0].net, dataset)
    for rec, result in zip(recs, results):
        _record_result(rec, result)
        rec.solver = {**rec.solver, "layers": names}


def _stationarity_of(config: RunConfig, dataset: Dataset, wds: list[float]):
    """The gate's measure for an ensemble of ``config``'s net on ``dataset``: ensemble -> (R,)."""
    return lambda ens: stationarity(config.net, config.dynamics.loss, *ens.effective(), dataset, wds)


def _record_point(rec: RunRecord, at, rows: list[tuple], spectra: list) -> None:
    """Append one log point's metric rows and per-layer spectra to ``rec``."""
    rec.metrics.extend((float(at), layer, name, value) for layer, name, value in rows)
    rec.spectra.extend((float(at), layer, s) for layer, s in enumerate(spectra))


def _record_result(rec: RunRecord, result) -> None:
    """Copy a ``dynamics.RunResult`` (status, budget, losses at log points) into ``rec``;
    a gated run's first pass of the gate becomes the metric ``gate_step`` at its last log
    point (no row when no check passed)."""
    for row in result.log:
        rec.metrics.extend((float(row["at"]), -1, k, float(v)) for k, v in row.items() if k != "at")
    rec.status, rec.steps, rec.horizon = result.status, float(result.steps), float(result.horizon)
    rec.diverged_at, rec.solver = result.diverged_at, result.solver
    if result.log and result.gate_step is not None:
        rec.metrics.append((float(result.log[-1]["at"]), -1, "gate_step", float(result.gate_step)))


def _merge_twins(recs: list[RunRecord], ats: list, nets, twin_results, twins, dataset: Dataset, partner: Dataset,
                 loss: str) -> None:
    """For each finished run of ``recs``, the merge rows of its net and its twin (trained on
    ``partner``) at step (or flow time) ``ats[r]``; a twin that did not finish makes the
    run's status its own."""
    for rec, at, net, twin_result, twin in zip(recs, ats, nets, twin_results, twins):
        if rec.status != "done":
            continue
        if twin_result.status != "done":
            rec.status, rec.diverged_at = twin_result.status, twin_result.diverged_at
            continue
        rows = merge_rows(net, twin, dataset, partner, loss)
        rec.metrics.extend((float(at), -1, name, value) for name, value in rows.items())


def merge_rows(net_a, net_b, data_a: Dataset, data_b: Dataset, loss: str) -> dict[str, float]:
    """How the merged net does on each net's own task (train split); see the module docstring."""
    both = geometry.merged(net_a, net_b)
    ratios, drops, accs, owns = [], [], [], []
    with torch.no_grad():
        for net, d in ((net_a, data_a), (net_b, data_b)):
            own, mixed = net(d.x_train), both(d.x_train)
            ratios.append(float(loss_value(loss, mixed, d.y_train) / loss_value(loss, own, d.y_train)))
            accs.append(float(accuracy(d.task, mixed, d.y_train)))
            owns.append(float(accuracy(d.task, own, d.y_train)))
            drops.append(owns[-1] - accs[-1])
    return {"merge_ratio": max(ratios), "merge_acc_drop": max(drops), "merged_acc": sum(accs) / len(accs),
            "own_acc": sum(owns) / len(owns)}
