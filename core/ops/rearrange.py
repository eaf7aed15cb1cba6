"""Rearranging ops, all compositions of ``movement``'s primitives (so they fuse into one index
expression, differentiate and run on every backend with no kernel of their own), with
TensorFlow's names and arguments: ``tile split unstack reverse roll repeat space_to_depth
depth_to_space``.
"""
from __future__ import annotations


from ..op import as_tensor, known_values
from ..signature import _int, _ints, axis_of, one_of, op_signature, optional
from .movement import broadcast_to, concat, gather_op, reshape, slice_op, squeeze, transpose
from ..shapes import normalize_axis


def _int_list(name, what, v):
    """An int or a sequence of ints (Python, numpy, or a tensor whose values are known) -> tuple."""
    i = _int(v)
    if i is not None:
        return (i,)
    s = _ints(v) if not hasattr(v, "_aval") else _tensor_ints(name, what, v)
    if s is None:
        raise TypeError(f"{name}: {what} must be an int or a sequence of ints, got {v!r}")
    return s


def _tensor_ints(name, what, t):
    if t.dtype.is_floating or t.dtype.name == "bool" or len(t.shape) > 1:
        raise TypeError(f"{name}: {what} must be integers (an int or a 1-D sequence), got {t._aval}")
    v = known_values(t)
    if v is None:
        raise ValueError(f"{name}: {what} decides the result's shape, so its values must be known (a Python "
                         f"int or list inside webtensor.function)")
    return tuple(int(a) for a in v)


def _full_spec(shape):
    return [(0, d, 1) for d in shape]


# ---- tile -------------------------------------------------------------------------------------

@op_signature(multiples=lambda v, c: _int_list(c.op, c.arg, v))
def tile(input, multiples):    # noqa: A002
    """``tf.tile``: ``input`` repeated ``multiples[d]`` times along each axis ``d`` (one
    non-negative int per axis).

    Args:
        input: a tensor of any shape and dtype.
        multiples: an int or a sequence of ints (a tensor only with known values), one
            non-negative int per axis of ``input``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``input``'s dtype and shape ``input.shape[d] * multiples[d]`` along each axis.
    Raises:
        TypeError: ``multiples`` not ints. ValueError: not one per axis, or negative.
    """
    x = as_tensor(input)
    m = multiples
    if len(m) != len(x.shape) or any(a < 0 for a in m):
        raise ValueError(f"tile: multiples must be one non-negative int per axis of shape {tuple(x.shape)}, got {m}")
    if all(a == 1 for a in m):
        return x
    # x (d0, d1, ..) -> (1, d0, 1, d1, ..) -> broadcast (m0, d0, m1, d1, ..) -> (m0 d0, m1 d1, ..)
    inter = tuple(v for a, d in zip(m, x.shape) for v in (1, d))
    big = tuple(v for a, d in zip(m, x.shape) for v in (a, d))
    return reshape(broadcast_to(reshape(x, inter), big), tuple(a * d for a, d in zip(m, x.shape)))


# ---- split and unstack ------------------------------------------------------------------------

def _axis_slices(x, axis, sizes):
    out, o = [], 0
    for n in sizes:
        spec = _full_spec(x.shape)
        spec[axis] = (o, o + n, 1)
        out.append(slice_op(x, spec=tuple(spec)))
        o += n
    return out


@op_signature(num_or_size_splits=lambda v, c: _int_list(c.op, c.arg, v) if _int(v) is None else _int(v),
              axis=axis_of("value"))
