"""ONNX operators as webtensor ops: ONE table (:data:`CONVERTERS`) from ``ai.onnx`` op type to a small
converter function, filled by the ``@converts`` decorator below.

A converter gets a :class:`Ctx` (the node's attributes, opset and device) and the node's inputs,
each a ``numpy.ndarray`` (a value known at import: an initializer, a ``Constant``, a folded shape
computation), a ``Tensor`` (computed when the model runs) or ``None`` (an omitted optional input).
It returns one value or a tuple (one per output). Inputs listed in ``const=`` must be known at
import (shapes, axes, pads, ...): a ``Tensor`` there is a data-dependent shape, which webtensor's
static shapes cannot express, and raises :class:`DataDependentError`.

Ops that other webtensor modules provide under TensorFlow's names (``wt.cumsum``, ``wt.einsum``,
``wt.top_k`` ...) are looked up when a node is converted (:meth:`Ctx.need`), so a model that uses
them imports as soon as webtensor has them, and raises ``NotImplementedError`` until then.

Sources: the ONNX operator specification (``onnx/docs/Operators.md``, opsets 13-21) and ONNX's
reference implementation (``onnx.reference.ops``), which the conformance suite checks against.
"""
from __future__ import annotations

import math

import numpy as np

import webtensor as wt
from ..core.ops import extract_patches_grad
from ..tensor import Tensor

CONVERTERS: dict[str, "Converter"] = {}


class DataDependentError(NotImplementedError):
    """An input that must be known at import (a shape, axes, pads...) is computed from the model's
    inputs' values. ``input_name`` names it."""

    def __init__(self, msg: str, input_name: str):
        super().__init__(msg)
        self.input_name = input_name


class Converter:
    def __init__(self, fn, const: tuple[int, ...], state: tuple[int, ...]):
        self.fn, self.const, self.state = fn, const, state


def converts(*op_types: str, const: tuple[int, ...] = (), state: tuple[int, ...] = ()):
    """Register ``fn`` as the converter of ``op_types``; ``const``: input positions that must be known
    at import; ``state``: input positions whose initializers are statistics, not weights (they become
    non-trainable Variables, as Keras' BatchNormalization moving mean and variance)."""
    def deco(fn):
        for t in op_types:
            CONVERTERS[t] = Converter(fn, const, state)
        return fn
    return deco


# ONNX TensorProto element types -> webtensor dtypes. int64 narrows to int32 (checked when a value
# becomes a tensor); small integer types widen exactly.
ONNX_DTYPES = {1: wt.float32, 10: wt.float16, 6: wt.int32, 7: wt.int32, 9: wt.bool, 2: wt.int32, 3: wt.int32,
               4: wt.int32, 5: wt.int32}
NUMPY_OF_ONNX = {1: np.float32, 10: np.float16, 6: np.int32, 7: np.int64, 9: np.bool_, 2: np.uint8, 3: np.int8,
                 4: np.uint16, 5: np.int16}


def wt_dtype_of_numpy(dt) -> "wt.DType":
    dt = np.dtype(dt)
    if dt.kind == "f":
        if dt.itemsize > 4:
            raise TypeError(f"{dt} values are not supported (webtensor has float32 and float16)")
        return wt.float16 if dt.itemsize == 2 else wt.float32
    if dt.kind == "b":
        return wt.bool
    if dt.kind in "iu" and not (dt.kind == "u" and dt.itemsize >= 4):
        return wt.int32
    raise TypeError(f"{dt} values are not supported")


class Ctx:
    """One node being converted: its op type, name, attributes, the model's opset, the device."""

    def __init__(self, node, attrs: dict, opset: int, device, var_values: dict):
        self.node, self.op, self.name = node, node.op_type, node.name or "(unnamed)"
        self.attrs, self.opset, self.device, self._var_values = attrs, opset, device, var_values
        self.n_outputs = len(node.output)

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def fail(self, why: str) -> NotImplementedError:
        return NotImplementedError(f"ONNX {self.op} (node {self.name!r}, opset {self.opset}): {why}")

    def need(self, name: str):
        """webtensor's op ``name``, looked up now (other modules may add it), or NotImplementedError."""
        fn = getattr(wt, name, None)
        if fn is None:
            raise self.fail(f"needs webtensor.{name}, which this webtensor does not have")
        return fn

    def t(self, v, like=None) -> Tensor:
        """``v`` as a Tensor on the model's device (int64 constants narrow to int32: OverflowError
        names a value outside int32's range)."""
        if isinstance(v, Tensor):
            return v
        a = np.asarray(v)
        dt = wt_dtype_of_numpy(a.dtype) if like is None else like
        return wt.tensor(a, dtype=dt, device=self.device)

    def c(self, v, i: int) -> np.ndarray:
        """Input ``i`` (value ``v``) as a numpy constant (an initializer Variable reads its value at
        import)."""
        if isinstance(v, Tensor):
            if id(v) in self._var_values:
                return self._var_values[id(v)]
            name = self.node.input[i]
            raise DataDependentError(f"ONNX {self.op} (node {self.name!r}, opset {self.opset}): input {i} "
                                     f"({name!r}) must be known at import (webtensor's shapes are static), but "
                                     "it is computed from the model's inputs", name)
        return np.asarray(v)

    def ints(self, v, i: int) -> list[int]:
        return [int(a) for a in self.c(v, i).reshape(-1)]


def _rank(x) -> int:
    return len(x.shape)


def _axis(a: int, n: int) -> int:
    return a + n if a < 0 else a


# ---- elementwise -----------------------------------------------------------------------------

def _unary(op_type, fn):
    converts(op_type)(lambda ctx, x: fn(ctx.t(x)))


for _op, _f in {"Abs": wt.abs, "Neg": wt.neg, "Exp": wt.exp, "Log": wt.log, "Sqrt": wt.sqrt,
                "Reciprocal": wt.reciprocal, "Sin": wt.sin, "Cos": wt.cos, "Tanh": wt.tanh, "Erf": wt.erf,
                "Sigmoid": wt.sigmoid, "Relu": wt.relu, "Floor": wt.floor, "Ceil": wt.ceil, "Round": wt.round,
                "Sign": wt.sign, "Not": wt.logical_not, "Identity": wt.identity}.items():
    _unary(_op, _f)

for _op, _name in {"Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
                   "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh"}.items():
    converts(_op)(lambda ctx, x, _name=_name: ctx.need(_name)(ctx.t(x)))


converts("IsNaN")(lambda ctx, x: wt.not_equal(ctx.t(x), ctx.t(x)))
converts("Softsign")(lambda ctx, x: ctx.t(x) / (wt.abs(ctx.t(x)) + 1.0))


@converts("IsInf")
def _isinf(ctx, x):
    x = ctx.t(x)
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if pos and neg:
        return wt.equal(wt.abs(x), float("inf"))
    if pos:
        return wt.equal(x, float("inf"))
    if neg:
        return wt.equal(x, float("-inf"))
    return wt.zeros_like(x) != 0


def _binary(op_type, fn):
    @converts(op_type)
    def conv(ctx, a, b):
        like = a if isinstance(a, Tensor) else b         # a constant takes the tensor's dtype
        return fn(ctx.t(a, like=like.dtype), ctx.t(b, like=like.dtype))


for _op, _f in {"Add": wt.add, "Sub": wt.sub, "Mul": wt.mul, "Equal": wt.equal, "Less": wt.less,
                "LessOrEqual": wt.less_equal, "Greater": wt.greater, "GreaterOrEqual": wt.greater_equal,
                "And": wt.logical_and, "Or": wt.logical_or,
                "Xor": lambda a, b: wt.not_equal(a, b)}.items():
    _binary(_op, _f)


def _div(a, b):
    if a.dtype.is_floating:
        return wt.div(a, b)
    # integer Div truncates toward zero (ONNX reference: C semantics); exact for |values| < 2**24
    q = wt.div(wt.cast(a, wt.float32), wt.cast(b, wt.float32))
    return wt.cast(q, a.dtype)


_binary("Div", _div)


@converts("Pow")
def _pow(ctx, a, b):
    a = ctx.t(a)
    b = ctx.t(b, like=a.dtype)        # ONNX lets the exponent's type differ: webtensor's pow wants one
    return wt.pow(a, b if b.dtype == a.dtype else wt.cast(b, a.dtype))


@converts("Mod")
def _mod(ctx, a, b):
    a = ctx.t(a)
    b = ctx.t(b, like=a.dtype)
    r = ctx.need("floormod")(a, b)
    if ctx.attr("fmod", 0):     # C fmod: the sign of the dividend
        return wt.where(wt.logical_and(r != 0, (r < 0) != (a < 0)), r - b, r)
    return r


@converts("Max", "Min", "Sum", "Mean")
def _variadic(ctx, *xs):
    ts = [ctx.t(x) for x in xs if isinstance(x, Tensor)]
    xs = [ctx.t(x, like=ts[0].dtype) for x in xs]
    fn = {"Max": wt.maximum, "Min": wt.minimum, "Sum": wt.add, "Mean": wt.add}[ctx.op]
    y = xs[0]
    for x in xs[1:]:
        y = fn(y, x)
    if len(xs) == 1:
        y = wt.broadcast_to(y, y.shape)
    return y / float(len(xs)) if ctx.op == "Mean" else y


@converts("Where")
def _where(ctx, c, a, b):
    tensors = [v for v in (a, b) if isinstance(v, Tensor)]
    dt = tensors[0].dtype if tensors else wt_dtype_of_numpy(np.asarray(a).dtype)
    return wt.where(ctx.t(c, like=wt.bool), ctx.t(a, like=dt), ctx.t(b, like=dt))


