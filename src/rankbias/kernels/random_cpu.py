"""Deterministic Gaussian sketches from a counter-based generator.

A sketch entry depends only on ``(seed, stream, row, col)``, never on thread
count or call order, so sketches are reproducible however the work is split.

Generator: SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014) applied to the counter
``seed * GOLDEN + (stream << 40) + row * cols + col``; each pair of 53-bit
uniforms becomes two standard normals by the Box-Muller transform.
"""

import math

from numba import njit, prange, uint64

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_M1 = uint64(0xBF58476D1CE4E5B9)
_M2 = uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * math.pi
_INV_2_53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def _uniform(counter):
    """SplitMix64 of a uint64 counter, as a float64 uniform on [0, 1)."""
    z = counter + _GOLDEN
    z = (z ^ (z >> uint64(30))) * _M1
    z = (z ^ (z >> uint64(27))) * _M2
    z = z ^ (z >> uint64(31))
    return (z >> uint64(11)) * _INV_2_53


@njit(cache=True, inline="always")
def _fill_row(row, counter):
    """Fill a 1-d ``row`` with N(0, 1) draws from counters counter, counter + 1, ..."""
    c = row.shape[0]
    for h in range(c // 2):
        j = counter + uint64(2 * h)
        radius = math.sqrt(-2.0 * math.log(1.0 - _uniform(j)))  # 1 - u in (0, 1]
        angle = _TWO_PI * _uniform(j + uint64(1))
        row[2 * h] = radius * math.cos(angle)
        row[2 * h + 1] = radius * math.sin(angle)
    if c % 2:
        j = counter + uint64(c - 1)
        radius = math.sqrt(-2.0 * math.log(1.0 - _uniform(j)))
        row[c - 1] = radius * math.cos(_TWO_PI * _uniform(j + uint64(1)))


@njit(cache=True)
def fill_gaussian_block(out, seed, stream, offset):
    """Fill a 2-d ``out`` (r, c) with N(0, 1) draws from stream ``stream``,
    counters ``offset + a * c + b``: successive blocks of one stream use
    disjoint offsets (offset + r * c is the next free one)."""
    r, c = out.shape
    base = uint64(seed) * _GOLDEN + (uint64(stream) << uint64(40)) + uint64(offset)
    for a in range(r):
        _fill_row(out[a], base + uint64(a * c))


@njit(parallel=True, cache=True)
def fill_gaussian(out, seed):
    """Fill ``out`` with i.i.d. N(0, 1) draws, in place, in parallel over rows.

    out:  (batch, r, c) float32 or float64, C-contiguous; slice i is stream i
    seed: int in [0, 2**63)

    Entry ``out[i, a, b]`` is a function of ``(seed, i, a * c + b)`` alone.
    """
    batch, r, c = out.shape
    base = uint64(seed) * _GOLDEN
    for t in prange(batch * r):
        i, a = t // r, t % r
        _fill_row(out[i, a], base + (uint64(i) << uint64(40)) + uint64(a * c))