def split(value, num_or_size_splits, axis=0):
    """``tf.split``: ``value`` cut along ``axis`` into a list of tensors: an int ``n`` gives ``n``
    equal parts (``n`` must divide the axis); a sequence of sizes gives parts of those sizes (one
    may be -1: the rest; they must add up to the axis).

    Args:
        value: a tensor of rank >= 1.
        num_or_size_splits: an int (the number of equal parts) or a sequence of ints (the sizes).
        axis: an int, the axis to cut; negative counts from the end.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A list of tensors of ``value``'s dtype, each of ``value``'s shape but along ``axis``.
    Raises:
        TypeError: ``num_or_size_splits`` not an int or ints. ValueError: ``n`` < 1 or not
            dividing the axis; sizes negative or not adding up; ``axis`` out of range.
    """
    x = as_tensor(value)
    n = x.shape[axis]
    if isinstance(num_or_size_splits, int):
        k = num_or_size_splits
        if k < 1 or n % k:
            raise ValueError(f"split: num_or_size_splits {k} must be a positive divisor of axis {axis}'s size {n}")
        sizes = [n // k] * k
    else:
        sizes = list(num_or_size_splits)
        if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
            raise ValueError(f"split: num_or_size_splits must be non-negative sizes, with at most one -1, got "
                             f"{tuple(sizes)}")
        if -1 in sizes:
            rest = n - sum(s for s in sizes if s != -1)
            if rest < 0:
                raise ValueError(f"split: num_or_size_splits {tuple(sizes)} exceed axis {axis} of size {n}")
            sizes[sizes.index(-1)] = rest
        if sum(sizes) != n:
            raise ValueError(f"split: num_or_size_splits {tuple(sizes)} add up to {sum(sizes)}, not axis {axis}'s "
                             f"size {n}")
    return _axis_slices(x, axis, sizes)


def _an_int(v, c):
    i = _int(v)
    if i is None:
        raise c.type_error("an int", v)
    return i


@op_signature(num=optional(_an_int), axis=axis_of("value"))
def unstack(value, num=None, axis=0):
    """``tf.unstack``: the list of the ``value.shape[axis]`` tensors along ``axis`` (that axis
    removed). ``num``, if given, must equal that size.

    Args:
        value: a tensor of rank >= 1.
        num: None or an int, the size of ``axis`` (checked).
        axis: an int, the axis to unstack along; negative counts from the end.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A list of ``value.shape[axis]`` tensors of ``value``'s dtype and shape without ``axis``.
    Raises:
        TypeError: ``num`` or ``axis`` not an int.
        ValueError: a scalar ``value``; ``num`` not the axis size; ``axis`` out of range.
    """
    x = as_tensor(value)
    n = x.shape[axis]
    if num is not None and num != n:
        raise ValueError(f"unstack: num {num} differs from axis {axis}'s size {n}")
    return [squeeze(t, axis) for t in _axis_slices(x, axis, [1] * n)]


# ---- reverse and roll -------------------------------------------------------------------------

def _axes(name, v, ndim):
    return tuple(normalize_axis(a, ndim, name) for a in _int_list(name, "axis", v))


@op_signature(axis=lambda v, c: _axes(c.op, v, c.rank("tensor")))
def reverse(tensor, axis):
    """``tf.reverse``: ``tensor`` with the order of elements reversed along each of ``axis`` (an
    int or a sequence of distinct ints; negative counts from the end).

    Args:
        tensor: a tensor of any shape and dtype.
        axis: an int or a sequence of distinct ints (a tensor only with known values).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``tensor``'s shape and dtype.
    Raises:
        TypeError: ``axis`` not ints. ValueError: an axis out of range or repeated.
    """
    x = as_tensor(tensor)
    if len(set(axis)) != len(axis):
        raise ValueError(f"reverse: repeated axis in {axis}")
    if not axis:
        return x
    spec = [(d - 1, -1, -1) if i in axis else (0, d, 1) for i, d in enumerate(x.shape)]
    return slice_op(x, spec=tuple(spec))


@op_signature(shift=lambda v, c: _int_list(c.op, c.arg, v), axis=lambda v, c: _axes(c.op, v, c.rank("input")))
def roll(input, shift, axis):    # noqa: A002
    """``tf.roll``: elements shifted by ``shift`` positions along ``axis`` (ints or equal-length
    sequences of ints), wrapping around: ``out[(i + shift) % n] = input[i]``. Shifts on a repeated
    axis add up (TF).

    Args:
        input: a tensor of any shape and dtype.
        shift: an int or a sequence of ints, the shift along each entry of ``axis``.
        axis: an int or a sequence of ints of ``shift``'s length; negative counts from the end.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``input``'s shape and dtype.
    Raises:
        TypeError: ``shift``/``axis`` not ints. ValueError: lengths differ; an axis out of range.
    """
    x = as_tensor(input)
    if len(shift) != len(axis):
        raise ValueError(f"roll: shift {shift} and axis {axis} must have the same length")
    total = {}
    for s, a in zip(shift, axis):
        total[a] = total.get(a, 0) + s
    for a, s in sorted(total.items()):
        n = x.shape[a]
        s = s % n if n else 0
        if s:
            tail, head = _axis_slices(x, a, [n - s, s])
            x = concat([head, tail], a)
    return x


# ---- repeat -----------------------------------------------------------------------------------

@op_signature(repeats=lambda v, c: _int_list(c.op, c.arg, v), axis=optional(axis_of("input")))
def repeat(input, repeats, axis=None):    # noqa: A002
    """``tf.repeat`` (numpy.repeat): each element along ``axis`` repeated ``repeats`` times (an
    int, or one non-negative int per element of the axis). ``axis=None`` repeats the flattened
    input. ``repeats`` decides the result's shape, so a tensor of repeats must have known values.

    Args:
        input: a tensor of any shape and dtype.
        repeats: an int or a sequence of non-negative ints (one per element of ``axis``).
        axis: None (the flattened input) or an int; negative counts from the end.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``input``'s dtype and shape with ``axis`` of size ``sum(repeats)`` (``n * repeats``
        for one int); 1-D for ``axis=None``.
    Raises:
        TypeError: ``repeats`` not ints. ValueError: negative repeats; a count that is neither
            1 nor the axis size; ``axis`` out of range.
    """
    x = as_tensor(input)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    n = x.shape[axis]
    r = repeats
    if any(a < 0 for a in r) or len(r) not in (1, n):
        raise ValueError(f"repeat: repeats must be one non-negative int or one per element of axis {axis} "
                         f"(size {n}), got {r}")
    s = tuple(x.shape)
    if len(r) == 1:      # (pre, n, post) -> (pre, n, 1, post) -> broadcast (pre, n, r, post) -> (pre, n r, post)
        k = r[0]
        if k == 1:
            return x
        y = broadcast_to(reshape(x, s[:axis + 1] + (1,) + s[axis + 1:]), s[:axis + 1] + (k,) + s[axis + 1:])
        return reshape(y, s[:axis] + (n * k,) + s[axis + 1:])
    index = [i for i, k in enumerate(r) for _ in range(k)]
    if not index:
        return slice_op(x, spec=tuple((0, 0, 1) if d == axis else (0, n, 1) for d, n in enumerate(s)))
    return gather_op(x, index, axis=axis)      # a list: made on x's device


# ---- space_to_depth and depth_to_space ----------------------------------------------------------

def _block(v, c):
    i = _int(v)
    if i is None:
        raise c.type_error("an int", v)
    if i < 2:
        raise c.value_error("must be an integer >= 2", v)
    return i


_FORMAT = one_of("NHWC", "NCHW")


def _nhwc(name, x, data_format):
    x = as_tensor(x)
    if len(x.shape) != 4:
        raise ValueError(f"{name}: input must be 4-D ({data_format}), got shape {tuple(x.shape)}")
    return transpose(x, (0, 2, 3, 1)) if data_format == "NCHW" else x


def _back(y, data_format):
    return transpose(y, (0, 3, 1, 2)) if data_format == "NCHW" else y


@op_signature(block_size=_block, data_format=_FORMAT)
def space_to_depth(input, block_size, data_format="NHWC"):    # noqa: A002
    """``tf.nn.space_to_depth``: non-overlapping ``block_size`` x ``block_size`` blocks of space
    moved into depth: NHWC ``(N, H, W, C) -> (N, H/b, W/b, b*b*C)``, the output channel of block
    offset ``(dy, dx)`` and channel ``c`` being ``(dy * b + dx) * C + c`` (TF's order).

    Args:
        input: a 4-D tensor in ``data_format``.
        block_size: an int >= 2, the block's side ``b``.
        data_format: ``"NHWC"`` or ``"NCHW"`` (then ``(N, C, H, W) -> (N, b*b*C, H/b, W/b)``).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A 4-D tensor of ``input``'s dtype, in ``data_format``.
    Raises:
        TypeError: ``block_size`` not an int.
        ValueError: not 4-D; H or W not divisible by ``block_size``; ``block_size`` < 2;
            ``data_format`` not "NHWC" or "NCHW".
    """
    x = _nhwc("space_to_depth", input, data_format)
    n, h, w, c = x.shape
    b = block_size
    if h % b or w % b:
        raise ValueError(f"space_to_depth: height {h} and width {w} must be divisible by block_size {b}")
    y = transpose(reshape(x, (n, h // b, b, w // b, b, c)), (0, 1, 3, 2, 4, 5))
    return _back(reshape(y, (n, h // b, w // b, b * b * c)), data_format)


@op_signature(block_size=_block, data_format=_FORMAT)
def depth_to_space(input, block_size, data_format="NHWC"):    # noqa: A002
    """``tf.nn.depth_to_space``: the inverse of :func:`space_to_depth`: NHWC
    ``(N, H, W, b*b*C) -> (N, H*b, W*b, C)`` (ONNX DepthToSpace's "DCR" mode, in NHWC).

    Args:
        input: a 4-D tensor in ``data_format``.
        block_size: an int >= 2, the block's side ``b``.
        data_format: ``"NHWC"`` or ``"NCHW"`` (then ``(N, b*b*C, H, W) -> (N, C, H*b, W*b)``).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A 4-D tensor of ``input``'s dtype, in ``data_format``.
    Raises:
        TypeError: ``block_size`` not an int.
        ValueError: not 4-D; depth not divisible by ``block_size ** 2``; ``block_size`` < 2;
            ``data_format`` not "NHWC" or "NCHW".
    """
    x = _nhwc("depth_to_space", input, data_format)
    n, h, w, c = x.shape
    b = block_size
    if c % (b * b):
        raise ValueError(f"depth_to_space: depth {c} must be divisible by block_size**2 = {b * b}")
    y = transpose(reshape(x, (n, h, w, b, b, c // (b * b))), (0, 1, 3, 2, 4, 5))
    return _back(reshape(y, (n, h * b, w * b, c // (b * b))), data_format)
