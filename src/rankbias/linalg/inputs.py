"""Validate user arrays once and bring them to the kernels' form.

The kernels take C-contiguous float32/float64 arrays shaped (batch, m, n).
``as_batch`` accepts a numpy array or a CPU torch tensor with any leading batch
dimensions, checks it, and returns that form plus a ``Batch`` record that puts
results back into the caller's type and leading shape; ``as_cuda_batch`` does the
same for a CUDA tensor, which stays on its device.  Error messages follow
one pattern: what (parameter and function), the rule, the value received, and
the fix.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np


def _torch():
    """The torch module if it is already imported by the caller, else None."""
    import sys

    return sys.modules.get("torch")


def is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


@dataclass(frozen=True)
class Batch:
    """Where an input came from: its leading dims and its array library."""

    lead: tuple[int, ...]
    m: int
    n: int
    torch: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.lead, dtype=np.int64))

    def restore(self, x: np.ndarray):
        """(batch, ...) kernel output -> (*lead, ...) in the caller's type."""
        out = x.reshape(self.lead + x.shape[1:])
        if self.torch:
            return _torch().from_numpy(np.ascontiguousarray(out))
        return out


def _to_numpy(x, func: str, name: str) -> tuple[np.ndarray, bool]:
    if is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(
                f"The '{name}' parameter of {func} is a tensor on device "
                f"'{x.device}', but only the CPU spectral core is available. "
                f"Pass {name}.cpu() instead."
            )
        if x.is_complex():
            raise TypeError(
                f"The '{name}' parameter of {func} must hold real floats. Got a "
                f"tensor of dtype {x.dtype} instead. Pass its real part or abs()."
            )
        if not x.is_floating_point():
            raise TypeError(
                f"The '{name}' parameter of {func} must hold real floats. Got a "
                f"tensor of dtype {x.dtype} instead. Pass {name}.float()."
            )
        x = x.detach()
        if x.dtype not in (_torch().float32, _torch().float64):
            x = x.float()  # float16 / bfloat16 weights are measured in float32
        return x.numpy(), True
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"The '{name}' parameter of {func} must be a numpy array or a torch "
            f"tensor. Got {type(x).__name__} instead. Wrap it with np.asarray()."
        )
    return x, False


def as_batch(x, func: str, name: str = "A") -> tuple[np.ndarray, Batch]:
    """Validate ``x`` (..., m, n) and return it as (batch, m, n) float32/float64.

    Raises TypeError for a non-array, integer, bool or complex dtype, and
    ValueError for ndim < 2, an empty matrix or batch, or a CUDA tensor.  Finite
    values are checked by the caller from the Frobenius norms (one pass)."""
    arr, from_torch = _to_numpy(x, func, name)
    if arr.dtype.kind == "c":
        raise TypeError(
            f"The '{name}' parameter of {func} must hold real floats. Got dtype "
            f"{arr.dtype} instead. Pass its real part or np.abs() of it."
        )
    if arr.dtype.kind != "f":
        raise TypeError(
            f"The '{name}' parameter of {func} must hold real floats. Got dtype "
            f"{arr.dtype} instead. Pass {name}.astype(np.float32) or float64."
        )
    if arr.ndim < 2:
        raise ValueError(
            f"The '{name}' parameter of {func} must have at least 2 dimensions "
            f"(..., m, n). Got shape {arr.shape} instead. Pass a matrix, e.g. "
            f"{name}.reshape(1, -1) for a single row."
        )
    if arr.size == 0:
        raise ValueError(
            f"The '{name}' parameter of {func} must not be empty. Got shape "
            f"{arr.shape} instead. Pass at least one matrix with m, n >= 1."
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)  # float16 -> float32
    *lead, m, n = arr.shape
    batch = Batch(tuple(lead), m, n, from_torch)
    return np.ascontiguousarray(arr.reshape(batch.size, m, n)), batch


def as_cuda_batch(A, func: str, name: str = "A"):
    """Validate a CUDA tensor ``A`` (..., m, n) and return (A as (batch, m, n) float32/float64,
    its Frobenius norms (batch,) float64, the leading dims), all on A's device.

    The finiteness check reads only the norms on the host (one synchronization, no pass
    of its own over A): a NaN or Inf entry makes its matrix's norm NaN or Inf, and only
    then is A itself checked, as the squares of a finite float64 matrix may overflow.
    Half precision is measured in float32."""
    torch = _torch()  # imported: A is a tensor
    if A.ndim < 2 or min(A.shape[-2:]) < 1 or A.is_complex() or not A.is_floating_point():
        raise ValueError(
            f"The '{name}' parameter of {func} must be a real floating tensor shaped (..., m, n) with m, n >= 1. "
            f"Got dtype {A.dtype} and shape {tuple(A.shape)} instead. Pass a float32 or float64 matrix stack."
        )
    lead = tuple(A.shape[:-2])
    flat = A.reshape(-1, *A.shape[-2:])
    flat = (flat if flat.dtype in (torch.float32, torch.float64) else flat.float()).contiguous()  # (batch, m, n)
    fro = torch.linalg.vector_norm(flat, dim=(-2, -1), dtype=torch.float64)  # (batch,)
    if not bool(fro.isfinite().all()) and not bool(flat.isfinite().all()):
        raise ValueError(f"The '{name}' parameter of {func} must be finite. Got NaN or Inf entries. "
                         f"Replace them (e.g. torch.nan_to_num) or drop the diverged matrices.")
    return flat, fro, lead


def check_finite(fro: np.ndarray, arr: np.ndarray, func: str, name: str = "A") -> None:
    """Raise if ``arr`` holds NaN or Inf, judged from its Frobenius norms ``fro``."""
    if np.all(np.isfinite(fro)):
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"The '{name}' parameter of {func} must be finite. Got "
            f"{float(arr[where])} at index {where} of the (batch, m, n) view, and "
            f"{int(bad.sum())} non-finite entries in all. Replace them (e.g. "
            f"np.nan_to_num) or drop the diverged matrices."
        )
    # finite entries whose squares overflow float64: ||A||_F is not representable
    raise ValueError(
        f"The '{name}' parameter of {func} must have a Frobenius norm below "
        f"1.3e154. Got entries as large as {np.abs(arr).max():.3g}. Rescale "
        f"{name}; singular values scale with it."
    )


def check_int(value, func: str, name: str, low: int, high: int, hint: str = "") -> int:
    """``value`` as an int in [low, high], or a TypeError/ValueError saying so."""
    rule = f"an int in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The '{name}' parameter of {func} must be {rule}{hint}. Got "
            f"{value!r} of type {type(value).__name__} instead. Pass an int."
        )
    if not low <= value <= high:
        raise ValueError(
            f"The '{name}' parameter of {func} must be {rule}{hint}. Got "
            f"{value!r} instead. Pass a value between {low} and {high}."
        )
    return int(value)


def check_tolerance(value, func: str, name: str) -> float:
    """``value`` as a finite float >= 0, or a TypeError/ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"The '{name}' parameter of {func} must be a float >= 0. Got "
            f"{value!r} of type {type(value).__name__} instead. Pass a float."
        )
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(
            f"The '{name}' parameter of {func} must be a finite float >= 0. Got "
            f"{value!r} instead. Pass a non-negative tolerance such as 1e-3."
        )
    return float(value)


def check_seed(seed, func: str) -> int:
    """A seed in [0, 2**63) from an int, or a fresh one from the OS for None."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    return check_int(seed, func, "seed", 0, 2**63 - 1, " or None")
