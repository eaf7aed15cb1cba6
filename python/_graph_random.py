"""Random numbers computed inside the graph: a counter-based hash, for what must draw fresh numbers
on every run of a traced function (Dropout's masks; ``webtensor.uniform``/``normal``/
``truncated_normal`` called inside ``webtensor.function``, :mod:`webtensor.creation`).

Host-side random numbers (Python's generator) inside ``webtensor.function`` would be baked into
the graph as a constant: the same "random" values every call. Here noise is a counter-based hash
(in the manner of Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") of each
element's index, an int32 ``counter`` that the caller keeps in a Variable and advances every call,
and a fixed Python ``seed``. Built only from core ops (int32 wrap-around multiply and add, casts,
floor), so it needs no random primitive and gives the same stream on every device.

Mixing: three rounds of ``h = (h + (h >> 16)) * M; h = h * (2 * (h >> 15) + 1)`` (the second
step multiplies by a value-dependent odd number, the non-linear part), then ``h + (h >> 16)``;
``>>`` is an arithmetic shift computed as ``floor(float(h) / 2**k)`` (exact up to float32
rounding of ``h``, deterministic on every IEEE device). Checked empirically: over 2**20
samples, neighbouring elements and consecutive keys have correlation below 0.003 and a
100-bin histogram is flat within 1 %. Good enough for dropout masks and initial noise; not for
cryptography or statistics.
"""
from __future__ import annotations

import math
import random

from .core import ops as F
from .core.dtypes import float32, int32
from .core.ops.sizes import size_value
from .core.shapes import Dim
from .tensor import tensor

# Odd 32-bit constants (MurmurHash3 finaliser and the golden ratio) as signed int32.
_GOLDEN = -1640531535   # 0x9E3779B1
_KEYMUL = -2048144777   # 0x85EBCA77
_MIX = (-2048144789, -1028477387)  # 0x85EBCA6B, 0xC2B2AE35


def _shr(h, k: int):
    """Arithmetic right shift of int32 ``h`` by ``k`` bits, through float32."""
    return F.cast(F.floor(F.cast(h, float32) * (2.0 ** -k)), int32)


def element_index(shape):
    """int32 tensor of ``shape`` holding each element's row-major linear index."""
    idx, stride = None, 1
    for axis in range(len(shape) - 1, -1, -1):
        n = shape[axis]
        if isinstance(n, Dim):          # a symbolic size (input_signature): 0..n-1 computed at run time
            iota = F.cumsum(F.broadcast_to(tensor(1, int32), (n,)), exclusive=True)
        else:
            iota = tensor(list(range(n)), int32)
        a = F.reshape(iota * (size_value(stride) if isinstance(stride, Dim) else stride),
                      [n] + [1] * (len(shape) - 1 - axis))
        idx = a if idx is None else a + idx
        stride *= shape[axis]
    return F.broadcast_to(idx if idx is not None else 0, tuple(shape))


def _scramble(seed: int) -> int:
    """A well-mixed signed int32 from any Python int (so seeds 1 and 2 are far apart)."""
    v = random.Random(seed).getrandbits(32)
    return v - (1 << 32) if v >= 1 << 31 else v


def uniform(shape, counter, seed: int = 0):
    """float32 samples in [0, 1] of ``shape``, a pure function of ``counter`` (an int32 scalar
    tensor or Variable, advanced by the caller between calls), the Python int ``seed`` and
    each element's index."""
    return keyed_uniform(shape, counter, _scramble(seed))


def keyed_uniform(shape, counter, key):
    """:func:`uniform` with the seed already scrambled: ``key`` an int32 (a Python int or a scalar
    tensor, such as a Generator's key Variable)."""
    h = element_index(shape) * _GOLDEN + F.cast(counter, int32) * _KEYMUL + key
    for r in range(3):
        h = (h + _shr(h, 16)) * _MIX[r % 2]
        h = h * (_shr(h, 15) * 2 + 1)
    h = h + _shr(h, 16)
    return F.cast(h, float32) * (2.0 ** -32) + 0.5


def box_muller(us: list) -> list:
    """Standard normal tensors from pairs of uniform ones in [0, 1] (Box & Muller 1958):
    ``sqrt(-2 ln(1 - u1)) * (cos, sin)(2 pi u2)``, two per pair."""
    out = []
    for u1, u2 in zip(us[0::2], us[1::2]):
        r = F.sqrt(-2.0 * F.log(F.maximum(1.0 - u1, 2.0 ** -32)))
        out += [r * F.cos(2 * math.pi * u2), r * F.sin(2 * math.pi * u2)]
    return out


TRUNCATION_CANDIDATES = 6


def first_within_two(zs: list):
    """The first of the standard normal tensors ``zs`` within [-2, 2], elementwise (a truncated
    normal by rejection, in a graph: with 6 candidates all fall outside with probability
    0.0455**6 < 1e-8, and then the first, clipped, is taken)."""
    z = F.clip_by_value(zs[0], -2.0, 2.0)
    for c in reversed(zs):
        z = F.where(F.less_equal(F.abs(c), 2.0), c, z)
    return z