@converts("Clip")
def _clip(ctx, x, lo=None, hi=None):
    x = ctx.t(x)
    if lo is not None:
        x = wt.maximum(x, ctx.t(lo, like=x.dtype))
    if hi is not None:
        x = wt.minimum(x, ctx.t(hi, like=x.dtype))
    return x


# ---- activations (exact compositions where one exists) -------------------------------------------

@converts("LeakyRelu")
def _leaky(ctx, x):
    x = ctx.t(x)
    return wt.where(x >= 0, x, x * float(ctx.attr("alpha", 0.01)))


@converts("PRelu")
def _prelu(ctx, x, slope):
    x = ctx.t(x)
    return wt.where(x < 0, x * ctx.t(slope, like=x.dtype), x)


@converts("Elu")
def _elu(ctx, x):
    x = ctx.t(x)
    return wt.where(x > 0, x, (wt.exp(wt.minimum(x, 0.0)) - 1.0) * float(ctx.attr("alpha", 1.0)))


@converts("Celu")
def _celu(ctx, x):
    x, a = ctx.t(x), float(ctx.attr("alpha", 1.0))
    return wt.maximum(x, 0.0) + wt.minimum(0.0, (wt.exp(wt.minimum(x, 0.0) / a) - 1.0) * a)


@converts("Selu")
def _selu(ctx, x):
    x = ctx.t(x)
    a, g = float(ctx.attr("alpha", 1.67326319217681884765625)), float(ctx.attr("gamma", 1.05070102214813232421875))
    return wt.where(x > 0, x * g, (wt.exp(wt.minimum(x, 0.0)) - 1.0) * (a * g))


@converts("ThresholdedRelu")
def _trelu(ctx, x):
    x = ctx.t(x)
    return wt.where(x > float(ctx.attr("alpha", 1.0)), x, 0.0)


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|
    return wt.maximum(x, 0.0) + wt.log(1.0 + wt.exp(-wt.abs(x)))


converts("Softplus")(lambda ctx, x: _softplus(ctx.t(x)))
converts("Mish")(lambda ctx, x: ctx.t(x) * wt.tanh(_softplus(ctx.t(x))))


@converts("HardSigmoid")
def _hsig(ctx, x):
    x = ctx.t(x)
    return wt.maximum(0.0, wt.minimum(1.0, x * float(ctx.attr("alpha", 0.2)) + float(ctx.attr("beta", 0.5))))


@converts("HardSwish")
def _hswish(ctx, x):
    x = ctx.t(x)
    return x * wt.maximum(0.0, wt.minimum(1.0, x * (1.0 / 6.0) + 0.5))


@converts("Gelu")
def _gelu(ctx, x):
    return wt.gelu(ctx.t(x), approximate=ctx.attr("approximate", "none") == "tanh")


@converts("Shrink")
def _shrink(ctx, x):
    x = ctx.t(x)
    lambd, bias = float(ctx.attr("lambd", 0.5)), float(ctx.attr("bias", 0.0))
    return wt.where(x < -lambd, x + bias, wt.where(x > lambd, x - bias, wt.zeros_like(x)))


@converts("Softmax", "LogSoftmax", "Hardmax")
def _softmax(ctx, x):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", -1)), _rank(x))
    if ctx.op == "Softmax":
        return wt.softmax(x, axis=axis)
    if ctx.op == "LogSoftmax":
        return wt.log_softmax(x, axis=axis)
    return wt.one_hot(wt.argmax(x, axis=axis), x.shape[axis], axis=axis, dtype=x.dtype)


# ---- casts -----------------------------------------------------------------------------------

_NUMPY_OF_WT = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "bool": np.bool_}


def _cast_to(ctx, x, dt):
    if isinstance(x, Tensor):
        return wt.cast(x, dt)
    return _numpy_cast(np.asarray(x), _NUMPY_OF_WT[dt.name])     # CastLike of a constant to a tensor's type


def _numpy_cast(a, to):
    """webtensor.cast's rule on numpy: float -> int truncates and saturates, NaN -> 0."""
    if a.dtype.kind == "f" and np.dtype(to).kind == "i":
        a = np.nan_to_num(np.trunc(a.astype(np.float64)), nan=0.0, posinf=2 ** 31 - 1, neginf=-2 ** 31)
        return np.clip(a, -2 ** 31, 2 ** 31 - 1).astype(to)
    return a.astype(to)


@converts("Cast")
def _cast(ctx, x):
    to = int(ctx.attr("to"))
    if to not in ONNX_DTYPES or to in (2, 4):   # uint8/uint16: a cast wraps, int32 would not
        raise ctx.fail(f"casts to ONNX element type {to}, which webtensor does not have")
    return _cast_to(ctx, x, ONNX_DTYPES[to])


@converts("CastLike")
def _castlike(ctx, x, like):
    dt = like.dtype if isinstance(like, Tensor) else wt_dtype_of_numpy(np.asarray(like).dtype)
    return _cast_to(ctx, x, dt)


# ---- reductions -------------------------------------------------------------------------------

def _reduce_axes(ctx, x, axes_in):
    axes = ctx.ints(axes_in, 1) if axes_in is not None else list(ctx.attr("axes", []) or [])
    if not axes:
        return None if not ctx.attr("noop_with_empty_axes", 0) else ()
    return tuple(sorted(_axis(a, _rank(x)) for a in axes))


_REDUCERS = {
    "ReduceSum": lambda x, ax, k: wt.sum(x, ax, k),
    "ReduceMean": lambda x, ax, k: wt.mean(x, ax, k),
    "ReduceMax": lambda x, ax, k: wt.max(x, ax, k),
    "ReduceMin": lambda x, ax, k: wt.min(x, ax, k),
    "ReduceProd": lambda x, ax, k: wt.prod(x, ax, k),
    "ReduceL1": lambda x, ax, k: wt.sum(wt.abs(x), ax, k),
    "ReduceL2": lambda x, ax, k: wt.sqrt(wt.sum(wt.square(x), ax, k)),
    "ReduceSumSquare": lambda x, ax, k: wt.sum(wt.square(x), ax, k),
    "ReduceLogSum": lambda x, ax, k: wt.log(wt.sum(x, ax, k)),
    "ReduceLogSumExp": lambda x, ax, k: wt.logsumexp(x, ax, k),
}


@converts(*_REDUCERS, const=(1,))
def _reduce(ctx, x, axes=None):
    x = ctx.t(x)
    ax = _reduce_axes(ctx, x, axes)
    if ax == ():
        return wt.identity(x)
    keep = bool(ctx.attr("keepdims", 1))
    axes = tuple(range(_rank(x))) if ax is None else ax
    if any(x.shape[a] == 0 for a in axes):      # an empty reduction: the identity of the operation
        shape = tuple(1 if d in axes else n for d, n in enumerate(x.shape) if keep or d not in axes)
        fill = {"ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceProd": 1, "ReduceLogSum": -np.inf,
                "ReduceLogSumExp": -np.inf}.get(ctx.op, 0)
        dt = _NUMPY_OF_WT[x.dtype.name]
        if x.dtype == wt.bool:
            fill = ctx.op == "ReduceMin"
        elif not x.dtype.is_floating and fill in (np.inf, -np.inf):
            fill = np.iinfo(np.int32).max if fill > 0 else np.iinfo(np.int32).min
        return np.full(shape, fill, dt)
    if ctx.op in ("ReduceMax", "ReduceMin") and x.dtype == wt.bool:
        y = _REDUCERS[ctx.op](wt.cast(x, wt.int32), ax, keep)
        return wt.cast(y, wt.bool)
    return _REDUCERS[ctx.op](x, ax, keep)


@converts("ArgMax", "ArgMin")
def _arg(ctx, x):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", 0)), _rank(x))
    fn = wt.argmax if ctx.op == "ArgMax" else wt.argmin
    if ctx.attr("select_last_index", 0):
        n = x.shape[axis]
        rev = wt.slice(x, [n - 1 if d == axis else 0 for d in range(_rank(x))],
                       end=[-n - 1 if d == axis else x.shape[d] for d in range(_rank(x))],
                       strides=[-1 if d == axis else 1 for d in range(_rank(x))])
        y = (n - 1) - fn(rev, axis=axis)
    else:
        y = fn(x, axis=axis)
    return wt.expand_dims(y, axis) if ctx.attr("keepdims", 1) else y


# ---- movement --------------------------------------------------------------------------------

@converts("Shape")
def _shape(ctx, x):
    s = list(x.shape)
    n = len(s)
    start, end = ctx.attr("start", 0), ctx.attr("end", n)
    start, end = min(max(_axis(start, n), 0), n), min(max(_axis(end, n), 0), n)
    return np.array(s[start:end], np.int64)


converts("Size")(lambda ctx, x: np.array(math.prod(x.shape), np.int64))


