"""Ops that move data: each is a ``map`` kernel whose loads use index expressions.

Primitives: ``reshape transpose broadcast_to slice slice_grad pad concat gather one_hot``.
Compositions: ``expand_dims squeeze stack take_along_axis flatten``.

Index rule (``gather``, ``take_along_axis`` and ``x[int_tensor]``), numpy's where numpy has one:
an index ``i`` into an axis of size ``n`` may be negative, ``-n <= i < n``, and counts from the
end. An index outside that range raises IndexError naming the op when its value is known (an
eager tensor, a list); where it is not known (inside ``webtensor.function``), the kernel reads
zeros for it (as TensorFlow's GPU kernels do) and no gradient flows to it: compiled code never
reads out of bounds. ``one_hot`` keeps TensorFlow's rule instead: any index outside
``[0, depth)``, negative ones included, gives an all-zero row, never an error.
"""
from __future__ import annotations

from math import prod

from .. import kernel_ir as K
from ..dtypes import DType, float32, int32
from ..op import Aval, Op, as_tensor, first_out_of_range
from ..shapes import Dim, broadcast_shapes, normalize_axis, normalize_axes
from ..signature import (DTYPE, NEW_SHAPE, NUMBER, POSITIVE_INT, SHAPE, TENSORS, axes_of, axis_of,
                         ints_per_axis_of, op_signature, paddings_of, perm_of)
from .namespace import ops as _ops


_py_slice = slice  # the builtin, before this module's ``slice`` op shadows it


def _np_slices(spec):
    """numpy slices for normalised (start, stop, step) triples (stop -1 with a negative step means
    'through index 0', which a numpy slice spells None)."""
    return tuple(_py_slice(a, None if b < 0 else b, c) for a, b, c in spec)


def _buf(a: Aval) -> K.Buffer:
    return K.Buffer(tuple(a.shape), a.dtype)


def _dims(n):
    return [K.idx(d) for d in range(n)]


def _mapk(ins, out, expr):
    return K.map_kernel([_buf(a) for a in ins], _buf(out), expr)


# ---- reshape --------------------------------------------------------------------------------

def _reshape_infer(x: Aval, *, shape) -> Aval:
    if prod(shape) != prod(x.shape) or any(d < 0 for d in shape):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({prod(x.shape)} elements) into shape {shape}")
    return Aval(tuple(shape), x.dtype)


def _reshape_kernel(ins, out, *, shape):
    (x,) = ins
    lin = K.linear_index(_dims(len(shape)), shape)
    return _mapk(ins, out, K.load(0, K.unravel(lin, x.shape), x.dtype))


reshape_op = Op("reshape", infer=_reshape_infer, reference=lambda x, *, shape: x.reshape(shape),
                grad=lambda g, y, x, *, shape: (reshape_op(g, shape=tuple(x.shape)),), kernel=_reshape_kernel)


