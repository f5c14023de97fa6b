"""A user's own model logged into the store: the rows equal direct computations, and
`rankbias compare` scores the logged runs as members of their scenario."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import rankbias as rb
from rankbias.cli import app
from rankbias.engine.dynamics import log_steps
from rankbias.experiments.logger import RankLogger
from rankbias.experiments.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x):  # x (N, 64) -> (N, 3)
        h = self.relu(self.conv(x.view(-1, 1, 8, 8)))  # (N, 4, 8, 8)
        seq = h.flatten(2).transpose(1, 2)  # (N, 64, 4)
        return self.head(self.attn(seq, seq, seq)[0].mean(1))


def _rows(rec, step, layer):
    return {name: v for at, lay, name, v in rec.metrics if at == step and lay == layer}


def test_logged_rows_equal_direct_computations(tmp_path):
    model, x = Tiny(), torch.rand(20, 64)
    logger = RankLogger(model, tmp_path / "s.sqlite", config={"lr": 0.1, "wd": 0.01}, log_every=5, inputs=x)
    assert logger(0, train_loss=1.5) and not logger(3)
    names = logger.layers
    assert names[:2] == ["conv.weight", "head.weight"] and names[2:6] == ["attn.qk0", "attn.qk1", "attn.vo0", "attn.vo1"]
    assert names[-1] == "relu"
    w = model.conv.weight.detach().numpy().reshape(4, 9)
    conv = _rows(logger.rec, 0, 0)
    assert conv["rank_tol"] == rb.ranks(w, ("rank_tol",), tol=1e-3)["rank_tol"]
    assert conv["fro"] == pytest.approx(np.linalg.norm(w), rel=1e-5)
    q, k = model.attn.in_proj_weight.detach()[:4], model.attn.in_proj_weight.detach()[4:8]
    np.testing.assert_allclose(logger.rec.spectra[2][2], np.linalg.svd((q[:2].T @ k[:2]).numpy(), compute_uv=False),
                               rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        h = model.relu(model.conv(x.view(-1, 1, 8, 8)))
    relu = _rows(logger.rec, 0, len(names) - 1)
    assert relu["active_share"] == pytest.approx(float((h > 0).any(0).double().mean()))
    net = _rows(logger.rec, 0, -1)
    assert net["train_loss"] == 1.5
    assert net["max_abs"] == pytest.approx(max(float(p.detach().abs().max()) for p in model.parameters()))


def test_an_attached_logger_logs_at_the_matrix_log_points_and_writes_one_run(tmp_path):
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(32, 5), torch.randint(0, 2, (32,))
    with RankLogger(model, tmp_path / "s.sqlite", scenario="mine.mlp", config={"lr": 0.1, "wd": 1e-3, "seed": 4},
                    steps=50, log_points=6) as logger:
        logger.attach(opt)
        for _ in range(50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    store = Store(tmp_path / "s.sqlite")
    runs = store.runs()
    assert len(runs) == 1 and runs.status[0] == "done" and runs.steps[0] == 50
    assert runs.horizon[0] == pytest.approx(0.1 * 1e-3 * 50)
    assert json.loads(store.db.execute("SELECT solver FROM runs").fetchone()[0])["layers"] == ["0.weight", "2.weight"]
    steps = sorted(store.metrics(name="rank_tol").query("layer == 0").step.astype(int))
    assert steps == log_steps(50, 6)
    final = store.metrics(name="fro").query("layer == 1 and step == 50").value.iloc[0]
    assert final == pytest.approx(float(model[2].weight.detach().norm()), rel=1e-5)


def test_a_loop_that_raises_stores_a_failed_run_and_bad_arguments_are_named(tmp_path):
    model = nn.Linear(3, 2)
    with pytest.raises(RuntimeError):
        with RankLogger(model, tmp_path / "s.sqlite", log_every=1):
            raise RuntimeError("loss exploded")
    runs = Store(tmp_path / "s.sqlite").runs()
    assert runs.status[0] == "failed" and "RuntimeError: loss exploded" in runs.error[0]
    with pytest.raises(ValueError, match="exactly one of 'steps'"):
        RankLogger(model, tmp_path / "t.sqlite", steps=10, log_every=2)
    with pytest.raises(ValueError, match="'config' must hold JSON values"):
        RankLogger(model, tmp_path / "t.sqlite", log_every=2, config={"lr": object()})


def test_the_example_model_is_scored_by_compare(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("own_model", None)
    import own_model

    store = tmp_path / "own.sqlite"
    names = own_model.train(str(store), steps=40)
    assert len(names) == 6
    out = tmp_path / "card.json"
    result = CliRunner().invoke(app, ["compare", str(EXAMPLES / "own_model.py"), "--store", str(store), "--no-train",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    verdict = next(v for v in json.loads(out.read_text())["verdicts"] if v["id"] == "mine.cnn_adamw")
    assert verdict["verdict"] in ("pass", "fail") and verdict["n"] == 6 and verdict["seeds"] == [0, 1]
    assert -1.0 <= verdict["statistics"][0]["value"] <= 1.0


def test_the_lightning_callback_logs_a_fit(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from rankbias.experiments.lightning import RankCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2, weight_decay=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    callback = RankCallback(tmp_path / "s.sqlite", scenario="mine.lit", config={"wd": 0.1, "lr": 1e-2}, log_points=5)
    trainer = L.Trainer(max_steps=20, callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=8))
    store = Store(tmp_path / "s.sqlite")
    assert store.runs().status.tolist() == ["done"]
    assert sorted(store.metrics(name="rank_tol").query("layer == 0").step.astype(int)) == log_steps(20, 5)
    assert len(store.metrics(name="batch_loss")) == len(log_steps(20, 5)) - 1  # step 0 is before any batch
