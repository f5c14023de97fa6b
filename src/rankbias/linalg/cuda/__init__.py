"""rankbias.linalg.cuda: the GPU path (numba-cuda kernels and torch on one stream).

Importable without a GPU or numba-cuda: each module loads the kernels only
when a call reaches a CUDA tensor, and says what is missing otherwise.
"""
