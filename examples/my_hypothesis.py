"""A researcher's own hypotheses, scored beside the baselines on the same runs:

    rankbias compare examples/my_hypothesis.py --store rankbias.sqlite

It trains the runs these hypotheses read that the store lacks (the scenarios of
the matrix they name, and those this file declares in ``MATRIX``), then prints
the scorecard and a head-to-head table: each hypothesis beside the baselines
that read the same scenarios.  An error in this file's code stops the command
with exit code 1 (``--keep-going`` scores the rest; ``--debug`` shows the
traceback).

Any module-level ``Trend`` or ``Predictor`` (or a list of them) is picked up.
A ``Trend`` names the scenarios whose runs it reads and returns ``Check``s:
a value, a comparison and a threshold (a criterion), or just a value (an effect
size).  A ``Predictor`` returns a predicted and a measured rank per run and is
scored by Spearman rho and the mean absolute error of log-rank.

``runs.final`` has one row per trained run: its config fields (wd, lr,
batch, seed, widths, data.n, ...; a step budget as ``budget_steps``),
``horizon`` (lr*wd*T), ``steps`` (as far as the run went), and last-step
metrics as ``name`` (whole net) or ``name@k`` (layer k).  Criteria are fixed
here before looking at the results.
"""

import numpy as np
import pandas as pd

from rankbias.hypotheses import Check, Predictor, Trend
from rankbias.hypotheses.base import cell_means, hidden_mean, spearman

# Scenarios these hypotheses need beyond the built-in matrix, in the matrix file format (rankbias.spec):
# galanti.wd's setup at B = 8, a batch size no Galanti sweep uses.
MATRIX = """
[[scenario]]
id = "mine.batch8"
paper = "mine"
data = { kind = "mixture", n = 1000, dim = 32, classes = 10, std = 1.0, seed = 0, test = 200 }
net = { arch = "deep_relu", widths = [32, 100, 100, 100, 10] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, epochs = 40 }
grid = { "dynamics.wd" = [0.0, 1e-3, 5e-3, 1e-2, 2e-2] }
"""

GALANTI_SGD = ("galanti.wd", "galanti.batch_epochs", "galanti.batch_steps", "galanti.lr", "mine.batch8")


def _noise_ratio(f: pd.DataFrame) -> pd.Series:
    """SGD's noise-to-decay ratio B / (lr wd): larger means more room for rank."""
    return f["batch"] / (f["lr"] * f["wd"])


def _rank_follows_noise_ratio(runs) -> list[Check]:
    f = runs.final[runs.final["wd"] > 0]
    rank = hidden_mean(f, "rank_tol")
    means = cell_means(f.assign(ratio=_noise_ratio(f)), "ratio", rank)
    return [Check("rho(rank_tol, B / (lr wd))", spearman(means.index, means.values), ">=", 0.9),
            Check("effect: rho over runs", spearman(_noise_ratio(f), rank))]


noise_ratio = Trend(
    id="mine.noise_ratio",
    paper="mine",
    scenarios=GALANTI_SGD,
    predicts="rank rises with B / (lr wd), across every SGD sweep",
    checks=_rank_follows_noise_ratio,
)


def _predict(runs) -> pd.Series:
    """rank = width * min(1, c B / (lr wd)) with c fixed up front at 1/2000."""
    f = runs.final
    width = f["widths"].map(lambda w: int(str(w).split("-")[1]))
    ratio = np.where(f["wd"] > 0, f["batch"] / (f["lr"] * f["wd"]).where(f["wd"] > 0, 1.0), np.inf)
    return pd.Series(np.maximum(1.0, width * np.minimum(1.0, ratio / 2000.0)), index=f.index)


noise_ratio_rank = Predictor(
    id="mine.noise_ratio_rank",
    paper="mine",
    scenarios=GALANTI_SGD,
    predicts="rank = width * min(1, B / (2000 lr wd))",
    predict=_predict,
    measure=lambda runs: hidden_mean(runs.final, "rank_tol"),
)
