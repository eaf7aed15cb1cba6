"""Every op of the op set against numpy on the "reference" device.

The oracles here are written independently of ``core/ops`` (plain numpy formulas and
direct loops), so a wrong reference implementation fails as surely as a wrong kernel.
Inputs are random, with broadcasting and edge cases: empty dims, size-1 dims, 0-d
tensors, negative axes, keepdims.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import webtensor as wt


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))  # reproducible per test


def check(t, expected, dtype=None, rtol=1e-5, atol=1e-6):
    """``t`` is a Tensor equal to ``expected`` in shape, (optionally) dtype and values."""
    assert isinstance(t, wt.Tensor), type(t)
    expected = np.asarray(expected)
    got = t.numpy()
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if dtype is not None:
        assert t.dtype == dtype, (t.dtype, dtype)
    if expected.dtype == np.bool_ or expected.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=atol)


# ---- input domains ---------------------------------------------------------------------------

def sample(rng, shape, domain="any"):
    """Random inputs of ``shape`` from a named domain (float32 unless the domain says otherwise)."""
    if domain == "any":
        return rng.uniform(-3, 3, shape).astype(np.float32)
    if domain == "pos":
        return rng.uniform(0.1, 3, shape).astype(np.float32)
    if domain == "nonzero":
        return (rng.choice([-1, 1], shape) * rng.uniform(0.2, 3, shape)).astype(np.float32)
    if domain == "halves":  # exact .5 ties and negatives for floor/ceil/round
        return (rng.integers(-8, 9, shape) / 2).astype(np.float32)
    if domain == "small_int":  # few distinct values so comparisons see ties
        return rng.integers(-2, 3, shape).astype(np.float32)
    if domain == "int":
        return rng.integers(-5, 6, shape).astype(np.int32)
    if domain == "bool":
        return rng.random(shape) < 0.5
    raise AssertionError(domain)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_gelu_erf(x):
    # Hendrycks & Gimpel 2016: x * Phi(x).
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def np_gelu_tanh(x):
    # Hendrycks & Gimpel 2016, tanh approximation.
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# ---- unary ops -------------------------------------------------------------------------------

UNARY = [  # (op name, numpy function, input domain)
    ("neg", np.negative, "any"),
    ("abs", np.abs, "any"),
    ("sign", np.sign, "small_int"),
    ("square", np.square, "any"),
    ("exp", np.exp, "any"),
    ("log", np.log, "pos"),
    ("sqrt", np.sqrt, "pos"),
    ("rsqrt", lambda x: 1 / np.sqrt(x), "pos"),
    ("reciprocal", lambda x: 1 / x, "nonzero"),
    ("sin", np.sin, "any"),
    ("cos", np.cos, "any"),
    ("tanh", np.tanh, "any"),
    ("erf", _erf, "any"),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), "any"),
    ("relu", lambda x: np.maximum(x, 0), "any"),
    ("gelu_erf", np_gelu_erf, "any"),
    ("gelu_tanh", np_gelu_tanh, "any"),
    ("floor", np.floor, "halves"),
    ("ceil", np.ceil, "halves"),
    ("round", np.round, "halves"),  # numpy rounds half to even, as the op promises
    ("stop_gradient", lambda x: x, "any"),
    ("identity", lambda x: x, "any"),
    ("logical_not", np.logical_not, "bool"),
]
SHAPES = [(), (0,), (1,), (5,), (3, 4), (2, 1, 3), (2, 0, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,fn,domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, domain, shape, rng):
    x = sample(rng, shape, domain)
    expected = fn(x.astype(np.float64)) if domain != "bool" else fn(x)
    check(getattr(wt, name)(wt.tensor(x)), expected, wt.bool if domain == "bool" else wt.float32)


UNARY_INT = [  # int32 inputs: (op, numpy function, result dtype)
    ("neg", np.negative, "int32"), ("abs", np.abs, "int32"), ("sign", np.sign, "int32"),
    ("square", np.square, "int32"), ("relu", lambda x: np.maximum(x, 0), "int32"),
    ("exp", np.exp, "float32"), ("sqrt", lambda x: np.sqrt(np.abs(x)), "float32"),
    ("floor", np.floor, "int32"), ("logical_not", np.logical_not, "bool"),
]


@pytest.mark.parametrize("name,fn,dtype", UNARY_INT, ids=[u[0] for u in UNARY_INT])
def test_unary_int_inputs(name, fn, dtype, rng):
    x = sample(rng, (3, 4), "int")
    if name == "sqrt":
        x = np.abs(x)
    check(getattr(wt, name)(wt.tensor(x)), fn(x), wt.as_dtype(dtype))


def test_unary_extremes_stay_finite():
    x = wt.tensor([-100.0, -30.0, 0.0, 30.0, 100.0])
    check(wt.sigmoid(x), 1 / (1 + np.exp(-np.array([-100.0, -30, 0, 30, 100]))), atol=1e-7)
    check(wt.tanh(x), np.tanh([-100.0, -30, 0, 30, 100]))
    check(wt.gelu(x, approximate=True), [0.0, 0.0, 0.0, 30.0, 100.0], atol=1e-6)
    check(wt.gelu(x), [0.0, 0.0, 0.0, 30.0, 100.0], atol=1e-6)


def test_round_is_half_to_even():
    check(wt.round(wt.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])), [-2.0, -2, -0, 0, 2, 2, 4])


# ---- binary ops ------------------------------------------------------------------------------

BINARY = [  # (op name, numpy function, lhs domain, rhs domain)
    ("add", np.add, "any", "any"),
    ("sub", np.subtract, "any", "any"),
    ("mul", np.multiply, "any", "any"),
    ("div", np.divide, "any", "nonzero"),
    ("pow", np.power, "pos", "any"),
    ("maximum", np.maximum, "small_int", "small_int"),
    ("minimum", np.minimum, "small_int", "small_int"),
    ("equal", np.equal, "small_int", "small_int"),
    ("not_equal", np.not_equal, "small_int", "small_int"),
    ("less", np.less, "small_int", "small_int"),
    ("less_equal", np.less_equal, "small_int", "small_int"),
    ("greater", np.greater, "small_int", "small_int"),
    ("greater_equal", np.greater_equal, "small_int", "small_int"),
    ("logical_and", np.logical_and, "bool", "bool"),
    ("logical_or", np.logical_or, "bool", "bool"),
]
PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()), ((2, 1, 3), (4, 1)),
         ((4,), (2, 3, 4)), ((0, 3), (1, 3)), ((2, 0, 1), (1, 5)), ((1,), (1,))]


def _result_dtype(expected):
    return wt.bool if expected.dtype == np.bool_ else wt.float32


@pytest.mark.parametrize("shapes", PAIRS, ids=str)
@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, da, db, shapes, rng):
    a, b = sample(rng, shapes[0], da), sample(rng, shapes[1], db)
    expected = fn(a.astype(np.float64), b.astype(np.float64)) if da != "bool" else fn(a, b)
    check(getattr(wt, name)(wt.tensor(a), wt.tensor(b)), expected, _result_dtype(np.asarray(expected)))


BINARY_INT = [  # int32 x int32: (op, numpy function, result dtype)
    ("add", np.add, "int32"), ("sub", np.subtract, "int32"), ("mul", np.multiply, "int32"),
    ("maximum", np.maximum, "int32"), ("minimum", np.minimum, "int32"),
    ("div", lambda a, b: a / b, "float32"), ("less", np.less, "bool"), ("equal", np.equal, "bool"),
]


@pytest.mark.parametrize("name,fn,dtype", BINARY_INT, ids=[b[0] for b in BINARY_INT])
def test_binary_int(name, fn, dtype, rng):
    a = sample(rng, (3, 1, 4), "int")
    b = sample(rng, (5, 4), "int")
    b[b == 0] = 3  # no division by zero
    check(getattr(wt, name)(wt.tensor(a), wt.tensor(b)), fn(a, b), wt.as_dtype(dtype))


def test_pow_int():
    a = np.array([[-3, -1, 0, 2, 5]], np.int32)
    b = np.array([[0], [1], [2], [3]], np.int32)
    check(wt.pow(wt.tensor(a), wt.tensor(b)), np.power(a, b), wt.int32)


def test_mixed_dtype_promotion(rng):
    i, f, m = sample(rng, (2, 3), "int"), sample(rng, (3,), "any"), sample(rng, (2, 3), "bool")
    check(wt.add(wt.tensor(i), wt.tensor(f)), i + f.astype(np.float64), wt.float32)
    check(wt.mul(wt.tensor(m), wt.tensor(i)), m * i, wt.int32)          # bool promotes to int32
    check(wt.greater(wt.tensor(i), wt.tensor(f)), i > f, wt.bool)


def test_python_scalars_are_weakly_typed(rng):
    x, i = sample(rng, (2, 3), "any"), sample(rng, (2, 3), "int")
    tx, ti = wt.tensor(x), wt.tensor(i)
    check(tx + 2, x + 2.0, wt.float32)
    check(2 - tx, 2.0 - x, wt.float32)
    check(ti * 3, i * 3, wt.int32)
    check(ti + 2.5, i + 2.5, wt.float32)
    check(1 / tx, 1.0 / x.astype(np.float64), wt.float32, rtol=1e-5)
    check(tx ** 2, x.astype(np.float64) ** 2, wt.float32)
    check(ti // 2, i // 2, wt.int32)
    check(tx // 0.5, np.floor(x.astype(np.float64) / 0.5), wt.float32)
    check(x + tx, 2 * x, wt.float32)  # ndarray + Tensor defers to the Tensor
    check(-tx, -x)
    check(abs(tx), np.abs(x))
    check(tx >= 0.5, x >= 0.5, wt.bool)
    check(~(tx > 0), ~(x > 0), wt.bool)
    check((tx > 0) & (tx < 1), (x > 0) & (x < 1), wt.bool)
    check((tx > 0) | (tx < -1), (x > 0) | (x < -1), wt.bool)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()), ((4,), (2, 1), (1, 4)),
                                    ((0, 2), (1, 2), (2,))], ids=str)
def test_where(shapes, rng):
    c, a, b = sample(rng, shapes[0], "bool"), sample(rng, shapes[1], "any"), sample(rng, shapes[2], "int")
    check(wt.where(wt.tensor(c), wt.tensor(a), wt.tensor(b)), np.where(c, a, b.astype(np.float64)), wt.float32)


CASTS = [  # (input data, target dtype, expected)
    ([-1.7, -0.5, 0.0, 0.5, 2.9], "int32", [-1, 0, 0, 0, 2]),   # truncation toward zero
    ([-1.7, 0.0, 0.25, np.nan], "bool", [True, False, True, True]),
    ([True, False], "float32", [1.0, 0.0]),
    ([-3, 0, 7], "float32", [-3.0, 0.0, 7.0]),
    ([-3, 0, 7], "bool", [True, False, True]),
    ([True, False], "int32", [1, 0]),
]


@pytest.mark.parametrize("data,dtype,expected", CASTS, ids=[f"{c[1]}{i}" for i, c in enumerate(CASTS)])
def test_cast(data, dtype, expected):
    dt = wt.as_dtype(dtype)
    t = wt.tensor(np.array(data, np.float32) if isinstance(data[0], float) else data)
    check(wt.cast(t, dt), np.array(expected), dt)
    check(t.astype(dt), np.array(expected), dt)


# ---- reductions ------------------------------------------------------------------------------

REDUCTIONS = [("sum", np.sum), ("prod", np.prod), ("max", np.max), ("min", np.min), ("mean", np.mean)]
AXES = [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, 0)),
        ((1, 3, 1), 1), ((1, 3, 1), (0, 2)), ((5,), 0), ((), None)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", AXES, ids=str)
@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, shape, axis, keepdims, rng):
    x = sample(rng, shape, "any")
    expected = fn(x.astype(np.float64), axis=axis, keepdims=keepdims)
    check(getattr(wt, name)(wt.tensor(x), axis=axis, keepdims=keepdims), expected, wt.float32, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
@pytest.mark.parametrize("name,fn", [("sum", np.sum), ("prod", np.prod), ("mean", np.mean)])
@pytest.mark.parametrize("shape,axis", [((0, 3), 0), ((0, 3), 1), ((2, 0), None), ((2, 0, 3), -2)], ids=str)
def test_reduction_of_empty(name, fn, shape, axis):
    x = np.zeros(shape, np.float32)
    with np.errstate(all="ignore"):
        expected = fn(x.astype(np.float64), axis=axis)
    check(getattr(wt, name)(wt.tensor(x), axis=axis), expected, wt.float32)


@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_of_empty_axis_raises(name):
    with pytest.raises(ValueError, match=name):
        getattr(wt, name)(wt.zeros((2, 0)), axis=1)


def test_reduction_dtypes(rng):
    m, i = sample(rng, (3, 4), "bool"), sample(rng, (3, 4), "int")
    check(wt.sum(wt.tensor(m), axis=1), m.sum(axis=1), wt.int32)  # counts
    check(wt.sum(wt.tensor(i), axis=0), i.sum(axis=0), wt.int32)
    check(wt.max(wt.tensor(i)), i.max(), wt.int32)
    check(wt.mean(wt.tensor(i), axis=-1), i.mean(axis=-1), wt.float32)
    check(wt.reduce_mean(wt.tensor(i)), i.mean(), wt.float32)
    check(wt.tensor(i).sum(axis=(0, 1), keepdims=True), i.sum(axis=(0, 1), keepdims=True), wt.int32)


@pytest.mark.parametrize("shape,axis", [((7,), None), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), None),
                                        ((1, 5), 0)], ids=str)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reductions(name, shape, axis, rng):
    x = sample(rng, shape, "small_int")  # ties: numpy and webtensor both take the first index
    check(getattr(wt, name)(wt.tensor(x), axis=axis), getattr(np, name)(x, axis=axis), wt.int32)


# ---- matmul ----------------------------------------------------------------------------------

MATMUL = [  # (a shape, b shape, transpose_a, transpose_b)
    ((3, 4), (4, 5), False, False), ((4, 3), (4, 5), True, False), ((3, 4), (5, 4), False, True),
    ((4, 3), (5, 4), True, True), ((2, 3, 4), (4, 5), False, False), ((2, 1, 3, 4), (5, 4, 2), False, False),
    ((1, 4, 3), (6, 5, 4), True, True), ((4,), (4, 5), False, False), ((3, 4), (4,), False, False),
    ((4,), (4,), False, False), ((2, 3, 4), (4,), False, False), ((4,), (2, 4, 5), False, False),
    ((0, 4), (4, 5), False, False), ((3, 0), (0, 5), False, False), ((1, 1), (1, 1), False, False),
]


def _np_matmul(a, b, ta, tb):
    if ta and a.ndim > 1:
        a = np.swapaxes(a, -1, -2)
    if tb and b.ndim > 1:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


@pytest.mark.parametrize("sa,sb,ta,tb", MATMUL, ids=[f"{m[0]}@{m[1]}{'T' * m[2]}{'t' * m[3]}" for m in MATMUL])
def test_matmul(sa, sb, ta, tb, rng):
    a, b = sample(rng, sa), sample(rng, sb)
    expected = _np_matmul(a.astype(np.float64), b.astype(np.float64), ta, tb)
    check(wt.matmul(wt.tensor(a), wt.tensor(b), transpose_a=ta, transpose_b=tb), expected, wt.float32,
          rtol=1e-5, atol=1e-5)
    if not (ta or tb):
        check(wt.tensor(a) @ wt.tensor(b), expected, rtol=1e-5, atol=1e-5)


def test_matmul_int(rng):
    a, b = sample(rng, (2, 3, 4), "int"), sample(rng, (4, 2), "int")
    check(wt.matmul(wt.tensor(a), wt.tensor(b)), a @ b, wt.int32)


@pytest.mark.parametrize("rows,depth,ishape", [(9, 6, (2, 5)), (4, 1, (3,)), (30, 7, ())])
def test_quantized_gather(rows, depth, ishape, rng):
    """Rows of int8 * per-row scales, the table stored transposed (depth x rows) and packed four
    bytes to a little-endian int32 word; negative indices count from the end."""
    from webtensor.core.ops.linalg import quantized_gather_op
    table = rng.integers(-127, 128, (rows, depth)).astype(np.int8)
    q = np.concatenate([table.T.ravel(), np.zeros(-table.size % 4, np.int8)]).view("<i4")
    scales = rng.uniform(0.01, 1.0, rows).astype(np.float32)
    idx = rng.integers(-rows, rows, ishape).astype(np.int32)
    expected = (table.astype(np.float64) * scales[:, None])[idx]
    check(quantized_gather_op(wt.tensor(q), wt.tensor(scales), wt.tensor(idx), depth=depth), expected,
          wt.float32, rtol=1e-6, atol=0)


@pytest.mark.parametrize("m,k,n,ta", [(3, 5, 4, False), (6, 7, 3, True), (2, 1, 9, False)])
def test_quantized_matmul(m, k, n, ta, rng):
    """a @ (int8 * scales) with the int8 matrix packed four bytes to a little-endian int32 word."""
    from webtensor.core.ops.linalg import quantized_matmul_op
    a = sample(rng, (k, m) if ta else (m, k))
    w8 = rng.integers(-127, 128, (k, n)).astype(np.int8)
    q = np.concatenate([w8.ravel(), np.zeros(-w8.size % 4, np.int8)]).view("<i4")
    scales = rng.uniform(0.01, 1.0, n).astype(np.float32)
    expected = (a.T if ta else a).astype(np.float64) @ (w8.astype(np.float64) * scales.astype(np.float32))
    check(quantized_matmul_op(wt.tensor(a), wt.tensor(q), wt.tensor(scales), transpose_a=ta, n=n), expected,
          wt.float32, rtol=1e-5, atol=1e-5)


# ---- movement --------------------------------------------------------------------------------

MOVEMENT = [  # (id, input shape, webtensor function, numpy function)
    ("reshape", (2, 3, 4), lambda x: wt.reshape(x, (6, 4)), lambda x: x.reshape(6, 4)),
    ("reshape-1", (2, 3, 4), lambda x: wt.reshape(x, (4, -1, 2)), lambda x: x.reshape(4, -1, 2)),
    ("reshape_flat", (2, 3, 4), lambda x: x.reshape(-1), lambda x: x.reshape(-1)),
    ("reshape_scalar", (), lambda x: wt.reshape(x, (1, 1)), lambda x: x.reshape(1, 1)),
    ("reshape_empty", (0, 3), lambda x: wt.reshape(x, (3, 0, 5)), lambda x: x.reshape(3, 0, 5)),
    ("transpose", (2, 3, 4), lambda x: wt.transpose(x), lambda x: x.transpose()),
    ("transpose_perm", (2, 3, 4), lambda x: wt.transpose(x, (1, 0, 2)), lambda x: x.transpose(1, 0, 2)),
    ("transpose_neg", (2, 3, 4), lambda x: wt.transpose(x, (-1, 0, 1)), lambda x: x.transpose(2, 0, 1)),
    ("transpose_T", (3, 5), lambda x: x.T, lambda x: x.T),
    ("transpose_empty", (2, 0, 3), lambda x: x.transpose(2, 1, 0), lambda x: x.transpose(2, 1, 0)),
    ("expand_dims0", (2, 3), lambda x: wt.expand_dims(x, 0), lambda x: np.expand_dims(x, 0)),
    ("expand_dims-1", (2, 3), lambda x: wt.expand_dims(x, -1), lambda x: np.expand_dims(x, -1)),
    ("expand_dims1", (2, 3), lambda x: x.expand_dims(1), lambda x: np.expand_dims(x, 1)),
    ("squeeze", (1, 3, 1, 2), lambda x: wt.squeeze(x), lambda x: np.squeeze(x)),
    ("squeeze-2", (1, 3, 1, 2), lambda x: wt.squeeze(x, -2), lambda x: np.squeeze(x, -2)),
    ("squeeze_pair", (1, 3, 1, 2), lambda x: wt.squeeze(x, (0, 2)), lambda x: np.squeeze(x, (0, 2))),
    ("broadcast_to", (3, 1), lambda x: wt.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4))),
    ("broadcast_scalar", (), lambda x: wt.broadcast_to(x, (2, 2)), lambda x: np.broadcast_to(x, (2, 2))),
    ("broadcast_empty", (1,), lambda x: wt.broadcast_to(x, (3, 0)), lambda x: np.broadcast_to(x, (3, 0))),
    ("flatten", (2, 3, 4), lambda x: wt.flatten(x), lambda x: x.reshape(2, -1)),
    ("flatten0", (2, 3, 4), lambda x: wt.flatten(x, 0), lambda x: x.reshape(-1)),
    ("slice_size", (4, 5), lambda x: wt.slice(x, [1, 2], [2, -1]), lambda x: x[1:3, 2:]),
    ("slice_end", (4, 5), lambda x: wt.slice(x, [0, 1], end=[4, 5], strides=[2, 3]), lambda x: x[0:4:2, 1:5:3]),
    ("slice_neg_stride", (4, 5), lambda x: wt.slice(x, [3, 4], end=[-5, 0], strides=[-1, -2]),
     lambda x: x[3::-1, 4:0:-2]),
    ("pad", (2, 3), lambda x: wt.pad(x, [(1, 0), (2, 3)]), lambda x: np.pad(x, [(1, 0), (2, 3)])),
    ("pad_value", (2, 3, 1), lambda x: wt.pad(x, [(0, 0), (1, 1), (0, 2)], constant_values=-1.5),
     lambda x: np.pad(x, [(0, 0), (1, 1), (0, 2)], constant_values=-1.5)),
    ("pad_nothing", (2, 3), lambda x: wt.pad(x, [(0, 0), (0, 0)]), lambda x: x),
    ("pad_empty", (0, 3), lambda x: wt.pad(x, [(1, 1), (0, 1)], 2.0),
     lambda x: np.pad(x, [(1, 1), (0, 1)], constant_values=2.0)),
]


@pytest.mark.parametrize("shape,fn,np_fn", [m[1:] for m in MOVEMENT], ids=[m[0] for m in MOVEMENT])
def test_movement(shape, fn, np_fn, rng):
    x = sample(rng, shape)
    check(fn(wt.tensor(x)), np_fn(x), wt.float32, rtol=0, atol=0)


def test_movement_keeps_int_and_bool(rng):
    i, m = sample(rng, (2, 3), "int"), sample(rng, (2, 3), "bool")
    check(wt.transpose(wt.tensor(i)), i.T, wt.int32)
    check(wt.pad(wt.tensor(m), [(1, 1), (0, 0)]), np.pad(m, [(1, 1), (0, 0)]), wt.bool)
    check(wt.broadcast_to(wt.tensor(i), (4, 2, 3)), np.broadcast_to(i, (4, 2, 3)), wt.int32)


INDEXING = [  # numpy index expressions applied to a (4, 5, 6) tensor
    np.s_[1:, ::-1, None, ...], np.s_[..., 0], np.s_[-1], np.s_[::2, 1:4], np.s_[::-2], np.s_[None],
    np.s_[1:1], np.s_[:, -3:-1], np.s_[3:0:-2, :, 5], np.s_[2, -1, 1:6:2], np.s_[..., None, ::-3],
    np.s_[:, :, :], np.s_[-100:100, 5:], np.s_[0, 0, 0],
]


@pytest.mark.parametrize("key", INDEXING, ids=[str(k) for k in INDEXING])
def test_indexing(key, rng):
    x = sample(rng, (4, 5, 6))
    check(wt.tensor(x)[key], x[key], wt.float32, rtol=0, atol=0)


@pytest.mark.parametrize("idx", [[0, 3, 3, 1], np.array([[2, 0], [1, 1]]), [-1, 0, -4], np.array(-2)], ids=str)
def test_integer_array_indexing(idx, rng):
    x = sample(rng, (4, 3))
    check(wt.tensor(x)[idx], x[np.asarray(idx)], wt.float32)
    check(wt.tensor(x)[wt.tensor(idx)], x[np.asarray(idx)], wt.float32)


CONCAT = [  # (shapes, axis)
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1), ([(2, 3, 1), (2, 3, 4)], -1),
    ([(0, 3), (2, 3)], 0), ([(2, 3)], 0), ([(1,), (1,), (1,)], -1), ([(2, 0), (2, 3), (2, 0)], 1),
]


@pytest.mark.parametrize("shapes,axis", CONCAT, ids=str)
def test_concat(shapes, axis, rng):
    xs = [sample(rng, s) for s in shapes]
    check(wt.concat([wt.tensor(x) for x in xs], axis=axis), np.concatenate(xs, axis=axis), wt.float32)


@pytest.mark.parametrize("shape,n,axis", [((2, 3), 3, 0), ((2, 3), 2, -1), ((2, 3), 4, 1), ((), 3, 0),
                                          ((0, 2), 2, 1)], ids=str)
def test_stack(shape, n, axis, rng):
    xs = [sample(rng, shape) for _ in range(n)]
    check(wt.stack([wt.tensor(x) for x in xs], axis=axis), np.stack(xs, axis=axis), wt.float32)


GATHER = [  # (params shape, indices, axis)
    ((5, 3), [4, 0, 0, 2], 0), ((5, 3), [[2, 1], [0, 2]], 1), ((2, 4, 3), [[3], [0], [1]], -2),
    ((2, 4, 3), 1, 1), ((6,), np.zeros((0,), np.int32), 0), ((3, 2), [0, -1, -3, 2], 0),  # negative: from the end
]


@pytest.mark.parametrize("shape,indices,axis", GATHER, ids=str)
def test_gather(shape, indices, axis, rng):
    p, i = sample(rng, shape), np.asarray(indices, np.int32)
    expected = np.take(p, i, axis=axis)
    check(wt.gather(wt.tensor(p), wt.tensor(i), axis=axis), expected, wt.float32)


ONE_HOT = [  # (indices, depth, axis)
    ([0, 2, 1, 2], 3, -1), ([[1, 0], [3, 2]], 4, 0), ([[1, 0], [3, 2]], 4, 1), ([1, 5, -1], 3, -1), (2, 4, -1),
]


@pytest.mark.parametrize("indices,depth,axis", ONE_HOT, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_one_hot(indices, depth, axis, dtype):
    i = np.asarray(indices)
    expected = np.moveaxis((i[..., None] == np.arange(depth)), -1, axis).astype(dtype)  # out-of-range rows are 0
    check(wt.one_hot(wt.tensor(i), depth, axis=axis, dtype=dtype), expected, wt.as_dtype(dtype))


TAKE_ALONG = [  # (arr shape, indices shape, axis)
    ((3, 4), (3, 2), 1), ((3, 4), (5, 4), 0), ((2, 3, 4), (2, 3, 1), -1), ((3, 4, 5), (1, 2, 5), 1),
    ((3, 4), (3, 0), 1), ((6,), (6,), 0),
]


@pytest.mark.parametrize("sa,si,axis", TAKE_ALONG, ids=str)
def test_take_along_axis(sa, si, axis, rng):
    a = sample(rng, sa)
    i = rng.integers(0, sa[axis], si).astype(np.int32)
    check(wt.take_along_axis(wt.tensor(a), wt.tensor(i), axis), np.take_along_axis(a, i, axis), wt.float32)


# ---- issue 14: sorting and scans -----------------------------------------------------------------

def _py_order(row, descending):
    """Stable order of a 1-D list: NaN is the largest value (last ascending, first descending)."""
    def key(i):
        v = float(row[i])
        nan = v != v
        return (not nan, -v if not nan else 0.0) if descending else (nan, v if not nan else 0.0)
    return sorted(range(len(row)), key=key)


def _rows(x, axis, fn):
    """Apply ``fn(1-D list) -> list`` to every row of ``x`` along ``axis`` (a plain loop)."""
    xt = np.moveaxis(x, axis, -1)
    out = [fn(list(r)) for r in xt.reshape(-1, xt.shape[-1])]
    return np.moveaxis(np.array(out).reshape(xt.shape[:-1] + (len(out[0]) if out else 0,)), -1, axis)


SORTS = [((7,), -1), ((4, 9), 1), ((6, 3), 0), ((2, 5, 4), 1), ((3, 1), -1)]


@pytest.mark.parametrize("direction", ["ASCENDING", "DESCENDING"])
@pytest.mark.parametrize("shape,axis", SORTS, ids=str)
def test_sort_and_argsort(shape, axis, direction, rng):
    x = sample(rng, shape, "small_int")          # ties
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, max(1, flat.size // 5), replace=False)] = np.nan
    flat[0] = np.inf
    desc = direction == "DESCENDING"
    order = _rows(x, axis, lambda r: _py_order(r, desc))
    check(wt.argsort(wt.tensor(x), axis=axis, direction=direction), order.astype(np.int32), wt.int32)
    got = wt.sort(wt.tensor(x), axis=axis, direction=direction).numpy()
    np.testing.assert_array_equal(got, np.take_along_axis(x, order, axis))      # NaN where expected
    ints = rng.integers(-3, 4, shape).astype(np.int32)
    check(wt.sort(wt.tensor(ints), axis=axis, direction=direction),
          np.take_along_axis(ints, _rows(ints, axis, lambda r: _py_order(r, desc)), axis), wt.int32)


def test_sort_orders_nan_last_as_numpy():
    x = np.array([3.0, np.nan, -np.inf, 1.0, np.nan, np.inf, -0.0, 0.0], np.float32)
    np.testing.assert_array_equal(wt.sort(wt.tensor(x)).numpy(), np.sort(x))
    check(wt.argsort(wt.tensor(x)), np.argsort(x, kind="stable").astype(np.int32))


@pytest.mark.parametrize("shape,k", [((7,), 3), ((3, 6), 6), ((2, 2, 5), 1), ((4, 3), 0)], ids=str)
def test_top_k(shape, k, rng):
    x = sample(rng, shape, "small_int")
    values, indices = wt.top_k(wt.tensor(x), k=k)
    order = _rows(x, -1, lambda r: _py_order(r, True)[:k]) if k else np.zeros(shape[:-1] + (0,), np.int64)
    check(indices, order.astype(np.int32), wt.int32)
    check(values, np.take_along_axis(x, order, -1), wt.float32)


def _py_scan(row, op, exclusive, reverse):
    row = row[::-1] if reverse else row
    out, acc = [], 0.0 if op == "sum" else 1.0
    for v in row:
        if exclusive:
            out.append(acc)
        acc = acc + v if op == "sum" else acc * v
        if not exclusive:
            out.append(acc)
    return out[::-1] if reverse else out


@pytest.mark.parametrize("exclusive,reverse", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shape,axis", [((6,), 0), ((3, 5), 1), ((4, 2, 3), 0), ((2, 3, 4), -1)], ids=str)
@pytest.mark.parametrize("op", ["sum", "prod"])
def test_cumsum_cumprod(op, shape, axis, exclusive, reverse, rng):
    x = sample(rng, shape, "any") if op == "sum" else rng.uniform(0.5, 1.5, shape).astype(np.float32)
    fn = wt.cumsum if op == "sum" else wt.cumprod
    want = _rows(x.astype(np.float64), axis, lambda r: _py_scan(r, op, exclusive, reverse))
    check(fn(wt.tensor(x), axis=axis, exclusive=exclusive, reverse=reverse), want, wt.float32)
    i = sample(rng, shape, "int")
    check(fn(wt.tensor(i), axis=axis, exclusive=exclusive, reverse=reverse),
          _rows(i.astype(np.int64), axis, lambda r: _py_scan(r, op, exclusive, reverse)).astype(np.int32), wt.int32)


def test_sorting_errors():
    with pytest.raises(TypeError, match="sort: values must be numeric"):
        wt.sort(wt.tensor([True, False]))
    with pytest.raises(ValueError, match="direction"):
        wt.sort(wt.tensor([1.0]), direction="UP")
    with pytest.raises(ValueError, match=r"top_k: k must be in \[0, 3\]"):
        wt.top_k(wt.tensor([1.0, 2.0, 3.0]), k=4)
    with pytest.raises(ValueError, match="scalar"):
        wt.cumsum(wt.tensor(1.0))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        wt.cumprod(wt.tensor([[1.0]]), axis=2)


# ---- issue 14: index tensors -------------------------------------------------------------------

def _entry(i, n):
    return i + n if i < 0 else i


GATHER_ND = [  # params shape, indices shape (last: K), batch_dims
    ((4, 5), (3, 2), 0), ((4, 5, 2), (2, 3, 1), 0), ((3, 4), (2,), 0), ((2, 3, 4), (2, 5, 1), 1),
    ((2, 3, 4, 2), (2, 3, 2), 2), ((3, 2), (0, 1), 0)]


@pytest.mark.parametrize("ps,is_,b", GATHER_ND, ids=str)
def test_gather_nd(ps, is_, b, rng):
    p = sample(rng, ps)
    k = is_[-1]
    i = np.stack([rng.integers(-ps[b + c], ps[b + c], is_[:-1]) for c in range(k)], -1).astype(np.int32)
    want = np.zeros(is_[:-1] + ps[b + k:], np.float32)
    for pos in np.ndindex(*is_[:-1]):
        tup = tuple(_entry(int(e), ps[b + c]) for c, e in enumerate(i[pos]))
        want[pos] = p[pos[:b] + tup]
    check(wt.gather_nd(wt.tensor(p), wt.tensor(i), batch_dims=b), want, wt.float32)


@pytest.mark.parametrize("shape,is_", [((6,), (5, 1)), ((3, 4), (7, 2)), ((4, 3), (6, 1)), ((2, 3), (2, 3, 2))], ids=str)
def test_scatter_nd_and_tensor_scatter(shape, is_, rng):
    k = is_[-1]
    i = np.stack([rng.integers(-shape[c], shape[c], is_[:-1]) for c in range(k)], -1).astype(np.int32)
    u = sample(rng, is_[:-1] + shape[k:])
    t = sample(rng, shape)
    summed, replaced = np.zeros(shape, np.float64), t.astype(np.float64).copy()
    for pos in np.ndindex(*is_[:-1]):                    # in order: duplicates add up; the last one wins
        tup = tuple(_entry(int(e), shape[c]) for c, e in enumerate(i[pos]))
        summed[tup] += u[pos]
        replaced[tup] = u[pos]
    check(wt.scatter_nd(wt.tensor(i), wt.tensor(u), shape), summed, wt.float32)
    check(wt.tensor_scatter_nd_add(wt.tensor(t), wt.tensor(i), wt.tensor(u)), t + summed, wt.float32)
    check(wt.tensor_scatter_nd_update(wt.tensor(t), wt.tensor(i), wt.tensor(u)), replaced, wt.float32)
    iu = rng.integers(-5, 6, u.shape).astype(np.int32)
    isum = np.zeros(shape, np.int64)
    for pos in np.ndindex(*is_[:-1]):
        isum[tuple(_entry(int(e), shape[c]) for c, e in enumerate(i[pos]))] += iu[pos]
    check(wt.scatter_nd(wt.tensor(i), wt.tensor(iu), shape), isum.astype(np.int32), wt.int32)


def test_index_tensor_errors():
    p = wt.zeros((3, 4))
    with pytest.raises(IndexError, match=r"gather_nd: index 4 \(entry 1 of index tuple 1\) is out of bounds for axis 1"):
        wt.gather_nd(p, wt.tensor([[0, 0], [1, 4]]))
    with pytest.raises(IndexError, match="scatter_nd: index -4"):
        wt.scatter_nd(wt.tensor([[-4]]), wt.tensor([1.0]), [3])
    with pytest.raises(ValueError, match=r"updates must have shape"):
        wt.scatter_nd(wt.tensor([[0], [1]]), wt.tensor([1.0]), [3])
    with pytest.raises(TypeError, match="indices must be integers"):
        wt.gather_nd(p, wt.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="index tuples of 3 entries"):
        wt.gather_nd(p, wt.tensor([[0, 0, 0]]))
    with pytest.raises(IndexError, match="segment id 3 is out of range for num_segments 3"):
        wt.unsorted_segment_sum(wt.tensor([1.0, 2.0]), wt.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="sorted"):
        wt.segment_sum(wt.tensor([1.0, 2.0]), wt.tensor([1, 0]))


def test_index_tensors_out_of_range_when_traced():
    # inside a function the values are not known: gather_nd reads zeros, the scatters drop the tuple
    f = wt.function(lambda p, i: wt.gather_nd(p, i))
    check(f(wt.tensor([[1.0, 2.0], [3.0, 4.0]]), wt.tensor([[1, 1], [2, 0], [0, -3]])), [4.0, 0.0, 0.0])
    g = wt.function(lambda i, u: wt.scatter_nd(i, u, [3]))
    check(g(wt.tensor([[1], [5], [-1]]), wt.tensor([1.0, 2.0, 4.0])), [0.0, 1.0, 4.0])


@pytest.mark.parametrize("ts,ms,axis", [((5,), (5,), None), ((4, 3), (4,), 0), ((2, 3, 4), (3, 4), 1),
                                        ((3, 2), (3, 2), 0), ((2, 4), (4,), -1)], ids=str)
def test_boolean_mask(ts, ms, axis, rng):
    t = sample(rng, ts)
    m = rng.random(ms) < 0.5
    a = 0 if axis is None else axis % len(ts)
    want = t[(slice(None),) * a + (m,)]          # numpy's boolean indexing
    check(wt.boolean_mask(wt.tensor(t), wt.tensor(m), axis=axis), want, wt.float32)
    check(wt.boolean_mask(wt.tensor(t), wt.tensor(np.zeros(ms, bool)), axis=axis), want[(slice(None),) * a + (slice(0, 0),)])


def test_value_dependent_shapes_raise_inside_function():
    with pytest.raises(ValueError, match="boolean_mask: the result's shape depends on mask's values"):
        wt.function(lambda t, m: wt.boolean_mask(t, m))(wt.tensor([1.0, 2.0]), wt.tensor([True, False]))
    with pytest.raises(ValueError, match="segment_sum: the number of segments"):
        wt.function(lambda d, i: wt.segment_sum(d, i))(wt.tensor([1.0, 2.0]), wt.tensor([0, 0]))


@pytest.mark.parametrize("ds,n", [((6,), 4), ((5, 3), 3), ((2, 3, 2), 5), ((0, 2), 2)], ids=str)
def test_segment_sums(ds, n, rng):
    d = sample(rng, ds)
    ids_shape = ds[:1] if len(ds) < 3 else ds[:2]
    ids = rng.integers(-1, n, ids_shape).astype(np.int32)
    want = np.zeros((n,) + ds[len(ids_shape):], np.float64)
    for pos in np.ndindex(*ids_shape):
        if ids[pos] >= 0:                        # negative ids are dropped (TF)
            want[ids[pos]] += d[pos]
    check(wt.unsorted_segment_sum(wt.tensor(d), wt.tensor(ids), n), want, wt.float32)
    if len(ids_shape) == 1:
        s = np.sort(np.abs(ids))
        want = np.zeros((int(s.max()) + 1 if s.size else 0,) + ds[1:], np.float64)
        for r, sid in enumerate(s):
            want[sid] += d[r]
        check(wt.segment_sum(wt.tensor(d), wt.tensor(s)), want, wt.float32)


# ---- issue 14: rearranging ---------------------------------------------------------------------

@pytest.mark.parametrize("shape,m", [((2, 3), (2, 1)), ((3,), (4,)), ((2, 1, 2), (1, 3, 2)), ((2, 2), (0, 2)), ((), ())],
                         ids=str)
def test_tile(shape, m, rng):
    x = sample(rng, shape)
    check(wt.tile(wt.tensor(x), m), np.tile(x, m) if m else x)


@pytest.mark.parametrize("shape,splits,axis", [((6, 2), 3, 0), ((2, 7), [2, -1, 1], 1), ((4, 3), [0, 4], 0),
                                                ((2, 5), [5], -1)], ids=str)
def test_split_and_unstack(shape, splits, axis, rng):
    x = sample(rng, shape)
    parts = wt.split(wt.tensor(x), splits, axis=axis)
    n = x.shape[axis]
    sizes = [n // splits] * splits if isinstance(splits, int) else \
        [s if s != -1 else n - sum(t for t in splits if t != -1) for s in splits]
    want = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    assert len(parts) == len(want)
    for p, w in zip(parts, want):
        check(p, w)
    rows = wt.unstack(wt.tensor(x), axis=axis)
    assert len(rows) == n
    for k, r in enumerate(rows):
        check(r, np.take(x, k, axis=axis))


def test_rearrange_errors():
    x = wt.zeros((2, 4))
    with pytest.raises(ValueError, match="split: num_or_size_splits 3 must be a positive divisor"):
        wt.split(x, 3, axis=1)
    with pytest.raises(ValueError, match="add up to 3"):
        wt.split(x, [1, 2], axis=1)
    with pytest.raises(ValueError, match="unstack: num 3 differs"):
        wt.unstack(x, num=3)
    with pytest.raises(ValueError, match="tile: multiples must be one non-negative int per axis"):
        wt.tile(x, [2])
    with pytest.raises(ValueError, match="repeat: repeats must be"):
        wt.repeat(x, [1, 2, 3], axis=1)
    with pytest.raises(ValueError, match="space_to_depth: height 2 and width 4 must be divisible by block_size 4"):
        wt.space_to_depth(wt.zeros((1, 2, 4, 1)), 4)
    with pytest.raises(ValueError, match="depth 3 must be divisible"):
        wt.depth_to_space(wt.zeros((1, 2, 2, 3)), 2)
    with pytest.raises(ValueError, match="reverse: repeated axis"):
        wt.reverse(x, [1, -1])


@pytest.mark.parametrize("shape,axis", [((5,), [0]), ((3, 4), [1]), ((2, 3, 4), [0, 2]), ((3, 2), -1), ((2, 2), [])],
                         ids=str)
def test_reverse(shape, axis, rng):
    x = sample(rng, shape)
    check(wt.reverse(wt.tensor(x), axis), np.flip(x, axis) if axis != [] else x)


@pytest.mark.parametrize("shape,shift,axis", [((5,), 2, 0), ((3, 4), -1, 1), ((3, 4), [1, 2], [0, 1]),
                                              ((2, 5), [3, 4], [1, 1]), ((4,), 9, 0)], ids=str)
def test_roll(shape, shift, axis, rng):
    x = sample(rng, shape)
    check(wt.roll(wt.tensor(x), shift, axis), np.roll(x, shift, axis))


@pytest.mark.parametrize("shape,repeats,axis", [((2, 3), 2, None), ((2, 3), 3, 1), ((3, 2), [1, 0, 2], 0),
                                                ((2, 2), [0, 0], 1), ((4,), [2], 0)], ids=str)
def test_repeat(shape, repeats, axis, rng):
    x = sample(rng, shape)
    check(wt.repeat(wt.tensor(x), repeats, axis=axis), np.repeat(x, repeats, axis=axis))


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("shape,b", [((2, 4, 6, 3), 2), ((1, 3, 3, 2), 3)], ids=str)
def test_space_to_depth_and_back(shape, b, data_format, rng):
    x = sample(rng, shape)                          # NHWC
    n, h, w, c = shape
    want = np.zeros((n, h // b, w // b, b * b * c), np.float32)
    for i, y, z, dy, dx, ch in np.ndindex(n, h // b, w // b, b, b, c):   # TF's formula
        want[i, y, z, (dy * b + dx) * c + ch] = x[i, y * b + dy, z * b + dx, ch]
    if data_format == "NCHW":
        got = wt.space_to_depth(wt.tensor(x.transpose(0, 3, 1, 2)), b, data_format="NCHW")
        check(got, want.transpose(0, 3, 1, 2))
        check(wt.depth_to_space(got, b, data_format="NCHW"), x.transpose(0, 3, 1, 2))
    else:
        got = wt.space_to_depth(wt.tensor(x), b)
        check(got, want)
        check(wt.depth_to_space(got, b), x)


# ---- issue 14: contractions --------------------------------------------------------------------

EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 2)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(3, 3)]),
    ("ii", [(4, 4)]), ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]), ("ij", [(2, 3)]), ("ji", [(2, 3)]),
    ("i,j->ij", [(3,), (4,)]), ("i,i->", [(5,), (5,)]), ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("iij,jk->ik", [(3, 3, 2), (2, 4)]), ("abc,cd->", [(2, 3, 4), (4, 2)]), ("i j , j -> i", [(2, 3), (3,)]),
    ("ab,bc->ca", [(2, 3), (3, 4)]), ("...i,i", [(2, 3, 4), (4,)]), ("ijk,jil->kl", [(2, 3, 4), (3, 2, 5)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum(eq, shapes, rng):
    xs = [sample(rng, s) for s in shapes]
    check(wt.einsum(eq, *[wt.tensor(x) for x in xs]), np.einsum(eq, *xs), wt.float32, rtol=1e-5, atol=1e-5)


def test_einsum_int_and_errors(rng):
    a, b = sample(rng, (2, 3), "int"), sample(rng, (3, 2), "int")
    check(wt.einsum("ij,jk->ik", wt.tensor(a), wt.tensor(b)), a @ b, wt.int32)
    with pytest.raises(ValueError, match="has 2 operands, got 1"):
        wt.einsum("ij,jk", wt.tensor(a))
    with pytest.raises(ValueError, match="does not fit a tensor of rank 2"):
        wt.einsum("ijk->i", wt.tensor(a))
    with pytest.raises(ValueError, match="output label 'z' is in no input"):
        wt.einsum("ij->z", wt.tensor(a))
    with pytest.raises(ValueError, match="label 'j' has sizes 3 and 2"):
        wt.einsum("ij,jk", wt.tensor(a), wt.tensor(a))
    with pytest.raises(TypeError, match="dtypes must match"):
        wt.einsum("ij,jk", wt.tensor(a), wt.tensor(b.astype(np.float32)))


@pytest.mark.parametrize("sa,sb,axes", [((2, 3, 4), (3, 4, 5), 2), ((3, 4), (4, 3), [[0, 1], [1, 0]]),
                                        ((2, 3), (4, 5), 0), ((2, 3, 4), (4, 2), ([0, 2], [1, 0])),
                                        ((3, 4), (4,), [[1], [0]]), ((2, 3), (3, 2), [-1, 0])], ids=str)
def test_tensordot(sa, sb, axes, rng):
    a, b = sample(rng, sa), sample(rng, sb)
    check(wt.tensordot(wt.tensor(a), wt.tensor(b), axes), np.tensordot(a, b, axes), wt.float32, rtol=1e-5, atol=1e-5)


def test_tensordot_errors():
    with pytest.raises(ValueError, match="differ"):
        wt.tensordot(wt.zeros((2, 3)), wt.zeros((2, 3)), 1)
    with pytest.raises(TypeError, match="axes must be an int or a pair"):
        wt.tensordot(wt.zeros((2, 3)), wt.zeros((3, 2)), "x")


# ---- issue 14: image.resize --------------------------------------------------------------------

def _tf_coords(n_in, n_out, nearest):
    """TF's half-pixel sample coordinates, in float32 as its kernels compute them."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    c = (np.arange(n_out).astype(f32) + f32(0.5)) * scale
    return c if nearest else c - f32(0.5)


