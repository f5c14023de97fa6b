"""Log a user's own ``nn.Module`` into a rankbias store while it trains, in any loop.

    logger = RankLogger(model, "runs.sqlite", scenario="mine.resnet", steps=2000,
                        config={"lr": 0.1, "wd": 5e-4, "batch": 128, "seed": 0}, inputs=x_probe)
    logger.attach(optimizer)        # a torch.optim step post-hook: logs at the log points
    for step in range(2000):
        ...; optimizer.step()
    logger.finish()                 # one transaction: the run, its rows and its spectra

or call ``logger(step, train_loss=..., train_acc=...)`` yourself after each step
(``lightning.RankCallback`` does that for a Lightning ``Trainer``).  Log points
are those of the matrix's runs (``dynamics.log_steps``: 0, geometric steps and
the last) when ``steps`` is given, else every ``log_every`` steps.

At each log point it stores, as a matrix run's, per matrix of the module
(``probes.module_matrices``: weights as (shape[0], prod(shape[1:])), conv
kernels as (out, in k [k]), ``nn.MultiheadAttention`` per head) ``fro``,
``spectral``, every rank measure and its spectrum; with ``inputs``, per
``nn.ReLU`` module (``probes.relu_features``) ``feature_rank`` and ``active_share``;
and for the whole network ``max_abs`` and the values passed in (e.g.
``train_loss``).  The run is named ``logged[scenario=...,<config>]``; its layers are
named in ``solver["layers"]``; ``rankbias score`` and ``compare`` read it as a
member of its scenario (``logged.with_logged``).
"""

from __future__ import annotations

import hashlib
import json
import time

import torch

from rankbias.engine.dynamics import log_steps
from rankbias.engine.metrics import _rank_values, layer_spectra
from rankbias.engine.probes import feature_rank, module_matrices, relu_features
from rankbias.experiments.config import _fmt
from rankbias.experiments.logged import KIND
from rankbias.experiments.provenance import provenance
from rankbias.experiments.store import RunRecord, Store


def _name(flat: dict) -> str:
    """The canonical name of a logged run, formatted as ``RunConfig.name`` formats a matrix run's."""
    return f"{KIND}[" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(flat.items()) if k != "kind") + "]"


class RankLogger:
    """Measures ``model`` at log points and writes it to ``store`` as one run (module docstring).

    ``config``: the run's declared fields (JSON values; hypotheses read them as config columns);
    ``steps`` / ``log_points``: the log schedule of a run of ``steps`` optimizer steps, or
    ``log_every``; ``inputs``: a batch (N, ...) of training inputs for the feature metrics;
    ``outputs``: k of tail_k and gap_k (default: the last matrix's rows)."""

    def __init__(self, model: torch.nn.Module, store: str | Store = "rankbias.sqlite", *, scenario: str = "mine.model",
                 config: dict | None = None, steps: int | None = None, log_points: int = 20,
                 log_every: int | None = None, inputs: torch.Tensor | None = None, outputs: int | None = None):
        if (steps is None) == (log_every is None):
            raise ValueError(f"RankLogger needs exactly one of 'steps' (the run's length: log at the matrix's log "
                             f"points) and 'log_every'; got steps={steps!r}, log_every={log_every!r}.")
        if (steps is not None and steps < 1) or (log_every is not None and log_every < 1):
            raise ValueError(f"'steps' and 'log_every' must be ints >= 1; got steps={steps!r}, log_every={log_every!r}.")
        config = dict(config or {})
        try:
            json.dumps(config)
        except TypeError as err:
            raise ValueError(f"'config' must hold JSON values (numbers, strings, lists); {err}.") from None
        self.model, self.inputs, self.outputs = model, inputs, outputs
        self.store = store if isinstance(store, Store) else Store(store)
        self.flat = {"kind": KIND, "scenario": scenario, "logged": True, **config}
        self.logs = set(log_steps(steps, log_points)) if steps is not None else None
        self.every, self.steps_seen, self.layers = log_every, 0, []
        self.rec = RunRecord(_name(self.flat), hashlib.sha256(json.dumps(self.flat, sort_keys=True).encode())
                             .hexdigest()[:16], self.flat, "failed", provenance(None), time.time(), time.time())

    def due(self, step: int) -> bool:
        """Whether ``step`` is a log point."""
        return step in self.logs if self.logs is not None else step % self.every == 0

    def __call__(self, step: int, **values: float) -> bool:
        """Measure the model at ``step`` if it is a log point, with ``values`` (e.g. train_loss)
        as whole-network rows; returns whether it did."""
        self.steps_seen = max(self.steps_seen, step)
        if not self.due(step):
            return False
        at = float(step)
        mats = module_matrices(self.model)
        self.layers = [n for n, _ in mats]
        spectra = layer_spectra([m[None].float() for _, m in mats])
        tail = self.outputs or mats[-1][1].shape[0]
        for k, ((_, m), s) in enumerate(zip(mats, spectra)):
            self.rec.metrics.extend((at, k, name, float(v[0])) for name, v in
                                    _rank_values(s, m.shape[0], m.shape[1], tail).items())
            self.rec.spectra.append((at, k, s[0]))
        if self.inputs is not None:
            self._features(at)
        theta = torch.cat([p.detach().flatten() for p in self.model.parameters()])
        self.rec.metrics.append((at, -1, "max_abs", float(theta.abs().max())))
        self.rec.metrics.extend((at, -1, name, float(v)) for name, v in values.items())
        return True

    def _features(self, at: float) -> None:
        for name, h in relu_features(self.model, self.inputs).items():
            if name not in self.layers:
                self.layers.append(name)
            k = self.layers.index(name)
            pooled = h.flatten(2).mean(-1) if h.dim() > 2 else h  # a conv block's output, over its positions
            self.rec.metrics.append((at, k, "feature_rank", float(feature_rank(pooled[None])[0])))
            self.rec.metrics.append((at, k, "active_share", float((h > 0).any(0).double().mean())))

    def attach(self, optimizer: torch.optim.Optimizer):
        """Log after every ``optimizer.step()`` (a step post-hook), at step 1, 2, ...; logs step 0
        now.  Returns the hook's handle (``.remove()`` detaches it)."""
        self(0)

        def hook(opt, args, kwargs):
            self(self.steps_seen + 1)

        return optimizer.register_step_post_hook(hook)

    def finish(self, status: str = "done", error: str | None = None) -> str:
        """Write the run (status "done", or "failed" / "diverged" with ``error``) in one
        transaction; returns its name."""
        rec = self.rec
        rec.status, rec.error, rec.finished = status, error, time.time()
        rec.steps, rec.solver = float(self.steps_seen), {"layers": self.layers}
        lr, wd = self.flat.get("lr"), self.flat.get("wd")
        numbers = all(isinstance(v, (int, float)) for v in (lr, wd))
        rec.horizon = float(lr * wd * self.steps_seen) if numbers else 0.0  # lr wd T, where the config says
        self.store.write(rec)
        return rec.name

    def __enter__(self) -> RankLogger:
        return self

    def __exit__(self, kind, err, tb) -> None:
        self.finish("done" if err is None else "failed", None if err is None else f"{kind.__name__}: {err}")

