"""Run one training configuration end to end and record it.

A ``RunConfig`` is data spec + ``NetSpec`` + ``DynamicsSpec`` + seed (the
net's init and SGD's sampling; the data set has its own seed in its spec).
``run_many`` trains configs that differ only in lr, wd and seed as one
ensemble (``ensemble.train_ensemble``) and stores each run as ``run_one`` would.
Its canonical name lists every set field in sorted order, benchopt-style:
``sgd[arch=deep_relu,batch=16,data=mixture,data.n=1000,...,lr=0.1,seed=0,wd=0.01,widths=32-100-10]``;
the hash covers the same fields.  ``run_one`` trains, measures at every log
point (``metrics.Tracker``), and returns a ``store.RunRecord``; a run that
raises is recorded as failed with its error instead of propagating.

One trainer for any device: GD and SGD runs train as ensembles
(``ensemble.train_ensemble``; a single run is an ensemble of one), gradient
flow by ``dynamics.train``'s ODE solver, both on the torch device a caller
names (``device=``, see ``rankbias.engine.device``; the device is not part of a run's
identity, and its provenance records where it trained).  Data, weights and
metrics stay on the device; only the rows stored at log points come back.

A run on a ``subspace_pair`` data set trains a second net, from the same init,
on the partner task, and records at its last step how the merged net
(``geometry.merged``: every parameter summed) does on both tasks: rows
``merge_ratio`` (max over the tasks of merged / own train loss),
``merge_acc_drop`` (max of own - merged train accuracy), ``merged_acc`` and
``own_acc`` (mean merged / own train accuracy), Kuzborskij & Abbasi Yadkori 2025.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numba
import numpy as np
import torch

from rankbias import __version__
from rankbias.engine import data, geometry
from rankbias.engine.device import describe, resolve
from rankbias.engine.dynamics import DynamicsSpec, accuracy, loss_value, train
from rankbias.engine.metrics import Tracker, stationarity
from rankbias.engine.nets import NetSpec, build
from rankbias.experiments.store import RunRecord, Store

def make_data(spec: dict) -> data.Dataset:
    """The data set a spec {"kind": ..., **generator kwargs} describes."""
    kind, kwargs = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind not in data.GENERATORS:
        raise ValueError(
            f"Invalid data spec: 'kind' must be one of {sorted(data.GENERATORS)}; got {kind!r}. Pick one of those."
        )
    if kind == "subspace_task":
        task = kwargs.pop("task", 0)
        return data.subspace_tasks(**kwargs)[task]
    return data.GENERATORS[kind](**kwargs)


@dataclass(frozen=True)
class RunConfig:
    data: dict
    net: NetSpec
    dynamics: DynamicsSpec
    seed: int = 0
    extra: dict = field(default_factory=dict)  # reserved for scenario tags; part of the name

    def __post_init__(self):
        # one seed per run: the net's init and SGD's sampling both use it
        object.__setattr__(self, "dynamics", replace(self.dynamics, seed=self.seed))

    def flat(self) -> dict:
        """Every set field, flat and JSON-ready: the run's identity."""
        out = {f"data.{k}": v for k, v in self.data.items() if k != "kind"}
        out["data"] = self.data["kind"]
        net = asdict(self.net)
        net["widths"] = "-".join(map(str, self.net.widths))
        out.update(net)
        out.update(self.dynamics.identity())
        out["seed"] = self.seed
        out.update(self.extra)
        return {k: v for k, v in out.items() if v is not None}

    def name(self) -> str:
        flat = self.flat()
        kind = flat.pop("kind")
        return f"{kind}[" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(flat.items())) + "]"

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.flat(), sort_keys=True).encode()).hexdigest()[:16]


