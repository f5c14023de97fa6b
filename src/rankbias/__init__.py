"""rankbias: a benchmark suite for the low-rank bias of neural networks.

The spectral core is public here: ``rsvd``, ``svdvals``, ``ranks`` and
``eps_rank`` take numpy arrays or CPU torch tensors shaped (..., m, n).
"""

from rankbias.linalg.spectral import MEASURES, eps_rank, ranks, rsvd, svdvals

__version__ = "0.1.0"
__all__ = ["MEASURES", "eps_rank", "ranks", "rsvd", "svdvals", "__version__"]