@op_signature(shape=NEW_SHAPE)
def reshape(x, shape):
    """Same data in row-major order, new shape (numpy.reshape, tf.reshape).

    Args:
        x: tensor of any shape and dtype.
        shape: an int or a sequence of ints; one entry may be -1 (inferred from the size).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``shape``, ``x``'s dtype (``x`` itself when the shape is unchanged).
    Raises:
        TypeError: ``shape`` is not ints.
        ValueError: sizes below -1, two -1s, or a size that differs from ``x``'s.
    """
    if -1 in shape:                 # ``shape`` is required: checked (NEW_SHAPE: a tuple of ints)
        known = prod(d for d in shape if d != -1)
        if known == 0 or prod(x.shape) % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into shape {shape}")
        shape = tuple(prod(x.shape) // known if d == -1 else d for d in shape)
    if shape == tuple(x.shape):
        return x
    return reshape_op(x, shape=shape)


# ---- transpose ------------------------------------------------------------------------------

def _transpose_infer(x: Aval, *, perm) -> Aval:
    if sorted(perm) != list(range(len(x.shape))):
        raise ValueError(f"transpose: perm {perm} is not a permutation of the axes of shape {x.shape}")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_kernel(ins, out, *, perm):
    inv = [0] * len(perm)
    for o, p in enumerate(perm):
        inv[p] = o
    return _mapk(ins, out, K.load(0, tuple(K.idx(inv[d]) for d in range(len(perm))), ins[0].dtype))


def _inverse(perm):
    inv = [0] * len(perm)
    for o, p in enumerate(perm):
        inv[p] = o
    return tuple(inv)


transpose_op = Op("transpose", infer=_transpose_infer,
                  reference=lambda x, *, perm: x.transpose(perm).copy(),
                  grad=lambda g, y, x, *, perm: (transpose_op(g, perm=_inverse(perm)),),
                  kernel=_transpose_kernel)


@op_signature(perm=perm_of("x"))
def transpose(x, perm=None):
    """Permute axes (numpy.transpose, tf.transpose): result axis ``i`` is ``x``'s axis ``perm[i]``.

    Args:
        x: tensor of any shape and dtype.
        perm: a permutation of ``range(x.ndim)`` (negative entries count from the end); None
            reverses the axes.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``[x.shape[p] for p in perm]``, ``x``'s dtype.
    Raises:
        TypeError: ``perm`` not a sequence of ints.
        ValueError: ``perm`` not a permutation of ``x``'s axes.
    """
    x = as_tensor(x)
    n = len(x.shape)
    perm = tuple(range(n))[::-1] if perm is None else perm     # a given perm was checked (perm_of)
    if perm == tuple(range(n)):
        return x
    return transpose_op(x, perm=perm)


# ---- broadcast_to ---------------------------------------------------------------------------

def _bcast_infer(x: Aval, *, shape) -> Aval:
    if broadcast_shapes(x.shape, shape, op="broadcast_to") != tuple(shape):
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return Aval(tuple(shape), x.dtype)


def _bcast_kernel(ins, out, *, shape):
    return _mapk(ins, out, K.load(0, K.broadcast_index(ins[0].shape, _dims(len(shape))), ins[0].dtype))


def _bcast_ref(x, *, shape):
    import numpy as np
    return np.broadcast_to(x, shape).copy()


def _bcast_grad(g, y, x, *, shape):
    unbroadcast = _ops.unbroadcast
    return (unbroadcast(g, x.shape),)


broadcast_to_op = Op("broadcast_to", infer=_bcast_infer, reference=_bcast_ref, grad=_bcast_grad,
                     kernel=_bcast_kernel)


@op_signature(shape=SHAPE)
def broadcast_to(x, shape):
    """Broadcast to ``shape`` by numpy rules (numpy.broadcast_to, tf.broadcast_to).

    Args:
        x: tensor of any shape and dtype.
        shape: an int or a sequence of non-negative ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``shape``, ``x``'s dtype.
    Raises:
        TypeError: ``shape`` is not ints.
        ValueError: negative sizes, or ``x``'s shape does not broadcast to ``shape``.
    """
    return x if tuple(x.shape) == shape else broadcast_to_op(x, shape=shape)   # checked: SHAPE gives a tuple


# ---- slice (basic indexing) and its transpose -----------------------------------------------

def _slice_infer(x: Aval, *, spec) -> Aval:
    if len(spec) != len(x.shape):
        raise ValueError(f"slice: {len(spec)} ranges for a tensor of rank {len(x.shape)}")
    return Aval(tuple(s[1] if isinstance(s[1], Dim) else len(range(*s)) for s in spec), x.dtype)


def _slice_kernel(ins, out, *, spec):
    ix = tuple(K.const(start, int32) + K.idx(d) * step for d, (start, stop, step) in enumerate(spec))
    return _mapk(ins, out, K.load(0, ix, ins[0].dtype))


def _slice_ref(x, *, spec):
    return x[_np_slices(spec)].copy()


def _unslice_infer(g: Aval, *, spec, shape) -> Aval:
    return Aval(tuple(shape), g.dtype)


def _unslice_kernel(ins, out, *, spec, shape):
    # out[i] = g[(i - start) / step] where that lands on a sliced element, else 0.
    if 0 in ins[0].shape:  # nothing to scatter; an empty buffer must not be loaded from
        return _mapk(ins, out, K.const(0, ins[0].dtype))
    ok, ix = None, []
    for d, (start, stop, step) in enumerate(spec):
        n = len(range(start, stop, step))
        off = K.idx(d) - start
        j = off // step
        valid = (K.binary("eq", off % step, K.const(0, int32)) if step != 1 else K.const(True))
        valid = K.binary("and", valid, K.binary("and", j >= 0, j < n))
        ok = valid if ok is None else K.binary("and", ok, valid)
        ix.append(K.clamp(j, 0, max(n - 1, 0)))
    val = K.load(0, tuple(ix), ins[0].dtype)
    return _mapk(ins, out, K.where(ok, val, K.const(0, ins[0].dtype)) if ok is not None else val)


def _unslice_ref(g, *, spec, shape):
    import numpy as np
    out = np.zeros(shape, g.dtype)
    out[_np_slices(spec)] = g
    return out


slice_op = Op("slice", infer=_slice_infer, reference=_slice_ref, kernel=_slice_kernel,
              grad=lambda g, y, x, *, spec: (slice_grad(g, spec=spec, shape=tuple(x.shape)),),
              doc="Strided slice: spec is one (start, stop, step) per axis, already normalised.")
slice_grad = Op("slice_grad", infer=_unslice_infer, reference=_unslice_ref, kernel=_unslice_kernel,
                grad=lambda g, y, x, *, spec, shape: (slice_op(g, spec=spec),),
                doc="Transpose of slice: scatters g into zeros of ``shape``.")


@op_signature(begin=ints_per_axis_of("x"), size=ints_per_axis_of("x", minimum=-1), end=ints_per_axis_of("x"),
              strides=ints_per_axis_of("x", nonzero=True))
def slice(x, begin, size=None, *, end=None, strides=None):
    """``tf.slice``-style slice: ``begin`` and ``size`` per axis, or ``end``/``strides`` (Python
    slice bounds, as ``tf.strided_slice``). Axes past the given entries are taken whole; bounds are
    clipped to the axis as Python slices are. Python indexing (``x[1:3, ::2]``) lowers to this op.

    Args:
        x: tensor of any shape and dtype.
        begin: first index per axis (a sequence of at most ``x.ndim`` ints; negative counts from the end).
        size: number of elements per axis (-1: to the end); ignored when ``end`` is given.
        end: stop index per axis (exclusive; negative counts from the end).
        strides: step per axis (nonzero; negative steps walk backwards).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        The slice, ``x``'s dtype.
    Raises:
        TypeError: non-int entries.
        ValueError: more entries than axes, a zero stride, a size below -1.
    """
    x = as_tensor(x)
    n = len(x.shape)
    spec = []
    for d in range(n):
        b = begin[d] if d < len(begin) else 0
        if end is not None:
            e = end[d] if d < len(end) else None
        elif size is not None and d < len(size) and size[d] != -1:
            e = b + size[d]
        else:
            e = None
        st = strides[d] if strides is not None and d < len(strides) else 1
        if isinstance(x.shape[d], Dim) and (b, e, st) == (0, None, 1):
            spec.append((0, x.shape[d], 1))     # a whole symbolic axis (other slices of it need its value)
        else:
            spec.append(_py_slice(b, e, st).indices(x.shape[d]))
    return slice_op(x, spec=tuple(spec))


# ---- pad ------------------------------------------------------------------------------------

def _pad_infer(x: Aval, *, paddings, constant_value) -> Aval:
    if len(paddings) != len(x.shape) or any(lo < 0 or hi < 0 for lo, hi in paddings):
        raise ValueError(f"pad: paddings {paddings} must be one non-negative (before, after) pair per axis "
                         f"of shape {x.shape}")
    return Aval(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, paddings)), x.dtype)


