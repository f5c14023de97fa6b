"""Launch plumbing between torch and numba-cuda: one stream, one device, no host waits.

A numba-cuda kernel of ``rankbias.kernels`` gets torch tensors' memory through
``__cuda_array_interface__`` (``device_array``) and launches on torch's current
stream of the tensors' device inside numba's context of that device
(``launching``, ``launch``), so it is ordered with the torch operations around it
on any stream and any GPU.  ``available`` / ``require`` say whether numba-cuda
can run here; ``dynamic_shared`` opts the eigenvalue kernel in to more than
48 KB of shared memory.  Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)
a tensor is handed over as its numpy view and every launch goes to stream 0.
"""

from __future__ import annotations

import contextlib
import warnings

import numba
import torch


def numba_cuda():
    from rankbias.kernels.numba_cuda import cuda  # numba.cuda, with numba-cuda 0.30.x's numpy >= 2.5 fix

    return cuda


def available() -> bool:
    """Whether numba-cuda can run kernels here (a GPU, or the simulator)."""
    try:
        return bool(numba_cuda().is_available())
    except Exception:  # numba-cuda missing or its driver unusable
        return False


def require(func: str, name: str = "A") -> None:
    """Raise a clear error when a CUDA tensor reaches a machine where numba-cuda cannot run."""
    if not available():
        raise ValueError(
            f"The '{name}' parameter of {func} is a CUDA tensor, but numba-cuda cannot use a GPU here "
            f"(numba.cuda.is_available() is False). Install the CUDA extra (pip install 'rankbias[cuda]') "
            f"on a machine with an NVIDIA driver, or pass {name}.cpu() to use the CPU core."
        )


def device_array(t: torch.Tensor):
    """The kernel-side view of tensor t: its numpy view under the simulator, else a device array.

    Imported with ``sync=False``: by default numba makes the host wait for the stream that
    t's ``__cuda_array_interface__`` names (torch's current stream), once per array, so each
    launch drained the GPU's queue and left it idle while Python set up the next step.  Every
    kernel here is launched on that same stream (``launching``), so stream order already
    puts it after the work that wrote t: the wait bought nothing."""
    if numba.config.ENABLE_CUDASIM:
        return t.numpy()
    return numba_cuda().as_cuda_array(t.detach(), sync=False)


@contextlib.contextmanager
def launching(device: torch.device):
    """The numba stream to launch on for tensors on ``device``, inside numba's context of that
    device: torch's current stream there.  numba's own default stream would be the legacy
    stream 0, which does not wait for torch's non-blocking side streams (``with
    torch.cuda.stream(s)``), and numba's current device is GPU 0 whatever device the tensors
    are on.  Under the simulator: stream 0."""
    if numba.config.ENABLE_CUDASIM:
        yield 0
        return
    cuda = numba_cuda()
    with cuda.gpus[device.index if device.index is not None else torch.cuda.current_device()]:
        yield cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)


def launch(kernel, grid: int, block: int, *args, shared: int = 0) -> None:
    """kernel[grid, block](*args), tensors handed over as device arrays, on the device and the
    current torch stream of the first tensor argument (all of them share its device), with
    ``shared`` bytes of dynamic shared memory."""
    first = next(a for a in args if isinstance(a, torch.Tensor))
    with launching(first.device) as stream:
        kernel[grid, block, stream, shared](*(device_array(a) if isinstance(a, torch.Tensor) else a for a in args))


_opted_in: dict = {}  # device -> whether eigvalsh_cuda.DYNAMIC may take its shared memory there


def dynamic_shared(device: torch.device) -> bool:
    """Opt ``eigvalsh_cuda.DYNAMIC`` in to the dynamic shared memory its largest order needs, once
    per device: CUDA gives a block 48 KB unless the kernel's MAX_DYNAMIC_SHARED_SIZE_BYTES
    attribute is raised (up to 227 KB on sm_90).  numba-cuda 0.30 has no public call for it
    (NVIDIA/numba-cuda#94); this is the driver call its own shared-memory carveout setter makes.
    Where it fails (another numba-cuda, a GPU with less shared memory) a warning says so and the
    in-place kernel takes those orders.  The simulator needs no opt-in."""
    from rankbias.kernels import eigvalsh_cuda

    if numba.config.ENABLE_CUDASIM:
        return True
    if device not in _opted_in:
        nbytes = eigvalsh_cuda.shared_bytes(eigvalsh_cuda.DYNAMIC_CAP)
        try:
            from numba import float64
            from numba.cuda.cudadrv.driver import binding, driver

            with launching(device):
                compiled = eigvalsh_cuda.DYNAMIC.compile((float64[:, ::1], float64[:, ::1]))
                cufunc = compiled._codelibrary.get_cufunc()
                attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
                driver.cuKernelSetAttribute(attr, nbytes, cufunc.handle, cufunc.device.id)
            _opted_in[device] = True
        except Exception as err:  # noqa: BLE001  any failure means: use the in-place kernel
            warnings.warn(f"rankbias: numba-cuda could not give the eigenvalue kernel {nbytes} bytes of shared "
                          f"memory on {device} ({type(err).__name__}: {err}); singular values of matrices with "
                          f"101-{eigvalsh_cuda.DYNAMIC_CAP} columns use the slower in-place kernel instead.",
                          RuntimeWarning, stacklevel=3)
            _opted_in[device] = False
    return _opted_in[device]
