"""A run's identity: what it trains, its canonical name and hash, whether it fits its
data, and which runs can train together.

A ``RunConfig`` is data spec + ``NetSpec`` + ``DynamicsSpec`` + seed (the net's init
and SGD's sampling; the data set has its own seed in its spec).  Its canonical
name lists every set field in sorted order, benchopt-style:
``sgd[arch=deep_relu,batch=16,data=mixture,data.n=1000,...,lr=0.1,seed=0,wd=0.01,widths=32-100-10]``;
the hash covers the same fields.  The device a run trains on is not part of its
identity.  Runs that differ only in lr, wd and seed share an ``ensemble_key`` and
train as one ensemble.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from rankbias.engine import data, images
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import written_out
from rankbias.engine.nets import NetSpec
from rankbias.engine.optim import HYPER


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
        out = {f"data.{k}": v for k, v in self.data.items() if k not in ("kind", "root")}  # not where files lie
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


def fit_problem(config: RunConfig) -> str | None:
    """Why ``config``'s net or batch does not fit its data, from the data spec alone
    (``data.shape_of``); None when they fit.  Matrix expansion skips such a cell with
    this reason, ``rankbias train`` refuses it, and a run stops on it before training."""
    n, dim, outputs = data.shape_of(config.data)
    widths, arch, kind = config.net.widths, config.net.arch, config.data["kind"]
    if kind in images.IMAGE_SETS:
        try:
            images.check(kind, config.data.get("root"))
        except images.DataRootError as err:
            return str(err)
    if arch == "conv":
        shape = data.SHAPES.get(kind)
        if shape is None:
            return (f"a conv net needs signals or images, and data kind {kind!r} is tabular; use "
                    f"{' or '.join(sorted(data.SHAPES))} data, or an MLP arch")
        if widths[0] != shape[0] or widths[-1] != outputs:
            return (f"widths {'-'.join(map(str, widths))} do not fit the data ({shape[0]} input channels, "
                    f"{outputs} classes); use widths {shape[0]},...,{outputs}")
    elif (arch == "attention") != (kind in data.SEQUENCES):
        return (f"an attention net needs a sequence task ({', '.join(data.SEQUENCES)}); got data kind {kind!r}"
                if arch == "attention" else f"data kind {kind!r} holds token sequences; use arch = \"attention\"")
    elif arch == "attention" and config.net.vocab != outputs:
        return f"vocab {config.net.vocab} does not fit the task's {outputs} token values; use vocab = {outputs}"
    if kind == "subspace_pair" and not written_out(config.net, [config.dynamics]):
        return "merging runs (subspace_pair data) train MLP archs under plain GD / SGD only; use one of those"
    if arch != "conv" and (widths[0] != dim or widths[-1] != outputs):
        return (f"widths {'-'.join(map(str, widths))} do not fit the data ({dim} inputs, {outputs} outputs); "
                f"use widths {dim},...,{outputs}")
    spec = config.dynamics
    if spec.kind == "sgd" and spec.batch > n:
        return f"batch {spec.batch} exceeds the {n} training samples; use a batch in [1, {n}]"
    steps = spec.steps if spec.steps is not None else (spec.epochs * (n // spec.batch) if spec.epochs else None)
    asked = spec.log_points != DynamicsSpec.log_points  # the default 20 stays usable on a short budget
    if spec.kind != "gf" and steps is not None and asked and spec.log_points > steps:
        return (f"log_points {spec.log_points} exceeds the {steps} steps of the budget; use log_points in "
                f"[2, {steps}]" if steps >= 2 else f"a budget of {steps} step cannot hold 2 log points; use steps >= 2")
    return None


def check_fit(config: RunConfig) -> None:
    """Raise ``ValueError`` with ``fit_problem``'s reason when ``config`` does not fit its data."""
    problem = fit_problem(config)
    if problem is not None:
        raise ValueError(f"Invalid run: {problem}.")


PER_MEMBER = ("lr", "wd", "seed", *HYPER, "sam")  # what members of one ensemble may each set


def ensemble_key(config: RunConfig) -> str | None:
    """Configs with the same key can train as one ensemble: everything but lr, wd,
    seed and the optimizer's numeric hyper-parameters (``PER_MEMBER``) agrees.  None for gradient flow and merging pairs, which run alone."""
    if config.dynamics.kind == "gf" or config.data["kind"] == "subspace_pair":
        return None
    flat = {k: v for k, v in config.flat().items() if k not in PER_MEMBER}
    flat["trainer"] = "written_out" if written_out(config.net, [config.dynamics]) else "torch.func"
    return json.dumps(flat, sort_keys=True)


