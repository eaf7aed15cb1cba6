"""numpy checks of issue 14's ops on the "reference" device; ``test_ops.py`` star-imports the tests,
so they run there, with its fixtures and its ``check`` (taken from ``request.module``: the coverage
plugin wraps that one). The oracles are numpy's own functions in float64, ``math.erfc``, or the
formulas written out (activations: Keras' and TF's documented equations)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import webtensor as wt

__all__ = ["test_more_unary", "test_more_unary_int_inputs", "test_more_unary_special_values", "test_more_binary",
           "test_more_binary_int", "test_float_class_tests", "test_logical_xor", "test_clip_by_value",
           "test_activations", "test_sigmoid_cross_entropy_with_logits", "test_more_reductions",
           "test_reduce_any_all_of_empty_and_nan", "test_moments", "test_l2_normalize", "test_aliases",
           "test_reference_erfc_is_math_erfc_in_float32"]

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805    # Klambauer et al. 2017, eq. 14


def _u(rng, shape, lo, hi):
    return rng.uniform(lo, hi, shape).astype(np.float32)


UNARY = [  # (op, float64 oracle, input range)
    ("expm1", np.expm1, (-3, 3)), ("log1p", np.log1p, (-0.9, 3)), ("tan", np.tan, (-1.5, 1.5)),
    ("atan", np.arctan, (-6, 6)), ("asin", np.arcsin, (-1, 1)), ("acos", np.arccos, (-1, 1)),
    ("sinh", np.sinh, (-10, 10)), ("cosh", np.cosh, (-10, 10)), ("asinh", np.arcsinh, (-6, 6)),
    ("acosh", np.arccosh, (1, 6)), ("atanh", np.arctanh, (-0.99, 0.99)), ("erfc", _erfc, (-3, 8)),
    ("relu6", lambda x: np.clip(x, 0, 6), (-3, 9)),
    ("selu", lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)), (-5, 3)),
    ("silu", lambda x: x / (1 + np.exp(-x)), (-8, 8)),
    ("softplus", lambda x: np.log(1 + np.exp(x)), (-15, 15)),
    ("softsign", lambda x: x / (1 + np.abs(x)), (-6, 6)),
]
SHAPES = [(), (0,), (5,), (3, 4), (2, 0, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,fn,dom", UNARY, ids=[u[0] for u in UNARY])
def test_more_unary(name, fn, dom, shape, rng, request):
    x = _u(rng, shape, *dom)
    # erfc's tail is compared relatively: its values reach 1e-29 here
    request.module.check(getattr(wt, name)(wt.tensor(x)), fn(x.astype(np.float64)), wt.float32,
                         atol=1e-30 if name == "erfc" else 1e-6)


def test_more_unary_int_inputs(request):
    x = np.array([-2, -1, 0, 1, 2], np.int32)
    for name, fn in [("expm1", np.expm1), ("atan", np.arctan), ("sinh", np.sinh), ("erfc", _erfc)]:
        request.module.check(getattr(wt, name)(wt.tensor(x)), fn(x.astype(np.float64)), wt.float32)
    request.module.check(wt.relu6(wt.tensor(np.array([-3, 2, 9], np.int32))), [0, 2, 6], wt.int32)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 1e-5, 3.0], np.float32)


@pytest.mark.parametrize("name,fn", [(u[0], u[1]) for u in UNARY] + [("elu", np.expm1)], ids=lambda v: str(v)[:8])
def test_more_unary_special_values(name, fn, request):
    """NaN, infinities, signed zeros, domain ends and tiny inputs: numpy's values, incl. the sign of a
    zero result of the odd functions, and full relative accuracy for tiny ones (expm1, log1p, sinh,
    asinh ... of 1e-30). (The kernels on these values: ``kernels_more_math.py`` and the parity cases.)"""
    x = SPECIAL[1:] if name == "silu" else SPECIAL          # silu(-inf) = -inf / inf is NaN; numpy: NaN too
    with np.errstate(all="ignore"):
        want = fn(x.astype(np.float64))
        if name == "elu":
            want = np.where(x > 0, x, want)
        if name == "softsign":
            want = np.where(np.isinf(x), np.sign(x), want)
    got = getattr(wt, name)(wt.tensor(x))
    request.module.check(got, want, wt.float32, rtol=2e-7, atol=0)
    if name in ("expm1", "log1p", "tan", "atan", "asin", "sinh", "asinh", "atanh"):   # odd at 0: f(-0) = -0
        zero = want == 0
        np.testing.assert_array_equal(np.signbit(got.numpy()[zero]), np.signbit(want[zero]), err_msg=name)


def _nonzero(rng, shape):
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 3, shape)).astype(np.float32)


PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 1, 3), (4, 1))]
BINARY = [("floormod", np.mod), ("mod", np.mod), ("truncatemod", np.fmod), ("atan2", np.arctan2)]


@pytest.mark.parametrize("shapes", PAIRS, ids=str)
@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_more_binary(name, fn, shapes, rng, request):
    a, b = _u(rng, shapes[0], -6, 6), _nonzero(rng, shapes[1])
    request.module.check(getattr(wt, name)(wt.tensor(a), wt.tensor(b)), fn(a.astype(np.float64), b), wt.float32,
                         atol=3e-6)
    g = SPECIAL[:7]
    with np.errstate(all="ignore"):
        want = fn(g[:, None].astype(np.float64), g[None, :].astype(np.float64))
    request.module.check(getattr(wt, name)(wt.tensor(g[:, None]), wt.tensor(g)), want, wt.float32)


@pytest.mark.parametrize("name,fn", [("floormod", np.mod), ("truncatemod", np.fmod)])
def test_more_binary_int(name, fn, request):
    a = np.arange(-7, 8, dtype=np.int32)[:, None]
    b = np.array([-3, -2, -1, 1, 2, 3], np.int32)
    request.module.check(getattr(wt, name)(wt.tensor(a), wt.tensor(b)), fn(a, b), wt.int32)
    with np.errstate(all="ignore"):
        request.module.check(getattr(wt, name)(wt.tensor(a), wt.tensor(np.int32(0))), fn(a, np.int32(0)), wt.int32)


def test_float_class_tests(request):
    x = SPECIAL
    for name, fn in [("is_nan", np.isnan), ("is_inf", np.isinf), ("is_finite", np.isfinite)]:
        request.module.check(getattr(wt, name)(wt.tensor(x)), fn(x), wt.bool)
        request.module.check(getattr(wt, name)(wt.tensor(np.array([0, -5], np.int32))), fn(np.array([0, -5])), wt.bool)


def test_logical_xor(rng, request):
    a, b = rng.random((3, 1)) < 0.5, rng.random((1, 4)) < 0.5
    request.module.check(wt.logical_xor(wt.tensor(a), wt.tensor(b)), a != b, wt.bool)
    i, f = np.array([0, 2, -1, 0], np.int32), np.array([np.nan, 0.0, 0.5, 0.0], np.float32)
    request.module.check(wt.logical_xor(wt.tensor(i), wt.tensor(f)), np.logical_xor(i, f), wt.bool)


def test_clip_by_value(rng, request):
    x = _u(rng, (3, 4), -3, 3)
    x[0, 0] = np.nan
    request.module.check(wt.clip_by_value(wt.tensor(x), -1.0, 2.0), np.clip(x, -1, 2))
    lo = _u(rng, (4,), -2, 0)
    request.module.check(wt.clip_by_value(wt.tensor(x), wt.tensor(lo), 0.5), np.clip(x, lo, 0.5))


def test_activations(rng, request):
    x = _u(rng, (4, 5), -4, 4)
    x64 = x.astype(np.float64)
    chk = request.module.check
    chk(wt.leaky_relu(wt.tensor(x)), np.where(x64 > 0, x64, 0.2 * x64), wt.float32)       # TF's default 0.2
    chk(wt.leaky_relu(wt.tensor(x), alpha=0.01), np.where(x64 > 0, x64, 0.01 * x64), wt.float32)
    chk(wt.elu(wt.tensor(x)), np.where(x64 > 0, x64, np.exp(x64) - 1), wt.float32)
    chk(wt.elu(wt.tensor(x), alpha=0.5), np.where(x64 > 0, x64, 0.5 * (np.exp(x64) - 1)), wt.float32)
    chk(wt.swish(wt.tensor(x)), x64 / (1 + np.exp(-x64)), wt.float32)
    chk(wt.leaky_relu(wt.tensor(np.array([-2, 3], np.int32))), [-0.4, 3.0], wt.float32)


def test_sigmoid_cross_entropy_with_logits(rng, request):
    x, z = _u(rng, (3, 4), -8, 8), _u(rng, (3, 4), 0, 1)
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    want = -z * np.log(p) - (1 - z) * np.log(1 - p)
    request.module.check(wt.sigmoid_cross_entropy_with_logits(wt.tensor(z), wt.tensor(x)), want, wt.float32)
    big = np.array([-200.0, 200.0, 0.0], np.float32)          # no overflow: 200 - 200 z + log1p(e^-200)
    request.module.check(wt.sigmoid_cross_entropy_with_logits(wt.tensor([0.5, 0.5, 1.0]), wt.tensor(big)),
                         [100.0, 100.0, math.log(2)])
    with pytest.raises(ValueError, match="labels shape"):
        wt.sigmoid_cross_entropy_with_logits(wt.tensor(z), wt.tensor(x[:, :2]))


AXES = [(None, False), (0, False), (-1, True), ((0, 2), False), ((2, 0), True)]


@pytest.mark.parametrize("axis,keepdims", AXES, ids=str)
def test_more_reductions(axis, keepdims, rng, request):
    x = _u(rng, (2, 3, 4), -3, 3)
    x64 = x.astype(np.float64)
    b = rng.random((2, 3, 4)) < 0.7
    chk, kw = request.module.check, dict(axis=axis, keepdims=keepdims)
    chk(wt.reduce_any(wt.tensor(b), **kw), np.any(b, **kw), wt.bool)
    chk(wt.reduce_all(wt.tensor(b), **kw), np.all(b, **kw), wt.bool)
    chk(wt.reduce_any(wt.tensor(np.round(x)), **kw), np.any(np.round(x), **kw), wt.bool)
    chk(wt.reduce_variance(wt.tensor(x), **kw), np.var(x64, **kw), wt.float32)
    chk(wt.reduce_std(wt.tensor(x), **kw), np.std(x64, **kw), wt.float32)
    chk(wt.reduce_euclidean_norm(wt.tensor(x), **kw), np.sqrt(np.sum(x64 ** 2, **kw)), wt.float32)
    chk(wt.reduce_variance(wt.tensor(np.arange(6, dtype=np.int32)), axis=0), np.var(np.arange(6)), wt.float32)


def test_reduce_any_all_of_empty_and_nan(request):
    e = np.zeros((0, 3), np.float32)
    request.module.check(wt.reduce_any(wt.tensor(e), axis=0), np.any(e, axis=0), wt.bool)
    request.module.check(wt.reduce_all(wt.tensor(e), axis=0), np.all(e, axis=0), wt.bool)
    n = np.array([0.0, np.nan], np.float32)
    request.module.check(wt.reduce_any(wt.tensor(n)), np.any(n), wt.bool)       # NaN is nonzero: True
    request.module.check(wt.reduce_all(wt.tensor(n[1:])), np.all(n[1:]), wt.bool)


@pytest.mark.parametrize("axes,keepdims", [(0, False), ((0, 2), True), (-1, False)], ids=str)
def test_moments(axes, keepdims, rng, request):
    x = _u(rng, (3, 2, 5), -2, 4)
    m, v = wt.moments(wt.tensor(x), axes=axes, keepdims=keepdims)
    ax = axes if isinstance(axes, tuple) else (axes,)
    request.module.check(m, np.mean(x.astype(np.float64), axis=ax, keepdims=keepdims), wt.float32)
    request.module.check(v, np.var(x.astype(np.float64), axis=ax, keepdims=keepdims), wt.float32)


def test_l2_normalize(rng, request):
    x = _u(rng, (3, 4), -2, 2)
    x[1] = 0.0
    x64 = x.astype(np.float64)
    for axis in (None, 0, -1):
        ss = np.sum(x64 ** 2, axis=axis, keepdims=True)
        request.module.check(wt.l2_normalize(wt.tensor(x), axis=axis), x64 / np.sqrt(np.maximum(ss, 1e-12)),
                             wt.float32)
    request.module.check(wt.l2_normalize(wt.tensor(x), axis=1, epsilon=4.0),
                         x64 / np.sqrt(np.maximum(np.sum(x64 ** 2, axis=1, keepdims=True), 4.0)), wt.float32)


def test_aliases(rng, request):
    a, b = _u(rng, (5,), -4, 4), _nonzero(rng, (5,))
    request.module.check(wt.mod(wt.tensor(a), wt.tensor(b)), wt.floormod(wt.tensor(a), wt.tensor(b)).numpy())
    request.module.check(wt.swish(wt.tensor(a)), wt.silu(wt.tensor(a)).numpy())
    # Tensor operators: % is floormod (numpy's and TF's), ^ is logical_xor
    request.module.check(wt.tensor(a) % wt.tensor(b), np.mod(a.astype(np.float64), b), atol=3e-6)
    request.module.check(7 % wt.tensor(np.array([3, -3, 2], np.int32)), np.mod(7, [3, -3, 2]), wt.int32)
    p, q = np.array([True, False, True]), np.array([True, True, False])
    request.module.check(wt.tensor(p) ^ wt.tensor(q), p ^ q, wt.bool)


def test_reference_erfc_is_math_erfc_in_float32(request):
    """The reference device's erfc (Cody, vectorised in float64: ``numpy_util.erfc``) rounds to the
    C library's erfc on float32 inputs across its whole range, tails included."""
    x = np.concatenate([np.linspace(-10, 10.1, 20001), [0.46875, -0.46875, 4.0, -4.0, 27.0]]).astype(np.float32)
    want = _erfc(x.astype(np.float64)).astype(np.float32)
    got = wt.erfc(wt.tensor(x))
    request.module.check(got, want, wt.float32, rtol=0, atol=0)
