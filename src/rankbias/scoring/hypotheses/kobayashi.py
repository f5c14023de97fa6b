"""Claims of Kobayashi, Akram & von Oswald, "Weight decay induces low-rank attention
layers", arXiv 2410.23819 (2024), new in claims version 3.

L2 regularization of the factors of a product acts as the nuclear norm of the
product: min over A B^T = W of (||A||_F^2 + ||B||_F^2) / 2 is ||W||_*, reached by
balanced factors.  Hence, for the loss ||W - D||_F^2 with PyTorch's weight decay wd
(the objective L + wd/2 (||A||^2 + ||B||^2)), the minimizer has the soft-thresholded
spectrum s_i = max(d_i - wd/2, 0) (``kobayashi.factor``, a calibration with an exact
answer).  In an attention layer the logits depend on W_Q W_K^T only, so gradient flow
conserves W_Q^T W_Q - W_K^T W_K at wd = 0 and shrinks it as exp(-2 wd t) with wd
(``kobayashi.attention_balance``), and the per-head products W_Q W_K^T and W_V W_O lose
rank as wd grows (``kobayashi.attention_wd``).  The settings left open by the text are
in the docs (Setup decisions, version 3).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rankbias.scoring.hypotheses.base import Check, Criterion, RunSet, Sweep, Trend, cell_means, effect, spearman

CITE = "Kobayashi, Akram & von Oswald 2024, arXiv 2410.23819"
PAPER = "kobayashi"
FIT = 0.95  # attention_wd reads runs that fit the task: train accuracy >= FIT

FACTOR_ERROR = Criterion("max_i |s_i - max(d_i - wd/2, 0)|, every run", "<=", 1e-3)
FACTOR_GAP = Criterion("max ((||A||^2 + ||B||^2) / 2 - ||W||_*) / ||W||_*, every run", "<=", 1e-3)
FACTOR_RANK = Criterion("share of runs with rank_rel(1e-2)(W) = #{d_i > wd/2}", ">=", 1.0)
DECAY_RATE = Criterion("max |rate / (2 wd) - 1| over wd > 0 runs and heads", "<=", 0.05)
CONSERVED = Criterion("max |I(T) - I(0)| / I(0) over wd = 0 runs and heads", "<=", 1e-2)
PRODUCTS = (("qk", "W_Q W_K^T"), ("vo", "W_V W_O"))
MEASURES = (("rank_rel", "rank_rel(1e-2)"), ("effective_rank", "effective rank"))
HEAD_RANK = {(p, m): Criterion(f"rho({p_name} {m_name}, wd), runs that fit", "<=", -0.9)
             for p, p_name in PRODUCTS for m, m_name in MEASURES}


def heads_of(final: pd.DataFrame) -> int:
    """The number of attention heads of these runs' nets."""
    return int(final["heads"].iloc[0])


def head_layers(final: pd.DataFrame, product: str) -> list[int]:
    """Layer indices of the per-head products ``product`` ("qk" or "vo"): the attention
    model measures qk0..qk{H-1}, then vo0..vo{H-1} (``engine.models.Attention``)."""
    H = heads_of(final)
    start = 0 if product == "qk" else H
    return list(range(start, start + H))


def head_mean(final: pd.DataFrame, product: str, measure: str) -> pd.Series:
    """Per run: ``measure`` of the per-head ``product`` averaged over the heads."""
    return final[[f"{measure}@{k}" for k in head_layers(final, product)]].mean(axis=1)


def _predicted(row) -> np.ndarray:
    """max(d_i - wd/2, 0), descending, for the diagonal target of ``row``'s data."""
    d = np.linspace(float(row["data.low"]), float(row["data.high"]), int(row["data.n"]))[::-1]
    return np.maximum(d - float(row["wd"]) / 2, 0.0)


def _factor(runs: RunSet) -> list[Check]:
    f = runs.final
    errors, gaps, ranks = [], [], []
    for name, row in f.iterrows():
        product = len(f["widths"].iloc[0].split("-")) - 1  # factors layer0..layer{D-1}, then the product
        s = np.asarray(runs.spectrum(name, product), float)
        predicted = _predicted(row)
        errors.append(float(np.abs(s - predicted).max()))
        nuclear = float(s.sum())
        factors = sum(float(row[f"fro@{k}"]) ** 2 for k in range(product))
        gaps.append((factors / 2 - nuclear) / nuclear if nuclear > 0 else math.nan)
        ranks.append(float(row[f"rank_rel@{product}"]) == float((predicted > 0).sum()))
    return [
        FACTOR_ERROR(max(errors)),
        FACTOR_GAP(max(gaps)),
        FACTOR_RANK(float(np.mean(ranks))),
        effect("median step the gate first passed", float(f["gate_step"].median()) if "gate_step" in f else math.nan),
    ]


