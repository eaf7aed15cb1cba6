"""Reductions: ``sum prod max min`` over any axes, ``argmax argmin`` over one axis.

Each is one ``reduce`` kernel; ``mean`` and friends are compositions. NaN as in numpy on every
device: ``max``/``min`` of a slice holding NaN is NaN, ``argmax``/``argmin`` give the first NaN.
"""
from __future__ import annotations

from .. import kernel_ir as K
from ..dtypes import bool_, float32, int32
from ..op import Aval, Op, as_tensor
from ..shapes import Dim
from ..signature import BOOL, axes_of, axis_of, op_signature, optional
from .namespace import ops as _ops


def _out_shape(shape, axes, keepdims):
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def _reduce_index(shape, axes, keepdims, n_out):
    """Input index of a reduce kernel whose space is out dims then reduced dims."""
    ix, o, r = [], 0, 0
    for i in range(len(shape)):
        if i in axes:
            ix.append(K.idx(n_out + r))
            r += 1
            o += keepdims
        else:
            ix.append(K.idx(o))
            o += 1
    return tuple(ix)


def _reducer(name: str, combiner: str, np_name: str, grad):
    def infer(x: Aval, *, axes, keepdims) -> Aval:
        for a in axes:
            if not 0 <= a < len(x.shape):
                raise ValueError(f"{name}: axis {a} is out of range for shape {x.shape}")
        if combiner in ("max", "min") and any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{name}: cannot reduce an empty axis of shape {x.shape} (no identity for {combiner})")
        dt = int32 if x.dtype == bool_ else x.dtype
        return Aval(_out_shape(x.shape, axes, keepdims), dt)

    def ref(x, *, axes, keepdims):
        import numpy as np
        r = getattr(np, np_name)(x, axis=axes, keepdims=keepdims)
        return np.asarray(r).astype(np.int32 if x.dtype == np.bool_ else x.dtype)

    def kernel(ins, out, *, axes, keepdims):
        (x,) = ins
        e = K.load(0, _reduce_index(x.shape, axes, keepdims, len(out.shape)), x.dtype)
        return K.reduce_kernel([K.Buffer(x.shape, x.dtype)], K.Buffer(out.shape, out.dtype),
                               tuple(x.shape[a] for a in axes), K.cast(e, out.dtype), combiner)

    return Op(name, infer=infer, reference=ref, grad=grad, kernel=kernel)


def _keep(g, x, axes, keepdims):
    """g reshaped to the keepdims shape, then broadcast to x's shape."""
    reshape, broadcast_to = _ops.reshape, _ops.broadcast_to
    if not keepdims:
        g = reshape(g, shape=_out_shape(x.shape, axes, True))
    return broadcast_to(g, shape=tuple(x.shape))


def _sum_grad(g, y, x, *, axes, keepdims):
    return (_keep(g, x, axes, keepdims) if x.dtype.is_floating else None,)


def _prod_grad(g, y, x, *, axes, keepdims):
    # d prod / d x_i = prod / x_i: undefined where x_i == 0 (documented limitation).
    return (_keep(g, x, axes, keepdims) * _keep(y, x, axes, keepdims) / x,)


def _extremum_grad(g, y, x, *, axes, keepdims):
    # Ties share the gradient equally (as TF's reduce_max does).
    cast, equal = _ops.cast, _ops.equal
    mask = cast(equal(x, _keep(y, x, axes, keepdims)), dtype=x.dtype)
    count = reduce_sum(mask, axes=axes, keepdims=keepdims)
    return (_keep(g / count, x, axes, keepdims) * mask,)


reduce_sum = _reducer("reduce_sum", "sum", "sum", _sum_grad)
reduce_prod = _reducer("reduce_prod", "prod", "prod", _prod_grad)
reduce_max = _reducer("reduce_max", "max", "max", _extremum_grad)
reduce_min = _reducer("reduce_min", "min", "min", _extremum_grad)


def _arg_reducer(name, combiner):
    def infer(x: Aval, *, axis) -> Aval:
        if x.shape[axis] == 0:
            raise ValueError(f"{name}: axis {axis} of shape {x.shape} is empty")
        return Aval(tuple(d for i, d in enumerate(x.shape) if i != axis), int32)

    def ref(x, *, axis):
        import numpy as np
        return getattr(np, combiner)(x, axis=axis).astype(np.int32)

    def kernel(ins, out, *, axis):
        (x,) = ins
        e = K.load(0, _reduce_index(x.shape, (axis,), False, len(out.shape)), x.dtype)
        return K.reduce_kernel([K.Buffer(x.shape, x.dtype)], K.Buffer(out.shape, int32),
                               (x.shape[axis],), e, combiner)

    return Op(name, infer=infer, reference=ref, kernel=kernel,
              doc=f"Index of the {combiner[3:]}imum along one axis (int32; first index on ties).")


