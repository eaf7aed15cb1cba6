"""Accuracy of issue 14's transcendental functions on the compiled devices, in float32 ulps against
numpy's float64 functions (``math.erfc`` for erfc) on float32 inputs, over wide ranges.

Error of one result: |got - want| / ulp(want), ulp being the spacing of float32 at |want| rounded to
float32; results below float32's smallest normal number (1.18e-38) count as exact when within that
absolute distance (WGSL lets a GPU flush subnormals to zero; lavapipe does). Each row's bound is the
maximum measured on each device, rounded up with some margin (the "webgpu" bounds are Mesa's
lavapipe: WGSL only promises exp within 3 + 2|x| ulp, so GPUs differ where a function uses exp).

    .venv/bin/python tests/backends/test_math_accuracy.py     # print the measured table (docs/math_accuracy.md)
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import webtensor as wt

N = 20000
FLT_MIN = np.float32(1.1754944e-38)
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _u(lo, hi):
    return lambda rng: rng.uniform(lo, hi, N)


def _log(lo, hi, signed=True):
    """magnitudes log-uniform in [lo, hi), of either sign (``signed``)."""
    def make(rng):
        m = np.exp(rng.uniform(np.log(lo), np.log(hi), N))
        return m * rng.choice([-1.0, 1.0], N) if signed else m
    return make


def _near(c, lo, hi):
    """c + d and c - d with d log-uniform in [lo, hi)."""
    return lambda rng: c + _log(lo, hi)(rng)


def _mix(*samplers):
    """All the samplers' points together."""
    return lambda rng: np.concatenate([m(rng) for m in samplers])


# (function, numpy float64 function, input domain label, sampler, {device: bound in ulps})
ROWS = [
    ("expm1", np.expm1, "|x| < 1e-30 .. 0.5", _log(1e-30, 0.5), {"wasm": 1, "webgpu": 1}),
    ("expm1", np.expm1, "[-88, 88]", _u(-88, 88), {"wasm": 2, "webgpu": 90}),
    ("log1p", np.log1p, "|x| < 1e-30 .. 0.4", _log(1e-30, 0.4), {"wasm": 3, "webgpu": 4}),
    ("log1p", np.log1p, "(-1, 3e38)", _mix(_u(-1, 1), _log(1e-3, 3e38, False)), {"wasm": 3, "webgpu": 6}),
    ("tan", np.tan, "[-10, 10]", _u(-10, 10), {"wasm": 4, "webgpu": 4}),
    ("tan", np.tan, "[-8192, 8192]", _u(-8192, 8192), {"wasm": 8, "webgpu": 10}),
    ("atan", np.arctan, "|x| in 1e-30 .. 1e30", _log(1e-30, 1e30), {"wasm": 4, "webgpu": 4}),
    ("asin", np.arcsin, "[-1, 1]", _mix(_u(-1, 1), _near(1, 1e-8, 1)), {"wasm": 3, "webgpu": 3}),
    ("acos", np.arccos, "[-1, 1]", _mix(_u(-1, 1), _near(-1, 1e-8, 1), _near(1, 1e-8, 1)), {"wasm": 3, "webgpu": 3}),
    ("sinh", np.sinh, "|x| < 1e-30 .. 9", _log(1e-30, 9), {"wasm": 3, "webgpu": 8}),
    ("sinh", np.sinh, "[-89, 89]", _u(-89, 89), {"wasm": 4, "webgpu": 90}),
    ("cosh", np.cosh, "[-89, 89]", _u(-89, 89), {"wasm": 4, "webgpu": 100}),
    ("asinh", np.arcsinh, "|x| in 1e-30 .. 3e38", _log(1e-30, 3e38), {"wasm": 4, "webgpu": 6}),
    ("acosh", np.arccosh, "1 + (1e-7 .. 3e38)", lambda rng: 1 + _log(1e-7, 3e38, False)(rng),
     {"wasm": 4, "webgpu": 6}),
    ("atanh", np.arctanh, "(-1, 1)", _mix(_log(1e-30, 1), _near(1, 1e-7, 0.5)), {"wasm": 4, "webgpu": 6}),
    ("erfc", _erfc, "[-10, 10.1]", _u(-10, 10.1), {"wasm": 7, "webgpu": 170}),
    ("softplus", lambda x: np.logaddexp(0, x), "[-100, 100]", _u(-100, 100), {"wasm": 4, "webgpu": 90}),
]


def ulp_errors(got, want):
    """Each result's error in float32 ulps of the true value (module docstring)."""
    got = got.astype(np.float64)
    w = np.abs(want)
    finite = np.isfinite(want) & (w <= np.finfo(np.float32).max)
    sub = finite & (w < FLT_MIN)
    spacing = np.spacing(np.maximum(w, FLT_MIN).astype(np.float32)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.abs(got - want) / spacing
    e = np.where(sub, np.where(np.abs(got - want) <= FLT_MIN, 0.0, np.inf), e)
    e = np.where(finite, np.nan_to_num(e, nan=np.inf), 0.0)
    return e


def measure(row, device):
    name, ref, _, sample, _ = row
    x = sample(np.random.default_rng(zlib_key(name, row[2]))).astype(np.float32)
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64))
    got = getattr(wt, name)(wt.tensor(x, device=device)).numpy()
    e = ulp_errors(got, want)
    i = int(np.argmax(e))
    return float(e[i]), float(x[i])


def zlib_key(*parts):
    import zlib
    return zlib.crc32("/".join(parts).encode())


def _atan2_error(device):
    rng = np.random.default_rng(7)
    y, x = (_log(1e-20, 1e20)(rng).astype(np.float32) for _ in range(2))
    want = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    return float(ulp_errors(wt.atan2(wt.tensor(y, device=device), wt.tensor(x, device=device)).numpy(), want).max())


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}:{r[2]}" for r in ROWS])
def test_accuracy(row, device):
    err, at = measure(row, device)
    assert err <= row[4][device], f"{row[0]} on {device}: {err:.3g} ulp at x = {at!r} (bound {row[4][device]})"


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_atan2_accuracy(device):
    assert _atan2_error(device) <= 4


if __name__ == "__main__":
    devices = sys.argv[1:] or ["wasm", "webgpu"]
    print("| function | inputs | " + " | ".join(f"{d} (ulp)" for d in devices) + " |")
    print("|---|---|" + "---|" * len(devices))
    for row in ROWS:
        cells = [f"{measure(row, d)[0]:.2g}" for d in devices]
        print(f"| {row[0]} | {row[2]} | " + " | ".join(cells) + " |")
    print("| atan2 | x, y of magnitude 1e-20 .. 1e20 | " + " | ".join(f"{_atan2_error(d):.2g}" for d in devices) + " |")
