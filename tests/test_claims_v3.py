"""Claims version 3: each amendment beside version 2 on the same planted runs (reverting it
fails its test), each new claim on planted runs that pass and that fail its criteria,
the consistency check, and the two defects of version 2's code."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_claims_v2 import planted

from rankbias.engine import data as D
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.nets import NetSpec
from rankbias.experiments.config import RunConfig
from rankbias.experiments.matrix import expand
from rankbias.experiments.spec import builtin, load
from rankbias.scoring.hypotheses import RunSet, claims, galanti, huh, kobayashi, lejegelka, task_rank, xie
from rankbias.scoring.hypotheses.base import GATE
from rankbias.scoring.rules import constant_loss
from rankbias.scoring.score import Runs, header, score

V2, V3 = {h.id: h for h in claims(2)}, {h.id: h for h in claims(3)}
MIX = dict(kind="mixture", n=1000, dim=32, classes=10, std=1.0, seed=0, test=200)


def judged(h, runs: RunSet) -> dict[str, bool | None]:
    """{criterion name: whether its value meets it} of ``h``'s checks on ``runs``."""
    return {c.name: c.holds(c.value) for c in h.checks(runs) if c.op is not None}


def passes(h, runs: RunSet) -> bool:
    return all(v is True for v in judged(h, runs).values())


def fails(h, runs: RunSet) -> bool:
    return any(v is False for v in judged(h, runs).values())


def table(rows: list[dict], prefix: str = "r") -> pd.DataFrame:
    return pd.DataFrame(rows, index=[f"{prefix}{i}" for i in range(len(rows))])


def spectra_of(spectra: dict[str, dict[int, list[float]]]):
    """RunSet.spectra from {run: {layer: sigma}} at one step."""
    frames = {run: pd.DataFrame([(1, k, np.array(s)) for k, s in layers.items()], columns=["step", "layer", "sigma"])
              for run, layers in spectra.items()}
    return lambda name: frames[name]


# ------------------------------------------------------------------ amendments

def test_the_untrained_rule_reads_the_loss_against_the_best_constant_predictor(tmp_path):
    net = NetSpec("deep_relu", (32, 100, 100, 100, 10))
    runs = []
    for batch, (loss, acc) in {1: (2.0, 0.38), 4: (0.05, 1.0), 16: (0.04, 1.0)}.items():  # B = 1 half-trained
        for seed in (0, 1):
            config = RunConfig(MIX, net, DynamicsSpec("sgd", "ce", lr=0.1, wd=1e-2, batch=batch, steps=20000),
                               seed=seed)
            runs.append((config, {**{f"rank_tol@{k}": 10.0 for k in range(4)}, "train_acc": acc, "train_loss": loss},
                         {"dynamics.batch": batch}))
    data = Runs(*planted(tmp_path, "galanti.batch_steps", runs))
    v2 = score(V2["galanti.batch_steps"], data, n_boot=10, version=2)
    v3 = score(V3["galanti.batch_steps"], data, n_boot=10, version=3)
    assert v2.untrained == 0  # 0.38 is above chance + 0.05 (0.15): version 2 keeps it
    assert v3.untrained_cells == {"batch=1": 2} and v3.dropped == ["batch=1"]  # 2.0 > ln(10) / 2
    assert "best constant predictor" in v3.note


def test_the_constant_predictor_loss_of_each_loss():
    mixture = D.gaussian_mixture(400, 8, 4, 1.0, seed=0)
    counts = np.bincount(mixture.y_train.numpy()) / 400
    assert constant_loss("ce", mixture) == pytest.approx(float(-(counts * np.log(counts)).sum()))
    assert constant_loss("ce", mixture) == pytest.approx(math.log(4), abs=0.01)
    assert constant_loss("logistic", D.separable(100, 20, 0.5, seed=0)) == pytest.approx(math.log(2), abs=0.01)
    teacher = D.low_rank_teacher(48, 64, 16, 4, seed=0)
    y = teacher.y_train.double()
    assert constant_loss("mse_mean", teacher) == pytest.approx(float(y.var(0, unbiased=False).mean()))
    assert constant_loss("mse", teacher) == pytest.approx(float(0.5 * y.var(0, unbiased=False).sum()))


def _gate_run(kind, wd, seed, alignment, stationarity, norm_ratio=1.0):
    dyn = DynamicsSpec(kind, "ce", lr=0.1, wd=wd, batch=16, steps=20000, gate=0.1, max_steps=100000)
    config = RunConfig(dict(kind="mixture", n=400, dim=32, classes=4, std=2.0, seed=0),
                       NetSpec("deep_relu", (32, 64, 64, 64, 4)), dyn, seed=seed)
    return config, dict(alignment=alignment, stationarity=stationarity, norm_ratio=norm_ratio, train_acc=1.0,
                        train_loss=0.01), {"dynamics.wd": wd, "dynamics.kind": kind}