@converts("Reshape", const=(1,))
def _reshape(ctx, x, shape):
    x = ctx.t(x)
    shape = ctx.ints(shape, 1)
    if not ctx.attr("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return wt.reshape(x, shape)


@converts("Flatten")
def _flatten(ctx, x):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", 1)), _rank(x))
    return wt.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@converts("Transpose")
def _transpose(ctx, x):
    x = ctx.t(x)
    perm = ctx.attr("perm")
    return wt.transpose(x, tuple(perm) if perm is not None else tuple(reversed(range(_rank(x)))))


@converts("Squeeze", const=(1,))
def _squeeze(ctx, x, axes=None):
    x = ctx.t(x)
    if axes is None:
        return wt.reshape(x, [d for d in x.shape if d != 1])
    ax = {_axis(a, _rank(x)) for a in ctx.ints(axes, 1)}
    return wt.reshape(x, [d for i, d in enumerate(x.shape) if i not in ax])


@converts("Unsqueeze", const=(1,))
def _unsqueeze(ctx, x, axes):
    x = ctx.t(x)
    n = _rank(x) + len(ctx.ints(axes, 1))
    ax = sorted(_axis(a, n) for a in ctx.ints(axes, 1))
    shape = list(x.shape)
    for a in ax:
        shape.insert(a, 1)
    return wt.reshape(x, shape)


@converts("Concat")
def _concat(ctx, *xs):
    dt = next(x.dtype for x in xs if isinstance(x, Tensor))
    xs = [ctx.t(x, like=dt) for x in xs]
    xs = [x for x in xs if x.size] or xs[:1]
    return wt.concat(xs, axis=_axis(int(ctx.attr("axis")), _rank(xs[0])))


def _slice_axes(x, starts, ends, axes, steps):
    """Python-style ``(begin, end, stride)`` per axis of ``x`` from ONNX Slice's inputs (ONNX clamps as
    Python's ``slice.indices`` does; an end before index 0 with a negative step is ``None``)."""
    n = _rank(x)
    begin, end, stride = [0] * n, [None] * n, [1] * n
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(a, n)
        b, e2, st = slice(s, e, st).indices(x.shape[a])
        begin[a], end[a], stride[a] = b, (None if e2 < 0 else e2), st
    return begin, end, stride


@converts("Slice", const=(1, 2, 3, 4))
def _slice(ctx, x, starts, ends, axes=None, steps=None):
    x = ctx.t(x)
    starts, ends = ctx.ints(starts, 1), ctx.ints(ends, 2)
    axes = ctx.ints(axes, 3) if axes is not None else list(range(len(starts)))
    steps = ctx.ints(steps, 4) if steps is not None else [1] * len(starts)
    if 0 in steps:
        raise ctx.fail("a step of 0")
    begin, end, stride = _slice_axes(x, starts, ends, axes, steps)
    return _do_slice(x, begin, end, stride)


def _do_slice(x, begin, end, stride):
    n = _rank(x)
    end = [(-x.shape[d] - 1 if stride[d] < 0 else x.shape[d]) if end[d] is None else end[d] for d in range(n)]
    # an empty result along any axis: webtensor's slice gives it too
    return wt.slice(x, begin, end=end, strides=stride)


@converts("Split", const=(1,))
def _split(ctx, x, split=None):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", 0)), _rank(x))
    n, k = x.shape[axis], ctx.n_outputs
    if split is not None:
        sizes = ctx.ints(split, 1)
    elif ctx.attr("split") is not None:
        sizes = list(ctx.attr("split"))
    else:
        c = -(-n // k)          # opset 18: equal parts, the last one smaller
        sizes = [min(c, n - i * c) for i in range(k)]
    if sum(sizes) != n or len(sizes) != k:
        raise ValueError(f"ONNX Split (node {ctx.name!r}): sizes {sizes} do not split {n} into {k} outputs")
    outs, at = [], 0
    for s in sizes:
        outs.append(wt.slice(x, [at if d == axis else 0 for d in range(_rank(x))],
                             [s if d == axis else -1 for d in range(_rank(x))]))
        at += s
    return tuple(outs)


@converts("Gather")
def _gather(ctx, x, i):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", 0)), _rank(x))
    return wt.gather(x, ctx.t(i, like=wt.int32), axis=axis)


@converts("GatherElements")
def _gather_elements(ctx, x, i):
    x, i = ctx.t(x), ctx.t(i, like=wt.int32)
    axis = _axis(int(ctx.attr("axis", 0)), _rank(x))
    # numpy's take_along_axis broadcasts; ONNX reads only the index tensor's extent on other axes
    x = wt.slice(x, [0] * _rank(x), [-1 if d == axis else i.shape[d] for d in range(_rank(x))])
    i = wt.where(i < 0, i + x.shape[axis], i)
    return wt.take_along_axis(x, i, axis=axis)


@converts("GatherND")
def _gather_nd(ctx, x, i):
    fn = ctx.need("gather_nd")
    return fn(ctx.t(x), ctx.t(i, like=wt.int32), batch_dims=int(ctx.attr("batch_dims", 0)))


@converts("Expand", const=(1,))
def _expand(ctx, x, shape):
    x = ctx.t(x)
    out = np.broadcast_shapes(tuple(x.shape), tuple(ctx.ints(shape, 1)))
    return wt.broadcast_to(x, out)


@converts("Tile", const=(1,))
def _tile(ctx, x, reps):
    # exact as a broadcast: (d0, d1) -> (1, d0, 1, d1) -> (r0, d0, r1, d1) -> (r0*d0, r1*d1)
    x = ctx.t(x)
    reps = ctx.ints(reps, 1)
    inter = [v for d in x.shape for v in (1, d)]
    big = [v for r, d in zip(reps, x.shape) for v in (r, d)]
    y = wt.broadcast_to(wt.reshape(x, inter), big)
    return wt.reshape(y, [r * d for r, d in zip(reps, x.shape)])


def _index_pad(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each position of an axis of size ``n`` padded by ``before``/``after`` (numpy.pad's
    'reflect', 'edge', 'wrap' modes, as ONNX Pad's)."""
    i = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    period = 2 * (n - 1)
    j = np.mod(i, period) if period else np.zeros_like(i)
    return np.where(j >= n, period - j, j)


@converts("Pad", const=(1, 2, 3))
def _pad(ctx, x, pads, value=None, axes=None):
    x = ctx.t(x)
    n = _rank(x)
    p = ctx.ints(pads, 1)
    ax = [_axis(a, n) for a in ctx.ints(axes, 3)] if axes is not None else list(range(n))
    k = len(ax)
    if len(p) != 2 * k:
        raise ValueError(f"ONNX Pad (node {ctx.name!r}): {len(p)} pads for {k} axes")
    before, after = [0] * n, [0] * n
    for j, a in enumerate(ax):
        before[a], after[a] = p[j], p[j + k]
    # negative pads crop
    if any(v < 0 for v in before + after):
        x = wt.slice(x, [max(-b, 0) for b in before], end=[x.shape[d] - max(-after[d], 0) for d in range(n)])
        before, after = [max(b, 0) for b in before], [max(a, 0) for a in after]
    mode = ctx.attr("mode", "constant")
    if mode == "constant":
        cv = 0 if value is None else ctx.c(value, 2).reshape(-1)
        cv = 0 if getattr(cv, "size", 1) == 0 else (cv[0].item() if hasattr(cv, "shape") else cv)
        return wt.pad(x, list(zip(before, after)), constant_values=cv)
    if mode not in ("reflect", "edge", "wrap"):
        raise ctx.fail(f"mode {mode!r}")
    for d in range(n):
        if before[d] or after[d]:
            if mode == "reflect" and (before[d] >= x.shape[d] or after[d] >= x.shape[d]):
                raise ValueError(f"ONNX Pad (node {ctx.name!r}): reflect pads must be smaller than the axis")
            x = wt.gather(x, ctx.t(_index_pad(x.shape[d], before[d], after[d], mode).astype(np.int32)), axis=d)
    return x


@converts("Trilu", const=(1,))
def _trilu(ctx, x, k=None):
    x = ctx.t(x)
    kk = 0 if k is None else int(ctx.c(k, 1).reshape(()))
    m, n = x.shape[-2:]
    mask = np.triu(np.ones((m, n), bool), kk) if ctx.attr("upper", 1) else np.tril(np.ones((m, n), bool), kk)
    return wt.where(ctx.t(mask), x, wt.zeros_like(x))


@converts("DepthToSpace")
def _d2s(ctx, x):
    x = ctx.t(x)
    n, c, h, w = x.shape
    b = int(ctx.attr("blocksize"))
    if ctx.attr("mode", "DCR") == "DCR":
        y = wt.transpose(wt.reshape(x, (n, b, b, c // b // b, h, w)), (0, 3, 4, 1, 5, 2))
    else:
        y = wt.transpose(wt.reshape(x, (n, c // b // b, b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return wt.reshape(y, (n, c // b // b, h * b, w * b))


@converts("SpaceToDepth")
def _s2d(ctx, x):
    x = ctx.t(x)
    n, c, h, w = x.shape
    b = int(ctx.attr("blocksize"))
    y = wt.transpose(wt.reshape(x, (n, c, h // b, b, w // b, b)), (0, 3, 5, 1, 2, 4))
    return wt.reshape(y, (n, c * b * b, h // b, w // b))


@converts("Dropout", const=(1, 2))
def _dropout(ctx, x, ratio=None, training=None):
    if training is not None and bool(ctx.c(training, 2)):
        raise ctx.fail("training_mode=True (random masks are not imported)")
    x = ctx.t(x)
    return (wt.identity(x), wt.ones(x.shape, dtype=wt.bool, device=ctx.device)) if ctx.n_outputs > 1 else wt.identity(x)


@converts("CumSum", const=(1,))
def _cumsum(ctx, x, axis):
    return ctx.need("cumsum")(ctx.t(x), axis=int(ctx.c(axis, 1).reshape(())),
                              exclusive=bool(ctx.attr("exclusive", 0)), reverse=bool(ctx.attr("reverse", 0)))


@converts("Einsum")
def _einsum(ctx, *xs):
    ts = [ctx.t(x) for x in xs]
    return ctx.need("einsum")(ctx.attr("equation").replace(" ", ""), *ts)


@converts("TopK", const=(1,))
def _topk(ctx, x, k):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", -1)), _rank(x))
    kk = int(ctx.c(k, 1).reshape(-1)[0])
    if not ctx.attr("largest", 1):
        raise ctx.fail("largest=0")
    if axis != _rank(x) - 1:
        perm = [d for d in range(_rank(x)) if d != axis] + [axis]
        v, i = ctx.need("top_k")(wt.transpose(x, perm), k=kk)
        inv = np.argsort(perm).tolist()
        return wt.transpose(v, inv), wt.transpose(i, inv)
    return tuple(ctx.need("top_k")(x, k=kk))


@converts("ScatterND")
def _scatter_nd(ctx, x, i, u):
    red = ctx.attr("reduction", "none")
    name = {"none": "tensor_scatter_nd_update", "add": "tensor_scatter_nd_add", "max": "tensor_scatter_nd_max",
            "min": "tensor_scatter_nd_min"}.get(red)
    if name is None:
        raise ctx.fail(f"reduction={red!r}")
    return ctx.need(name)(ctx.t(x), ctx.t(i, like=wt.int32), ctx.t(u))


# ---- linear algebra and convolution -------------------------------------------------------

@converts("MatMul")
def _matmul(ctx, a, b):
    dt = next(v.dtype for v in (a, b) if isinstance(v, Tensor))
    return wt.matmul(ctx.t(a, like=dt), ctx.t(b, like=dt))


@converts("Gemm")
def _gemm(ctx, a, b, c=None):
    dt = next(v.dtype for v in (a, b, c) if isinstance(v, Tensor))
    a, b = ctx.t(a, like=dt), ctx.t(b, like=dt)
    y = wt.matmul(a, b, transpose_a=bool(ctx.attr("transA", 0)), transpose_b=bool(ctx.attr("transB", 0)))
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        c = ctx.t(c, like=dt)
        y = y + (c * beta if beta != 1.0 else c)
    return y


def _window(ctx, x, kernel, ceil_mode=False):
    """Spatial size, strides, dilations and ``((lo, hi), ...)`` pads of a conv/pool node (its
    ``auto_pad``, ``pads``, ``strides``, ``dilations``, ``ceil_mode`` attributes) for NCHW ``x``."""
    sp = list(x.shape[2:])
    k = len(sp)
    strides = list(ctx.attr("strides") or [1] * k)
    dil = list(ctx.attr("dilations") or [1] * k)
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, kk, s, d in zip(sp, kernel, strides, dil):
            total = max((-(-n // s) - 1) * s + (kk - 1) * d + 1 - n, 0)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads.append((lo, total - lo))
    elif auto == "VALID":
        pads = [(0, 0)] * k
    else:
        p = list(ctx.attr("pads") or [0] * (2 * k))
        pads = [(p[i], p[i + k]) for i in range(k)]
    if ceil_mode:
        out = []
        for (lo, hi), n, kk, s, d in zip(pads, sp, kernel, strides, dil):
            span = n + lo + hi - ((kk - 1) * d + 1)
            o = -(-span // s) + 1
            if (o - 1) * s >= n + lo:      # the last window must start inside the input or the left pad
                o -= 1
            out.append((lo, max(hi, (o - 1) * s + (kk - 1) * d + 1 - n - lo)))
        pads = out
    return strides, dil, pads


def _nhwc_2d(x):
    """NCHW or NCL ``x`` as NHWC (a 1-D signal is an image of height 1)."""
    if _rank(x) == 3:
        x = wt.reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))
    elif _rank(x) != 4:
        return None
    return wt.transpose(x, (0, 2, 3, 1))


def _from_nhwc(y, rank):
    y = wt.transpose(y, (0, 3, 1, 2))
    return wt.reshape(y, (y.shape[0], y.shape[1], y.shape[3])) if rank == 3 else y


def _two(v, rank, fill):
    return tuple(v) if rank == 4 else (fill,) + tuple(v)


@converts("Conv")
def _conv(ctx, x, w, b=None):
    x = ctx.t(x)
    w = ctx.t(w, like=x.dtype)
    r = _rank(x)
    if r not in (3, 4):
        raise ctx.fail(f"{r - 2}-D convolution (1-D and 2-D are supported)")
    kshape = tuple(w.shape[2:])
    strides, dil, pads = _window(ctx, x, kshape)
    g = int(ctx.attr("group", 1))
    if g == 1 and all(k == 1 for k in kshape) and all(p == (0, 0) for p in pads):
        return _pointwise(ctx, x, w, b, strides)
    xh = _nhwc_2d(x)
    if r == 3:
        w = wt.reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))
        kshape, strides, dil, pads = (1,) + kshape, [1] + strides, [1] + dil, [(0, 0)] + pads
    o, cg, kh, kw = w.shape
    c = xh.shape[3]
    if cg * g != c or o % g:
        raise ValueError(f"ONNX Conv (node {ctx.name!r}): weights {tuple(w.shape)} with group={g} do not fit "
                         f"{c} input channels")
    if g == c and o == c:
        x4 = x if r == 4 else wt.reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))
        y = _depthwise(x4, w, strides, dil, pads)
        if b is not None:
            y = y + wt.reshape(ctx.t(b, like=x.dtype), (c, 1, 1))
        return y if r == 4 else wt.reshape(y, (y.shape[0], y.shape[1], y.shape[3]))
    if g == 1 and r == 4 and c * kh * kw <= _CHW_PATCHES_K:
        return _conv_chw(ctx, x, w, b, (kh, kw), strides, dil, pads)
    p = wt.extract_patches(xh, ksize=(kh, kw), strides=tuple(strides), dilations=tuple(dil),
                           pads=tuple(pads), pad_value=0.0)          # (N, OH, OW, KH, KW, C)
    n, oh, ow = p.shape[:3]
    if g == 1:
        wm = wt.reshape(wt.transpose(w, (2, 3, 1, 0)), (kh * kw * c, o))
        y = wt.matmul(wt.reshape(p, (n * oh * ow, kh * kw * c)), wm)
    else:                               # grouped: one batched matmul over the groups
        og = o // g
        pg = wt.transpose(wt.reshape(p, (n * oh * ow, kh * kw, g, cg)), (2, 0, 1, 3))
        pg = wt.reshape(pg, (g, n * oh * ow, kh * kw * cg))
        wg = wt.reshape(wt.transpose(wt.reshape(w, (g, og, cg, kh, kw)), (0, 3, 4, 2, 1)), (g, kh * kw * cg, og))
        y = wt.transpose(wt.matmul(pg, wg), (1, 0, 2))
    y = wt.reshape(y, (n, oh, ow, o))
    if b is not None:
        y = y + ctx.t(b, like=x.dtype)
    return _from_nhwc(y, r)


_CHW_PATCHES_K = 32     # convolutions with at most this many weights per output (C * KH * KW) use _conv_chw


def _conv_chw(ctx, x, w, b, kshape, strides, dil, pads):
    """A convolution with few input channels (an RGB stem: C * KH * KW <= 32) in NCHW as it is:
    patches (N, C*KH*KW, OH*OW) whose rows run along the image width (each image channel taken as
    a one-channel NHWC image), then W (O, C*KH*KW) @ patches per image, as ``_pointwise``. The
    NHWC patches' rows would have C*KH*KW = 27 strided elements (per-lane gathers) and need a
    layout change each way; here the PP-OCR stem takes 1.0 instead of 1.5 ms (batch 16, wasm)."""
    n, c = x.shape[:2]
    o = w.shape[0]
    kh, kw = kshape
    p = wt.extract_patches(wt.reshape(x, (n * c, x.shape[2], x.shape[3], 1)), ksize=(kh, kw),
                           strides=tuple(strides), dilations=tuple(dil), pads=tuple(pads), pad_value=0.0)
    oh, ow = p.shape[1:3]
    p = wt.transpose(wt.reshape(p, (n, c, oh * ow, kh * kw)), (0, 1, 3, 2))
    y = wt.matmul(wt.reshape(w, (o, c * kh * kw)), wt.reshape(p, (n, c * kh * kw, oh * ow)))
    y = wt.reshape(y, (n, o, oh, ow))
    if b is not None:
        y = y + wt.reshape(ctx.t(b, like=x.dtype), (o, 1, 1))
    return y


def _pointwise(ctx, x, w, b, strides):
    """A 1x1 convolution in NCHW as it is: W (O, C) @ x (N, C, H*W), one matmul per image and no
    layout change (1.2x to 1.7x faster than NHWC rows @ W^T for MobileNet-sized layers on wasm)."""
    if any(s != 1 for s in strides):
        x = wt.slice(x, [0] * _rank(x), end=list(x.shape), strides=[1, 1] + list(strides))
    n, c = x.shape[:2]
    o = w.shape[0]
    if w.shape[1] != c:
        raise ValueError(f"ONNX Conv (node {ctx.name!r}): weights {tuple(w.shape)} do not fit {c} input channels")
    spatial = tuple(x.shape[2:])
    y = wt.matmul(wt.reshape(w, (o, c)), wt.reshape(x, (n, c, math.prod(spatial))))
    y = wt.reshape(y, (n, o) + spatial)
    if b is not None:
        y = y + wt.reshape(ctx.t(b, like=x.dtype), (o,) + (1,) * len(spatial))
    return y


def _depthwise(x, w, strides, dil, pads):
    """Depthwise convolution of NCHW ``x`` with ``w`` (C, 1, KH, KW): the sum over the window of
    strided slices of the padded input times one weight per channel, an elementwise chain that
    compiles to one loop with no im2col buffer and no layout change (3x faster than the same sum in
    NHWC, 6x faster than im2col, for PP-OCR's 5x5 layers on wasm)."""
    n, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh = (h + sum(pads[0]) - ((kh - 1) * dil[0] + 1)) // strides[0] + 1
    ow = (wd + sum(pads[1]) - ((kw - 1) * dil[1] + 1)) // strides[1] + 1
    wk = wt.reshape(w, (c, kh * kw))
    if oh <= _DW_ROWS and any(pads[0]):
        return _depthwise_rows(x, wk, (kh, kw), strides, dil, pads, oh, ow)
    xp = wt.pad(x, [(0, 0), (0, 0), pads[0], pads[1]])
    y = None
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dil[0], j * dil[1]
            win = wt.slice(xp, [0, 0, y0, x0], end=[n, c, y0 + (oh - 1) * strides[0] + 1,
                                                    x0 + (ow - 1) * strides[1] + 1],
                           strides=[1, 1, strides[0], strides[1]])
            term = win * wt.reshape(wk[:, i * kw + j], (c, 1, 1))
            y = term if y is None else y + term
    return y


_DW_ROWS = 4     # output heights up to this are built row by row (the wasm lowering unrolls them)


def _depthwise_rows(x, wk, kshape, strides, dil, pads, oh, ow):
    """Depthwise convolution for a short output (PP-OCR's 2- and 3-row layers): each output row
    sums only the taps on real input rows, and the rows are concatenated. Only the width is padded,
    so no padding rows are materialised or multiplied (with 5x5 windows on 2 rows, 60 % of the
    taps); the concat's selects fold away where the lowering unrolls the rows. Skipping a padding
    tap drops a 0 * w term: identical results unless a weight is inf or nan."""
    n, c, h, _ = x.shape
    kh, kw = kshape
    xp = wt.pad(x, [(0, 0), (0, 0), (0, 0), pads[1]])
    rows = []
    for r in range(oh):
        y = None
        for i in range(kh):
            src = r * strides[0] + i * dil[0] - pads[0][0]
            if not 0 <= src < h:
                continue
            for j in range(kw):
                x0 = j * dil[1]
                win = wt.slice(xp, [0, 0, src, x0], end=[n, c, src + 1, x0 + (ow - 1) * strides[1] + 1],
                               strides=[1, 1, 1, strides[1]])
                term = win * wt.reshape(wk[:, i * kw + j], (c, 1, 1))
                y = term if y is None else y + term
        rows.append(y if y is not None else wt.zeros((n, c, 1, ow), x.dtype))
    return rows[0] if oh == 1 else wt.concat(rows, axis=2)


@converts("ConvTranspose")
def _conv_transpose(ctx, x, w, b=None):
    # The transpose of a convolution is col2im of (x @ W): extract_patches_grad, which already takes
    # pads (cropping) and strides (ONNX ConvTranspose, spec "output_shape" and "pads" rules).
    x = ctx.t(x)
    w = ctx.t(w, like=x.dtype)
    r = _rank(x)
    if r not in (3, 4):
        raise ctx.fail(f"{r - 2}-D transposed convolution")
    g = int(ctx.attr("group", 1))
    xh = _nhwc_2d(x)
    if r == 3:
        w = wt.reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))
    cin, o, kh, kw = w.shape
    if cin != xh.shape[3] or cin % g:
        raise ValueError(f"ONNX ConvTranspose (node {ctx.name!r}): weights {tuple(w.shape)} with group={g} do not "
                         f"fit {xh.shape[3]} input channels")
    n, h, wd, _ = xh.shape
    strides = _two(ctx.attr("strides") or [1] * (r - 2), r, 1)
    dil = _two(ctx.attr("dilations") or [1] * (r - 2), r, 1)
    opad = _two(ctx.attr("output_padding") or [0] * (r - 2), r, 0)
    full = [(i - 1) * s + (kk - 1) * d + 1 for i, s, kk, d in zip((h, wd), strides, (kh, kw), dil)]
    out_shape = ctx.attr("output_shape")
    auto = ctx.attr("auto_pad", "NOTSET")
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = _two(out_shape, r, 1) if out_shape is not None else tuple(i * s for i, s in zip((h, wd), strides))
        pads = []
        for f, t, op in zip(full, target, opad):
            total = f + op - t
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads.append((lo, total - lo))
    elif auto == "VALID":
        pads = [(0, 0)] * 2
    else:
        p = list(ctx.attr("pads") or [0] * (2 * (r - 2)))
        pads = [(p[0], p[2]), (p[1], p[3])] if r == 4 else [(0, 0), (p[0], p[1])]
    grow = [(max(-lo, 0), max(-hi, 0)) for lo, hi in pads]     # negative pads: a larger output (zeros)
    pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    oh, ow = (f - lo - hi + op for f, (lo, hi), op in zip(full, pads, opad))
    cg = cin // g
    ys = []
    for k in range(g):          # groups: each maps its cin/g input channels to o output channels
        xk = xh if g == 1 else xh[..., k * cg:(k + 1) * cg]
        wk = w if g == 1 else w[k * cg:(k + 1) * cg]
        cols = wt.matmul(wt.reshape(xk, (n * h * wd, cg)), wt.reshape(wk, (cg, o * kh * kw)))
        cols = wt.transpose(wt.reshape(cols, (n, h, wd, o, kh, kw)), (0, 1, 2, 4, 5, 3))
        # col2im writes a (N, OH, OW, O) image whose windows at ``pads`` are the columns; output_padding
        # (< stride) adds rows/columns at the end that no window reaches (zeros, as the spec has it).
        ys.append(extract_patches_grad(cols, shape=(n, oh, ow, o), ksize=(kh, kw), strides=tuple(strides),
                                       dilations=tuple(dil), pads=tuple(pads)))
    y = ys[0] if g == 1 else wt.concat(ys, axis=3)
    if any(a or b_ for a, b_ in grow):
        y = wt.pad(y, [(0, 0), grow[0], grow[1], (0, 0)])
    if b is not None:
        y = y + ctx.t(b, like=x.dtype)
    return _from_nhwc(y, r)


def _pool_count(h, w, kernel, strides, dil, pads, include_pad, explicit):
    """The number of elements each average-pool window divides by (numpy; a constant)."""
    ones = np.zeros((h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1]), np.float32)
    ones[pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w] = 1
    if include_pad:   # the explicit pads count, the extra end padding of ceil_mode does not
        (t, b), (l, r) = explicit
        ones[:pads[0][0] + h + b, :pads[1][0] + w + r] = 1
        ones[:pads[0][0] - t, :] = 0
        ones[:, :pads[1][0] - l] = 0
    kh, kw = kernel
    oh = (ones.shape[0] - ((kh - 1) * dil[0] + 1)) // strides[0] + 1
    ow = (ones.shape[1] - ((kw - 1) * dil[1] + 1)) // strides[1] + 1
    out = np.zeros((oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += ones[i * dil[0]:i * dil[0] + (oh - 1) * strides[0] + 1:strides[0],
                        j * dil[1]:j * dil[1] + (ow - 1) * strides[1] + 1:strides[1]]
    return out


@converts("MaxPool", "AveragePool")
def _pool(ctx, x):
    x = ctx.t(x)
    r = _rank(x)
    if r not in (3, 4):
        raise ctx.fail(f"{r - 2}-D pooling (1-D and 2-D are supported)")
    if ctx.op == "MaxPool" and ctx.n_outputs > 1:
        raise ctx.fail("the Indices output")
    if ctx.attr("storage_order", 0):
        raise ctx.fail("storage_order=1")
    kernel = tuple(ctx.attr("kernel_shape"))
    _, _, explicit = _window(ctx, x, kernel)
    strides, dil, pads = _window(ctx, x, kernel, ceil_mode=bool(ctx.attr("ceil_mode", 0)))
    xh = _nhwc_2d(x)
    if r == 3:
        kernel, strides, dil, pads, explicit = (1,) + kernel, [1] + strides, [1] + dil, [(0, 0)] + pads, \
            [(0, 0)] + explicit
    is_max = ctx.op == "MaxPool"
    p = wt.extract_patches(xh, ksize=kernel, strides=tuple(strides), dilations=tuple(dil), pads=tuple(pads),
                           pad_value=float("-inf") if is_max else 0.0)
    if is_max:
        return _from_nhwc(wt.max(p, axis=(3, 4)), r)
    count = _pool_count(xh.shape[1], xh.shape[2], kernel, strides, dil, pads,
                        bool(ctx.attr("count_include_pad", 0)), explicit)
    y = wt.sum(p, axis=(3, 4)) / ctx.t(count.reshape(1, *count.shape, 1).astype(np.float32), like=x.dtype)
    return _from_nhwc(y, r)


@converts("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, x):
    x = ctx.t(x)
    axes = tuple(range(2, _rank(x)))
    return wt.mean(x, axes, True) if ctx.op == "GlobalAveragePool" else wt.max(x, axes, True)


# ---- normalization ----------------------------------------------------------------------------

def _per_channel(ctx, v, x):
    return wt.reshape(ctx.t(v, like=x.dtype), (1, -1) + (1,) * (_rank(x) - 2))


@converts("BatchNormalization", state=(3, 4))
def _batchnorm(ctx, x, scale, bias, mean, var):
    if ctx.attr("training_mode", 0) or ctx.n_outputs > 1:
        raise ctx.fail("training_mode=1")
    x = ctx.t(x)
    eps = float(ctx.attr("epsilon", 1e-5))
    inv = wt.rsqrt(_per_channel(ctx, var, x) + eps) * _per_channel(ctx, scale, x)
    return (x - _per_channel(ctx, mean, x)) * inv + _per_channel(ctx, bias, x)


def _normalize(x, axes, eps):
    m = wt.mean(x, axes, True)
    d = x - m
    inv = wt.rsqrt(wt.mean(d * d, axes, True) + eps)
    return d * inv, m, inv


@converts("InstanceNormalization")
def _instnorm(ctx, x, scale, bias):
    x = ctx.t(x)
    y, _, _ = _normalize(x, tuple(range(2, _rank(x))), float(ctx.attr("epsilon", 1e-5)))
    return y * _per_channel(ctx, scale, x) + _per_channel(ctx, bias, x)


@converts("LayerNormalization")
def _layernorm(ctx, x, scale, bias=None):
    x = ctx.t(x)
    axis = _axis(int(ctx.attr("axis", -1)), _rank(x))
    y, m, inv = _normalize(x, tuple(range(axis, _rank(x))), float(ctx.attr("epsilon", 1e-5)))
    y = y * ctx.t(scale, like=x.dtype)
    if bias is not None:
        y = y + ctx.t(bias, like=x.dtype)
    return (y, m, inv)[:ctx.n_outputs] if ctx.n_outputs > 1 else y


@converts("GroupNormalization")
def _groupnorm(ctx, x, scale, bias):
    x = ctx.t(x)
    g = int(ctx.attr("num_groups"))
    n, c = x.shape[:2]
    xg = wt.reshape(x, (n, g, -1))
    y, _, _ = _normalize(xg, (2,), float(ctx.attr("epsilon", 1e-5)))
    y = wt.reshape(y, x.shape)
    scale, bias = ctx.t(scale, like=x.dtype), ctx.t(bias, like=x.dtype)
    if scale.shape[0] != c:         # opset 18: one scale per group
        scale, bias = (wt.reshape(wt.broadcast_to(wt.reshape(v, (g, 1)), (g, c // g)), (c,)) for v in (scale, bias))
    return y * _per_channel(ctx, scale, x) + _per_channel(ctx, bias, x)


@converts("LpNormalization")
def _lpnorm(ctx, x):
    x = ctx.t(x)
    axis, p = _axis(int(ctx.attr("axis", -1)), _rank(x)), int(ctx.attr("p", 2))
    norm = wt.sum(wt.abs(x), axis, True) if p == 1 else wt.sqrt(wt.sum(x * x, axis, True))
    return x / wt.where(norm == 0, 1.0, norm)       # a zero vector stays zero (ONNX's reference)


@converts("MeanVarianceNormalization")
def _mvn(ctx, x):
    x = ctx.t(x)
    axes = tuple(_axis(a, _rank(x)) for a in (ctx.attr("axes") or [0, 2, 3]))
    m = wt.mean(x, axes, True)
    d = x - m
    return d / (wt.sqrt(wt.mean(d * d, axes, True)) + 1e-9)


@converts("LRN")
def _lrn(ctx, x):
    x = ctx.t(x)
    size = int(ctx.attr("size"))
    alpha, beta, bias = float(ctx.attr("alpha", 1e-4)), float(ctx.attr("beta", 0.75)), float(ctx.attr("bias", 1.0))
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = wt.pad(x * x, [(0, 0), (lo, hi)] + [(0, 0)] * (_rank(x) - 2))
    total = sq[:, 0:c]
    for i in range(1, size):
        total = total + sq[:, i:i + c]
    return x / wt.pow(total * (alpha / size) + bias, beta)


# ---- resize (separable: one constant interpolation matrix per axis) ---------------------------------

def _resize_matrix(attrs, in_n, scale, size, roi, partner=(1, 1)):
    """(M, z) with ``y = M @ x + z`` along one axis of ``in_n`` elements: ONNX's reference Resize
    (onnx.reference) applied to the identity and to zeros, so every mode, coordinate transform,
    antialias filter and extrapolation follows the spec exactly. float64. The reference resizes a
    second axis of ``partner`` = (length, size): 1 to 1, or, under keep_aspect_ratio_policy, the axis
    whose ratio sets the common scale."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    names = ["x", "roi" if roi is not None else "", "scales" if size is None else "", "sizes" if size is not None else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Resize", names, ["y"], **{k: v for k, v in attrs.items() if k != "axes"})
    g = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, None)],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    ev = ReferenceEvaluator(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))
    def run(a, second):         # ``a`` (in_n, k) resized along axis 0; axis 1 of length ``second``
        feeds = {"x": np.repeat(a, second // a.shape[1], axis=1)}
        if roi is not None:
            feeds["roi"] = np.array([roi[0], 0.0, roi[1], 1.0], np.float32)
        if size is None:
            feeds["scales"] = np.array([scale, 1.0], np.float32)
        else:
            feeds["sizes"] = np.array([size, partner[1] if partner != (1, 1) else second], np.int64)
        return ev.run(None, feeds)[0]
    z = run(np.zeros((in_n, 1)), partner[0])[:, 0]
    eye = np.eye(in_n)
    if partner == (1, 1):       # axis 1 maps to itself: every column of the identity in one run
        m = run(eye, in_n)
    else:
        m = np.stack([run(eye[:, i:i + 1], partner[0])[:, 0] for i in range(in_n)], axis=1)
    return m - z[:, None], z


@converts("Resize", const=(1, 2, 3))
def _resize(ctx, x, roi=None, scales=None, sizes=None):
    x = ctx.t(x)
    n = _rank(x)
    axes = [_axis(a, n) for a in (ctx.attr("axes") or range(n))]
    roi_v = ctx.c(roi, 1).astype(np.float64).reshape(-1) if roi is not None and ctx.c(roi, 1).size else None
    by_size = sizes is not None and ctx.c(sizes, 3).size
    partner = (1, 1)
    if by_size:
        sz = ctx.ints(sizes, 3)
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":     # one scale for all axes, set by the axis of the smallest (largest) ratio
            ratios = [sz[j] / x.shape[a] for j, a in enumerate(axes)]
            k = int(np.argmin(ratios) if policy == "not_larger" else np.argmax(ratios))
            partner = (x.shape[axes[k]], sz[k])
    else:
        sc = [float(v) for v in ctx.c(scales, 2).reshape(-1)]
    mode = ctx.attr("mode", "nearest")
    for j, a in enumerate(axes):
        in_n = x.shape[a]
        r = (roi_v[j], roi_v[j + len(axes)]) if roi_v is not None else None
        if (sz[j] == in_n and partner == (1, 1) if by_size else sc[j] == 1.0) and \
                ctx.attr("coordinate_transformation_mode") != "tf_crop_and_resize":
            continue
        out_n = sz[j] if by_size else int(np.floor(in_n * sc[j]))
        if in_n * max(out_n, 1) * max(partner[0], 1) > 1 << 25:
            raise ctx.fail(f"an axis of {in_n} -> {out_n} elements (its interpolation matrix is too large)")
        m, z = _resize_matrix(ctx.attrs, in_n, None if by_size else sc[j], sz[j] if by_size else None, r, partner)
        out_n = m.shape[0]
        shape = [1] * n
        shape[a] = out_n
        if mode == "nearest" and np.all((m == 0) | (m == 1)) and np.all(m.sum(1) == 1):
            x2 = wt.gather(x, ctx.t(m.argmax(1).astype(np.int32)), axis=a)      # a selection: gather
        else:
            perm = [d for d in range(n) if d != a] + [a]
            xt = wt.transpose(x, perm)
            y = wt.matmul(xt, ctx.t(m.T.astype(np.float32), like=x.dtype))
            x2 = wt.transpose(y, np.argsort(perm).tolist())
        if np.any(z != 0):
            x2 = x2 + ctx.t(z.astype(np.float32).reshape(shape), like=x.dtype)
        x = x2
    return x


# ---- losses -----------------------------------------------------------------------------------

@converts("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def _nll(ctx, x, target, weight=None):
    x = ctx.t(x)
    t = ctx.t(target, like=wt.int32)
    logp = wt.log_softmax(x, axis=1) if ctx.op == "SoftmaxCrossEntropyLoss" else x
    c = x.shape[1]
    ignore = ctx.attr("ignore_index")
    valid = wt.ones(t.shape, dtype=wt.bool, device=ctx.device) if ignore is None else wt.not_equal(t, int(ignore))
    safe = wt.where(valid, t, 0)
    oh = wt.one_hot(safe, c, axis=1, dtype=x.dtype)                       # (N, C, d...)
    picked = -wt.sum(logp * oh, axis=1)                                   # (N, d...)
    w = wt.cast(valid, x.dtype)
    if weight is not None:
        w = w * wt.gather(ctx.t(weight, like=x.dtype), safe)
    loss = picked * w
    red = ctx.attr("reduction", "mean")
    if red == "none":
        out = loss
    elif red == "sum":
        out = wt.sum(loss)
    else:
        out = wt.sum(loss) / wt.sum(w)
    if ctx.op == "SoftmaxCrossEntropyLoss" and ctx.n_outputs > 1:
        return out, logp
    return out


# ---- computed only at import: every input must be known (a tensor there is a DataDependentError),
# and a node whose inputs are all known is folded before any converter runs ------------------------

def _import_time_only(ctx, *inputs):
    raise ctx.fail("its inputs must be known at import")


for _op, _n in {"ConstantOfShape": 1, "Range": 3, "HannWindow": 1, "HammingWindow": 1, "BlackmanWindow": 1,
                "NonZero": 1, "MelWeightMatrix": 5}.items():
    converts(_op, const=tuple(range(_n)))(_import_time_only)


@converts("CenterCropPad", const=(1,))
def _center_crop_pad(ctx, x, shape):
    x = ctx.t(x)
    n = _rank(x)
    axes = [_axis(a, n) for a in (ctx.attr("axes") or range(n))]
    want = ctx.ints(shape, 1)
    begin, end, pads = [0] * n, list(x.shape), [(0, 0)] * n
    for a, w in zip(axes, want):
        d = x.shape[a]
        if w < d:       # crop: the extra element goes to the end (spec: "(dim - target) // 2" at the start)
            begin[a] = (d - w) // 2
            end[a] = begin[a] + w
        elif w > d:
            lo = (w - d) // 2
            pads[a] = (lo, w - d - lo)
    return wt.pad(wt.slice(x, begin, end=end), pads)


@converts("Col2Im", const=(1, 2))
def _col2im(ctx, x, image_shape, block_shape):
    # the inverse of im2col sums overlapping windows: extract_patches_grad, as in ConvTranspose
    x = ctx.t(x)
    hw, k = ctx.ints(image_shape, 1), ctx.ints(block_shape, 2)
    if len(hw) != 2:
        raise ctx.fail(f"{len(hw)}-D images (2-D are supported)")
    n, ck, _ = x.shape
    c = ck // (k[0] * k[1])
    strides = tuple(ctx.attr("strides") or (1, 1))
    dil = tuple(ctx.attr("dilations") or (1, 1))
    p = list(ctx.attr("pads") or (0, 0, 0, 0))
    pads = ((p[0], p[2]), (p[1], p[3]))
    oh = (hw[0] + p[0] + p[2] - ((k[0] - 1) * dil[0] + 1)) // strides[0] + 1
    ow = (hw[1] + p[1] + p[3] - ((k[1] - 1) * dil[1] + 1)) // strides[1] + 1
    cols = wt.transpose(wt.reshape(x, (n, c, k[0], k[1], oh, ow)), (0, 4, 5, 2, 3, 1))
    y = extract_patches_grad(cols, shape=(n, hw[0], hw[1], c), ksize=tuple(k), strides=strides, dilations=dil,
                             pads=pads)
    return wt.transpose(y, (0, 3, 1, 2))


@converts("ScatterElements")
def _scatter_elements(ctx, x, i, u):
    # as ScatterND with full coordinates: along ``axis`` the given indices, elsewhere each position's own
    x, i, u = ctx.t(x), ctx.t(i, like=wt.int32), ctx.t(u)
    n = _rank(x)
    axis = _axis(int(ctx.attr("axis", 0)), n)
    i = wt.where(i < 0, i + x.shape[axis], i)
    grids = np.meshgrid(*[np.arange(d, dtype=np.int32) for d in i.shape], indexing="ij")
    coords = [i if d == axis else ctx.t(grids[d]) for d in range(n)]
    red = ctx.attr("reduction", "none")
    name = {"none": "tensor_scatter_nd_update", "add": "tensor_scatter_nd_add", "max": "tensor_scatter_nd_max",
            "min": "tensor_scatter_nd_min"}.get(red)
    if name is None:
        raise ctx.fail(f"reduction={red!r}")
    return ctx.need(name)(x, wt.stack(coords, axis=-1), u)


@converts("OneHot", const=(1,))
def _one_hot(ctx, i, depth, values):
    i = ctx.t(i, like=wt.int32)
    d = int(ctx.c(depth, 1).reshape(-1)[0])
    axis = int(ctx.attr("axis", -1))
    i = wt.where(i < 0, i + d, i)            # ONNX: negative indices count from the end
    values = ctx.t(values)
    hot = wt.one_hot(i, d, axis=axis, dtype=wt.bool)
    return wt.where(hot, values[1], values[0])


@converts("EyeLike")
def _eye_like(ctx, x):
    # depends only on the input's (static) shape: a constant
    n, m = x.shape
    dt = NUMPY_OF_ONNX.get(int(ctx.attr("dtype", 0))) if ctx.attr("dtype") is not None else \
        _NUMPY_OF_WT[x.dtype.name]
    if dt is None:
        raise ctx.fail(f"dtype {ctx.attr('dtype')}")
    return np.eye(n, m, int(ctx.attr("k", 0)), dtype=dt)


@converts("DFT", const=(1, 2))
def _dft(ctx, x, dft_length=None, axis_in=None):
    # X_k = sum_t x_t exp(-+2 pi i k t / L): two matmuls with constant cosine and sine matrices
    x = ctx.t(x)
    r = _rank(x)
    if ctx.opset >= 20:
        axis = int(ctx.c(axis_in, 2).reshape(())) if axis_in is not None else -2
    else:
        axis = int(ctx.attr("axis", 1))
    axis = _axis(axis, r)
    if not 0 <= axis < r - 1:
        raise ValueError(f"ONNX DFT (node {ctx.name!r}): axis {axis} out of range for rank {r}")
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))
    perm = [d for d in range(r - 1) if d != axis] + [axis, r - 1]
    xt = wt.transpose(x, perm)                                    # (..., n, c)
    n = xt.shape[-2]
    if inverse and onesided:            # the inverse of a real signal's one-sided spectrum (irfft)
        return _irfft(ctx, x, xt, perm, int(ctx.c(dft_length, 1).reshape(())) if dft_length is not None
                      else 2 * (n - 1))
    length = int(ctx.c(dft_length, 1).reshape(())) if dft_length is not None else n
    if length > n:
        xt = wt.pad(xt, [(0, 0)] * (r - 2) + [(0, length - n), (0, 0)])
    elif length < n:
        xt = xt[..., :length, :]
    m = length // 2 + 1 if onesided else length
    t = np.arange(length)[:, None]
    theta = 2 * np.pi * ((t * np.arange(m)[None, :]) % length) / length
    cos = ctx.t(np.cos(theta).astype(np.float32), like=x.dtype)
    sin = ctx.t((np.sin(theta) * (1 if inverse else -1)).astype(np.float32), like=x.dtype)
    lead = xt.shape[:-2]
    xr = wt.reshape(xt[..., 0], (-1, length))
    yr, yi = wt.matmul(xr, cos), wt.matmul(xr, sin)
    if xt.shape[-1] == 2:
        xi = wt.reshape(xt[..., 1], (-1, length))
        yr, yi = yr - wt.matmul(xi, sin), yi + wt.matmul(xi, cos)
    if inverse:
        yr, yi = yr * (1.0 / length), yi * (1.0 / length)
    y = wt.reshape(wt.stack([yr, yi], axis=-1), tuple(lead) + (m, 2))
    return wt.transpose(y, np.argsort(perm).tolist())


def _irfft(ctx, x, xt, perm, length):
    """y_t = (1/L) sum_k w_k (Re X_k cos(2 pi k t / L) - Im X_k sin(2 pi k t / L)), w_k = 2 except at
    k = 0 and k = L/2 (numpy.fft.irfft: the bins beyond L // 2 + 1 are ignored, missing ones are 0)."""
    m = min(xt.shape[-2], length // 2 + 1)
    xt = xt[..., :m, :]
    k = np.arange(m)[:, None]
    theta = 2 * np.pi * ((k * np.arange(length)[None, :]) % length) / length
    w = np.where((k == 0) | (2 * k == length), 1.0, 2.0) / length
    cos = ctx.t((w * np.cos(theta)).astype(np.float32), like=x.dtype)
    sin = ctx.t((w * np.sin(theta)).astype(np.float32), like=x.dtype)
    lead = xt.shape[:-2]
    y = wt.matmul(wt.reshape(xt[..., 0], (-1, m)), cos)
    if xt.shape[-1] == 2:
        y = y - wt.matmul(wt.reshape(xt[..., 1], (-1, m)), sin)
    y = wt.reshape(y, tuple(lead) + (length, 1))
    return wt.transpose(y, np.argsort(perm).tolist())


@converts("AffineGrid", const=(1,))
def _affine_grid(ctx, theta, size):
    # grid = [x, y, (z,) 1] @ theta^T over the normalised coordinates of every output position
    theta = ctx.t(theta)
    dims = ctx.ints(size, 1)[2:]           # (H, W) or (D, H, W)
    align = bool(ctx.attr("align_corners", 0))

    def coords(n):
        if align:
            return np.linspace(-1, 1, n) if n > 1 else np.zeros(1)
        return (np.arange(n) * 2 + 1) / n - 1
    axes = [coords(n) for n in dims]
    mesh = np.meshgrid(*axes, indexing="ij")                  # each (D,) H, W
    base = np.stack([m.reshape(-1) for m in reversed(mesh)] + [np.ones(mesh[0].size)], axis=-1)
    grid = wt.matmul(ctx.t(base.astype(np.float32)[None], like=theta.dtype), theta, transpose_b=True)
    return wt.reshape(grid, (theta.shape[0],) + tuple(dims) + (len(dims),))


@converts("LpPool")
def _lp_pool(ctx, x):
    # (sum over the window of |x|^p)^(1/p); padding reads zeros
    x = ctx.t(x)
    r = _rank(x)
    if r not in (3, 4):
        raise ctx.fail(f"{r - 2}-D pooling (1-D and 2-D are supported)")
    kernel = tuple(ctx.attr("kernel_shape"))
    strides, dil, pads = _window(ctx, x, kernel, ceil_mode=bool(ctx.attr("ceil_mode", 0)))
    if r == 3:
        kernel, strides, dil, pads = (1,) + kernel, [1] + strides, [1] + dil, [(0, 0)] + pads
    p = float(ctx.attr("p", 2))
    patches = wt.extract_patches(_nhwc_2d(x), ksize=kernel, strides=tuple(strides), dilations=tuple(dil),
                                 pads=tuple(pads), pad_value=0.0)
    a = wt.abs(patches)
    total = wt.sum(a * a if p == 2 else wt.pow(a, p), axis=(3, 4))
    return _from_nhwc(wt.sqrt(total) if p == 2 else wt.pow(total, 1.0 / p), r)


@converts("STFT", const=(1, 3))
def _stft(ctx, x, frame_step, window=None, frame_length=None):
    # frames (strided slices of the signal), times the window, then the DFT as two matmuls
    x = ctx.t(x)
    step = int(ctx.c(frame_step, 1).reshape(()))
    length = int(ctx.c(frame_length, 3).reshape(())) if frame_length is not None else window.shape[0]
    n, total, c = x.shape
    count = (total - length) // step + 1
    frames = wt.stack([x[:, f * step:f * step + length, :] for f in range(count)], axis=1)   # (N, F, L, c)
    if window is not None:
        frames = frames * wt.reshape(ctx.t(window, like=x.dtype), (1, 1, length, 1))
    onesided = bool(ctx.attr("onesided", 1))
    m = length // 2 + 1 if onesided else length
    theta = 2 * np.pi * ((np.arange(length)[:, None] * np.arange(m)[None, :]) % length) / length
    cos = ctx.t(np.cos(theta).astype(np.float32), like=x.dtype)
    sin = ctx.t(-np.sin(theta).astype(np.float32), like=x.dtype)
    re = wt.reshape(frames[..., 0], (-1, length))
    yr, yi = wt.matmul(re, cos), wt.matmul(re, sin)
    if c == 2:
        im = wt.reshape(frames[..., 1], (-1, length))
        yr, yi = yr - wt.matmul(im, sin), yi + wt.matmul(im, cos)
    return wt.reshape(wt.stack([yr, yi], axis=-1), (n, count, m, 2))


@converts("BitwiseNot")
def _bitwise_not(ctx, x):
    x = ctx.t(x)
    if x.dtype != wt.int32:
        raise ctx.fail(f"{x.dtype.name} operands (int32 only)")
    return -x - 1           # two's complement: ~x == -x - 1, exact over int32



# ---- recurrent layers (unrolled over the static sequence length) -------------------------------------

_RNN_ACTS = {"Sigmoid": wt.sigmoid, "Tanh": wt.tanh, "Relu": wt.relu}
_RNN_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


@converts("RNN", "GRU", "LSTM", const=(4,))
def _recurrent(ctx, x, w, r, b=None, seq_lens=None, h0=None, c0=None, peep=None):
    """ONNX RNN/GRU/LSTM (spec equations; gate orders i-o-f-c for LSTM, z-r-h for GRU): the input
    projections of all steps in one matmul, then one step per time index."""
    kind, x = ctx.op, ctx.t(x)
    w, r = ctx.t(w, like=x.dtype), ctx.t(r, like=x.dtype)
    if ctx.attr("layout", 0):
        x = wt.transpose(x, (1, 0, 2))
        h0, c0 = (wt.transpose(ctx.t(v, like=x.dtype), (1, 0, 2)) if v is not None else None for v in (h0, c0))
    seq, batch, _ = x.shape
    if seq_lens is not None and any(v != seq for v in ctx.ints(seq_lens, 4)):
        raise ctx.fail("sequence_lens shorter than the sequence (padded batches)")
    if ctx.attr("clip") is not None or (kind == "LSTM" and ctx.attr("input_forget", 0)):
        raise ctx.fail("clip or input_forget")
    direction = ctx.attr("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    hid, ng = r.shape[-1], _RNN_GATES[kind]
    names = [a.decode() if isinstance(a, bytes) else a for a in ctx.attr("activations") or _RNN_DEFAULTS[kind] * dirs]
    if any(a not in _RNN_ACTS for a in names):
        raise ctx.fail(f"activations {names} (Sigmoid, Tanh and Relu are supported)")
    acts = [_RNN_ACTS[a] for a in names]
    ys, hs, cs = [], [], []
    for d in range(dirs):
        f, g, h_act = (acts[d * len(_RNN_DEFAULTS[kind]):] + [None, None])[:3]
        bias = ctx.t(b, like=x.dtype)[d] if b is not None else None
        wb, rb = (bias[:ng * hid], bias[ng * hid:]) if bias is not None else (None, None)
        xw = wt.matmul(wt.reshape(x, (seq * batch, -1)), w[d], transpose_b=True)
        if wb is not None:
            xw = xw + wb + (rb if kind != "GRU" else 0.0)
        xw = wt.reshape(xw, (seq, batch, ng * hid))
        h = ctx.t(h0, like=x.dtype)[d] if h0 is not None else wt.zeros((batch, hid), dtype=x.dtype, device=ctx.device)
        c = ctx.t(c0, like=x.dtype)[d] if c0 is not None else wt.zeros((batch, hid), dtype=x.dtype, device=ctx.device)
        p = ctx.t(peep, like=x.dtype)[d] if peep is not None else None
        rd = r[d]
        order = range(seq) if (direction == "forward" or (direction == "bidirectional" and d == 0)) \
            else range(seq - 1, -1, -1)
        out = [None] * seq
        for t in order:
            gx = xw[t]
            if kind == "RNN":
                h = f(gx + wt.matmul(h, rd, transpose_b=True))
            elif kind == "LSTM":
                z = gx + wt.matmul(h, rd, transpose_b=True)
                zi, zo, zf, zc = (z[:, k * hid:(k + 1) * hid] for k in range(4))
                if p is not None:
                    zi, zf = zi + p[:hid] * c, zf + p[2 * hid:] * c
                c = f(zf) * c + f(zi) * g(zc)
                if p is not None:
                    zo = zo + p[hid:2 * hid] * c
                h = f(zo) * h_act(c)
            else:   # GRU
                hr = wt.matmul(h, rd, transpose_b=True)
                rbz = rb if rb is not None else None
                zz = gx[:, :hid] + hr[:, :hid] + (rbz[:hid] if rbz is not None else 0.0)
                zr = gx[:, hid:2 * hid] + hr[:, hid:2 * hid] + (rbz[hid:2 * hid] if rbz is not None else 0.0)
                zt, rt = f(zz), f(zr)
                rh = rbz[2 * hid:] if rbz is not None else 0.0
                if ctx.attr("linear_before_reset", 0):
                    ht = g(gx[:, 2 * hid:] + rt * (hr[:, 2 * hid:] + rh))
                else:
                    ht = g(gx[:, 2 * hid:] + wt.matmul(rt * h, rd[2 * hid:], transpose_b=True) + rh)
                h = (1.0 - zt) * ht + zt * h
            out[t] = h
        ys.append(wt.stack(out, axis=0))
        hs.append(h)
        cs.append(c)
    y, yh, yc = wt.stack(ys, axis=1), wt.stack(hs, axis=0), wt.stack(cs, axis=0)   # (seq, dirs, batch, hid)
    if ctx.attr("layout", 0):
        y, yh, yc = wt.transpose(y, (2, 0, 1, 3)), wt.transpose(yh, (1, 0, 2)), wt.transpose(yc, (1, 0, 2))
    outs = (y, yh, yc)[:ctx.n_outputs]
    return outs if len(outs) > 1 else outs[0]


# ---- GridSample (2-D; sampling positions are tensors: gathers at computed indices) ------------------

def _reflect(v, lo: float, hi: float):
    """Reflect coordinates outside [lo, hi] back inside by the nearer border (ONNX's reference
    ``_gs_reflect``)."""
    span = hi - lo

    def fold(d):                     # d >= 0: distance past a border -> (times folded is even, rest)
        n = wt.floor(d / span)
        return wt.equal(n - 2.0 * wt.floor(n * 0.5), 0.0), d - n * span
    even_lo, r_lo = fold(wt.maximum(lo - v, 0.0))
    even_hi, r_hi = fold(wt.maximum(v - hi, 0.0))
    below = wt.where(even_lo, lo + r_lo, hi - r_lo)
    above = wt.where(even_hi, hi - r_hi, lo + r_hi)
    return wt.where(v < lo, below, wt.where(v > hi, above, v))


@converts("GridSample")
def _grid_sample(ctx, x, grid):
    x, grid = ctx.t(x), ctx.t(grid)
    if _rank(x) != 4:
        raise ctx.fail(f"{_rank(x) - 2}-D sampling (2-D is supported)")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(ctx.attr("mode", "linear"), ctx.attr("mode", "linear"))
    if mode not in ("linear", "nearest"):
        raise ctx.fail(f"mode {mode!r}")
    pad_mode, align = ctx.attr("padding_mode", "zeros"), bool(ctx.attr("align_corners", 0))
    n, c, h, w = x.shape
    _, ho, wo, _ = grid.shape
    flat = wt.reshape(wt.transpose(x, (0, 2, 3, 1)), (n * h * w, c))
    base = ctx.t((np.arange(n, dtype=np.int32) * (h * w)).reshape(n, 1, 1))
    coords = []
    for k, size in ((0, w), (1, h)):     # the grid's last axis holds (x, y)
        g = grid[..., k]
        v = (g + 1.0) * 0.5 * (size - 1) if align else ((g + 1.0) * size - 1.0) * 0.5
        if mode == "nearest":
            v = wt.round(v)
        lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
        if pad_mode == "border":
            v = wt.where(wt.logical_or(v < lo, v > hi), wt.minimum(wt.maximum(v, 0.0), size - 1.0), v)
        elif pad_mode == "reflection":
            v = _reflect(v, lo, hi)
        if mode == "nearest":
            taps = [(v, None)]
        else:
            f = wt.floor(v)
            taps = [(f, 1.0 - (v - f)), (f + 1.0, v - f)]
        out = []
        for i, wgt in taps:             # each tap: an integer index, its weight, whether it reads zeros
            if pad_mode == "reflection":
                i = _reflect(i, lo, hi)
            ok = wt.logical_and(i >= 0.0, i <= size - 1.0)
            ii = wt.cast(wt.minimum(wt.maximum(i, 0.0), size - 1.0), wt.int32)
            wk = wt.ones_like(v) if wgt is None else wgt
            out.append((ii, wk if pad_mode != "zeros" else wt.where(ok, wk, 0.0)))
        coords.append(out)
    y = None
    for ix, wx in coords[0]:
        for iy, wy in coords[1]:
            picked = wt.reshape(wt.gather(flat, wt.reshape(base + iy * w + ix, (-1,)), axis=0), (n, ho, wo, c))
            term = picked * wt.expand_dims(wx * wy, -1)
            y = term if y is None else y + term
    return wt.transpose(y, (0, 3, 1, 2))
