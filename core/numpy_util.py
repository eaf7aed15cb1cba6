"""numpy helpers for reference implementations (imported only when numpy is used)."""
from __future__ import annotations

import math

import numpy as np

from .dtypes import DType, INT32_MAX, INT32_MIN

import contextlib

_NP = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16}


def np_dtype(dtype: DType):
    return _NP[dtype.name]


@contextlib.contextmanager
def float64_reference():
    """Inside this block the reference device stores and computes float32 tensors in float64.

    Gradient tests use it to compare autodiff with central finite differences without
    float32 rounding noise.
    """
    old = _NP["float32"]
    _NP["float32"] = np.float64
    try:
        yield
    finally:
        _NP["float32"] = old


def float_to_int32(x):
    """The float -> int32 cast rule (``webtensor.cast``): truncate toward zero, saturate to
    [INT32_MIN, INT32_MAX], NaN -> 0 — WebAssembly's ``i32.trunc_sat_f32_s``, the same on every
    device (numpy's own ``astype`` is platform-defined: INT_MIN for all of these on x86).

    Args:
        x: a float array (any float dtype; computed in float64, where every int32 is exact).
    Returns:
        An int32 array of the same shape.
    """
    with np.errstate(invalid="ignore"):
        r = np.clip(np.trunc(np.asarray(x, dtype=np.float64)), INT32_MIN, INT32_MAX)
    return np.where(np.isnan(r), 0, r).astype(np.int32)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    """Elementwise erf (numpy has none; math.erf is correctly rounded double)."""
    x = np.asarray(x)
    return _erf(x).astype(x.dtype) if x.size else x.copy()