def _pad_kernel(ins, out, *, paddings, constant_value):
    x = ins[0]
    if 0 in x.shape:  # all padding; an empty buffer must not be loaded from
        return _mapk(ins, out, K.const(constant_value, x.dtype))
    ok, ix = None, []
    for d, ((lo, hi), n) in enumerate(zip(paddings, x.shape)):
        j = K.idx(d) - lo
        if lo or hi:
            v = K.binary("and", j >= 0, j < n)
            ok = v if ok is None else K.binary("and", ok, v)
            j = K.clamp(j, 0, max(n - 1, 0))
        ix.append(j)
    val = K.load(0, tuple(ix), x.dtype)
    return _mapk(ins, out, val if ok is None else K.where(ok, val, K.const(constant_value, x.dtype)))


def _pad_ref(x, *, paddings, constant_value):
    import numpy as np
    return np.pad(x, paddings, constant_values=constant_value)


pad_op = Op("pad", infer=_pad_infer, reference=_pad_ref, kernel=_pad_kernel,
            grad=lambda g, y, x, *, paddings, constant_value: (
                slice_op(g, spec=tuple((lo, lo + n, 1) for (lo, _), n in zip(paddings, x.shape))),))


@op_signature(paddings=paddings_of("x"), constant_values=NUMBER)
def pad(x, paddings, constant_values=0):
    """Pad with a constant (tf.pad in 'CONSTANT' mode, numpy.pad).

    Args:
        x: tensor of any shape and dtype.
        paddings: one non-negative ``(before, after)`` pair of ints per axis of ``x``.
        constant_values: the number written into the padding (cast to ``x``'s dtype).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``x.shape[i] + before_i + after_i`` per axis, ``x``'s dtype.
    Raises:
        TypeError: pairs that are not ints; a non-number ``constant_values``.
        ValueError: not one pair per axis, or a negative entry.
    """
    return pad_op(x, paddings=paddings, constant_value=constant_values)     # checked: paddings_of gives int pairs