def group_configs(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``ensemble_key`` (gradient flow alone), in first-seen order."""
    groups: dict = {}
    for i, config in enumerate(configs):
        key = ensemble_key(config)
        groups.setdefault(key if key is not None else f"solo-{i}", []).append(i)
    return list(groups.values())


def work(config: RunConfig) -> float:
    """A rough count of the multiply-adds that training ``config`` takes: steps (``steps``) x
    samples per step x one sample's forward pass x 3 (forward and backward).  An estimate for
    ordering and ETAs only (``group_work``); nothing is scored by it."""
    n, _, _ = data.shape_of(config.data)
    samples = config.dynamics.batch if config.dynamics.kind == "sgd" else n
    return float(steps(config)) * samples * _forward_macs(config.net, config.data["kind"]) * 3


def steps(config: RunConfig) -> float:
    """The steps ``config`` is expected to train: its budget; a gated run half its cap past the
    budget; gradient flow 20k (its solver's steps are not known ahead)."""
    spec = config.dynamics
    if spec.kind == "gf":
        return 20_000.0
    total = spec.steps if spec.steps is not None else spec.epochs * (data.shape_of(config.data)[0] // spec.batch)
    return (total + spec.max_steps) / 2 if spec.gated else float(total)


STEP_COST = 5.8e6  # multiply-adds' worth of time one step of a group costs beyond its arithmetic


def group_work(group: list[RunConfig]) -> float:
    """The estimated cost of training ``group`` as one ensemble, in multiply-adds: its runs'
    ``work`` plus ``STEP_COST`` per step, the time a step of small tensors spends outside its
    arithmetic (operator calls, Python).  Fitted by least squares to the 72 groups of the v3
    quick tier (2 cores, 2026-12-06): 5.8e-11 s per multiply-add and 0.34 ms per step; the
    median error of a group's time was 31%, against 69% for ``work`` alone."""
    return sum(map(work, group)) + STEP_COST * max(map(steps, group))


def _forward_macs(net: NetSpec, kind: str) -> float:
    """Multiply-adds of one sample's forward pass through ``net`` on data of ``kind``."""
    w = net.widths
    if net.arch == "conv":
        shape = data.SHAPES[kind]
        positions = 1
        for size in shape[1:]:
            positions *= size
        taps = (net.kernel or 3) ** (len(shape) - 1)
        return positions * taps * sum(a * b for a, b in zip(w[:-2], w[1:-1])) + w[-2] * w[-1]
    if net.arch == "attention":  # its circuits (models.Attention): scores and outputs per head and slot
        length, d, out = w
        slots = (net.vocab or 1) + length
        return (net.heads or 1) * slots * (length + d) + d * out
    return float(sum(a * b for a, b in zip(w[:-1], w[1:])))


ARCH_ALIASES = {"mlp": "deep_relu"}


def config_of(*, widths: tuple[int, ...], arch: str, dynamics: str, loss: str, lr: float | None, wd: float,
              batch: int | None, steps: int | None, epochs: int | None, flow_time: float | None, data_kind: str,
              n: int, test: int, std: float, margin: float, data_seed: int, seed: int,
              init_scale: float) -> RunConfig:
    """The ``RunConfig`` of one run named field by field (``rankbias train``'s options): the
    data spec of ``data_kind`` sized to ``widths`` (``data.spec_for``), ``arch`` or its alias
    (mlp = deep_relu), and ``loss`` or the data's default (``data.default_loss``).  Raises
    ``ValueError`` for a bad field or a run that does not fit its data (``fit_problem``)."""
    config = RunConfig(
        data.spec_for(data_kind, widths, n, std, margin, data_seed, test),
        NetSpec(ARCH_ALIASES.get(arch, arch), widths, init_scale=init_scale),
        DynamicsSpec(dynamics, loss or data.default_loss(data_kind), wd=wd, lr=lr, steps=steps, epochs=epochs,
                     batch=batch, flow_time=flow_time, seed=seed),
        seed=seed,
    )
    problem = fit_problem(config)
    if problem is not None:
        raise ValueError(f"this run does not fit its data: {problem}.")
    return config