def decay_rates(runs: RunSet) -> pd.DataFrame:
    """(run, head, rate, drift): per run and head, minus the least-squares slope of ln I(t)
    against t = lr x step over the run's log points (the decay rate), and |I(T) - I(0)| / I(0)."""
    f, rows = runs.final, []
    f = f[~f.index.duplicated()]  # a bootstrap resample repeats runs: one rate per run (max and min ignore repeats)
    for h, layer in enumerate(head_layers(f, "qk")):
        history = runs.history("imbalance", layer)
        for run, one in history.groupby("run"):
            t = one.step.to_numpy(float) * float(f.loc[run, "lr"])
            value = one.value.to_numpy(float)
            ok = value > 0
            slope = np.polyfit(t[ok], np.log(value[ok]), 1)[0] if ok.sum() >= 2 else math.nan
            rows.append((run, h, -slope, abs(value[-1] - value[0]) / value[0] if value[0] > 0 else math.nan))
    return pd.DataFrame(rows, columns=["run", "head", "rate", "drift"])


def _balance(runs: RunSet) -> list[Check]:
    f = runs.final
    wds = f["wd"][~f.index.duplicated()]
    rates = decay_rates(runs)
    wd = rates.run.map(wds).astype(float)  # float even when empty (pandas keeps str for an empty map)
    decayed, plain = rates[wd > 0], rates[wd == 0]
    relative = (decayed.rate / (2 * wd[wd > 0]) - 1).abs()
    return [
        DECAY_RATE(float(relative.max()) if len(relative) else math.nan),
        CONSERVED(float(plain.drift.max()) if len(plain) else math.nan),
        effect("median rate / (2 wd) over wd > 0 runs and heads",
               float((decayed.rate / (2 * wd[wd > 0])).median()) if len(decayed) else math.nan),
    ]


def _attention_wd(runs: RunSet) -> list[Check]:
    f = runs.final
    fit = f[f["train_acc"] >= FIT]
    checks = []
    for (product, measure), criterion in HEAD_RANK.items():
        means = cell_means(fit, "wd", head_mean(fit, product, measure)) if len(fit) else pd.Series(dtype=float)
        checks.append(criterion(spearman(means.index, means.values)))
    qk = cell_means(fit, "wd", head_mean(fit, "qk", "effective_rank")) if len(fit) else pd.Series(dtype=float)
    return checks + [
        effect("share of runs that fit the task (train accuracy >= 0.95)", len(fit) / len(f) if len(f) else math.nan),
        effect("effective rank of W_Q W_K^T, wd = max over wd = min",
               float(qk.iloc[-1] / qk.iloc[0]) if len(qk) > 1 else math.nan),
    ]


def _head_rank(final: pd.DataFrame) -> pd.Series:
    return head_mean(final, "qk", "effective_rank")


SWEEPS = [
    Sweep("kobayashi.attention_wd", "wd", "qk_erank", "effective rank of W_Q W_K^T, mean over heads",
          values=lambda runs: _head_rank(runs.final)),
]

ADDED = [
    Trend("kobayashi.factor", PAPER, ("kobayashi.factor",),
          "L2 on the factors of W = A B^T is the nuclear norm of W: s_i = max(d_i - wd/2, 0)", _factor, CITE,
          criteria=(FACTOR_ERROR, FACTOR_GAP, FACTOR_RANK), version=3,
          amendment="Added in version 3, a calibration with an exact answer: it checks the benchmark as much as "
                    "the theory."),
    Trend("kobayashi.attention_balance", PAPER, ("kobayashi.attention_balance",),
          "||W_Q^T W_Q - W_K^T W_K|| decays as exp(-2 wd t), and is conserved at wd = 0", _balance, CITE,
          criteria=(DECAY_RATE, CONSERVED), version=3, amendment="Added in version 3."),
    Trend("kobayashi.attention_wd", PAPER, ("kobayashi.attention_wd",),
          "the per-head products W_Q W_K^T and W_V W_O lose rank as wd grows", _attention_wd, CITE,
          criteria=tuple(HEAD_RANK.values()), version=3, amendment="Added in version 3."),
]