def np_resize(x, oh, ow, method):
    """float64 numpy of tf.image.resize (half_pixel_centers, resize_bilinear_op.cc / resize_nearest_neighbor_op.cc)."""
    x = x.astype(np.float64)
    for axis, n_out in ((2, ow), (1, oh)):
        n_in = x.shape[axis]
        c = _tf_coords(n_in, n_out, method == "nearest").astype(np.float64)
        if method == "nearest":
            x = np.take(x, np.clip(np.floor(c).astype(int), 0, n_in - 1), axis=axis)
            continue
        f = np.floor(c)
        lo, hi = np.maximum(f, 0).astype(int), np.minimum(np.ceil(c), n_in - 1).astype(int)
        w = (c - f).reshape([-1 if d == axis else 1 for d in range(4)])
        a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
        x = a + (b - a) * w
    return x


def test_resize_matches_tf_documented_example():
    # tf.image.resize's docstring: a 5x5 identity resized to [3, 5] (bilinear)
    image = np.eye(5, dtype=np.int32)[None, ..., None]
    got = wt.image.resize(wt.tensor(image), [3, 5])
    assert got.dtype == wt.float32
    np.testing.assert_array_equal(got.numpy()[0, ..., 0], np.array(
        [[0.6666667, 0.3333333, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0.3333335, 0.6666665]], np.float32))
    # ... and with preserve_aspect_ratio=True: shape [1, 3, 3, 1]
    assert wt.image.resize(wt.tensor(image), [3, 5], preserve_aspect_ratio=True).shape == (1, 3, 3, 1)
    assert wt.image.resize(wt.zeros((2, 10, 4, 1)), [7, 7], preserve_aspect_ratio=True).shape == (2, 7, 3, 1)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("shape,size", [((2, 3, 4, 2), (7, 5)), ((1, 7, 5, 3), (3, 2)), ((1, 4, 4, 1), (4, 4)),
                                        ((5, 3, 2), (2, 6)), ((1, 1, 1, 2), (3, 2)), ((1, 6, 9, 1), (4, 6))], ids=str)