# ---- concat ---------------------------------------------------------------------------------

def _concat_infer(*xs: Aval, axis) -> Aval:
    base = xs[0]
    for x in xs[1:]:
        if len(x.shape) != len(base.shape) or any(a != b for i, (a, b) in enumerate(zip(x.shape, base.shape))
                                                  if i != axis):
            raise ValueError(f"concat: shapes {[tuple(t.shape) for t in xs]} differ outside axis {axis}")
        if x.dtype != base.dtype:
            raise TypeError(f"concat: dtypes differ: {[t.dtype.name for t in xs]}")
    return Aval(tuple(sum(x.shape[axis] for x in xs) if i == axis else d for i, d in enumerate(base.shape)),
                base.dtype)


def _concat_kernel(ins, out, *, axis):
    dims = _dims(len(out.shape))
    offsets, o = [], 0
    for x in ins:
        offsets.append(o)
        o += x.shape[axis]
    expr = None
    for k in reversed(range(len(ins))):
        n = ins[k].shape[axis]
        if n == 0:
            continue
        ix = list(dims)
        ix[axis] = K.clamp(dims[axis] - offsets[k], 0, n - 1)
        val = K.load(k, tuple(ix), ins[k].dtype)
        expr = val if expr is None else K.where(dims[axis] < offsets[k] + n, val, expr)
    return _mapk(ins, out, expr if expr is not None else K.const(0, out.dtype))


def _concat_ref(*xs, axis):
    import numpy as np
    return np.concatenate(xs, axis=axis)


def _concat_grad(g, y, *xs, axis):
    grads, o = [], 0
    for x in xs:
        spec = tuple((o, o + x.shape[axis], 1) if i == axis else (0, d, 1) for i, d in enumerate(g.shape))
        grads.append(slice_op(g, spec=spec) if x.dtype.is_floating else None)
        o += x.shape[axis]
    return tuple(grads)


concat_op = Op("concat", infer=_concat_infer, reference=_concat_ref, grad=_concat_grad, kernel=_concat_kernel)


