"""Read weight matrices from saved files (.npy, .npz, torch .pt/.pth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class WeightFileError(ValueError):
    """A weight file that cannot be read, with what to do about it."""


def load_matrices(path: Path) -> dict[str, np.ndarray]:
    """{name: array} of every tensor with >= 2 dims in ``path``, in file order.

    .npy: one array, named by the file stem.  .npz: every array.  .pt/.pth: a
    state dict (nested dicts are flattened with dots) or a single tensor,
    loaded with ``torch.load(weights_only=True)``: no pickled code runs.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"weight file {path} does not exist. Pass the path of a .npy, .npz or .pt file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            tensors = {path.stem: np.load(path, allow_pickle=False)}
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                tensors = {name: z[name] for name in z.files}
        elif suffix in (".pt", ".pth"):
            tensors = _load_torch(path)
        else:
            raise WeightFileError(
                f"weight file {path} has suffix '{suffix}'; supported: .npy, .npz, .pt, .pth. "
                f"Save the weights with np.save or torch.save(model.state_dict())."
            )
    except WeightFileError:
        raise
    except Exception as err:  # corrupt or foreign files: say which and why
        raise WeightFileError(
            f"could not read {path} as a {suffix} weight file: {err}. Check that the file is complete."
        ) from err
    return {name: t for name, t in tensors.items() if t.ndim >= 2}


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        obj = {path.stem: obj}
    if not isinstance(obj, dict):
        raise WeightFileError(
            f"{path} holds a {type(obj).__name__}, not a state dict or a tensor. "
            f"Save model.state_dict() instead of the model."
        )
    return {name: t.detach().float().numpy() for name, t in _flatten(obj).items()}


def _flatten(obj: dict, prefix: str = "") -> dict:
    import torch

    flat = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            flat[name] = value
    return flat
