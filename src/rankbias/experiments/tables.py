"""A store's runs as flat tables: what scoring (``scoring.runs.Runs``) and ``rankbias export`` read.

``final_table(runs, metrics)`` is one row per run: its config fields, its
status, ``horizon`` and ``steps`` (how far it went; the config's own budget is
``budget_steps``), every metric at the run's last logged step as ``name`` (a
whole-network metric) or ``name@layer`` (layer k of ``solver["layers"]``,
counted from 0), and ``train_loss_0``, its training loss at its first log
point.  ``FINAL_COLUMNS`` says what each column holds; the docs' table of it
is generated from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rankbias.experiments.store import last_step

# the columns of final_table: (column or pattern, what it holds)
FINAL_COLUMNS = (
    ("name (the index)", "the run's canonical name: every set field in sorted order (config.RunConfig.name)"),
    ("data", "the data kind (mixture, separable, digits, pointer, ...)"),
    ("data.<key>", "each key of the data spec, e.g. data.n, data.classes, data.seed (the data set's own seed)"),
    ("arch, widths, bias, ...", "every set field of the net (engine.nets.NetSpec); widths as \"32-100-10\""),
    ("kind, loss, lr, wd, batch, ...", "every set field of the dynamics (engine.dynamics.DynamicsSpec)"),
    ("budget_steps", "the config's step budget (NaN for an epoch budget or gradient flow)"),
    ("seed", "the init seed (and SGD's sampling)"),
    ("status", "done, diverged or failed"),
    ("horizon", "lr x wd x steps: the decay horizon (flow time x wd for gradient flow)"),
    ("steps", "how far the run went: optimizer steps, or flow time for gradient flow"),
    ("<metric>", "a whole-network metric at the last log point, e.g. train_acc, stationarity, alignment"),
    ("<metric>@<k>", "a metric of layer k at the last log point, k counted from 0 in the run's layer order "
                     "(solver[\"layers\"] names them), e.g. rank_tol@1, effective_rank@0"),
    ("train_loss_0", "the training loss at the run's first log point (step 0)"),
)


def final_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per run of ``runs`` (``Store.runs``'s columns, indexed by name) from its ``metrics``
    rows (``Store.metrics``'s columns): see the module docstring and ``FINAL_COLUMNS``."""
    config = pd.DataFrame(list(runs.config.values), index=runs.index).rename(columns={"steps": "budget_steps"})
    last = last_step(metrics)
    label = np.where(last.layer < 0, last.name, last.name + "@" + last.layer.astype(str))
    wide = last.assign(label=label).pivot_table(index="run", columns="label", values="value", aggfunc="last")
    loss = metrics[(metrics.name == "train_loss") & (metrics.layer < 0)]
    initial = loss[loss.step == loss.groupby("run").step.transform("min")].set_index("run").value
    return pd.concat([config, runs[["status", "horizon", "steps"]], wide.reindex(runs.index),
                      initial.rename("train_loss_0").reindex(runs.index)], axis=1)


def code_of(provenance: dict) -> str:
    """"version@commit" of the code that trained a run (its provenance; commit "unknown" outside git)."""
    return f"{provenance.get('rankbias')}@{(provenance.get('git_commit') or 'unknown')[:10]}"