@op_signature(values=TENSORS, axis=axis_of("values"))
def concat(values, axis=0):
    """Join tensors along an existing axis (tf.concat, numpy.concatenate).

    Args:
        values: a non-empty sequence of tensors of one dtype and rank, equal in shape but along ``axis``.
        axis: the axis to join along (negative counts from the end).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor whose ``axis`` is the sum of the inputs' sizes there, their dtype.
    Raises:
        TypeError: ``values`` not a sequence; mismatched dtypes; ``axis`` not an int.
        ValueError: no tensors; shapes that differ outside ``axis``; ``axis`` out of range.
    """
    # always checked (``values`` is a sequence of tensors): a non-empty list of tensors, axis >= 0
    return values[0] if len(values) == 1 else concat_op(*values, axis=axis)


# ---- gather and one_hot -----------------------------------------------------------------------

def _gather_infer(params: Aval, indices: Aval, *, axis) -> Aval:
    if indices.dtype != int32:
        raise TypeError(f"gather: indices must be int32, got {indices.dtype}")
    return Aval(params.shape[:axis] + indices.shape + params.shape[axis + 1:], params.dtype)


def _gather_kernel(ins, out, *, axis):
    p, i = ins
    n = p.shape[axis]
    if 0 in p.shape:  # every index is out of range; an empty buffer must not be loaded from
        return _mapk(ins, out, K.const(0, p.dtype))
    dims = _dims(len(out.shape))
    ni = len(i.shape)
    sel = K.load(1, tuple(dims[axis:axis + ni]), int32)
    j = K.where(sel < 0, sel + n, sel)                       # negative indices count from the end
    ok = K.binary("and", j >= 0, j < n)
    ix = tuple(dims[:axis]) + (K.clamp(j, 0, n - 1),) + tuple(dims[axis + ni:])   # never out of bounds
    return _mapk(ins, out, K.where(ok, K.load(0, ix, p.dtype), K.const(0, p.dtype)))


def _gather_ref(p, i, *, axis):
    import numpy as np
    n = p.shape[axis]
    j = np.where(i < 0, i + n, i)
    ok = (j >= 0) & (j < n)
    out_shape = p.shape[:axis] + i.shape + p.shape[axis + 1:]
    if n == 0:
        return np.zeros(out_shape, p.dtype)
    taken = np.take(p, np.where(ok, j, 0), axis=axis)
    mask = ok.reshape((1,) * axis + i.shape + (1,) * (p.ndim - axis - 1))
    return np.where(mask, taken, np.zeros((), p.dtype)).astype(p.dtype)


def _gather_grad(g, y, p, i, *, axis):
    # d params = one_hot(indices)^T @ g, with g's index axes flattened: a matmul, so it is fast.
    # one_hot's row for an index outside [0, n) is zero: what the forward pass read (zeros) gets no gradient.
    matmul = _ops.matmul
    add, less, where = _ops.add, _ops.less, _ops.where
    pre, post = p.shape[:axis], p.shape[axis + 1:]
    n, j = p.shape[axis], prod(i.shape)
    i = where(less(i, 0), add(i, n), i)        # negative indices count from the end
    oh = reshape(one_hot(i, n, dtype=g.dtype), (j, n)) if n else None
    if oh is None:
        return None, None
    g2 = reshape(transpose(reshape(g, (prod(pre), j, prod(post))), (1, 0, 2)), (j, prod(pre) * prod(post)))
    d = matmul(oh, g2, transpose_a=True)  # (n, pre*post)
    d = transpose(reshape(d, (n, prod(pre), prod(post))), (1, 0, 2))
    return reshape(d, p.shape), None


gather_op = Op("gather", infer=_gather_infer, reference=_gather_ref, grad=_gather_grad, kernel=_gather_kernel)


def check_indices(op: str, indices, n: int, axis: int) -> None:
    """The eager half of the index rule (module docstring): IndexError for a known index
    outside ``[-n, n)``. Nothing happens when the values are not known (tracing)."""
    if indices.dtype == int32:
        bad = first_out_of_range(indices, -n, n)
        if bad is not None:
            raise IndexError(f"{op}: index {bad[1]} is out of bounds for axis {axis} with size {n}")


