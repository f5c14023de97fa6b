"""`rankbias ranks` on the files people save: safetensors, checkpoints, attention per head."""

from __future__ import annotations

import json
import re

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

import rankbias as rb
from rankbias.cli import app
from rankbias.linalg.weights import split_heads


def _rows(args):
    result = CliRunner().invoke(app, ["ranks", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return {r["layer"]: r for r in json.loads(result.output)}


def _model():
    torch.manual_seed(0)
    return nn.ModuleDict({"conv": nn.Conv2d(3, 6, 3), "attn": nn.MultiheadAttention(8, 2, bias=False),
                          "head": nn.Linear(8, 4)})


def test_safetensors_and_checkpoints_read_the_model_weights_only(tmp_path):
    model = _model()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "m.safetensors")
    optimizer = torch.optim.Adam(model.parameters())
    torch.save({"state_dict": state, "optimizer": optimizer.state_dict(), "epoch": 3}, tmp_path / "m.ckpt")
    a, b = _rows([tmp_path / "m.safetensors"]), _rows([tmp_path / "m.ckpt"])
    assert list(b) == ["conv.weight", "attn.in_proj_weight", "attn.out_proj.weight", "head.weight"]  # no optimizer state
    assert sorted(a) == sorted(b)  # safetensors keeps its keys sorted
    assert a["conv.weight"]["shape"] == [6, 27]  # (out, in k k)
    want = rb.ranks(state["conv.weight"].numpy().reshape(6, -1), ("rank_tol", "effective_rank"), tol=1e-3)
    assert a["conv.weight"]["rank_tol"] == want["rank_tol"] == b["conv.weight"]["rank_tol"]
    assert abs(a["conv.weight"]["effective_rank"] - float(want["effective_rank"])) < 1e-4


def test_attention_heads_are_split_as_the_module_computes_them(tmp_path):
    torch.manual_seed(1)
    attn = nn.MultiheadAttention(8, 2, bias=False)
    with torch.no_grad():  # head 1 of the queries spans one direction: its logit form has rank 1
        attn.in_proj_weight[4:8] = torch.outer(torch.randn(4), torch.randn(8))
    torch.save(attn.state_dict(), tmp_path / "a.pt")
    rows = _rows([tmp_path / "a.pt", "--heads", "2"])
    assert list(rows) == ["qk0", "qk1", "vo0", "vo1"]
    x = torch.randn(5, 8)
    q, k, v = (x @ w.T for w in attn.in_proj_weight.detach().chunk(3))  # (5, 8) each: heads = 4-column blocks
    for h in range(2):
        cols = slice(4 * h, 4 * h + 4)
        form = attn.in_proj_weight[:8][cols].detach().T @ attn.in_proj_weight[8:16][cols].detach()  # (8, 8)
        torch.testing.assert_close(x @ form @ x.T, q[:, cols] @ k[:, cols].T)  # the head's logits, unscaled
        want = rb.ranks(form.numpy(), ("rank_rel",), eps=1e-3)["rank_rel"]
        assert rows[f"qk{h}"]["rank_rel"] == want
    assert rows["qk1"]["rank_rel"] == 1 and rows["qk0"]["rank_rel"] == 4


def test_split_heads_reads_separate_projections_and_checks_the_head_count():
    rng = np.random.default_rng(0)
    w = {f"l.{p}_proj.weight": rng.standard_normal((6, 6)) for p in "qkvo"} | {"other": np.eye(3)}
    out = split_heads(w, 3)
    assert list(out) == ["l.qk0", "l.qk1", "l.qk2", "l.vo0", "l.vo1", "l.vo2", "other"]
    np.testing.assert_allclose(out["l.vo2"], w["l.o_proj.weight"][:, 4:6] @ w["l.v_proj.weight"][4:6])
    result = CliRunner().invoke(app, ["ranks", "--heads", "-1", "x.npy"])
    assert result.exit_code == 2


def test_a_whole_pickled_module_is_refused_in_one_line(tmp_path):
    torch.save(nn.Linear(3, 2), tmp_path / "whole.pt")
    result = CliRunner().invoke(app, ["ranks", str(tmp_path / "whole.pt")])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output and "\x1b[" not in result.output
    assert "holds pickled Python objects (e.g. a whole module saved with torch.save(model))" in flat
    assert "Save model.state_dict() instead" in flat


def test_a_large_matrix_is_announced_while_it_is_measured(tmp_path, monkeypatch):
    """In a log (not a terminal), measuring a matrix of BIG_MATRIX entries or more prints a
    timestamped start line and a line with its time; small ones print nothing extra."""
    from rankbias.cli import views

    monkeypatch.setattr(views, "BIG_MATRIX", 64 * 64)
    np.savez(tmp_path / "w.npz", big=np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32),
             small=np.ones((3, 4), np.float32))
    result = CliRunner().invoke(app, ["ranks", str(tmp_path / "w.npz")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d measuring big \(64x64\), matrix 1 of 2$", x) for x in lines)
    assert any(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d measured big in [\d.]+ s$", x) for x in lines)
    assert "measuring small" not in result.output
