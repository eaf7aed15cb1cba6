"""Tensor creation: constants, ranges, and seeded random tensors.

Random numbers come from Python's ``random.Random`` (Mersenne Twister, seeded
explicitly), so a seed gives the same tensor on every device and in Pyodide,
with or without numpy.
"""
from __future__ import annotations

import math
import random as _random
from math import prod

from .core import ops as F
from .core.dtypes import as_dtype, float32, int32
from .tensor import Tensor, tensor


def _shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)


def full(shape, fill_value, dtype=None, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (dtype from the value unless given)."""
    return F.broadcast_to(tensor(fill_value, dtype=dtype, device=device), _shape(shape))


def zeros(shape, dtype=float32, device=None) -> Tensor:
    return full(shape, 0, dtype=dtype, device=device)


def ones(shape, dtype=float32, device=None) -> Tensor:
    return full(shape, 1, dtype=dtype, device=device)


def zeros_like(x, dtype=None) -> Tensor:
    return full(x.shape, 0, dtype=dtype or x.dtype, device=x.device)


def ones_like(x, dtype=None) -> Tensor:
    return full(x.shape, 1, dtype=dtype or x.dtype, device=x.device)


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """numpy.arange: ints give int32, any float gives float32."""
    if stop is None:
        start, stop = 0, start
    isint = all(isinstance(v, int) for v in (start, stop, step))
    dt = as_dtype(dtype) if dtype is not None else (int32 if isint else float32)
    n = max(0, math.ceil((stop - start) / step))
    return tensor([start + i * step for i in range(n)], dtype=dt, device=device).reshape((n,))


def linspace(start, stop, num=50, endpoint=True, dtype=float32, device=None) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` (inclusive when ``endpoint``)."""
    div = (num - 1) if endpoint else num
    step = (stop - start) / div if div > 0 else 0.0
    vals = [start + i * step for i in range(num)]
    if endpoint and num > 1:
        vals[-1] = stop
    return tensor(vals, dtype=dtype, device=device).reshape((num,))


def eye(n, m=None, dtype=float32, device=None) -> Tensor:
    m = n if m is None else m
    return tensor([[1 if i == j else 0 for j in range(m)] for i in range(n)], dtype=dtype, device=device) \
        .reshape((n, m))


_global = _random.Random(0)


def set_seed(seed: int) -> None:
    """Seed the generator used by random ops called without an explicit ``seed``."""
    _global.seed(seed)


def _rng(seed):
    return _random.Random(seed) if seed is not None else _random.Random(_global.getrandbits(64))


def uniform(shape, minval=0.0, maxval=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Uniform samples in ``[minval, maxval)``; the same ``seed`` gives the same values everywhere."""
    r, shape = _rng(seed), _shape(shape)
    span = maxval - minval
    return tensor([minval + span * r.random() for _ in range(prod(shape))], dtype=dtype, device=device) \
        .reshape(shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Normal samples N(mean, stddev^2) (``random.gauss``: the Kinderman–Monahan ratio method)."""
    r, shape = _rng(seed), _shape(shape)
    return tensor([r.gauss(mean, stddev) for _ in range(prod(shape))], dtype=dtype, device=device).reshape(shape)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Normal samples redrawn until within two standard deviations (as tf.random.truncated_normal)."""
    r, shape = _rng(seed), _shape(shape)
    out = []
    while len(out) < prod(shape):
        v = r.gauss(0.0, 1.0)
        if -2.0 <= v <= 2.0:
            out.append(mean + stddev * v)
    return tensor(out, dtype=dtype, device=device).reshape(shape)
