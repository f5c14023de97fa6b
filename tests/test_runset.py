"""What a hypothesis reads of a RunSet is the same whether or not it was picked out before:
a bootstrap resample shares its parent's metric histories and spectra."""

import math

import numpy as np
import pandas as pd

from rankbias.scoring.hypotheses.base import RunSet, hidden_mean

RUNS = ["a", "b", "c"]
METRICS = pd.DataFrame([(run, float(step), layer, name, float(i))
                        for i, (run, step, layer, name) in enumerate(
                            (run, step, layer, name) for run in RUNS for step in (30, 0, 10)
                            for layer in (-1, 0, 1) for name in ("fro", "spectral"))],
                       columns=["run", "step", "layer", "name", "value"]).sample(frac=1.0, random_state=0)


def direct(final: pd.DataFrame, name: str, layer: int) -> pd.DataFrame:
    m = METRICS
    rows = m[(m.name == name) & (m.layer == layer) & m.run.isin(final.index)]
    return rows[["run", "step", "value"]].sort_values(["run", "step"])


def test_a_resample_reads_the_histories_its_parent_picked_out_as_if_read_directly():
    final = pd.DataFrame({"seed": [0, 1, 2]}, index=RUNS)
    parent = RunSet(final, METRICS)
    pd.testing.assert_frame_equal(parent.history("fro", 0), direct(final, "fro", 0))
    resample = RunSet(final.iloc[[1, 1, 2]], METRICS, histories=parent.histories)  # a bootstrap draw
    for name, layer in (("fro", 0), ("spectral", 1), ("fro", -1)):
        got = resample.history(name, layer)
        pd.testing.assert_frame_equal(got, direct(final.iloc[[1, 1, 2]], name, layer))
        assert set(got.run) == {"b", "c"} and list(got.step[got.run == "b"]) == [0.0, 10.0, 30.0]


def test_a_resample_reads_each_runs_last_spectrum_of_the_layer_asked():
    spectra = {run: pd.DataFrame({"step": [0.0, 5.0, 0.0, 5.0], "layer": [0, 0, 1, 1],
                                  "sigma": [np.array([i, 1.0]), np.array([i, 2.0]), np.array([i, 3.0]),
                                            np.array([i, 4.0])]}) for i, run in enumerate(RUNS)}
    parent = RunSet(pd.DataFrame({"seed": [0, 1, 2]}, index=RUNS), METRICS, spectra=spectra.get)
    assert list(parent.spectrum("a", 0)) == [0.0, 2.0]
    resample = RunSet(parent.final.iloc[[2]], METRICS, spectra=spectra.get, histories=parent.histories)
    assert list(resample.spectrum("c", 1)) == [2.0, 4.0] and list(resample.spectrum("a", 0)) == [0.0, 2.0]


def test_hidden_mean_averages_each_runs_own_hidden_square_layers():
    final = pd.DataFrame({"widths": ["4-8-8-8-2", "4-8-8-2", "4-6-2"],
                          "rank_tol@1": [1.0, 5.0, 9.0], "rank_tol@2": [2.0, 7.0, 9.0], "rank_tol@0": [9.0, 9.0, 9.0]},
                         index=RUNS)
    got = hidden_mean(final, "rank_tol")
    assert list(got.index) == RUNS and got["a"] == 1.5 and got["b"] == 5.0 and math.isnan(got["c"])
