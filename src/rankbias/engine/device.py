"""Which torch device the engine trains on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``resolve(name)`` checks a device name before any run starts and returns a
``torch.device``, or raises ``DeviceError`` naming what is missing and what to
pass instead.  ``auto`` is the GPU when torch sees one and the CUDA spectral
core (numba-cuda) runs there, else the CPU; ``choose(name)`` also returns the
one line that says which and why.  ``for_worker`` places worker i of a local
pool on GPU i mod (GPUs torch sees) when the device is a bare ``cuda``, and
``describe`` is what a run's provenance records of the device it trained on.

A run means the same experiment on every device: its init and batch order come
from seeded CPU generators (``nets.init_params``, ``ensemble.train_ensemble``),
so only floating-point reassociation differs between a CPU and a GPU run.
"""

from __future__ import annotations

import platform
import re

import torch

NAMES = "auto, cpu, cuda or cuda:N"
_PATTERN = re.compile(r"(auto|cpu|cuda(:\d+)?)")


class DeviceError(ValueError):
    """A device name that is malformed or names a device this machine lacks."""


def _spectral_core() -> bool:
    from rankbias.linalg.cuda import spectral as spectral_cuda

    return spectral_cuda.available()


def _no_gpu() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU or driver"


def checked_name(name: str | torch.device) -> str:
    """``name`` as a string if it is a device name at all (not whether this machine has it)."""
    text = str(name)
    if not _PATTERN.fullmatch(text):
        raise DeviceError(f"'device' must be {NAMES}; got {text!r}. Pass one of those, e.g. --device cpu.")
    return text


def choose(name: str | torch.device = "auto") -> tuple[torch.device, str]:
    """(device, one line saying which device and why) for ``name``; see the module docstring."""
    text = checked_name(name)
    if text == "cpu":
        return torch.device("cpu"), "device: cpu (asked for)"
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu"), f"device: cpu ({_no_gpu()})"
        if not _spectral_core():
            return torch.device("cpu"), ("device: cpu (torch sees a GPU, but numba-cuda cannot run there: "
                                         "pip install 'rankbias[cuda]' to train on it)")
        text = "cuda"
    elif not torch.cuda.is_available():
        raise DeviceError(f"device {text!r} needs a CUDA GPU, but {_no_gpu()}. "
                          f"Pass --device cpu, or auto to use a GPU only where there is one.")
    count = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
    if index >= count:
        raise DeviceError(f"device {text!r} does not exist: torch sees {count} GPU{'s' * (count != 1)} "
                          f"(cuda:0 to cuda:{count - 1}). Pass one of those, or cuda for the current one.")
    if not _spectral_core():
        raise DeviceError(f"device {text!r} needs the CUDA spectral core, but numba-cuda cannot run here. "
                          f"Install it (pip install 'rankbias[cuda]'), or pass --device cpu.")
    device = torch.device("cuda", index)
    return device, f"device: {device} ({torch.cuda.get_device_name(index)})"


def resolve(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` that ``name`` stands for; raises ``DeviceError`` (see ``choose``)."""
    return choose(name)[0]


def spread_name(name: str, device: torch.device) -> str:
    """The name workers are handed for ``device``, which ``name`` resolved to: a bare
    ``cuda`` for a GPU that ``auto`` found or ``cuda`` asked for (``for_worker`` spreads
    it over the GPUs), the device itself otherwise (``cpu``, a pinned ``cuda:N``)."""
    return "cuda" if device.type == "cuda" and ":" not in str(name) else str(device)


def for_pool(name: str) -> str:
    """What a local pool's workers are told to train on: ``auto`` resolved once here
    (``spread_name``); any other name as it is."""
    return spread_name(name, resolve(name)) if name == "auto" else name


def for_worker(name: str, worker: int, gpus: int | None = None) -> str:
    """The device of worker ``worker`` (0-based) of a local pool asked to train on ``name``:
    cuda:(worker mod gpus) for a bare ``cuda`` (gpus: how many torch sees), ``name`` otherwise."""
    if name != "cuda":
        return name
    gpus = torch.cuda.device_count() if gpus is None else gpus
    return f"cuda:{worker % gpus}" if gpus > 1 else name


def describe(device: torch.device) -> dict:
    """What a run's provenance records of its device: name, model and the CUDA version."""
    if device.type == "cuda":
        return {"device": str(device), "device_name": torch.cuda.get_device_name(device),
                "cuda": torch.version.cuda}
    return {"device": str(device), "device_name": platform.processor() or platform.machine()}
