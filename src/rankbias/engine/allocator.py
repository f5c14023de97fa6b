"""Keep the memory a training loop frees inside the process (glibc's malloc).

A training step allocates and frees the same few-megabyte tensors every step.
By default glibc serves a block above its mmap threshold with fresh pages and
unmaps it on free, and trims the top of its heap back to the OS, so each step
faults its pages in again: a 25-member digits-CNN step (one thread) took 6.9k
page faults and a fifth of its time in the kernel, 121 ms, against 0 faults and
92 ms with the thresholds below; a 15-member attention step 63 ms against 54 ms
(measured 2026-12-06, two workers training beside it).  ``retain_freed_memory``
sets them with ``mallopt`` (mallopt(3): M_MMAP_THRESHOLD at its 64-bit maximum,
32 MiB, and M_TRIM_THRESHOLD at 1 GiB); where there is no glibc it does nothing.
The cost: the process keeps up to 1 GiB it has freed instead of returning it,
so its resident memory stays near its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # blocks up to this size come from the heap, reused after free
TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top kept before it is returned


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring), once per process; returns whether
    both took (False without glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
