"""``numba.cuda`` for the CUDA kernels, usable on numpy >= 2.5.

numba-cuda 0.30.x registers an overload for ``np.row_stack`` when its array
module loads (on a device: at the first kernel it compiles), and numpy 2.5
removed that alias of ``np.vstack`` (deprecated since numpy 2.0), so on a stock
GPU machine every CUDA call raised AttributeError ("module 'numpy' has no
attribute 'row_stack'").  Where numpy lacks the alias it is put back, as what it
was (``np.vstack``), before ``numba.cuda`` loads, and stays: the array module
loads later.  Nothing else is changed.  Import ``cuda`` from here, not from numba.
"""

import numpy as np

if not hasattr(np, "row_stack"):  # numpy >= 2.5
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402  (after the alias)

__all__ = ["cuda"]