def _fmt(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def provenance(device: torch.device | None = None) -> dict:
    """Versions, host, the device a run trained on (``rankbias.engine.device.describe``) and,
    if the package sits in a git checkout, its commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "rankbias": __version__,
        "git_commit": commit,
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        **(describe(device) if device is not None else {}),
    }


def fit_problem(config: RunConfig) -> str | None:
    """Why ``config``'s net or batch does not fit its data, from the data spec alone
    (``data.shape_of``); None when they fit.  Matrix expansion skips such a cell with
    this reason, ``rankbias train`` refuses it, and a run stops on it before training."""
    n, dim, outputs = data.shape_of(config.data)
    widths = config.net.widths
    if widths[0] != dim or widths[-1] != outputs:
        return (f"widths {'-'.join(map(str, widths))} do not fit the data ({dim} inputs, {outputs} outputs); "
                f"use widths {dim},...,{outputs}")
    if config.dynamics.kind == "sgd" and config.dynamics.batch > n:
        return f"batch {config.dynamics.batch} exceeds the {n} training samples; use a batch <= {n}"
    return None


def _check_fit(config: RunConfig) -> None:
    problem = fit_problem(config)
    if problem is not None:
        raise ValueError(f"Invalid run: {problem}.")


def blank_record(config: RunConfig, started: float, device: torch.device | None = None) -> RunRecord:
    """A record for ``config`` (to train on ``device``) that reads "failed" until a result fills it in."""
    return RunRecord(config.name(), config.hash(), config.flat(), "failed", provenance(device), started, started)


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


def run_one(config: RunConfig, store: Store | None = None, device="auto") -> RunRecord:
    """Train ``config`` on ``device`` (``rankbias.engine.device``), measure at every log point,
    write one transaction to ``store``."""
    rec = train_group([config], device)[0]
    if store is not None:
        store.write(rec)
    return rec


def _flow(config: RunConfig, device: torch.device) -> RunRecord:
    """A gradient-flow run (``dynamics.train``'s ODE solver, float64 on ``device``), measured and recorded."""
    rec = blank_record(config, time.time(), device)
    try:
        _check_fit(config)
        dataset = make_data(config.data).to(device)
        net = build(config.net, config.seed, device)
        spec = config.dynamics
        tracker = Tracker(config.net, spec.loss, spec.wd)

        def on_log(at, model):
            _record_point(rec, at, *tracker(*geometry.stacked(model), dataset)[0])

        _record_result(rec, train(net, dataset, spec, on_log=on_log))
        partner = dataset.extras.get("partner")
        if partner is not None and rec.status == "done":
            other = build(config.net, config.seed, device)
            _record_merge(rec, spec.flow_time, net, train(other, partner, spec), other, dataset, partner, spec.loss)
    except torch.OutOfMemoryError:
        raise  # train_group splits the group or says how to make it fit
    except Exception as err:  # recorded, not raised: a matrix goes on past a failed run
        rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
    rec.finished = time.time()
    return rec


def _record_merge(rec: RunRecord, at, net, partner_result, partner_net, dataset, partner, loss: str) -> None:
    """Add the merge rows of a run on a ``subspace_pair`` (its net and its partner's) at ``at``;
    a partner run that did not finish makes the run's status its own."""
    if partner_result.status != "done":
        rec.status, rec.diverged_at = partner_result.status, partner_result.diverged_at
        return
    rows = merge_rows(net, partner_net, dataset, partner, loss)
    rec.metrics.extend((float(at), -1, name, value) for name, value in rows.items())


def merge_rows(net_a, net_b, data_a: data.Dataset, data_b: data.Dataset, loss: str) -> dict[str, float]:
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


def ensemble_key(config: RunConfig) -> str | None:
    """Configs with the same key can train as one ensemble: everything but lr, wd
    and seed agrees.  None for gradient flow and merging pairs, which run alone."""
    if config.dynamics.kind == "gf" or config.data["kind"] == "subspace_pair":
        return None
    flat = {k: v for k, v in config.flat().items() if k not in ("lr", "wd", "seed")}
    return json.dumps(flat, sort_keys=True)


def group_configs(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``ensemble_key`` (gradient flow alone), in first-seen order."""
    groups: dict = {}
    for i, config in enumerate(configs):
        key = ensemble_key(config)
        groups.setdefault(key if key is not None else f"solo-{i}", []).append(i)
    return list(groups.values())


def train_group(group: list[RunConfig], device="auto") -> list[RunRecord]:
    """Train one group (one run, or runs that share an ``ensemble_key``) on ``device`` and
    return its records without touching any store: the unit of work executors ship.

    GD and SGD train as one ensemble (``ensemble.train_ensemble``, the engine's one
    trainer: a single run is an ensemble of one), gradient flow run by run.  A group
    that runs out of GPU memory is split in half and retried; a single run that still
    does not fit is recorded as failed with a line saying how to make it fit."""
    where = resolve(device)
    try:
        if group[0].dynamics.kind == "gf":
            return [_flow(config, where) for config in group]
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
        return train_group(group[:half], device) + train_group(group[half:], device)


def _stationarity_of(config: RunConfig, dataset: data.Dataset, wds: list[float]):
    """The gate's measure for an ensemble of ``config``'s net on ``dataset``: ensemble -> (R,)."""
    return lambda ens: stationarity(config.net, config.dynamics.loss, *ens.effective(), dataset, wds)


def _train_ensemble(group: list[RunConfig], device: torch.device) -> list[RunRecord]:
    """Train ``group`` (runs sharing an ``ensemble_key``) as one ensemble on ``device``;
    see ``train_group``."""
    from rankbias.engine.ensemble import train_ensemble

    started = time.time()
    recs = [blank_record(c, started, device) for c in group]
    try:
        _check_fit(group[0])
        dataset = make_data(group[0].data).to(device)
        wds = [c.dynamics.wd for c in group]
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

        specs = [c.dynamics for c in group]
        results = train_ensemble(group[0].net, dataset, specs, on_log=on_log,
                                 stationarity=_stationarity_of(group[0], dataset, wds))
        for rec, result in zip(recs, results):
            _record_result(rec, result)
        partner = dataset.extras.get("partner")
        if partner is not None:  # each run's twin on the partner task, from the same init
            twins: dict = {}
            partner_results = train_ensemble(group[0].net, partner, specs, on_log=lambda at, e, a: twins.update(e=e),
                                             stationarity=_stationarity_of(group[0], partner, wds))
            for r, rec in enumerate(recs):
                if rec.status == "done":
                    _record_merge(rec, rec.steps, final["ensemble"].member(r), partner_results[r],
                                  twins["e"].member(r), dataset, partner, group[0].dynamics.loss)
    except torch.OutOfMemoryError:
        raise  # train_group splits the group or says how to make it fit
    except Exception as err:  # the whole group failed: each of its runs says why
        for rec in recs:
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
    for rec in recs:
        rec.finished = time.time()
    return recs


def run_many(configs: list[RunConfig], store: Store | None = None, on_done: Callable | None = None,
             device="auto") -> list[RunRecord]:
    """Run every config in this process on ``device``, as ensembles where they share an
    ``ensemble_key``; each group's runs are written to ``store`` in one
    transaction as soon as it finishes, and ``on_done(record)`` is called per run.
    Returns the records in the order of ``configs``."""
    records: dict[int, RunRecord] = {}
    for members in group_configs(configs):
        recs = train_group([configs[i] for i in members], device)
        if store is not None:
            store.write_many(recs)  # a group's runs land in one transaction
        for i, rec in zip(members, recs):
            if on_done is not None:
                on_done(rec)
            records[i] = rec
    return [records[i] for i in range(len(configs))]
