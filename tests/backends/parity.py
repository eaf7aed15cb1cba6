"""Device parity cases: every op of the op set, run on a device and on "reference".

Each backend's test module (``test_wasm.py``, ``test_webgpu.py``) runs ``CASES``
eagerly, inside ``webtensor.function``, (where ``grad``) through ``webtensor.value_and_grad``,
and all three again on inputs holding NaN, +inf and -inf (``special*``), comparing with the
reference device: NaN where it has NaN, infinities of the same sign, finite values within the case's
tolerance on that device: about 10x the error measured there (``tolerances.py``, written by
``measure_tolerances.py``; gradients have their own measured tolerances, not a multiple). ``grid/*`` cases run each
binary elementwise op on every pair of NaN, +-inf, +-0, +-1, +-2.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import webtensor as wt

from tolerances import TOLERANCES


@dataclass
class Case:
    name: str
    fn: Callable
    make: Callable          # rng -> list of numpy arrays
    grad: bool = True       # differentiate w.r.t. the first input (must be float)
    specials: bool = True   # also run on inputs holding NaN/inf (where a float input exists)
    special_grad: bool = True   # ... and differentiate there (where ``grad``)

    def __repr__(self):
        return self.name


def f32(*shape, lo=-2.0, hi=2.0):
    return lambda rng: rng.uniform(lo, hi, shape).astype(np.float32)


def ins(*makers):
    return lambda rng: [m(rng) for m in makers]


def i32(*shape, lo=0, hi=5):
    return lambda rng: rng.integers(lo, hi, shape).astype(np.int32)


def boolean(*shape):
    return lambda rng: rng.random(shape) > 0.5


UNARY = {
    "neg": (wt.neg, f32(3, 5)), "abs": (wt.abs, f32(3, 5)), "exp": (wt.exp, f32(3, 5)),
    "log": (wt.log, f32(3, 5, lo=0.1, hi=4)), "sqrt": (wt.sqrt, f32(3, 5, lo=0.1, hi=4)),
    "rsqrt": (wt.rsqrt, f32(3, 5, lo=0.1, hi=4)), "square": (wt.square, f32(3, 5)),
    "tanh": (wt.tanh, f32(3, 5, lo=-6, hi=6)), "sigmoid": (wt.sigmoid, f32(3, 5, lo=-10, hi=10)),
    "relu": (wt.relu, f32(3, 5)), "gelu_tanh": (wt.gelu_tanh, f32(3, 5, lo=-5, hi=5)),
    "gelu_erf": (wt.gelu_erf, f32(3, 5, lo=-5, hi=5)), "sin": (wt.sin, f32(3, 5, lo=-10, hi=10)),
    "cos": (wt.cos, f32(3, 5, lo=-10, hi=10)), "erf": (wt.erf, f32(3, 5, lo=-4, hi=4)),
    "sign": (wt.sign, f32(3, 5)), "floor": (wt.floor, f32(3, 5, lo=-5, hi=5)),
    "ceil": (wt.ceil, f32(3, 5, lo=-5, hi=5)), "round": (wt.round, f32(3, 5, lo=-5, hi=5)),
    "reciprocal": (wt.reciprocal, f32(3, 5, lo=0.5, hi=3)),
}
NO_GRAD = {"sign", "floor", "ceil", "round"}

BINARY = {
    "add": wt.add, "sub": wt.sub, "mul": wt.mul, "div": wt.div, "maximum": wt.maximum, "minimum": wt.minimum,
}
COMPARE = {
    "equal": wt.equal, "not_equal": wt.not_equal, "less": wt.less, "less_equal": wt.less_equal,
    "greater": wt.greater, "greater_equal": wt.greater_equal,
}

CASES: list[Case] = []
for name, (fn, mk) in UNARY.items():
    CASES.append(Case(f"unary/{name}", fn, ins(mk), grad=name not in NO_GRAD))
for name, fn in BINARY.items():
    lo = 0.5 if name == "div" else -2.0
    CASES.append(Case(f"binary/{name}", fn, ins(f32(4, 1, 5), f32(3, 1, lo=lo, hi=2.5))))
for name, fn in COMPARE.items():
    CASES.append(Case(f"compare/{name}", fn, ins(i32(3, 4), i32(4)), grad=False))
CASES += [
    Case("binary/pow", wt.pow, ins(f32(3, 4, lo=0.5, hi=2), f32(4, lo=-2, hi=2))),
    Case("binary/int_arith", lambda a, b: a * b + a - b, ins(i32(3, 4, lo=-5), i32(4, lo=-5)), grad=False),
    Case("logical", lambda a, b: wt.logical_or(wt.logical_and(a, b), wt.logical_not(b)),
         ins(boolean(3, 4), boolean(4)), grad=False),
    Case("where", lambda x, c: wt.where(c, x, -x * 2.0), ins(f32(3, 4), boolean(3, 4))),
    Case("cast/f2i", lambda x: wt.cast(x, wt.int32), ins(f32(3, 4, lo=-9, hi=9)), grad=False),
    Case("cast/i2f", lambda x: wt.cast(x, wt.float32) * 0.5, ins(i32(3, 4, lo=-9, hi=9)), grad=False),
    Case("cast/f2b", lambda x: wt.cast(wt.cast(x, wt.bool), wt.int32), ins(i32(3, 4, lo=-2, hi=2)), grad=False),
    Case("cast/float2b", lambda x: wt.cast(x, wt.bool), ins(f32(3, 4)), grad=False),
    Case("sum/all", lambda x: wt.sum(x), ins(f32(7, 33))),
    Case("sum/axis0", lambda x: wt.sum(x, axis=0), ins(f32(7, 33))),
    Case("sum/axis-1_keep", lambda x: wt.sum(x, axis=-1, keepdims=True), ins(f32(3, 7, 33))),
    Case("sum/axes02", lambda x: wt.sum(x, axis=(0, 2)), ins(f32(3, 7, 5))),
    Case("sum/big", lambda x: wt.sum(x, axis=1), ins(f32(2, 5000))),
    Case("mean", lambda x: wt.mean(x, axis=1), ins(f32(4, 6, 3))),
    Case("max", lambda x: wt.max(x, axis=1), ins(f32(4, 9))),
    Case("min", lambda x: wt.min(x, axis=0), ins(f32(4, 9))),
    Case("prod", lambda x: wt.prod(x, axis=1), ins(f32(4, 5, lo=0.5, hi=1.5))),
    Case("argmax", lambda x: wt.argmax(x, axis=1), ins(f32(4, 9)), grad=False),
    Case("argmin", lambda x: wt.argmin(x, axis=0), ins(f32(4, 9)), grad=False),
    Case("matmul", wt.matmul, ins(f32(5, 7), f32(7, 3))),
    Case("matmul/odd", wt.matmul, ins(f32(33, 65), f32(65, 17))),
    Case("matmul/batched", wt.matmul, ins(f32(2, 1, 5, 7), f32(3, 7, 4))),
    Case("matmul/ta_tb", lambda a, b: wt.matmul(a, b, transpose_a=True, transpose_b=True), ins(f32(7, 5), f32(3, 7))),
    Case("matmul/vec", wt.matmul, ins(f32(7), f32(7, 3))),
    Case("reshape", lambda x: wt.reshape(x, (5, 6)) * 2.0, ins(f32(3, 10))),
    Case("transpose", lambda x: wt.transpose(x, (2, 0, 1)) + 1.0, ins(f32(2, 3, 4))),
    Case("broadcast_to", lambda x: wt.broadcast_to(x, (3, 4, 5)), ins(f32(4, 1))),
    Case("slice", lambda x: x[1:, ::-2, None], ins(f32(4, 7))),
    Case("pad", lambda x: wt.pad(x, ((1, 2), (0, 3)), constant_values=0.5), ins(f32(3, 4))),
    Case("concat", lambda a, b: wt.concat([a, b, a], axis=1), ins(f32(2, 3), f32(2, 1))),
    Case("stack", lambda a, b: wt.stack([a, b], axis=-1), ins(f32(2, 3), f32(2, 3))),
    Case("gather", lambda p, i: wt.gather(p, i, axis=0), ins(f32(6, 3), i32(2, 4, lo=0, hi=6))),
    Case("gather/axis1", lambda p, i: wt.gather(p, i, axis=1), ins(f32(2, 6, 3), i32(4, lo=0, hi=6))),
    Case("gather/negative", lambda p, i: wt.gather(p, i, axis=-2), ins(f32(2, 6, 3), i32(3, 2, lo=-6, hi=6))),
    Case("take_along_axis/negative", lambda a, i: wt.take_along_axis(a, i, axis=-1),
         ins(f32(3, 6), i32(3, 4, lo=-6, hi=6))),
    Case("take_along_axis", lambda a, i: wt.take_along_axis(a, i, axis=1), ins(f32(3, 6), i32(3, 2, lo=0, hi=6))),
    Case("one_hot", lambda i: wt.one_hot(i, 5), ins(i32(3, 4, lo=0, hi=6)), grad=False),
    Case("softmax", lambda x: wt.softmax(x * 50.0), ins(f32(4, 10))),
    # special_grad: x * 50 puts some exp(x - max) among float32's subnormals, which WGSL lets
    # implementations flush to zero (lavapipe does): with an infinite upstream gradient, numpy's
    # subnormal * inf is inf where the GPU's 0 * inf is NaN
    Case("log_softmax", lambda x: wt.log_softmax(x * 50.0), ins(f32(4, 10)), special_grad=False),
    Case("logsumexp", lambda x: wt.logsumexp(x * 500.0, axis=0), ins(f32(4, 10))),
    Case("conv2d/same", lambda x, w: wt.conv2d(x, w, padding="same"), ins(f32(2, 8, 8, 3), f32(3, 3, 3, 4))),
    Case("conv2d/stride_dil_nchw", lambda x, w: wt.conv2d(x, w, strides=2, dilations=(1, 2), padding="valid",
                                                          data_format="NCHW"),
         ins(f32(1, 2, 9, 11), f32(2, 3, 2, 3))),
    Case("max_pool2d", lambda x: wt.max_pool2d(x, 2), ins(f32(2, 6, 6, 3))),
    Case("max_pool2d/same", lambda x: wt.max_pool2d(x, 3, 2, padding="same"), ins(f32(1, 5, 5, 2))),
    Case("avg_pool2d/same", lambda x: wt.avg_pool2d(x, 3, 1, padding="same"), ins(f32(1, 5, 5, 2))),
    Case("softmax_cross_entropy", lambda z, y: wt.mean(wt.sparse_softmax_cross_entropy(y, z)),
         ins(f32(8, 10, lo=-5, hi=5), i32(8, lo=0, hi=10))),
    Case("mse", lambda a, b: wt.mean(wt.mse(a, b)), ins(f32(4, 3), f32(4, 3))),
    Case("fused_chain", lambda x, a, b: wt.gelu_tanh(x * a + b) * wt.sigmoid(x),
         ins(f32(1031), f32(1031), f32(1))),
    Case("empty", lambda x: wt.exp(x) + 1.0, ins(f32(0, 3)), grad=False),
]
import parity_more_conv  # noqa: E402,F401  (appends its cases to CASES)
from parity_more_movement import MORE_MOVEMENT; CASES += MORE_MOVEMENT  # noqa: E402,E702  (issue 14's ops)


SPECIALS = (np.nan, np.inf, -np.inf)


def with_specials(arrays, rng):
    """``arrays`` with about one float element in six (at least three) replaced by NaN, +inf, -inf in
    turn, at random positions: rows of a reduction get NaN, only infinities, or neither."""
    out = []
    for a in arrays:
        if a.dtype.kind == "f" and a.size:
            a = a.copy()
            flat = a.reshape(-1)
            at = rng.choice(a.size, size=min(a.size, max(3, a.size // 6)), replace=False)
            flat[at] = np.resize(np.array(SPECIALS, a.dtype), len(at))
        out.append(a)
    return out


def has_float_input(case: Case) -> bool:
    return case.specials and any(a.dtype.kind == "f" and a.size for a in case.make(np.random.default_rng(0)))

# Every pair of special and ordinary values through each binary elementwise op (9 x 9, broadcast).
GRID = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -2.5], np.float32)


def grid(rng):
    return [GRID.reshape(-1, 1), GRID.copy()]


for name, fn in {**BINARY, "pow": wt.pow, **COMPARE}.items():
    CASES.append(Case(f"grid/{name}", fn, grid, grad=False, specials=False))
CASES.append(Case("grid/where", lambda a, b: wt.where(wt.greater(a, b), a, b), grid, grad=False, specials=False))

from parity_more_math import CASES as MORE_MATH  # noqa: E402  (issue 14's math, activations, reductions)
CASES += MORE_MATH


def run_case(case: Case, device: str, mode: str, rng_seed: int = 0):
    """(device result, reference result) as numpy lists for ``mode`` in eager|function|grad, or
    special|special_function|special_grad: the same on inputs holding NaN and infinities
    (:func:`with_specials`)."""
    rng = np.random.default_rng(rng_seed)
    arrays = case.make(rng)
    if mode.startswith("special"):
        arrays = with_specials(arrays, rng)

    def go(dev):
        xs = [wt.tensor(a, device=dev) for a in arrays]
        if mode in ("eager", "special"):
            out = case.fn(*xs)
        elif mode in ("function", "special_function"):
            out = wt.function(case.fn)(*xs)
        else:   # grad, special_grad
            out = wt.value_and_grad(lambda *a: wt.sum(case.fn(*a) * case.fn(*a)))(*xs)
        leaves = out if isinstance(out, (tuple, list)) else [out]
        flat = []
        for t in leaves:
            flat.extend(t if isinstance(t, (tuple, list)) else [t])
        return [np.asarray(t.numpy()) for t in flat]

    return go(device), go("reference")


def tolerance(case: Case, device: str, mode: str) -> tuple[float, float]:
    """(rtol, atol) of ``case`` on ``device`` in ``mode``: about 10x the error measured there
    (``tolerances.py``, written by ``measure_tolerances.py --write``); gradients have their own."""
    group = "grad" if mode.endswith("grad") else "value"
    try:
        return TOLERANCES[case.name][group][device]
    except KeyError:
        raise AssertionError(f"no measured tolerance for {case.name} ({group}) on {device}: run "
                             "tests/backends/measure_tolerances.py --write") from None


def assert_parity(case: Case, device: str, mode: str):
    got, want = run_case(case, device, mode)
    assert len(got) == len(want)
    rtol, atol = tolerance(case, device, mode)
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{case.name}/{mode}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{case.name}/{mode}: dtype {g.dtype} != {w.dtype}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{case.name} on {device} ({mode})")   # NaN where numpy has NaN


# (case, mode) pairs every backend runs: gradients only where the case has one, NaN/inf inputs where
# it has a float input (no skips).
MODES = ("eager", "function", "grad", "special", "special_function", "special_grad")
PARAMS = [(c, m) for c in CASES for m in MODES
          if (not m.endswith("grad") or c.grad) and (not m.startswith("special") or has_float_input(c))
          and (m != "special_grad" or c.special_grad)]
PARAM_IDS = [f"{c.name}-{m}" for c, m in PARAMS]
