"""Parity cases for issue 14's ops (``core/ops/math.py``, ``activation.py``, ``statistics.py``);
``parity.py`` appends ``CASES`` to its own. Besides random inputs (and the NaN/inf variants every case
gets), ``edges/*`` run each unary function on fixed edge values (signed zeros, domain ends such as
asin(+-1), atanh(+-1), log1p(-1), tiny and large magnitudes) and ``grid/*`` each binary one on every
pair of special values, so numpy's special cases are checked element by element.
"""
from __future__ import annotations

import numpy as np

import webtensor as wt

from parity import Case, boolean, f32, grid, i32, ins


def nonzero(*shape, lo=0.5, hi=2.5):
    """float32 of either sign with magnitude in [lo, hi) (divisors)."""
    return lambda rng: (rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)).astype(np.float32)


def zeros_and_ones(*shape, p=0.5):
    """float32 0.0 and 1.0 (1.0 with probability p): the inputs of reduce_any/reduce_all on floats."""
    return lambda rng: (rng.random(shape) < p).astype(np.float32)


def probs(*shape):
    return lambda rng: rng.uniform(0, 1, shape).astype(np.float32)


UNARY = {  # name: (function, input maker, differentiable)
    "expm1": (wt.expm1, f32(3, 5, lo=-3, hi=3), True),
    "expm1/small": (wt.expm1, f32(3, 5, lo=-1e-3, hi=1e-3), True),
    "log1p": (wt.log1p, f32(3, 5, lo=-0.9, hi=3), True),
    "log1p/small": (wt.log1p, f32(3, 5, lo=-1e-3, hi=1e-3), True),
    "tan": (wt.tan, f32(3, 5, lo=-1.4, hi=1.4), True),
    "tan/wide": (wt.tan, f32(3, 5, lo=-100, hi=100), False),
    "atan": (wt.atan, f32(3, 5, lo=-5, hi=5), True),
    "asin": (wt.asin, f32(3, 5, lo=-0.95, hi=0.95), True),
    "acos": (wt.acos, f32(3, 5, lo=-0.95, hi=0.95), True),
    "sinh": (wt.sinh, f32(3, 5, lo=-5, hi=5), True),
    "cosh": (wt.cosh, f32(3, 5, lo=-5, hi=5), True),
    "asinh": (wt.asinh, f32(3, 5, lo=-5, hi=5), True),
    "acosh": (wt.acosh, f32(3, 5, lo=1.05, hi=5), True),
    "atanh": (wt.atanh, f32(3, 5, lo=-0.95, hi=0.95), True),
    "erfc": (wt.erfc, f32(3, 5, lo=-3, hi=6), True),
    "relu6": (wt.relu6, f32(3, 5, lo=-3, hi=8), True),
    "leaky_relu": (wt.leaky_relu, f32(3, 5), True),
    "leaky_relu/alpha": (lambda x: wt.leaky_relu(x, alpha=0.01), f32(3, 5), True),
    "elu": (wt.elu, f32(3, 5, lo=-4, hi=2), True),
    "elu/alpha": (lambda x: wt.elu(x, alpha=0.5), f32(3, 5, lo=-4, hi=2), True),
    "selu": (wt.selu, f32(3, 5, lo=-4, hi=2), True),
    "silu": (wt.silu, f32(3, 5, lo=-6, hi=6), True),
    "softplus": (wt.softplus, f32(3, 5, lo=-10, hi=10), True),
    "softsign": (wt.softsign, f32(3, 5, lo=-5, hi=5), True),
    "is_nan": (wt.is_nan, f32(3, 5), False),
    "is_inf": (wt.is_inf, f32(3, 5), False),
    "is_finite": (wt.is_finite, f32(3, 5), False),
}

CASES: list[Case] = [Case(f"unary/{name}", fn, ins(mk), grad=g) for name, (fn, mk, g) in UNARY.items()]

# Edge values through every unary function (no gradient: some are poles).
EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30, -1e-30, 1e-6,
                  -1e-6, 0.999999, -0.999999, 1.000001, 9.5, -9.5, 30.0, -30.0, 100.0, -100.0, 3e38, -3e38],
                 np.float32)
