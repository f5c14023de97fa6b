"""rankbias.linalg: the spectral core's Python face (layer 1).

``rsvd``, ``svdvals``, ``ranks`` and ``eps_rank`` validate their input once
(``inputs``) and dispatch by device: numpy arrays and CPU tensors to the Numba
kernels (``rankbias.kernels``), CUDA tensors to ``cuda/`` (launch plumbing, the
GPU algorithms, CUDA-graph replay).  ``weights`` reads weight files.
"""

from rankbias.linalg.spectral import MEASURES, eps_rank, ranks, rsvd, svdvals

__all__ = ["MEASURES", "eps_rank", "ranks", "rsvd", "svdvals"]