def test_alignment_is_a_consistency_check_of_cos2_plus_s2_and_not_evidence(tmp_path, capsys):
    s = 0.05
    holds = [_gate_run("gd", 3e-2, i, math.sqrt(1 - s**2), s) for i in (0, 1)]
    holds += [_gate_run("gd", 3e-3, i, 0.3, 0.5) for i in (0, 1)]  # off the gate: counted, not read
    holds += [_gate_run("sgd", 3e-2, i, 0.2, 0.9) for i in (0, 1)]  # SGD: not read
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    data = Runs(*planted(tmp_path / "a", "kuzborskij.alignment", holds))
    check = V3["kuzborskij.alignment"]
    v = score(check, data, n_boot=10, version=3)
    assert check.kind == "consistency" and v.kind == "consistency"
    assert v.verdict == "pass" and v.statistic.value == pytest.approx(0.0, abs=1e-12)
    meta = header(data, [v], 3, "quick", "quick")
    assert meta["verdicts"] == {} and meta["consistency"] == {"pass": 1}  # never counted with the claims
    broken = [_gate_run("gd", 3e-2, i, 0.999, s) for i in (0, 1)]  # 0.999^2 + 0.05^2 - 1 = 5e-4: holds
    broken += [_gate_run("gd", 3e-2, i + 2, 0.99, s) for i in (0, 1)]  # 0.99^2 + 0.05^2 - 1 = -1.8e-2: broken
    v = score(check, Runs(*planted(tmp_path / "b", "kuzborskij.alignment", broken)), n_boot=10, version=3)
    assert v.verdict == "fail" and v.statistic.value == pytest.approx(abs(0.99**2 + s**2 - 1))
    off = [_gate_run("gd", 3e-2, i, 0.999, 0.3) for i in (0, 1)]
    assert score(check, Runs(*planted(tmp_path / "c", "kuzborskij.alignment", off)), n_boot=10,
                 version=3).verdict == "not applicable"
    assert V2["kuzborskij.alignment"].kind == "trend"  # version 2 keeps it a claim, on record


