"""Repeated GPU spectral calls, replayed as CUDA graphs.

One GPU ``svdvals``, ``ranks`` or ``rsvd`` call is a few dozen small steps
(cuBLAS products, numba-cuda kernels, torch element-wise work), each launched
from Python; on the engine's NN-sized batches that host-side launch work, not
the device, can set a call's time.  The engine asks for the same shapes at
every log point, so a call whose signature repeats (its function, its inputs'
shapes, dtypes and device, its other arguments) is recorded once into a
``torch.cuda.CUDAGraph`` by stream capture and then replayed: each later call
copies its inputs into the graph's static input buffers, launches the whole
graph at once, and clones the outputs out of the graph's memory pool.  The
recipe is torch's (CUDA Graphs in the "CUDA semantics" notes of the PyTorch
docs): warm up on a side stream, capture, replay.  numba-cuda's kernels are
captured with torch's because every launch goes to torch's current stream
(``spectral_cuda._launching``), which is the capture stream while recording.

Policy: a signature's first call runs eagerly (it compiles the kernels and
opts them in to their shared memory outside any capture); its second call
captures and replays; later ones replay.  The last ``MAX_GRAPHS`` signatures
are kept, least recently used dropped with their graph and its memory pool.
A capture that fails (a step that synchronizes the host, a torch or
numba-cuda that cannot capture it) warns once and leaves that signature
eager for good.  ``disabled()`` runs everything eagerly inside its block,
and the environment variable RANKBIAS_CUDA_GRAPHS=0 does so for a whole
process: to time the eager path, or to rule the graphs out.

Only callers whose steps never read device values on the host may come here
(``spectral_cuda.RECORDABLE``): a host read inside a capture is illegal.
Threads (a Dask worker runs tasks in several) take the cache one call at a
time, and a capture holds only its own thread to the rules of stream capture
(``capture_error_mode="thread_local"``), so other threads' GPU work goes on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

MAX_GRAPHS = 16


@dataclass
class _Entry:
    """One signature: its recorded graph (``replay`` launches it; None until the second call),
    the static buffers its inputs are copied into, the outputs it writes, whether its
    capture failed, and when its buffers were last read."""

    replay: Callable[[], None] | None = None
    inputs: tuple = ()
    outputs: tuple = ()
    failed: bool = False
    done: object = None  # a CUDA event after the last replay's outputs were cloned


_cache: OrderedDict[Hashable, _Entry] = OrderedDict()
_enabled = os.environ.get("RANKBIAS_CUDA_GRAPHS", "1") != "0"
_lock = threading.Lock()  # one call at a time through the cache and its static buffers


def capture(fn: Callable, inputs: tuple) -> tuple[Callable[[], None], tuple]:
    """Record ``fn(*inputs)`` (CUDA tensors in, a tuple of CUDA tensors out) into a
    ``torch.cuda.CUDAGraph`` on the inputs' device -> (the graph's replay, its outputs)."""
    with torch.cuda.device(inputs[0].device), torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: lazy cuBLAS workspaces are made outside the graph
            fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = fn(*inputs)
    return graph.replay, outputs


def call(key: Hashable, fn: Callable, inputs: tuple, record: Callable = capture) -> tuple:
    """``fn(*inputs)`` -> a tuple of tensors, replayed from a recorded graph once ``key``
    (which must determine every shape, dtype, device and argument of the call) repeats.

    ``record(fn, static_inputs) -> (replay, outputs)`` records the call (default: ``capture``);
    replay() must leave in ``outputs`` what fn gives on the current contents of ``static_inputs``.
    """
    if not _enabled or not inputs[0].is_cuda:
        return fn(*inputs)
    with _lock:
        return _call(key, fn, inputs, record)


def _call(key: Hashable, fn: Callable, inputs: tuple, record: Callable) -> tuple:
    entry = _cache.get(key)
    if entry is None:
        _cache[key] = _Entry()
        while len(_cache) > MAX_GRAPHS:
            _cache.popitem(last=False)
        return fn(*inputs)
    _cache.move_to_end(key)
    if entry.failed:
        return fn(*inputs)
    if entry.replay is None:
        static = tuple(t.detach().clone() for t in inputs)
        try:
            entry.replay, entry.outputs = record(fn, static)
        except Exception as err:  # noqa: BLE001  any failure: this signature stays eager
            entry.failed = True
            warnings.warn(f"rankbias: could not record {key!r} as a CUDA graph ({type(err).__name__}: {err}); "
                          f"calls with this signature run eagerly.", RuntimeWarning, stacklevel=4)
            return fn(*inputs)
        entry.inputs = static
    device = inputs[0].device
    on_gpu = device.type == "cuda"
    # a graph replays on the current stream of the current device: make that the inputs' device
    with torch.cuda.device(device) if on_gpu else contextlib.nullcontext():
        if on_gpu and entry.done is not None:  # the last replay, maybe on another thread's stream, read the buffers
            torch.cuda.current_stream().wait_event(entry.done)
        for buffer, t in zip(entry.inputs, inputs):
            buffer.copy_(t.detach())
        entry.replay()
        outputs = tuple(out.clone() for out in entry.outputs)
        if on_gpu:
            entry.done = torch.cuda.Event()
            entry.done.record()
    return outputs


@contextlib.contextmanager
def disabled():
    """Run every GPU call eagerly inside the block (the cache is kept for after it)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def clear() -> None:
    """Drop every recorded graph and its memory."""
    with _lock:
        _cache.clear()


def recorded() -> list:
    """The signatures that replay from a graph now, least recently used first."""
    return [key for key, entry in _cache.items() if entry.replay is not None]