@op_signature(axis=axis_of("params"))
def gather(params, indices, axis=0):
    """``tf.gather``: slices of ``params`` along ``axis`` at integer ``indices``. Negative indices
    count from the end (numpy); out-of-range ones follow the module's index rule.

    Args:
        params: tensor of any shape and dtype.
        indices: integer tensor of any shape (int32; bool is cast; float raises).
        axis: the axis of ``params`` to gather along (negative counts from the end).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``params.shape[:axis] + indices.shape + params.shape[axis+1:]``, ``params``' dtype.
    Raises:
        IndexError: an index outside ``[-n, n)`` whose value is known (eager).
        TypeError: float indices; ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    cast = _ops.cast
    params, indices = as_tensor(params), as_tensor(indices)
    if indices.dtype != int32 and not indices.dtype.is_floating:
        indices = cast(indices, dtype=int32)
    axis = normalize_axis(axis, len(params.shape), "gather")
    check_indices("gather", indices, params.shape[axis], axis)
    return gather_op(params, indices, axis=axis)


def _one_hot_infer(i: Aval, *, depth, axis, dtype) -> Aval:
    if i.dtype != int32:
        raise TypeError(f"one_hot: indices must be int32, got {i.dtype}")
    s = list(i.shape)
    s.insert(axis, depth)
    return Aval(tuple(s), dtype)


def _one_hot_kernel(ins, out, *, depth, axis, dtype):
    dims = _dims(len(out.shape))
    sel = K.load(0, tuple(dims[:axis] + dims[axis + 1:]), int32)
    return _mapk(ins, out, K.cast(K.binary("eq", sel, dims[axis]), dtype))


def _one_hot_ref(i, *, depth, axis, dtype):
    import numpy as np
    from ..numpy_util import np_dtype
    r = (np.expand_dims(i, axis) == np.arange(depth).reshape([-1 if d == axis else 1
                                                               for d in range(i.ndim + 1)]))
    return r.astype(np_dtype(dtype))


one_hot_op = Op("one_hot", infer=_one_hot_infer, reference=_one_hot_ref, kernel=_one_hot_kernel,
                inputs=("indices",))


@op_signature(depth=POSITIVE_INT, axis=axis_of("indices", new=1), dtype=DTYPE)
def one_hot(indices, depth, axis=-1, dtype: DType = float32):
    """One-hot encoding (tf.one_hot): 1 where the new axis' position equals the index, else 0. As in
    TF, an index outside ``[0, depth)`` (negative ones included) gives an all-zero row, never an error.

    Args:
        indices: int32 tensor of any shape.
        depth: the number of classes, a positive int.
        axis: where the new axis goes in the result, in ``[-(ndim + 1), ndim]``.
        dtype: the result's dtype (a DType or its name).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``indices``' shape with ``depth`` inserted at ``axis``, of ``dtype``.
    Raises:
        TypeError: non-int32 indices; ``depth``/``axis`` not ints; an unknown dtype.
        ValueError: ``depth`` not positive; ``axis`` out of range.
    """
    # ``depth`` is required: every argument was checked and normalised (axis >= 0, dtype a DType)
    return one_hot_op(indices, depth=depth, axis=axis, dtype=dtype)


# ---- compositions ---------------------------------------------------------------------------

@op_signature(axis=axis_of("x", new=1))
def expand_dims(x, axis):
    """Insert a size-1 axis (numpy.expand_dims, tf.expand_dims).

    Args:
        x: tensor of any shape and dtype.
        axis: the position of the new axis in the result, in ``[-(ndim + 1), ndim]``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``x`` reshaped with the new axis, same dtype.
    Raises:
        TypeError: ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    s = list(x.shape)             # ``axis`` is required: checked and made non-negative
    s.insert(axis, 1)
    return reshape(x, s)


