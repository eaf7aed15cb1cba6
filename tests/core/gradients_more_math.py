"""Finite-difference checks of issue 14's gradient rules and composites; ``test_gradients.py``
star-imports the tests, so they run there in float64 with its ``check_grad`` (taken from
``request.module``: the coverage plugin wraps that one). Inputs keep away from kinks, poles and the
jumps of floormod/truncatemod."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt

__all__ = ["test_more_gradients"]


def _u(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _away(lo, hi):      # either sign, magnitude in [lo, hi)
    return lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def _kinks(*points):    # [-3, 9) with every value at least 0.2 from each point
    def make(rng, shape):
        x = rng.uniform(-3, 9, shape)
        for p in points:
            x = np.where(np.abs(x - p) < 0.2, p + 0.3, x)
        return x
    return make


CASES = [  # (id, function, [input makers], shape)
    ("floormod", wt.floormod, [_u(-5, 5), _away(0.5, 2)], (3, 4)),
    ("floormod_bcast", wt.floormod, [_u(-5, 5), _away(0.5, 2)], [(2, 3), (3,)]),
    ("truncatemod", wt.truncatemod, [_u(-5, 5), _away(0.5, 2)], (3, 4)),
    ("expm1", wt.expm1, [_u(-2, 2)], (3, 4)),
    ("log1p", wt.log1p, [_u(-0.8, 3)], (3, 4)),
    ("tan", wt.tan, [_u(-1.3, 1.3)], (3, 4)),
    ("atan", wt.atan, [_u(-4, 4)], (3, 4)),
    ("asin", wt.asin, [_u(-0.9, 0.9)], (3, 4)),
    ("acos", wt.acos, [_u(-0.9, 0.9)], (3, 4)),
    ("atan2", wt.atan2, [_away(0.2, 2), _away(0.2, 2)], [(3, 1), (1, 4)]),
    ("sinh", wt.sinh, [_u(-3, 3)], (3, 4)),
    ("cosh", wt.cosh, [_u(-3, 3)], (3, 4)),
    ("asinh", wt.asinh, [_u(-3, 3)], (3, 4)),
    ("acosh", wt.acosh, [_u(1.2, 4)], (3, 4)),
    ("atanh", wt.atanh, [_u(-0.9, 0.9)], (3, 4)),
    ("erfc", wt.erfc, [_u(-2, 3)], (3, 4)),
    ("relu6", wt.relu6, [_kinks(0, 6)], (3, 4)),
    ("leaky_relu", wt.leaky_relu, [_away(0.2, 2)], (3, 4)),
    ("leaky_relu_alpha", lambda x: wt.leaky_relu(x, alpha=0.05), [_away(0.2, 2)], (3, 4)),
    ("elu", lambda x: wt.elu(x, alpha=0.7), [_away(0.2, 2)], (3, 4)),
    ("selu", wt.selu, [_away(0.2, 2)], (3, 4)),
    ("silu", wt.silu, [_u(-4, 4)], (3, 4)),
    ("swish", wt.swish, [_u(-4, 4)], (5,)),
    ("softplus", wt.softplus, [_u(-6, 6)], (3, 4)),
    ("softsign", wt.softsign, [_away(0.2, 3)], (3, 4)),
    ("clip_by_value", lambda x: wt.clip_by_value(x, -0.5, 1.0), [_kinks(-0.5, 1.0)], (3, 4)),
    ("sigmoid_ce", lambda x, z: wt.sigmoid_cross_entropy_with_logits(z, x), [_u(-4, 4), _u(0, 1)], (3, 4)),
    ("sigmoid_ce_at_0", lambda x, z: wt.sigmoid_cross_entropy_with_logits(z, x),    # TF's where: sigmoid(0) - z
     [lambda rng, s: np.zeros(s), _u(0, 1)], (4,)),
    ("reduce_variance", lambda x: wt.reduce_variance(x, axis=1), [_u(-2, 2)], (3, 4)),
    ("reduce_std", lambda x: wt.reduce_std(x, axis=(0, 2), keepdims=True), [_u(-2, 2)], (2, 3, 4)),
    ("reduce_euclidean_norm", lambda x: wt.reduce_euclidean_norm(x, axis=-1), [_away(0.2, 2)], (3, 4)),
    ("moments", lambda x: wt.stack(wt.moments(x, axes=0), axis=0), [_u(-2, 2)], (4, 3)),
    ("l2_normalize", lambda x: wt.l2_normalize(x, axis=0), [_u(-2, 2)], (3, 4)),
]


@pytest.mark.parametrize("fn,makers,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_more_gradients(fn, makers, shape, request):
    rng = request.module._rng(request.node.name)
    shapes = shape if isinstance(shape, list) else [shape] * len(makers)
    request.module.check_grad(fn, [m(rng, s) for m, s in zip(makers, shapes)], request.node.name)