argmax_op = _arg_reducer("argmax", "argmax")
argmin_op = _arg_reducer("argmin", "argmin")


# ---- public front doors ---------------------------------------------------------------------

def _axes(x, axis):
    # a given axis was checked and normalised by the signature (axes_of: a sorted tuple); None is all
    return tuple(range(len(x.shape))) if axis is None else axis


def _front_door(op: Op, name: str, doc: str):
    def reduce(x, axis=None, keepdims=False):
        x = as_tensor(x)
        return op(x, axes=_axes(x, axis), keepdims=keepdims)
    reduce.__name__ = reduce.__qualname__ = name
    reduce.__doc__ = doc + """

    Args:
        x: tensor of any shape.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep reduced axes with size 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Raises:
        TypeError: ``axis`` not None, an int or a tuple of ints; ``keepdims`` not a bool.
        ValueError: an axis out of range or repeated (or, for max/min, an empty reduced axis).
    """
    return op_signature(axis=axes_of("x"), keepdims=BOOL)(reduce)


sum = _front_door(reduce_sum, "sum", "Sum over ``axis``; bool sums to int32.")
prod = _front_door(reduce_prod, "prod", "Product over ``axis``.")
max = _front_door(reduce_max, "max", "Maximum over ``axis``.")
min = _front_door(reduce_min, "min", "Minimum over ``axis``.")


@op_signature(axis=axes_of("x"), keepdims=BOOL)
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (numpy.mean, tf.reduce_mean): the sum times ``1 / n``, n the
    number of reduced elements (NaN for an empty reduction).

    Args:
        x: tensor of any shape and dtype.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep reduced axes with size 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        The reduced tensor (the reduced axes removed, or kept with size 1); float32 for int32 and
        bool inputs, else ``x``'s dtype.
    Raises:
        TypeError: ``axis`` not None, an int or a tuple of ints; ``keepdims`` not a bool.
        ValueError: an axis out of range or repeated.
    """
    cast = _ops.cast
    x = as_tensor(x)
    axes = _axes(x, axis)
    n, symbolic = 1, []
    for a in axes:
        if isinstance(x.shape[a], Dim):
            symbolic.append(x.shape[a])     # read at run time (an input_signature's None dimension)
        else:
            n *= x.shape[a]
    if not x.dtype.is_floating:
        x = cast(x, dtype=float32)
    total = reduce_sum(x, axes=axes, keepdims=keepdims)
    if not symbolic:
        return total * (1.0 / n if n else float("nan"))
    count = _ops.size_value(n, total.dtype)
    for d in symbolic:
        count = count * _ops.size_value(d, total.dtype)
    return total * _ops.reciprocal(count)       # 1 / 0 = inf and 0 * inf = NaN: numpy's empty mean


def _arg(op, x, axis):
    x = as_tensor(x)
    if axis is None:
        reshape = _ops.reshape
        x, axis = reshape(x, shape=(-1,)), 0
    return op(x, axis=axis)          # a given axis was checked and made non-negative (axis_of)


@op_signature(axis=optional(axis_of("x")))
def argmax(x, axis=None):
    """Index of the maximum along ``axis`` (numpy.argmax): the first index on ties, and the first
    NaN if the slice holds one.

    Args:
        x: tensor of any shape and dtype.
        axis: an int (negative counts from the end), or None: the index into the flattened tensor.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        An int32 tensor of ``x``'s shape without ``axis`` (a scalar for ``axis=None``).
    Raises:
        TypeError: ``axis`` not an int or None.
        ValueError: ``axis`` out of range, or an empty axis.
    """
    return _arg(argmax_op, x, axis)


@op_signature(axis=optional(axis_of("x")))
def argmin(x, axis=None):
    """Index of the minimum along ``axis`` (numpy.argmin): the first index on ties, and the first
    NaN if the slice holds one.

    Args:
        x: tensor of any shape and dtype.
        axis: an int (negative counts from the end), or None: the index into the flattened tensor.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        An int32 tensor of ``x``'s shape without ``axis`` (a scalar for ``axis=None``).
    Raises:
        TypeError: ``axis`` not an int or None.
        ValueError: ``axis`` out of range, or an empty axis.
    """
    return _arg(argmin_op, x, axis)
