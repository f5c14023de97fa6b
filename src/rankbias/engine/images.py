"""Image data sets read from disk in torchvision's on-disk formats; never downloaded.

``root`` is the folder torchvision's ``datasets.MNIST(root)`` (and the others)
would use; the data spec's ``root``, else the environment's ``RANKBIAS_DATA_ROOT``:

- ``mnist``:         root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
- ``fashion_mnist``: root/FashionMNIST/raw/ (the same four idx files)
- ``cifar10``:       root/cifar-10-batches-py/{data_batch_1..5, test_batch} (pickled dicts
                     with b"data" (10000, 3072) uint8 and b"labels")

The idx format (LeCun et al. 1998): a big-endian magic number 0x0000080D (D = the
number of dimensions), D big-endian uint32 sizes, then the uint8 values.  Pixels
become floats in [0, 1], flattened to x (N, C H W); a conv net views them as
(C, H, W) (``data.SHAPES``).  ``n`` training images are the first n of a
permutation of the official training set seeded by ``seed``; ``test`` test
images are the first of the official test set's.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

IMAGE_SETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
TRAIN_SIZE = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
ENV = "RANKBIAS_DATA_ROOT"


class DataRootError(ValueError):
    """A data root that is missing or holds something else; the message says what to put there."""


def _how_to_get(kind: str) -> str:
    cls = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}[kind]
    return (f"get them on a machine with network access with python -c \"import torchvision; "
            f"torchvision.datasets.{cls}('ROOT', download=True)\" and copy ROOT here")


def root_of(kind: str, root: str | None) -> Path:
    """The folder holding ``kind``'s files: ``root``, else $RANKBIAS_DATA_ROOT; raises
    ``DataRootError`` when neither is set or the folder is missing."""
    where = root or os.environ.get(ENV)
    if not where:
        raise DataRootError(f"data kind {kind!r} reads images from disk and no root is set; set data.root in the "
                            f"matrix or the environment variable {ENV} to the folder that holds "
                            f"{IMAGE_SETS[kind]}/ ({_how_to_get(kind)})")
    folder = Path(where).expanduser() / IMAGE_SETS[kind]
    if not folder.is_dir():
        raise DataRootError(f"data root {where}: expected the folder {folder} of torchvision's {IMAGE_SETS[kind]} "
                            f"files, and it does not exist; {_how_to_get(kind)}")
    return folder


def _idx(path: Path, dims: int) -> np.ndarray:
    """An idx file (``path`` or ``path``.gz) of ``dims`` dimensions as a uint8 array."""
    found = path if path.exists() else path.with_name(path.name + ".gz")
    if not found.exists():
        raise DataRootError(f"expected the idx file {path} (or {path.name}.gz) of torchvision's on-disk format, and it "
                            f"does not exist")
    raw = (gzip.open if found.suffix == ".gz" else open)(found, "rb").read()
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + dims:
        raise DataRootError(f"{found} is not an idx file of {dims}-d uint8 data (magic number {magic:#010x}, expected "
                            f"{0x0800 + dims:#010x}); replace it with the file torchvision downloads")
    sizes = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(sizes)):
        raise DataRootError(f"{found} holds {body.size} values, and its header says {sizes}; the file is truncated")
    return body.reshape(sizes)


def _mnist_like(folder: Path) -> tuple[np.ndarray, ...]:
    raw = folder / "raw"
    return tuple(_idx(raw / f"{split}-{what}", dims) for split in ("train", "t10k")
                 for what, dims in (("images-idx3-ubyte", 3), ("labels-idx1-ubyte", 1)))


def _cifar(folder: Path) -> tuple[np.ndarray, ...]:
    def batch(name):
        path = folder / name
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d[b"labels"])
        except FileNotFoundError:
            raise DataRootError(f"expected the CIFAR-10 batch {path} of torchvision's on-disk format, and it does not "
                                f"exist") from None
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as err:
            raise DataRootError(f"{path} is not a CIFAR-10 python batch (a pickled dict with b'data' and b'labels'): "
                                f"{type(err).__name__}; replace it with the file torchvision downloads") from None

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    test = batch("test_batch")
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), *test)


def check(kind: str, root: str | None) -> None:
    """Raise ``DataRootError`` unless ``kind``'s files are under ``root`` with the right headers
    (reads a few bytes of each: cheap enough for a matrix's load)."""
    folder = root_of(kind, root)
    if kind == "cifar10":
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            path = folder / name
            if not path.is_file():
                raise DataRootError(f"expected the CIFAR-10 batch {path} of torchvision's on-disk format, and it does "
                                    f"not exist; {_how_to_get(kind)}")
            if path.open("rb").read(1) != b"\x80":
                raise DataRootError(f"{path} is not a CIFAR-10 python batch (a pickle); replace it with the file "
                                    f"torchvision downloads")
        return
    for split in ("train", "t10k"):
        for what, dims in (("images-idx3-ubyte", 3), ("labels-idx1-ubyte", 1)):
            path = folder / "raw" / f"{split}-{what}"
            found = path if path.exists() else path.with_name(path.name + ".gz")
            if not found.exists():
                raise DataRootError(f"expected the idx file {path} (or {path.name}.gz) of torchvision's on-disk "
                                    f"format, and it does not exist; {_how_to_get(kind)}")
            head = (gzip.open if found.suffix == ".gz" else open)(found, "rb").read(4)
            if int.from_bytes(head, "big") != 0x0800 + dims:
                raise DataRootError(f"{found} is not an idx file of {dims}-d uint8 data; replace it with the file "
                                    f"torchvision downloads")


def read(kind: str, root: str | None, n: int, test: int, seed: int) -> tuple[np.ndarray, ...]:
    """(x_train (n, C H W) float in [0, 1], y_train (n,), x_test (test, C H W), y_test) of image set ``kind``."""
    folder = root_of(kind, root)
    x, y, xt, yt = _cifar(folder) if kind == "cifar10" else _mnist_like(folder)
    if not 1 <= n <= len(x) or not 0 <= test <= len(xt):
        raise DataRootError(f"{kind} at {folder} has {len(x)} training and {len(xt)} test images; asked for n={n}, "
                            f"test={test}. Use n in [1, {len(x)}] and test in [0, {len(xt)}]")
    pick = np.random.default_rng(seed).permutation(len(x))[:n]

    def flat(a):
        return a.reshape(len(a), -1).astype(np.float64) / 255.0

    return flat(x[pick]), y[pick].astype(np.int64), flat(xt[:test]), yt[:test].astype(np.int64)