@op_signature(axis=axes_of("x"))
def squeeze(x, axis=None):
    """Remove size-1 axes (numpy.squeeze, tf.squeeze).

    Args:
        x: tensor of any shape and dtype.
        axis: None (every size-1 axis), an int or a tuple of ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``x`` reshaped without those axes, same dtype.
    Raises:
        TypeError: ``axis`` not None, an int or a tuple of ints.
        ValueError: an axis out of range, repeated, or whose size is not 1.
    """
    x = as_tensor(x)
    axes = tuple(i for i, d in enumerate(x.shape) if d == 1) if axis is None else axis   # given: checked
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {tuple(x.shape)} has size {x.shape[a]}, not 1")
    return reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


@op_signature(values=TENSORS, axis=axis_of("values", new=1))
def stack(values, axis=0):
    """Join tensors of equal shape along a new axis (tf.stack, numpy.stack).

    Args:
        values: a non-empty sequence of tensors of one shape and dtype.
        axis: the position of the new axis in the result, in ``[-(ndim + 1), ndim]``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the common shape with ``len(values)`` inserted at ``axis``.
    Raises:
        TypeError: ``values`` not a sequence; mismatched dtypes; ``axis`` not an int.
        ValueError: no tensors; unequal shapes; ``axis`` out of range.
    """
    shapes = {tuple(v.shape) for v in values}     # always checked: a non-empty list of tensors, axis >= 0
    if len(shapes) > 1:
        raise ValueError(f"stack: all shapes must be equal, got {sorted(shapes)}")
    return concat([expand_dims(v, axis) for v in values], axis)


@op_signature(start_axis=axis_of("x", new=1))
def flatten(x, start_axis=1):
    """Merge the axes from ``start_axis`` on into one, row-major (as Keras' Flatten for ``start_axis=1``).

    Args:
        x: tensor of any shape and dtype.
        start_axis: the first merged axis, in ``[-(ndim + 1), ndim]`` (``ndim`` appends a size-1 axis).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``x.shape[:start_axis] + (prod(x.shape[start_axis:]),)``, same dtype.
    Raises:
        TypeError: ``start_axis`` not an int. ValueError: ``start_axis`` out of range.
    """
    x = as_tensor(x)
    start_axis = normalize_axis(start_axis, len(x.shape) + 1, "flatten")
    return reshape(x, tuple(x.shape[:start_axis]) + (-1,))


@op_signature(axis=axis_of("arr"))
def take_along_axis(arr, indices, axis):
    """numpy.take_along_axis: ``out[..., j, ...] = arr[..., indices[..., j, ...], ...]`` along ``axis``.
    Indices follow the module's index rule: negative ones count from the end; out-of-range ones
    raise IndexError when known, else read zeros. Composed as ``sum(one_hot(indices) * arr)``, so
    it fuses and differentiates with no kernel of its own.

    Args:
        arr: tensor of any shape and dtype.
        indices: int32 tensor of ``arr``'s rank (other axes broadcast against ``arr``'s).
        axis: the axis to index along (negative counts from the end).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``indices``' shape along ``axis`` (the others broadcast), ``arr``'s dtype.
    Raises:
        IndexError: a known index outside ``[-n, n)``.
        TypeError: ``axis`` not an int. ValueError: ranks differ; ``axis`` out of range.
    """
    add, less, mul, where = _ops.add, _ops.less, _ops.mul, _ops.where
    reduce_sum = _ops.reduce_sum
    if len(indices.shape) != len(arr.shape):      # ``axis`` is required: every argument was checked
        raise ValueError(f"take_along_axis: indices of rank {len(indices.shape)} for arr of rank {len(arr.shape)}")
    n = arr.shape[axis]
    check_indices("take_along_axis", indices, n, axis)
    if indices.dtype == int32:
        indices = where(less(indices, 0), add(indices, n), indices)
    oh = one_hot(indices, n, axis=axis + 1, dtype=arr.dtype)   # indices[:axis+1] + (n,) + rest
    return reduce_sum(mul(oh, expand_dims(arr, axis)), axes=(axis + 1,), keepdims=False)
