"""numpy helpers for reference implementations (imported only when numpy is used)."""
from __future__ import annotations

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


from .cody_erf import (ERF_A as _ERF_A, ERF_B as _ERF_B, ERF_C as _ERF_C, ERF_D as _ERF_D,  # noqa: E402
                       ERF_P as _ERF_P, ERF_Q as _ERF_Q, ONE_OVER_SQRT_PI as _1_SQRT_PI)
_ERF_CHUNK = 32768          # elements per block: the ~40 passes over a block stay in the CPU's cache


def _rational(z, p, q):
    """Cody's numerator and denominator at ``z``: ``p[-1] z^k + p[0] z^(k-1) + ... + p[k-1]`` over
    ``z^k + q[0] z^(k-1) + ... + q[k-1]`` (k = len(q)), by Horner's rule, as in his routine."""
    k = len(q)
    num, den = p[k] * z, z.copy()
    for a, b in zip(p[:k - 1], q[:k - 1]):
        num += a
        num *= z
        den += b
        den *= z
    return num + p[k - 1], den + q[k - 1]


def erf(x):
    """Elementwise erf (numpy has none), vectorised: W. J. Cody's rational Chebyshev approximations
    (Math. Comp. 23 (1969) 631-637; the CALERF coefficients above), evaluated in float64:
    ``x P(x^2) / Q(x^2)`` for ``|x| <= 0.46875``; ``1 - exp(-x^2) P(|x|) / Q(|x|)`` for ``|x| <= 4``;
    ``1 - exp(-x^2) (1/sqrt(pi) - x^-2 P(x^-2) / Q(x^-2)) / |x|`` beyond (exactly 1 once exp(-x^2)
    underflows). Cody splits exp(-x^2) for erfc's relative accuracy; erf = 1 - erfc does not need it.
    Measured against ``math.erf`` (the C library's double erf) on 1.5 million points of [-7, 7], both
    tails and the region edges: 4.6e-16 relative at most (2 double ulps), and float32 results equal
    ``math.erf`` rounded to float32 (tests/python/test_numerics.py checks both).

    Args:
        x: array-like of any float dtype (or int), any shape.
    Returns:
        An array of ``x``'s shape and dtype (float64 for ints; float64 inside ``float64_reference()``);
        NaN stays NaN, erf(+-inf) = +-1, erf(-0.0) = -0.0.
    """
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = np.empty(flat.shape, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, flat.size, _ERF_CHUNK):
            _erf_block(np.abs(flat[i:i + _ERF_CHUNK], dtype=np.float64), out[i:i + _ERF_CHUNK])
    np.copysign(out, flat, out=out)
    return out.reshape(x.shape).astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)


def _erf_block(y, out, complement=False):
    """erf(y) (erfc(y) with ``complement``) for y = |x| >= 0 (or NaN) into ``out``: the middle
    interval's formula on all of ``y`` (clipped into it), then the two others where they apply."""
    m = np.clip(y, 0.46875, 4.0)
    num, den = _rational(m, _ERF_C, _ERF_D)
    num /= den
    e = np.multiply(m, m)
    np.negative(e, out=e)
    num *= np.exp(e, out=e)
    np.subtract(1.0, num, out=out) if not complement else np.copyto(out, num)
    small = y <= 0.46875
    if small.any():
        s = y[small]
        num, den = _rational(s * s, _ERF_A, _ERF_B)
        out[small] = s * num / den if not complement else 1.0 - s * num / den
    tail = y > 4.0
    if tail.any():
        t = y[tail]
        z = 1.0 / (t * t)
        num, den = _rational(z, _ERF_P, _ERF_Q)
        c = np.exp(-t * t) * ((_1_SQRT_PI - z * num / den) / t)
        out[tail] = 1.0 - c if not complement else c


def erfc(x):
    """Elementwise erfc = 1 - erf, vectorised with :func:`erf`'s approximations but returning Cody's
    erfc values directly, so the tail keeps its relative accuracy (erfc(x) for x < 0 is
    2 - erfc(-x)). exp(-x^2) is not split as Cody does: against ``math.erfc`` on [-7, 27] the
    relative error is 6e-14 at most where erfc is a normal double, and float32 results equal
    ``math.erfc`` rounded to float32 (tests/core/ops_more_math.py checks it).

    Args:
        x: array-like of any float dtype (or int), any shape.
    Returns:
        An array of ``x``'s shape and dtype (float64 for ints); NaN stays NaN, erfc(inf) = 0,
        erfc(-inf) = 2.
    """
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = np.empty(flat.shape, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, flat.size, _ERF_CHUNK):
            _erf_block(np.abs(flat[i:i + _ERF_CHUNK], dtype=np.float64), out[i:i + _ERF_CHUNK], complement=True)
    neg = flat < 0
    out[neg] = 2.0 - out[neg]
    return out.reshape(x.shape).astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)