def test_resize(shape, size, method, rng):
    x = sample(rng, shape)
    x4 = x if len(shape) == 4 else x[None]
    want = np_resize(x4, *size, method)
    want = want if len(shape) == 4 else want[0]
    check(wt.image.resize(wt.tensor(x), size, method=method), want, wt.float32)


def test_resize_nearest_keeps_dtype_and_antialias_ignores_it(rng):
    x = sample(rng, (1, 5, 3, 2), "int")
    got = wt.image.resize(wt.tensor(x), (2, 4), method="nearest", antialias=True)
    check(got, np_resize(x, 2, 4, "nearest").astype(np.int32), wt.int32)


def test_resize_antialias_triangle_filter(rng):
    # 2x downsampling with TF's antialiased triangle kernel (width 2) weighs 4 neighbours 1:3:3:1,
    # renormalised at the border (3:3:1 of 7); upsampling weighs at most 2 neighbours
    x = sample(rng, (1, 8, 1, 1))
    y = wt.image.resize(wt.tensor(x), (4, 1), antialias=True).numpy()[0, :, 0, 0]
    v = x[0, :, 0, 0].astype(np.float64)
    want = [(3 * v[0] + 3 * v[1] + v[2]) / 7] + [(v[2 * i - 1] + 3 * v[2 * i] + 3 * v[2 * i + 1] + v[2 * i + 2]) / 8
                                                 for i in (1, 2)] + [(v[5] + 3 * v[6] + 3 * v[7]) / 7]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    same = wt.image.resize(wt.tensor(x), (8, 1), antialias=True).numpy()
    np.testing.assert_allclose(same, x, rtol=1e-6)          # the identity resize is exact