def test_a_failed_consistency_check_is_said_loudly(tmp_path):
    from typer.testing import CliRunner

    from rankbias.cli import app

    quick = expand(load(builtin(3)), "quick")
    runs = []
    for name in quick.members["kuzborskij.alignment"]:
        config = quick.runs[name]
        wd, kind = config.dynamics.wd, config.dynamics.kind
        runs.append((config, dict(alignment=0.9, stationarity=0.05, norm_ratio=1.0, train_acc=1.0, train_loss=0.01),
                     {"dynamics.wd": wd, "dynamics.kind": kind}))
    planted(tmp_path, "kuzborskij.alignment", runs)[0].close()
    out = tmp_path / "card.json"
    result = CliRunner().invoke(app, ["score", "quick", "--store", str(tmp_path / "kuzborskij.alignment.sqlite"),
                                      "--claims-version", "3", "--claim", "kuzborskij.alignment", "--n-boot", "10",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "CONSISTENCY CHECK FAILED: kuzborskij.alignment" in " ".join(result.output.split())
    assert "consistency checks" in result.output
    card = json.loads(out.read_text())
    assert card["meta"]["consistency"]["fail"] == 1 and card["meta"]["claims_version"] == 3  # (and its variant)


def test_kuzborskij_wd0_runs_stop_at_20k_in_their_own_scenario_and_norms_reports_them():
    v3, v2 = expand(load(builtin(3)), "standard"), expand(load(builtin(2)), "standard")
    for name in v3.members["kuzborskij.no_wd"]:
        d = v3.runs[name].dynamics
        assert d.wd == 0 and not d.gated and (d.steps, d.max_steps) == (20000, None)
    assert all(v3.runs[n].dynamics.wd > 0 for n in v3.members["kuzborskij.norms"])
    assert set(v3.members["kuzborskij.norms"]) <= set(v2.members["kuzborskij.norms"])  # version 2's runs
    assert V3["kuzborskij.norms"].scenarios == ("kuzborskij.norms", "kuzborskij.no_wd")


def test_zangrando_nc1_reads_only_the_layer_whose_input_is_learned():
    stds = [0.1, 0.3, 1.0, 2.0, 4.0]
    sets = {s: D.gaussian_mixture(80, 8, 4, s, seed=0) for s in stds}
    final = pd.DataFrame({"data.std": stds, "gap_k@0": [0.2, 5e-2, 1e-2, 1e-3, 1e-4],  # W_1 against its input
                          "gap_k@1": [2e-4, 5e-4, 3e-3, 1e-2, 3e-2], "nc1@0": [0.01, 0.05, 0.2, 0.5, 1.5],
                          "widths": ["8-16-16-4"] * 5}, index=[f"r{s}" for s in stds])
    runs = RunSet(final, pd.DataFrame(), dataset=lambda name: sets[final.loc[name, "data.std"]])
    assert fails(V2["zangrando.nc1"], runs)  # version 2 also judges W_1, here falling with its input's NC1
    assert list(judged(V3["zangrando.nc1"], runs)) == ["rho(sigma_K+1 / sigma_1 of W_2, NC1 of W_2's input) over "
                                                        "the spread cells"]
    assert passes(V3["zangrando.nc1"], runs)


def test_galanti_wd_level_is_relative_to_the_rank_at_wd0():
    ranks = {0.0: 49.0, 1e-3: 45.0, 5e-3: 30.0, 1e-2: 20.0, 2e-2: 14.0}  # width 50: a task-set large-wd rank
    final = table([{"wd": wd, "widths": "32-50-50-50-10", **{f"rank_tol@{k}": r for k in range(4)}}
                   for wd, r in ranks.items() for _ in (0, 1)])
    runs = RunSet(final, pd.DataFrame())
    assert judged(V2["galanti.wd"], runs)[galanti.WD_LOW.name] is False  # 14 / 50 > 0.2
    assert judged(V3["galanti.wd"], runs)[galanti.WD_HALF.name] is True and passes(V3["galanti.wd"], runs)


def test_task_rank_reads_only_wd_2e2_and_gains_task_arms():
    rows = [{"wd": 2e-2, "widths": f"32-{w}-{w}-{w}-10", **{f"rank_tol@{k}": 14.0 for k in range(4)}}
            for w in (50, 100) for _ in (0, 1)]
    rows += [{"wd": 0.0, "widths": "32-200-200-200-10", **{f"rank_tol@{k}": 199.0 for k in range(4)}}]
    runs = RunSet(table(rows), pd.DataFrame())
    for h in (V2["new.task_rank"], V3["new.task_rank"]):
        assert h.checks(runs)[0].value == pytest.approx(0.0)  # the wd = 0 run is not read
    arms = expand(load(builtin(3)), "quick")
    for K in (3, 5, 8, 12):
        configs = [arms.runs[n] for n in arms.members[f"new.task_rank.k{K}"]]
        assert {c.net.widths for c in configs} == {(32, 64, 64, 64, K), (32, 128, 128, 128, K)}
        assert {(c.data["classes"], c.dynamics.wd, c.dynamics.batch, c.dynamics.epochs) for c in configs} == {
            (K, 2e-2, 4, 40)}


def test_relu_last_layers_reads_each_nets_own_last_layers_in_a_mixed_depth_scenario():
    steps = [0, 100, 2000, 20000]
    rows, finals = {}, []
    for run, widths, tail, relu3 in (("a", "20-30-30-30-30-1", 3, None), ("b", "20-30-30-30-30-30-30-1", 5, 3)):
        final = {"widths": widths, "linear_layers": 2, "init_scale": 1.0}
        squares = range(1, 4) if run == "a" else range(1, 6)
        for k in squares:
            path = [0.5, 0.5, 0.5, 0.6] if k == tail else [0.4, 0.4, 0.4, 0.2 if k == relu3 else 0.4]
            rows.setdefault("spectral", []).extend((run, t, k, v) for t, v in zip(steps, path))
            rows.setdefault("fro", []).extend((run, t, k, 1.0) for t in steps)
            final[f"spectral@{k}"], final[f"fro@{k}"] = path[-1], 1.0
        finals.append(final)
    metrics = pd.DataFrame([(r, t, k, name, v) for name, points in rows.items() for r, t, k, v in points],
                           columns=["run", "step", "layer", "name", "value"])
    runs = RunSet(pd.DataFrame(finals, index=["a", "b"]), metrics)
    for h in (V2["lejegelka.relu_last_layers"], V3["lejegelka.relu_last_layers"]):
        assert h.checks(runs)[0].value == pytest.approx(0.1)  # b's layer 3 (a ReLU layer) falls; not read
    assert lejegelka._decade_change(runs) == pytest.approx(0.1)


# ------------------------------------------------------------------ new claims

def _collapse_rows(rank_low: float) -> pd.DataFrame:
    rows = []
    for K, width in ((3, 64), (3, 128), (10, 100)):
        for _ in (0, 1):  # layer 1's input collapsed, layer 2's input collapsed at K = 3; open at K = 10
            nc1 = {0: 0.05, 1: 0.05} if K == 3 else {0: 0.8, 1: 0.7}
            rank = {1: rank_low, 2: rank_low} if K == 3 else {1: K + 3.0, 2: K + 2.0}
            rows.append({"wd": 2e-2, "data.classes": K, "widths": f"32-{width}-{width}-{width}-{K}",
                         **{f"rank_tol@{k}": r for k, r in rank.items()}, **{f"nc1@{k}": v for k, v in nc1.items()}})
    return table(rows)


def test_collapse_rank_passes_at_k_where_collapsed_and_fails_above_it():
    h = V3["new.collapse_rank"]
    assert passes(h, RunSet(_collapse_rows(3.2), pd.DataFrame()))
    assert fails(h, RunSet(_collapse_rows(4.0), pd.DataFrame()))  # |4 - 3| > 0.5 where the classes collapsed
    pairs = task_rank.collapse_pairs(RunSet(_collapse_rows(3.2), pd.DataFrame()))
    assert len(pairs) == 6 and set(pairs.layer) == {1, 2}


def _factor(shrink: float) -> RunSet:
    rows, spectra = [], {}
    for i, wd in enumerate((0.1, 0.5, 0.9)):
        d = np.linspace(1.0, 0.2, 5)
        s = np.maximum(d - shrink * wd, 0)
        rows.append({"wd": wd, "data.low": 0.2, "data.high": 1.0, "data.n": 5, "widths": "5-5-5",
                     "fro@0": math.sqrt(s.sum()), "fro@1": math.sqrt(s.sum()), "rank_rel@2": float((s > 1e-2 * s[0]).sum()),
                     "gate_step": 2000})
        spectra[f"r{i}"] = {2: list(s)}
    return RunSet(table(rows), pd.DataFrame(), spectra=spectra_of(spectra))


def test_kobayashi_factor_passes_on_the_soft_threshold_and_fails_without_it():
    h = V3["kobayashi.factor"]
    assert passes(h, _factor(0.5))
    assert fails(h, _factor(0.25))  # half the predicted shrinkage


def _balance(rate_factor: float, drift: float) -> RunSet:
    lr, steps = 0.01, [0, 100, 1000, 5000, 20000]
    rows, final = [], []
    for i, wd in enumerate((0.0, 1e-3, 1e-2)):
        run = f"r{i}"
        for h in range(4):
            for t in steps:
                value = 2.0 * math.exp(-rate_factor * 2 * wd * lr * t) * (1 + drift * t / steps[-1] if wd == 0 else 1)
                rows.append((run, t, h, "imbalance", value))
        final.append({"wd": wd, "lr": lr, "heads": 4})
    return RunSet(pd.DataFrame(final, index=["r0", "r1", "r2"]),
                  pd.DataFrame(rows, columns=["run", "step", "layer", "name", "value"]))


def test_attention_balance_passes_at_rate_2wd_and_fails_off_it():
    h = V3["kobayashi.attention_balance"]
    assert passes(h, _balance(1.0, 1e-4))
    assert fails(h, _balance(0.5, 1e-4))  # decays at wd, not 2 wd
    assert fails(h, _balance(1.0, 0.1))  # not conserved at wd = 0
    rates = kobayashi.decay_rates(_balance(1.0, 0.0))
    assert rates[rates.run == "r2"].rate.to_numpy() == pytest.approx([2e-2] * 4)
    runs = _balance(1.0, 1e-4)
    resampled = RunSet(pd.concat([runs.final, runs.final.iloc[1:]]), runs.metrics)  # a bootstrap draw repeats runs
    assert judged(h, resampled) == judged(h, runs)


def _heads(slope: float) -> RunSet:
    rows = []
    for wd in (0.0, 1e-3, 3e-3, 5e-3):
        for seed in (0, 1):
            base = 7.0 + slope * wd * 1e3
            rows.append({"wd": wd, "heads": 4, "train_acc": 1.0, **{f"{m}@{k}": base + 0.1 * k
                                                                     for m in ("rank_rel", "effective_rank")
                                                                     for k in range(8)}})
    rows.append({"wd": 5e-3, "heads": 4, "train_acc": 0.5, **{f"{m}@{k}": 50.0 for m in ("rank_rel", "effective_rank")
                                                               for k in range(8)}})  # did not fit: not read
    return RunSet(table(rows), pd.DataFrame())


def test_attention_wd_passes_when_the_heads_lose_rank_and_fails_when_they_gain_it():
    h = V3["kobayashi.attention_wd"]
    assert passes(h, _heads(-0.4)) and len(judged(h, _heads(-0.4))) == 4
    assert fails(h, _heads(+0.4))


def _conv(values: dict, key: str) -> RunSet:
    rows, spectra = [], {}
    for i, (x, erank) in enumerate(values.items()):
        run = f"r{i}"
        keep = int(round(erank))
        s = [1.0] * keep + [1e-4] * (32 - keep)
        rows.append({key: x, "widths": "1-32-32-32-10", **{f"effective_rank@{k}": erank for k in (1, 2)},
                     **{f"rank_tol@{k}": 32.0 for k in (1, 2)}})
        spectra[run] = {1: s, 2: s}
    return RunSet(table(rows), pd.DataFrame(), spectra=spectra_of(spectra))


def test_conv_claims_pass_and_fail_on_the_hidden_kernels():
    falling = {0.0: 28.0, 1e-3: 26.0, 5e-3: 23.0, 1e-2: 22.0, 2e-2: 21.0}
    assert passes(V3["galanti.conv_wd"], _conv(falling, "wd"))
    assert fails(V3["galanti.conv_wd"], _conv({k: 50 - v for k, v in falling.items()}, "wd"))
    assert galanti.conv_hidden("1-32-32-32-10") == [1, 2]
    rising = {4: 20.0, 16: 22.0, 64: 25.0}
    assert passes(V3["galanti.conv_batch"], _conv(rising, "batch"))
    assert fails(V3["galanti.conv_batch"], _conv({4: 25.0, 16: 22.0, 64: 20.0}, "batch"))  # as the pilot went


def test_bn_wd_passes_when_rank_falls_with_wd_and_fails_when_it_rises():
    def runs(sign):
        return RunSet(table([{"wd": wd, "widths": "64-100-100-100-10",
                              **{f"rank_tol@{k}": 90 + sign * 100 * wd for k in range(4)}}
                             for wd in (0.0, 1e-3, 5e-3, 1e-2, 2e-2)]), pd.DataFrame())
    assert passes(V3["galanti.bn_wd"], runs(-1)) and fails(V3["galanti.bn_wd"], runs(+1))


def test_sam_passes_when_feature_rank_falls_with_the_radius():
    def runs(sign):
        return RunSet(table([{"sam": r, "feature_rank@0": 80 + sign * 20 * r, "active_share@0": 1.0}
                             for r in (0.0, 0.1, 0.2, 0.4) for _ in (0, 1)]), pd.DataFrame())
    h = V3["andriushchenko.sam"]
    assert passes(h, runs(-1)) and fails(h, runs(+1))


def test_adamw_linf_reads_settled_runs_only():
    def runs(level, moved=1e-3):
        return RunSet(table([{"wd": wd, "max_abs": level / wd, "moved": moved} for wd in (0.3, 1.0, 3.0)]),
                      pd.DataFrame())
    h = V3["xie.adamw_linf"]
    assert passes(h, runs(1.0004)) and fails(h, runs(0.8))
    assert all(v is None for v in judged(h, runs(1.0, moved=0.1)).values())  # none settled: inconclusive
    assert xie.SETTLED == 1e-2


def test_huh_depth_passes_when_deeper_factorizations_have_lower_effective_rank():
    def runs(end_sign):
        final, rows = [], []
        for D_, widths in enumerate(("64-16", "64-64-16", "64-64-64-16", "64-64-64-64-16"), start=1):
            run = f"d{D_}"
            final.append({"widths": widths})
            rows += [(run, 0, D_, "effective_rank", 15.5 - 0.4 * D_),
                     (run, 20000, D_, "effective_rank", 7.0 + end_sign * D_)]
        return RunSet(pd.DataFrame(final, index=[f"d{i}" for i in range(1, 5)]),
                      pd.DataFrame(rows, columns=["run", "step", "layer", "name", "value"]))
    h = V3["huh.depth"]
    assert passes(h, runs(-1)) and fails(h, runs(+1))
    assert huh.product_erank(runs(-1), first=True).to_numpy() == pytest.approx([15.1, 14.7, 14.3, 13.9])


def test_every_v3_claim_declares_its_criteria_and_reads_the_v3_matrix():
    quick = expand(load(builtin(3)), "quick")
    for h in claims(3):
        assert h.kind == "predictor" or h.criteria, h.id
        assert all(sid in quick.members for sid in h.scenarios), h.id
    assert GATE == 0.1
