"""Issue 12's numerics on every device: int32 range checks on the way in, the float -> int cast rule,
NaN through max/min, sizes checked before creation functions build anything, and the reference
device's erf."""
import array
import math
import time

import numpy as np
import pytest

import webtensor as wt
from webtensor import hostdata as H
from webtensor.core.dtypes import int32

DEVICES = ["reference", "wasm", "webgpu"]
I32_MIN, I32_MAX = -2 ** 31, 2 ** 31 - 1


# ---- 1. integers out of int32's range raise; float -> int saturates ---------------------------------

@pytest.mark.parametrize("make,value", [
    (lambda: wt.tensor(np.array([2 ** 40, -2 ** 35, 5])), 2 ** 40),
    (lambda: wt.tensor(np.array([5, -2 ** 35])), -2 ** 35),
    (lambda: wt.tensor([2 ** 40], dtype=wt.int32), 2 ** 40),
    (lambda: wt.tensor([1, 2 ** 31]), 2 ** 31),
    (lambda: wt.tensor(2 ** 31), 2 ** 31),
    (lambda: wt.tensor([2 ** 70]), 2 ** 70),                       # beyond int64: numpy makes an object array
    (lambda: wt.tensor(np.array([3, 2 ** 32], np.uint64)), 2 ** 32),
    (lambda: wt.tensor(np.array([2 ** 31], np.uint32)), 2 ** 31),
    (lambda: wt.tensor([1, 2], device="wasm") * 2 ** 40, 2 ** 40),  # a Python scalar operand
    (lambda: wt.arange(2 ** 31 - 2, 2 ** 31 + 2), 2 ** 31),
    (lambda: wt.arange(-2 ** 31 - 3, -2 ** 31 + 1), -2 ** 31 - 3),
    (lambda: wt.tensor(memoryview(np.array([7, 2 ** 40]))), 2 ** 40),
    (lambda: H.from_python([2 ** 40, 1]), 2 ** 40),                 # the no-numpy path (Pyodide)
    (lambda: H.from_python([[1, 2], [3, -2 ** 31 - 1]], int32), -2 ** 31 - 1),
    (lambda: H.from_python(array.array("q", [1, 2 ** 33])), 2 ** 33),
])
def test_out_of_range_integers_raise(make, value):
    with pytest.raises(OverflowError, match=rf"{value}\b.*out of range for int32"):
        make()


def test_in_range_integers_and_other_dtypes_convert():
    assert wt.tensor(np.array([I32_MAX, I32_MIN, 5])).tolist() == [I32_MAX, I32_MIN, 5]
    assert wt.tensor([I32_MAX, I32_MIN]).dtype == wt.int32
    assert wt.arange(2 ** 31 - 3, 2 ** 31 - 1).tolist() == [2 ** 31 - 3, 2 ** 31 - 2]
    np.testing.assert_array_equal(wt.tensor([2 ** 40, 3], dtype=wt.float32).numpy(), np.float32([2 ** 40, 3]))
    np.testing.assert_array_equal(wt.tensor(np.array([2 ** 40]), dtype=wt.float32).numpy(), np.float32([2 ** 40]))
    assert H.to_list(*H.from_python([I32_MIN, I32_MAX])[:1], (2,), int32) == [I32_MIN, I32_MAX]


CAST_IN = np.array([3e9, -3e9, np.nan, np.inf, -np.inf, 2147483520.0, 2147483648.0, -2147483648.0,
                    2.7, -2.7, -0.0, 1e-45, 16777217.0, -np.nan], np.float32)
CAST_OUT = np.array([I32_MAX, I32_MIN, 0, I32_MAX, I32_MIN, 2147483520, I32_MAX, I32_MIN,
                     2, -2, 0, 0, 16777216, 0], np.int32)   # the rule: trunc, saturate, NaN -> 0


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("device", DEVICES)
def test_float_to_int_cast_saturates_nan_is_zero(device, mode):
    x = wt.tensor(CAST_IN, device=device)
    fns = [lambda t: wt.cast(t, wt.int32), lambda t: t.astype(wt.int32),
           lambda t: wt.cast(t * 1.0, "int32")]                   # fused into an elementwise kernel
    for fn in fns:
        y = fn(x) if mode == "eager" else wt.function(fn)(x)
        assert y.dtype == wt.int32
        np.testing.assert_array_equal(y.numpy(), CAST_OUT)
    # float16 saturates the same way (its range fits int32: only inf and NaN are special)
    h = wt.tensor(np.array([np.inf, -np.inf, np.nan, 65504, -2.5], np.float16), device=device)
    got = (wt.cast(h, wt.int32) if mode == "eager" else wt.function(lambda t: wt.cast(t, wt.int32))(h)).numpy()
    np.testing.assert_array_equal(got, [I32_MAX, I32_MIN, 0, 65504, -2])
    # NaN is nonzero: it casts to True, as in numpy
    b = (wt.cast(x, wt.bool) if mode == "eager" else wt.function(lambda t: wt.cast(t, wt.bool))(x)).numpy()
    np.testing.assert_array_equal(b, CAST_IN.astype(bool))


def test_host_float_data_to_int32_follows_the_cast_rule():
    np.testing.assert_array_equal(wt.tensor(CAST_IN, dtype=wt.int32).numpy(), CAST_OUT)
    np.testing.assert_array_equal(wt.tensor(CAST_IN.tolist(), dtype=wt.int32).numpy(), CAST_OUT)
    buf, _, _ = H.from_python(CAST_IN.tolist(), int32)              # without numpy: the same values
    assert H.to_list(buf, (len(CAST_IN),), int32) == CAST_OUT.tolist()


# ---- 2. NaN propagates through max/min on every device ----------------------------------------------

@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates_through_max_and_min(device, mode):
    nan, inf = np.nan, np.inf
    x = np.array([[1, nan, 3], [-inf, 2, inf], [nan, nan, nan], [-inf, -inf, -inf]], np.float32)
    run = (lambda f, *a: f(*a)) if mode == "eager" else (lambda f, *a: wt.function(f)(*a))
    t = wt.tensor(x, device=device)
    np.testing.assert_array_equal(run(wt.relu, t).numpy(), np.maximum(x, 0))
    np.testing.assert_array_equal(run(lambda a: wt.max(a, axis=1), t).numpy(), np.max(x, axis=1))
    np.testing.assert_array_equal(run(lambda a: wt.min(a, axis=1), t).numpy(), np.min(x, axis=1))
    np.testing.assert_array_equal(run(lambda a: wt.max(a), t).numpy(), np.max(x))
    np.testing.assert_array_equal(run(lambda a: wt.maximum(a, a[::-1]), t).numpy(), np.maximum(x, x[::-1]))
    np.testing.assert_array_equal(run(lambda a: wt.minimum(a, a[:, ::-1]), t).numpy(), np.minimum(x, x[:, ::-1]))
    np.testing.assert_array_equal(run(lambda a: wt.argmax(a, axis=1), t).numpy(), np.argmax(x, axis=1))
    np.testing.assert_array_equal(run(lambda a: wt.argmin(a, axis=1), t).numpy(), np.argmin(x, axis=1))
    long = np.zeros(40000, np.float32)
    long[30001] = nan                                   # a long row: the two-pass reductions
    np.testing.assert_array_equal(run(lambda a: wt.max(a), wt.tensor(long, device=device)).numpy(), nan)
