"""Read weight matrices from saved files (.npy, .npz, .safetensors, torch .pt/.pth), and split
attention projections into per-head products.

Conv kernels (out, in, k [, k]) are measured as (out, in k [k]) matrices (Galanti et al.'s
convention), every tensor of 2+ dimensions as (shape[0], prod(shape[1:])).

Per head h (``split_heads``), for projections in ``nn.Linear``'s layout (q = W_q x, the
rows of W_q grouped by head, e = E / heads rows each): the bilinear form of the
attention logits, W_q^h^T W_k^h (E x E), and the head's value-output map,
W_o[:, h] W_v^h (E x E) (Kobayashi et al. 2024 measure W_Q W_K^T and W_V W_O;
these are those maps, transposed where the layout is).  Recognized names:
``<p>in_proj_weight`` with ``<p>out_proj.weight`` (``nn.MultiheadAttention``) and
``<p>{q,k,v}_proj.weight`` with ``<p>{o,out}_proj.weight``.
"""

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
    _check_magic(path, suffix)
    try:
        if suffix == ".npy":
            tensors = {path.stem: np.load(path, allow_pickle=False)}
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                tensors = {name: z[name] for name in z.files}
        elif suffix in (".pt", ".pth", ".ckpt"):
            tensors = _load_torch(path)
        elif suffix == ".safetensors":
            tensors = _load_safetensors(path)
        else:
            raise WeightFileError(
                f"weight file {path} has suffix '{suffix}'; supported: .npy, .npz, .safetensors, .pt, .pth, .ckpt. "
                f"Save the weights with np.save or torch.save(model.state_dict())."
            )
    except WeightFileError:
        raise
    except Exception as err:  # corrupt or foreign files: say which and why
        raise WeightFileError(
            f"could not read {path} as a {suffix} weight file: {err}. Check that the file is complete."
        ) from err
    return {name: t for name, t in tensors.items() if t.ndim >= 2}


# the first bytes of each format: a file without them is another kind of file, whatever its name
# (torch files have two formats, a zip archive and the legacy pickle stream: torch.load reads both)
MAGIC = {".npy": (b"\x93NUMPY", "NumPy's .npy header", "np.save"), ".npz": (b"PK", "a zip archive's header", "np.savez")}


def _check_magic(path: Path, suffix: str) -> None:
    """Refuse a file whose first bytes are not its suffix's format (a text file named .npy
    made NumPy fall back to unpickling and say "pickled (object) data")."""
    if suffix not in MAGIC:
        return
    magic, what, how = MAGIC[suffix]
    with open(path, "rb") as f:
        head = f.read(len(magic))
    if head != magic:
        raise WeightFileError(f"{path} is not a {suffix} file: it does not start with {what} (its first bytes are "
                              f"{head!r}). Save the weights with {how}, or give the file its format's suffix.")


STATE_KEYS = ("state_dict", "model_state_dict", "model")  # where checkpoints keep a model's weights


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file  # torch's reader: it also takes bfloat16, which numpy lacks

    return {name: t.float().numpy() for name, t in load_file(str(path)).items() if t.is_floating_point()}


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise  # not a pickle of objects: a corrupt file, said as such by load_matrices
        raise WeightFileError(
            f"{path} holds pickled Python objects (e.g. a whole module saved with torch.save(model)), which rankbias "
            f"does not unpickle: that could run code. Save model.state_dict() instead, or a .safetensors file."
        ) from None
    if isinstance(obj, dict):  # a training checkpoint: the model's weights, not the optimizer's state
        obj = next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), dict)), obj)
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


def split_heads(matrices: dict, heads: int) -> dict:
    """``matrices`` {name: (m, n) array or tensor} with every recognized attention layer's
    projections replaced by its per-head products ``<p>qk<h>`` and ``<p>vo<h>`` (module
    docstring); other entries unchanged, in order."""
    out, used = {}, set()
    for name in matrices:
        prefix = _attention_prefix(name, matrices)
        if prefix is None or name in used:
            if name not in used:
                out[name] = matrices[name]
            continue
        q, k, v, o, names = _projections(prefix, matrices)
        used.update(names)
        if q.shape[0] % heads:
            raise ValueError(f"layer {prefix or '(top)'} has {q.shape[0]} query rows, not a multiple of {heads} heads")
        e = q.shape[0] // heads
        for h in range(heads):
            rows = slice(h * e, (h + 1) * e)
            out[f"{prefix}qk{h}"] = q[rows].T @ k[rows]  # (E, E)
        for h in range(heads):
            rows = slice(h * e, (h + 1) * e)
            out[f"{prefix}vo{h}"] = o[:, rows] @ v[rows]  # (E, E)
    return out


_PARTS = ("in_proj_weight", "q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "o_proj.weight")


def _attention_prefix(name: str, matrices: dict) -> str | None:
    """The prefix of the complete attention layer ``name`` belongs to, or None."""
    for part in _PARTS:
        if name.endswith(part):
            p = name.removesuffix(part)
            has = {q for q in _PARTS if p + q in matrices}
            packed = {"in_proj_weight", "out_proj.weight"} <= has
            split = {"q_proj.weight", "k_proj.weight", "v_proj.weight"} <= has and bool(
                has & {"out_proj.weight", "o_proj.weight"})
            return p if packed or split else None
    return None


def _projections(prefix: str, matrices: dict):
    """(W_q, W_k, W_v, W_o, the names they came from) of the attention layer at ``prefix``."""
    if prefix + "in_proj_weight" in matrices:
        packed = matrices[prefix + "in_proj_weight"]  # (3E, E): W_q, W_k, W_v stacked
        E = packed.shape[1]
        names = {prefix + "in_proj_weight", prefix + "out_proj.weight"}
        return packed[:E], packed[E : 2 * E], packed[2 * E :], matrices[prefix + "out_proj.weight"], names
    out = prefix + ("o_proj.weight" if prefix + "o_proj.weight" in matrices else "out_proj.weight")
    names = [prefix + f"{p}_proj.weight" for p in "qkv"] + [out]
    return (*(matrices[n] for n in names), set(names))
