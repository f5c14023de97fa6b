"""The ``rankbias`` command line on real files: numbers match the API, errors exit 2."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

import rankbias as rb
from rankbias.cli import app

runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_state_dict_rows_match_the_api(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {
        "0.weight": torch.randn(20, 8, generator=g) @ torch.randn(8, 30, generator=g),  # rank 8
        "0.bias": torch.randn(20, generator=g),  # 1-d: skipped
        "block": {"conv.weight": torch.randn(6, 3, 2, 2, generator=g)},  # nested, 4-d
    }
    path = tmp_path / "model.pt"
    torch.save(state, path)
    rows = _json(runner.invoke(app, ["ranks", str(path), "--json", "--tol", "1e-3"]))
    assert [r["layer"] for r in rows] == ["0.weight", "block.conv.weight"]
    assert rows[0]["shape"] == [20, 30] and rows[1]["shape"] == [6, 12]
    assert rows[0]["rank_tol"] == 8 and rows[0]["numerical_rank"] == 8
    want = rb.ranks(state["0.weight"].numpy(), tol=1e-3)
    assert rows[0]["stable_rank"] == float(want["stable_rank"])


def test_npy_and_npz_and_table(tmp_path):
    w = np.diag([3.0, 2.0, 1.0, 1e-6]).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    np.savez(tmp_path / "ws.npz", a=w, b=np.ones(3))
    assert _json(runner.invoke(app, ["ranks", str(tmp_path / "w.npy"), "--json"]))[0]["rank_rel"] == 3
    assert [r["layer"] for r in _json(runner.invoke(app, ["ranks", str(tmp_path / "ws.npz"), "--json"]))] == ["a"]
    table = runner.invoke(app, ["ranks", str(tmp_path / "w.npy")])
    assert table.exit_code == 0 and "rank_tol" in table.output and "4x4" in table.output


def test_bad_files_exit_2_with_a_reason(tmp_path):
    cases = {
        "missing.pt": (None, "does not exist"),
        "w.txt": (b"1 2 3", "supported: .npy, .npz, .safetensors, .pt"),
        "broken.pt": (b"not a torch file", "could not read"),
        "bias.npy": ("bias", "no tensor with 2 or more dimensions"),
        "nan.npy": ("nan", "must be finite"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content == "bias":
            np.save(path, np.ones(5))
        elif content == "nan":
            np.save(path, np.array([[1.0, np.nan], [0.0, 1.0]]))
        elif content is not None:
            path.write_bytes(content)
        result = runner.invoke(app, ["ranks", str(path)])
        assert result.exit_code == 2, (name, result.output)
        assert message in " ".join(result.output.split()), (name, result.output)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and rb.__version__ in result.output


def test_ranks_explain_gives_every_measure_its_formula_and_reference():
    from rankbias import MEASURES

    result = CliRunner().invoke(app, ["ranks", "--explain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in MEASURES:
        assert f"{name}: " in text
    assert "rank_tol: #{i : sigma_i / ||W||_F > tol}. (Galanti, Siegel, Gupte & Poggio, arXiv 2206.05794)" in text
    assert "it is 0" in text  # why gd_rank reads 0 on a flat spectrum
    missing = CliRunner().invoke(app, ["ranks"])
    assert missing.exit_code == 2 and "a weight file is needed" in missing.output