EDGES_TAN = EDGES[np.abs(EDGES) < 8192]     # Cephes' reduction is accurate to |x| = 8192 (NaN past 2.6e38)
for name, (fn, _, _) in UNARY.items():
    if "/" not in name:
        edges = EDGES_TAN if name == "tan" else EDGES
        CASES.append(Case(f"edges/{name}", fn, lambda rng, e=edges: [e.copy()], grad=False, specials=False))

BINARY_F = {"floormod": wt.floormod, "mod": wt.mod, "truncatemod": wt.truncatemod, "atan2": wt.atan2}
CASES += [
    Case("binary/floormod", wt.floormod, ins(f32(4, 1, 5, lo=-5, hi=5), nonzero(3, 1))),
    Case("binary/truncatemod", wt.truncatemod, ins(f32(4, 1, 5, lo=-5, hi=5), nonzero(3, 1))),
    Case("binary/floormod_int", wt.floormod, ins(i32(3, 4, lo=-7, hi=8), i32(4, lo=-3, hi=4)), grad=False),
    Case("binary/truncatemod_int", wt.truncatemod, ins(i32(3, 4, lo=-7, hi=8), i32(4, lo=-3, hi=4)), grad=False),
    Case("binary/atan2", wt.atan2, ins(f32(4, 1, 5), nonzero(3, 1, lo=0.1, hi=2))),
    Case("logical_xor", wt.logical_xor, ins(boolean(3, 4), boolean(4)), grad=False),
    Case("clip_by_value", lambda x: wt.clip_by_value(x, -0.5, 1.0), ins(f32(3, 5))),
    Case("clip_by_value/tensors", lambda x, lo: wt.clip_by_value(x, lo, lo + 1.0), ins(f32(3, 5), f32(5))),
    Case("sigmoid_cross_entropy_with_logits", lambda x, z: wt.sigmoid_cross_entropy_with_logits(z, x),
         ins(f32(4, 5, lo=-6, hi=6), probs(4, 5))),
    Case("reduce_any", lambda b: wt.reduce_any(b, axis=1), ins(boolean(3, 7)), grad=False),
    Case("reduce_any/float", lambda x: wt.reduce_any(x, axis=0), ins(zeros_and_ones(5, 3)), grad=False),
    Case("reduce_all", lambda b: wt.reduce_all(b, axis=0, keepdims=True), ins(boolean(2, 7)), grad=False),
    Case("reduce_all/float", lambda x: wt.reduce_all(x, axis=-1), ins(zeros_and_ones(3, 4, p=0.9)), grad=False),
    Case("reduce_variance", lambda x: wt.reduce_variance(x, axis=1), ins(f32(4, 9))),
    Case("reduce_std", lambda x: wt.reduce_std(x, axis=0, keepdims=True), ins(f32(6, 5))),
    Case("reduce_euclidean_norm", lambda x: wt.reduce_euclidean_norm(x, axis=(0, 2)), ins(f32(3, 4, 5))),
    Case("moments", lambda x: wt.stack(wt.moments(x, axes=1), axis=0), ins(f32(4, 9))),
    # a slice of the result: the squares of a whole normalised row sum to 1, whose gradient is 0 plus noise
    Case("l2_normalize", lambda x: wt.l2_normalize(x, axis=-1)[:, :4], ins(f32(4, 6))),
]


def _in_float16(x):
    """Several of the functions on float16 (computed in float32 inside the kernel, rounded back: a result
    may differ from numpy's by one float16 ulp)."""
    h = wt.cast(x, wt.float16)
    d = wt.cast(x * 0.25 + 2.0, wt.float16)
    ys = [wt.erfc(h), wt.expm1(h), wt.atan(h), wt.softplus(h), wt.asinh(h), wt.floormod(h, d), wt.selu(h)]
    return wt.cast(wt.stack(ys), wt.float32)


CASES.append(Case("float16_math", _in_float16, ins(f32(3, 5, lo=-4, hi=4)), grad=False))
for name, fn in BINARY_F.items():
    CASES.append(Case(f"grid/{name}", fn, grid, grad=False, specials=False))
CASES.append(Case("grid/logical_xor", wt.logical_xor, grid, grad=False, specials=False))
