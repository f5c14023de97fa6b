"""Which torch device the engine trains on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``resolve(name)`` checks a device name before any run starts and returns a
``torch.device``, or raises ``DeviceError`` naming what is missing and what to
pass instead.  ``auto`` is the GPU when torch sees one and the CUDA spectral
core (numba-cuda) runs there, else the CPU; ``choose(name)`` also returns the
one line that says which and why.  ``place(name)`` resolves a name once into a
``Placement`` (the device, that line, how many local workers, and worker i's
device: GPU i mod (GPUs torch sees) for a bare ``cuda``), and ``describe`` is
what a run's provenance records of the device it trained on.

A run means the same experiment on every device: its init and batch order come
from seeded CPU generators (``nets.init_params``, ``ensemble.train_ensemble``),
so only floating-point reassociation differs between a CPU and a GPU run.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Placement:
    """Where a matrix trains, computed once (``place``) and handed to the runner.

    ``name`` is what was asked (auto, cpu, cuda, cuda:N); ``device`` what it resolved
    to here (None under a Dask scheduler: each worker resolves ``name`` on its own
    machine); ``line`` the one line that says which device and why; ``workers`` the
    local workers a pool gets by default: one per core on the CPU, one per GPU on a
    bare ``cuda`` (or ``auto`` that found one), one on a pinned ``cuda:N``."""

    name: str
    device: torch.device | None
    line: str
    workers: int

    def worker(self, index: int, gpus: int | None = None) -> torch.device | str:
        """The device of local worker ``index`` (0-based): a bare GPU placement puts worker i
        on cuda:(i mod gpus) (gpus: how many torch sees); the Dask case hands on the name."""
        if self.device is None:
            return self.name
        if self.device.type == "cuda" and ":" not in self.name:
            gpus = torch.cuda.device_count() if gpus is None else gpus
            return torch.device("cuda", index % gpus) if gpus > 1 else self.device
        return self.device


def place(name: str | torch.device = "auto", scheduler: bool = False) -> Placement:
    """The ``Placement`` of ``name``; raises ``DeviceError`` (see ``choose``).  With a Dask
    ``scheduler`` only the name is checked here."""
    text = checked_name(name)
    if scheduler:
        return Placement(text, None, f"device: {text} (resolved by each Dask worker)", 1)
    device, line = choose(text)
    if device.type == "cpu":
        workers = os.cpu_count() or 1
    else:
        workers = torch.cuda.device_count() if ":" not in text else 1
    return Placement(text, device, line, workers)


def as_placement(device: str | torch.device | Placement = "auto", scheduler: bool = False) -> Placement:
    """``device`` itself if it is a ``Placement`` already, else ``place(device, scheduler)``:
    what every entry point that takes either calls, so a name is resolved once."""
    return device if isinstance(device, Placement) else place(device, scheduler)


def describe(device: torch.device) -> dict:
    """What a run's provenance records of its device: name, model and the CUDA version."""
    if device.type == "cuda":
        return {"device": str(device), "device_name": torch.cuda.get_device_name(device),
                "cuda": torch.version.cuda}
    return {"device": str(device), "device_name": platform.processor() or platform.machine()}
