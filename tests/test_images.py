"""Image data sets read from tiny files written here in torchvision's on-disk formats."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from rankbias.cli import app
from rankbias.engine.data import make_data
from rankbias.engine.images import DataRootError, check

RNG = np.random.default_rng(0)


def _idx(path, array: np.ndarray, packed: bool = False) -> None:
    """Write ``array`` (uint8) as an idx file: magic 0x0800 + ndim, big-endian sizes, values."""
    raw = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw += array.astype(np.uint8).tobytes()
    if packed:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def _mnist(root, folder="MNIST", train=30, test=12, packed=False):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, count in (("train", train), ("t10k", test)):
        arrays[split] = (RNG.integers(0, 256, (count, 28, 28)), RNG.integers(0, 10, count))
        _idx(raw / f"{split}-images-idx3-ubyte", arrays[split][0], packed)
        _idx(raw / f"{split}-labels-idx1-ubyte", arrays[split][1], packed)
    return arrays


def _cifar(root, per_batch=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = RNG.integers(0, 256, (per_batch, 3072)).astype(np.uint8), RNG.integers(0, 10, per_batch).tolist()
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": name.encode()}))
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("kind,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_formats_read_back_pixel_for_pixel(tmp_path, kind, folder, packed):
    arrays = _mnist(tmp_path, folder, packed=packed)
    data = make_data(dict(kind=kind, n=30, test=5, seed=1, root=str(tmp_path)))
    assert data.x_train.shape == (30, 784) and data.x_test.shape == (5, 784) and data.shape == (1, 28, 28)
    images, labels = arrays["train"]
    pick = np.random.default_rng(1).permutation(30)
    np.testing.assert_allclose(data.x_train.numpy(), images[pick].reshape(30, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train.numpy(), labels[pick])
    np.testing.assert_array_equal(data.y_test.numpy(), arrays["t10k"][1][:5])
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0


def test_cifar10_batches_read_back_in_order(tmp_path, monkeypatch):
    batches = _cifar(tmp_path)
    monkeypatch.setenv("RANKBIAS_DATA_ROOT", str(tmp_path))  # the root from the environment
    data = make_data(dict(kind="cifar10", n=30, test=6, seed=0))
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    pick = np.random.default_rng(0).permutation(30)
    np.testing.assert_allclose(data.x_train.numpy(), train[pick] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(data.x_test.numpy(), batches["test_batch"][0] / 255.0, rtol=1e-6)
    assert data.shape == (3, 32, 32) and data.outputs == 10


def test_missing_and_malformed_roots_say_what_was_expected(tmp_path, monkeypatch):
    monkeypatch.delenv("RANKBIAS_DATA_ROOT", raising=False)
    with pytest.raises(DataRootError, match="no root is set; set data.root .* or the environment variable"):
        check("mnist", None)
    with pytest.raises(DataRootError, match=r"expected the folder .*MNIST of torchvision's MNIST files.*download=True"):
        check("mnist", str(tmp_path / "nowhere"))
    _mnist(tmp_path)
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataRootError, match="is not an idx file of 1-d uint8 data"):
        check("mnist", str(tmp_path))
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataRootError, match=r"expected the idx file .*t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        check("mnist", str(tmp_path))
    _cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py/test_batch").write_text("not a pickle")
    with pytest.raises(DataRootError, match="test_batch is not a CIFAR-10 python batch"):
        check("cifar10", str(tmp_path))


def test_a_truncated_idx_file_is_named(tmp_path):
    _mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataRootError, match="header says .* the file is truncated"):
        make_data(dict(kind="mnist", n=10, test=2, seed=0, root=str(tmp_path)))


MATRIX = """
[[scenario]]
id = "img"
paper = "p"
data = {{ kind = "mnist", n = 30, test = 6, seed = 0, root = "{root}" }}
net = {{ arch = "conv", widths = [1, 4, 10], kernel = 5, padding = 0 }}
dynamics = {{ kind = "sgd", loss = "ce", lr = 0.05, batch = 10, steps = 6, log_points = 2, optimizer = "sgd", momentum = 0.9 }}
"""


def test_a_conv_run_trains_on_the_files_and_a_wrong_root_exits_2(tmp_path):
    _mnist(tmp_path / "data")
    good = tmp_path / "good.toml"
    good.write_text(MATRIX.format(root=tmp_path / "data"))
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(good), "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    from rankbias.experiments.store import Store

    runs = Store(store).runs()
    assert list(runs["status"]) == ["done", "done"] and "root" not in runs["name"][0]
    bad = tmp_path / "bad.toml"
    bad.write_text(MATRIX.format(root=tmp_path / "elsewhere"))
    result = CliRunner().invoke(app, ["run", str(bad), "--store", str(tmp_path / "b.sqlite")])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2 and "expected the folder" in flat and "download=True" in flat, result.output
    assert not (tmp_path / "b.sqlite").exists()