def test_resize_errors():
    with pytest.raises(ValueError, match="must be 4-D"):
        wt.image.resize(wt.zeros((2, 3)), (2, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        wt.image.resize(wt.zeros((1, 2, 2, 1)), (2, 2), method="bicubic")
    with pytest.raises(ValueError, match="two positive ints"):
        wt.image.resize(wt.zeros((1, 2, 2, 1)), (0, 2))


# ---- composites: softmax family ---------------------------------------------------------------

def np_logsumexp(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return r if keepdims else np.squeeze(r, axis=axis)


SOFTMAX_CASES = [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0), ((3, 1), -1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
def test_softmax_family(shape, axis, rng):
    x = sample(rng, shape).astype(np.float64) * 3
    lse = np_logsumexp(x, axis, keepdims=True)
    tx = wt.tensor(x.astype(np.float32))
    check(wt.softmax(tx, axis=axis), np.exp(x - lse), wt.float32, rtol=1e-5, atol=1e-6)
    check(wt.log_softmax(tx, axis=axis), x - lse, wt.float32, rtol=1e-5, atol=1e-5)
    check(wt.logsumexp(tx, axis=axis), np_logsumexp(x, axis), wt.float32, rtol=1e-5)
    check(wt.logsumexp(tx, axis=axis, keepdims=True), lse, wt.float32, rtol=1e-5)


def test_softmax_family_large_logits_stay_finite():
    x = np.array([[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -1001.0]])
    tx = wt.tensor(x.astype(np.float32))
    for t in (wt.softmax(tx), wt.log_softmax(tx), wt.logsumexp(tx)):
        assert np.all(np.isfinite(t.numpy())), t
    lse = np_logsumexp(x, -1, keepdims=True)
    check(wt.softmax(tx), np.exp(x - lse), atol=1e-6)
    check(wt.log_softmax(tx), x - lse, rtol=1e-6, atol=1e-4)
    check(wt.logsumexp(tx, axis=-1), lse[:, 0], rtol=1e-6)
    check(wt.logsumexp(tx, axis=(0, 1)), np_logsumexp(x.reshape(-1), 0), rtol=1e-6)


# ---- composites: convolution and pooling -------------------------------------------------------

def np_same_pads(size, k, stride, dilation):
    """TF 'SAME' padding: output ceil(in / stride); the odd pixel of padding goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def np_window_op(x, kh, kw, strides, pads, dilations, reduce_window, pad_value):
    """A direct loop over output positions: ``reduce_window(window (N, KH, KW, C), valid mask)``."""
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = pads
    xp = np.full((n, h + pt + pb, w + pl + pr, c), pad_value, dtype=np.float64)
    xp[:, pt:pt + h, pl:pl + w] = x
    mask = np.zeros((h + pt + pb, w + pl + pr), bool)
    mask[pt:pt + h, pl:pl + w] = True
    oh = (h + pt + pb - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (w + pl + pr - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    rows = []
    for i in range(oh):
        row = []
        for j in range(ow):
            hs = [i * strides[0] + a * dilations[0] for a in range(kh)]
            ws = [j * strides[1] + b * dilations[1] for b in range(kw)]
            row.append(reduce_window(xp[:, hs][:, :, ws], mask[hs][:, ws]))
        rows.append(np.stack(row, axis=1))
    return np.stack(rows, axis=1)


def np_conv2d(x, w, strides, padding, dilations):
    """Direct-loop cross-correlation, NHWC x HWIO -> NHWC (tf.nn.conv2d semantics)."""
    kh, kw = w.shape[:2]
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        pads = (np_same_pads(x.shape[1], kh, strides[0], dilations[0]),
                np_same_pads(x.shape[2], kw, strides[1], dilations[1]))
    else:
        pads = padding
    return np_window_op(x, kh, kw, strides, pads, dilations,
                        lambda win, mask: np.einsum("nabc,abco->no", win, w), 0.0)


CONV = [  # (x shape NHWC, kernel (KH, KW, O), strides, padding, dilations)
    ((2, 7, 6, 3), (3, 3, 4), (1, 1), "valid", (1, 1)),
    ((1, 7, 6, 2), (3, 2, 3), (2, 2), "valid", (1, 1)),
    ((2, 7, 6, 3), (3, 3, 2), (1, 1), "same", (1, 1)),
    ((1, 8, 7, 2), (3, 3, 2), (2, 3), "same", (1, 1)),
    ((1, 9, 8, 2), (3, 2, 2), (1, 1), "valid", (2, 3)),
    ((2, 9, 8, 2), (3, 3, 3), (2, 2), "same", (2, 2)),
    ((1, 5, 6, 3), (2, 3, 2), (1, 2), ((1, 2), (0, 3)), (1, 1)),
    ((1, 4, 4, 1), (4, 4, 1), (1, 1), "valid", (1, 1)),
    ((3, 5, 5, 2), (1, 1, 4), (1, 1), "valid", (1, 1)),
]


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("xs,ks,strides,padding,dilations", CONV, ids=[str(i) for i in range(len(CONV))])
def test_conv2d(xs, ks, strides, padding, dilations, data_format, rng):
    x = sample(rng, xs)
    w = sample(rng, (ks[0], ks[1], xs[3], ks[2]))
    expected = np_conv2d(x.astype(np.float64), w.astype(np.float64), strides, padding, dilations)
    tx = wt.tensor(x if data_format == "NHWC" else x.transpose(0, 3, 1, 2))
    y = wt.conv2d(tx, wt.tensor(w), strides=strides, padding=padding, data_format=data_format,
                  dilations=dilations)
    if data_format == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    check(y, expected, wt.float32, rtol=1e-5, atol=1e-5)


def test_conv2d_depthwise(rng):
    """groups == C (one input channel per group, multiplier 2): depthwise_conv2d_native."""
    x, w = sample(rng, (2, 6, 5, 3)), sample(rng, (3, 3, 1, 6))
    expected = np.concatenate([np_conv2d(x[..., c:c + 1].astype(np.float64), w[..., 2 * c:2 * c + 2].astype(np.float64),
                                         (1, 1), "same", (1, 1)) for c in range(3)], axis=-1)
    check(wt.conv2d(wt.tensor(x), wt.tensor(w), padding="same"), expected, wt.float32, rtol=1e-5, atol=1e-5)


POOL = [  # (x shape NHWC, pool size, strides, padding)
    ((2, 6, 6, 3), 2, None, "valid"), ((1, 7, 5, 2), 3, 2, "valid"), ((1, 7, 5, 2), 3, 2, "same"),
    ((2, 5, 6, 1), (2, 3), (1, 2), "same"), ((1, 4, 4, 2), (3, 3), 1, "same"), ((1, 3, 3, 1), 3, None, "valid"),
]


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("xs,size,strides,padding", POOL, ids=str)
def test_pooling(xs, size, strides, padding, data_format, rng):
    x = sample(rng, xs)
    size2 = (size, size) if isinstance(size, int) else size
    st = size2 if strides is None else (strides, strides) if isinstance(strides, int) else strides
    pads = ((0, 0), (0, 0)) if padding == "valid" else \
        (np_same_pads(xs[1], size2[0], st[0], 1), np_same_pads(xs[2], size2[1], st[1], 1))
    x64 = x.astype(np.float64)
    ex_max = np_window_op(x64, *size2, st, pads, (1, 1), lambda win, m: win.max(axis=(1, 2)), -np.inf)
    # TF's avg_pool with 'same': the divisor counts only real (unpadded) elements.
    ex_avg = np_window_op(x64, *size2, st, pads, (1, 1), lambda win, m: win.sum(axis=(1, 2)) / m.sum(), 0.0)
    tx = wt.tensor(x if data_format == "NHWC" else x.transpose(0, 3, 1, 2))
    to_fmt = (lambda a: a) if data_format == "NHWC" else (lambda a: a.transpose(0, 3, 1, 2))
    kw = dict(pool_size=size, strides=strides, padding=padding, data_format=data_format)
    check(wt.max_pool2d(tx, **kw), to_fmt(ex_max), wt.float32)
    check(wt.avg_pool2d(tx, **kw), to_fmt(ex_avg), wt.float32, rtol=1e-5, atol=1e-6)


# ---- composites: losses ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 6), (7,)], ids=str)
def test_losses(shape, rng):
    logits = sample(rng, shape).astype(np.float64) * 2
    labels = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if len(shape) > 1 else \
        rng.dirichlet(np.ones(shape[-1]))
    classes = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
    logp = logits - np_logsumexp(logits, -1, keepdims=True)
    tl, tz = wt.tensor(labels.astype(np.float32)), wt.tensor(logits.astype(np.float32))
    check(wt.softmax_cross_entropy(tl, tz), -(labels * logp).sum(-1), wt.float32, rtol=1e-5, atol=1e-5)
    probs = np.exp(logp)
    check(wt.softmax_cross_entropy(tl, wt.tensor(probs.astype(np.float32)), from_logits=False),
          -(labels * np.log(np.clip(probs, 1e-7, 1 - 1e-7))).sum(-1), wt.float32, rtol=1e-5, atol=1e-5)
    sparse = -np.take_along_axis(logp, classes[..., None], -1)[..., 0]
    check(wt.sparse_softmax_cross_entropy(wt.tensor(classes), tz), sparse, wt.float32, rtol=1e-5, atol=1e-5)
    target = sample(rng, shape).astype(np.float64)
    check(wt.mse(wt.tensor(target.astype(np.float32)), tz), ((target - logits) ** 2).mean(-1), wt.float32,
          rtol=1e-5, atol=1e-5)


def test_cross_entropy_with_large_logits_is_finite():
    logits = wt.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])
    ce = wt.sparse_softmax_cross_entropy(wt.tensor([0, 2]), logits)
    check(ce, [0.0, 1.0 + np.log1p(np.exp(-1.0))], rtol=1e-5, atol=1e-4)


# ---- the transposes that gradients use (primitives of their own) ---------------------------
# Which primitives are checked against numpy is derived from the tests that ran (test_coverage.py).

SLICE_GRAD = [  # (input shape, spec: one normalised (start, stop, step) per axis)
    ((5, 7), ((1, 5, 1), (6, -1, -2))),
    ((4, 3, 6), ((0, 4, 3), (2, 3, 1), (1, 6, 2))),
    ((3, 4), ((2, 2, 1), (0, 4, 1))),          # an empty slice scatters nothing
]


@pytest.mark.parametrize("shape,spec", SLICE_GRAD, ids=str)
def test_slice_grad(shape, spec, rng):
    from webtensor.core.ops.movement import slice_grad
    gshape = tuple(len(range(*s)) for s in spec)
    g = sample(rng, gshape)
    expected = np.zeros(shape, np.float64)
    for pos in np.ndindex(*gshape):            # g[pos] lands at start + pos * step on every axis
        expected[tuple(st + p * sp for p, (st, _, sp) in zip(pos, spec))] += g[pos]
    check(slice_grad(wt.tensor(g), spec=spec, shape=shape), expected, wt.float32)


PATCHES_GRAD = [  # (x shape NHWC, ksize, strides, dilations, pads)
    ((1, 5, 5, 2), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 7, 6, 1), (2, 3), (2, 1), (1, 2), ((0, 1), (2, 0))),
    ((1, 6, 6, 3), (2, 2), (2, 2), (1, 1), ((0, 0), (0, 0))),
]


@pytest.mark.parametrize("xs,ksize,strides,dilations,pads", PATCHES_GRAD, ids=str)
def test_extract_patches_grad(xs, ksize, strides, dilations, pads, rng):
    from webtensor.core.ops.nn import extract_patches_grad
    n, h, w, c = xs
    oh = (h + sum(pads[0]) - (ksize[0] - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (w + sum(pads[1]) - (ksize[1] - 1) * dilations[1] - 1) // strides[1] + 1
    g = sample(rng, (n, oh, ow, ksize[0], ksize[1], c))
    expected = np.zeros(xs, np.float64)
    for b, i, j, ki, kj, ch in np.ndindex(*g.shape):   # each window element adds back where it was read
        y, x = i * strides[0] + ki * dilations[0] - pads[0][0], j * strides[1] + kj * dilations[1] - pads[1][0]
        if 0 <= y < h and 0 <= x < w:
            expected[b, y, x, ch] += g[b, i, j, ki, kj, ch]
    check(extract_patches_grad(wt.tensor(g), shape=xs, ksize=ksize, strides=strides, dilations=dilations,
                               pads=pads), expected, wt.float32, rtol=1e-5, atol=1e-5)


from ops_more_math import *  # noqa: E402,F401,F403  (issue 14's ops; run here, with this module's check)
