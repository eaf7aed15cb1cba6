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


# ---- 3. creation functions check the size before building anything ---------------------------------

HUGE = 10 ** 12
CREATORS = {
    "zeros": lambda d: wt.zeros((HUGE,), device=d),
    "ones": lambda d: wt.ones((HUGE,), device=d),
    "full": lambda d: wt.full((HUGE,), 7.0, device=d),
    "arange": lambda d: wt.arange(0, HUGE, device=d),
    "arange_float": lambda d: wt.arange(0.0, HUGE / 2, 0.5, device=d),
    "linspace": lambda d: wt.linspace(0.0, 1.0, HUGE, device=d),
    "eye": lambda d: wt.eye(10 ** 6, device=d),
    "uniform": lambda d: wt.uniform((HUGE,), seed=0, device=d),
    "normal": lambda d: wt.normal((10 ** 6, 10 ** 6), seed=0, device=d),
    "truncated_normal": lambda d: wt.truncated_normal((HUGE,), seed=0, device=d),
}


@pytest.mark.parametrize("name", CREATORS)
@pytest.mark.parametrize("device", DEVICES)
def test_creation_checks_the_size_first(device, name):
    wt.get_device(device)                       # device start-up is not what is timed
    op = name.split("_float")[0]
    t0 = time.perf_counter()
    with pytest.raises(MemoryError) as e:
        CREATORS[name](device)
    took = time.perf_counter() - t0
    msg = str(e.value)
    assert took < 2.0, f"{name} on {device} took {took:.1f} s to refuse"
    assert f" {op}" in msg and ("1000000000000" in msg or "1000000, 1000000" in msg), msg
    assert "4,000,000,000,000" in msg or "4000000000000" in msg, msg           # the bytes


def test_creation_of_ordinary_sizes_is_unchanged():
    np.testing.assert_array_equal(wt.arange(2, 11, 3).numpy(), np.arange(2, 11, 3, dtype=np.int32))
    np.testing.assert_array_equal(wt.arange(0.0, 1.0, 0.1).numpy(), np.arange(0.0, 1.0, 0.1).astype(np.float32))
    np.testing.assert_array_equal(wt.arange(5, 0, -2).numpy(), [5, 3, 1])
    np.testing.assert_array_equal(wt.linspace(-1, 2, 7).numpy(), np.linspace(-1, 2, 7).astype(np.float32))
    np.testing.assert_array_equal(wt.linspace(0, 1, 4, endpoint=False).numpy(), np.float32([0, 0.25, 0.5, 0.75]))
    np.testing.assert_array_equal(wt.eye(2, 3).numpy(), np.eye(2, 3, dtype=np.float32))
    assert wt.arange(0).shape == (0,) and wt.zeros((2, 0)).shape == (2, 0)
    import random
    r = random.Random(3)
    np.testing.assert_array_equal(wt.uniform((2, 3), 1.0, 2.0, seed=3).numpy(),
                                  np.float32([1.0 + r.random() for _ in range(6)]).reshape(2, 3))
    r = random.Random(4)
    np.testing.assert_array_equal(wt.normal((4,), 1.0, 2.0, seed=4).numpy(), np.float32([r.gauss(1.0, 2.0) for _ in range(4)]))
    r, want = random.Random(5), []
    while len(want) < 50:
        v = r.gauss(0.0, 1.0)
        if -2.0 <= v <= 2.0:
            want.append(3.0 + 0.5 * v)
    np.testing.assert_array_equal(wt.truncated_normal((50,), 3.0, 0.5, seed=5).numpy(), np.float32(want))


# ---- 4. the reference device's erf ------------------------------------------------------------------

def test_reference_erf_matches_math_erf():
    from webtensor.core.numpy_util import erf
    edges = [0.46875, 4.0, 26.543, 5.9, 27.0]                      # Cody's region boundaries and beyond
    x = np.concatenate([np.linspace(-7, 7, 1_400_001), np.logspace(-40, 1.5, 30001), -np.logspace(-40, 1.5, 30001),
                        np.nextafter(edges, 0), edges, np.nextafter(edges, 100), np.negative(edges),
                        [0.0, -0.0, 5e-324, 1e300, -1e300]])
    want = np.vectorize(math.erf, otypes=[np.float64])(x)
    got = erf(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    assert rel.max() < 6e-16, (rel.max(), x[rel.argmax()])           # measured: 4.5e-16 (2 double ulps)
    assert np.array_equal(np.signbit(got), np.signbit(want))         # erf(-0.0) = -0.0
    # float32: every value is math.erf rounded to float32 (measured: 0 ulp apart everywhere)
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)                                   # +-1e300 -> +-inf
    want32 = np.vectorize(math.erf, otypes=[np.float64])(x32.astype(np.float64)).astype(np.float32)
    got32 = erf(x32)
    assert got32.dtype == np.float32
    np.testing.assert_array_max_ulp(got32, want32, maxulp=0)
    special = erf(np.array([np.nan, np.inf, -np.inf], np.float32))
    assert np.isnan(special[0]) and special[1] == 1.0 and special[2] == -1.0
    assert erf(np.zeros((0, 3), np.float32)).shape == (0, 3)
    np.testing.assert_array_equal(erf(np.float16([0.5, -3.0, np.inf])),
                                  np.float16([math.erf(0.5), math.erf(-3.0), 1.0]))
