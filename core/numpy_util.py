"""numpy helpers for reference implementations (imported only when numpy is used)."""
from __future__ import annotations

import math

import numpy as np

from .dtypes import DType

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


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    """Elementwise erf (numpy has none; math.erf is correctly rounded double)."""
    x = np.asarray(x)
    return _erf(x).astype(x.dtype) if x.size else x.copy()
