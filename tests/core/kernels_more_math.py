"""Kernel cases for issue 14's primitives (``test_kernels.py`` merges ``CASES`` into its own): each
op's kernel, run by the IR's numpy evaluator, against its reference, on random inputs of several
shapes and on the special values (NaN, infinities, signed zeros, domain ends) where the expressions
branch."""
from __future__ import annotations

import numpy as np

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.46875, -4.5, 9.0, -9.5, 1e-30,
                    -1e-30, 0.41421357, 2.4142137, 1.5, -20.0, 4096.5, 1e5], np.float32)
SHAPES = [(), (7,), (3, 4), (2, 0, 3)]
PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((0, 3), (1, 3))]


def _f(r, s, lo=-3.0, hi=3.0):
    return r.uniform(lo, hi, s).astype(np.float32)


def _nz(r, s):
    return (r.choice([-1.0, 1.0], s) * r.uniform(0.3, 3, s)).astype(np.float32)


UNARY = {  # op -> input domain (lo, hi)
    "expm1": (-3, 3), "log1p": (-0.9, 3), "tan": (-4, 4), "atan": (-5, 5), "asin": (-1, 1), "acos": (-1, 1),
    "sinh": (-12, 12), "cosh": (-12, 12), "asinh": (-5, 5), "acosh": (1, 6), "atanh": (-1, 1), "erfc": (-5, 9),
    "is_nan": (-3, 3), "is_inf": (-3, 3), "is_finite": (-3, 3), "relu6": (-3, 8), "selu": (-4, 2),
    "silu": (-6, 6), "softplus": (-20, 20), "softsign": (-5, 5),
}


def _cases():
    cases: dict[str, list] = {}

    def add(name, fn):
        cases.setdefault(name, []).append(fn)

    for name, (lo, hi) in UNARY.items():
        for s in SHAPES:
            add(name, lambda r, s=s, lo=lo, hi=hi: ([_f(r, s, lo, hi)], {}))
        add(name, lambda r: ([SPECIAL.copy()], {}))
        add(name, lambda r: ([r.integers(-3, 4, (5,)).astype(np.int32)], {}))     # int -> float32 (or bool)
    for name in ("leaky_relu", "elu"):
        for alpha in (0.2, 1.0, 0.01):
            add(name, lambda r, alpha=alpha: ([_f(r, (3, 4))], {"alpha": alpha}))
        add(name, lambda r: ([SPECIAL.copy()], {"alpha": 0.3}))
    grid = SPECIAL[:9]
    for name in ("floormod", "truncatemod", "atan2"):
        for sa, sb in PAIRS:
            add(name, lambda r, sa=sa, sb=sb: ([_f(r, sa, -5, 5), _nz(r, sb)], {}))
        add(name, lambda r: ([grid.reshape(-1, 1), grid.copy()], {}))
    for name in ("floormod", "truncatemod"):
        add(name, lambda r: ([r.integers(-7, 8, (3, 5)).astype(np.int32), r.integers(-3, 4, (5,)).astype(np.int32)],
                             {}))
    for sa, sb in PAIRS:
        add("logical_xor", lambda r, sa=sa, sb=sb: ([r.random(sa) < 0.5, r.random(sb) < 0.5], {}))
    add("logical_xor", lambda r: ([r.integers(-1, 2, (4,)).astype(np.int32), grid[:4].copy()], {}))
    return cases


CASES = _cases()
