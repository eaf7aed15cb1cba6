"""Sorting and scans: ``sort argsort top_k cumsum cumprod`` (TensorFlow's names and arguments).

Primitives (each a kernel of the kernel IR, so every backend runs them with no code of its own):

- ``sort_rank``: each element's position in the stable sorted order of its axis,
  ``rank_i = count_j (x_j goes before x_i, or ties with it and j < i)``: one ``reduce`` kernel
  over ``j``, O(n^2) per axis (no data-dependent control flow; fine for the axis sizes models
  sort: class scores, top-k candidates);
- ``invert_permutation_along``: ``out[r] = the i with rank_i == r`` (a ``reduce`` over ``i``);
- ``permute_along_axis``: ``out[.., j, ..] = x[.., perm[j], ..]`` for a permutation ``perm``
  (a ``map`` kernel whose load index is loaded); its gradient permutes by the inverse;
- ``cumulative``: ``cumsum``/``cumprod`` as a ``reduce`` over ``j`` masked to ``j <= i``
  (``j < i`` exclusive; ``j >= i``/``j > i`` reversed).

Order: NaN goes after every number (numpy's and TF's ascending order); ``DESCENDING`` is the
exact reverse order of values (NaN first, as ``torch.sort``/``torch.topk``), and in both
directions equal elements keep their index order (stable: ``tf.argsort(stable=True)``, and
``tf.math.top_k``'s "the lower-index element appears first").
"""
from __future__ import annotations

from collections import namedtuple

from .. import kernel_ir as K
from ..dtypes import bool_, int32
from ..op import Aval, Op, as_tensor
from ..shapes import normalize_axis
from ..signature import BOOL, NON_NEGATIVE_INT, axis_of, one_of, op_signature
from .namespace import ops as _ops


def _buf(a: Aval) -> K.Buffer:
    return K.Buffer(tuple(a.shape), a.dtype)


def _at(dims, axis, e):
    """``dims`` with entry ``axis`` replaced by ``e``."""
    return tuple(e if d == axis else x for d, x in enumerate(dims))


def _numeric(name, x: Aval):
    if x.dtype == bool_:
        raise TypeError(f"{name}: values must be numeric (int32 or float), got {x.dtype}")


# ---- sort_rank ------------------------------------------------------------------------------

def _rank_infer(x: Aval, *, axis, descending) -> Aval:
    _numeric("sort", x)
    return Aval(tuple(x.shape), int32)


def _precedes(a: K.Expr, b: K.Expr, ja: K.Expr, jb: K.Expr, descending: bool) -> K.Expr:
    """Whether element ``a`` (at ``ja``) goes before ``b`` (at ``jb``): the module's order."""
    nan_a, nan_b = K.binary("ne", a, a), K.binary("ne", b, b)
    if descending:
        before = K.binary("or", a > b, K.binary("and", nan_a, K.unary("not", nan_b)))
    else:
        before = K.binary("or", a < b, K.binary("and", nan_b, K.unary("not", nan_a)))
    tie = K.binary("or", K.binary("eq", a, b), K.binary("and", nan_a, nan_b))
    return K.binary("or", before, K.binary("and", tie, ja < jb))


def _rank_kernel(ins, out, *, axis, descending):
    (x,) = ins
    nd = len(x.shape)
    dims = [K.idx(d) for d in range(nd)]
    i, j = dims[axis], K.idx(nd)
    xi, xj = K.load(0, tuple(dims), x.dtype), K.load(0, _at(dims, axis, j), x.dtype)
    expr = K.cast(_precedes(xj, xi, j, i, descending), int32)
    return K.reduce_kernel([_buf(x)], _buf(out), (x.shape[axis],), expr, "sum")


def _argsort_ref(x, axis, descending):
    """numpy's stable argsort in the module's order."""
    import numpy as np
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")           # numpy's order: NaN last
    if x.dtype.kind != "f":
        return np.argsort(-x.astype(np.int64), axis=axis, kind="stable")
    nan = np.isnan(x)
    # lexsort: the last key is the primary one (NaN first), then decreasing values; stable
    return np.lexsort((np.where(nan, 0.0, -x.astype(np.float64)), ~nan), axis=axis)


def _rank_ref(x, *, axis, descending):
    import numpy as np
    order = _argsort_ref(x, axis, descending)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(
        np.arange(x.shape[axis]).reshape([-1 if d == axis else 1 for d in range(x.ndim)]), x.shape), axis)
    return rank.astype(np.int32)


sort_rank = Op("sort_rank", infer=_rank_infer, reference=_rank_ref, kernel=_rank_kernel,
               doc="Each element's position (int32) in the stable sorted order of its axis (module docstring).")


# ---- invert_permutation_along ---------------------------------------------------------------

def _invert_infer(p: Aval, *, axis) -> Aval:
    if p.dtype != int32:
        raise TypeError(f"invert_permutation_along: a permutation must be int32, got {p.dtype}")
    return Aval(tuple(p.shape), int32)


def _invert_kernel(ins, out, *, axis):
    (p,) = ins
    nd = len(p.shape)
    dims = [K.idx(d) for d in range(nd)]
    r, i = dims[axis], K.idx(nd)
    hit = K.binary("eq", K.load(0, _at(dims, axis, i), int32), r)
    return K.reduce_kernel([_buf(p)], _buf(out), (p.shape[axis],), K.where(hit, i, K.const(0, int32)), "sum")


def _invert_ref(p, *, axis):
    import numpy as np
    return np.argsort(p, axis=axis, kind="stable").astype(np.int32)


invert_permutation_along = Op(
    "invert_permutation_along", infer=_invert_infer, reference=_invert_ref, kernel=_invert_kernel,
    doc="``out[.., r, ..] = i`` where ``p[.., i, ..] == r``, for ``p`` a permutation of each row along ``axis``.")


# ---- permute_along_axis ---------------------------------------------------------------------

def _permute_infer(x: Aval, perm: Aval, *, axis) -> Aval:
    if perm.dtype != int32 or tuple(perm.shape) != tuple(x.shape):
        raise TypeError(f"permute_along_axis: perm must be int32 of x's shape {x.shape}, got {perm}")
    return Aval(tuple(x.shape), x.dtype)


def _permute_kernel(ins, out, *, axis):
    x, _ = ins
    dims = tuple(K.idx(d) for d in range(len(x.shape)))
    j = K.clamp(K.load(1, dims, int32), 0, max(x.shape[axis] - 1, 0))     # in bounds by construction
    return K.map_kernel([_buf(a) for a in ins], _buf(out), K.load(0, _at(dims, axis, j), x.dtype))


def _permute_ref(x, perm, *, axis):
    import numpy as np
    return np.take_along_axis(x, perm.astype(np.intp), axis)


def _permute_grad(g, y, x, perm, *, axis):
    # out_j = x_perm[j]  =>  dx_i = g_{inverse[i]}
    if not x.dtype.is_floating:
        return None, None
    return permute_along_axis(g, invert_permutation_along(perm, axis=axis), axis=axis), None


permute_along_axis = Op("permute_along_axis", infer=_permute_infer, reference=_permute_ref,
                        kernel=_permute_kernel, grad=_permute_grad,
                        doc="``out[.., j, ..] = x[.., perm[.., j, ..], ..]`` for ``perm`` a permutation along ``axis``.")


# ---- cumulative -----------------------------------------------------------------------------

def _cum_infer(x: Aval, *, axis, combiner, exclusive, reverse) -> Aval:
    if x.dtype == bool_:
        raise TypeError(f"cum{combiner}: x must be numeric (int32 or float), got {x.dtype}")
    return Aval(tuple(x.shape), x.dtype)


def _cum_kernel(ins, out, *, axis, combiner, exclusive, reverse):
    (x,) = ins
    nd = len(x.shape)
    dims = [K.idx(d) for d in range(nd)]
    i, j = dims[axis], K.idx(nd)
    take = {(False, False): j <= i, (True, False): j < i, (False, True): j >= i, (True, True): j > i}[
        (exclusive, reverse)]
    ident = K.const(0 if combiner == "sum" else 1, x.dtype)
    expr = K.where(take, K.load(0, _at(dims, axis, j), x.dtype), ident)   # where, not a product: inf stays out
    return K.reduce_kernel([_buf(x)], _buf(out), (x.shape[axis],), expr, combiner)


def _cum_ref(x, *, axis, combiner, exclusive, reverse):
    import numpy as np
    if reverse:
        x = np.flip(x, axis)
    y = (np.cumsum if combiner == "sum" else np.cumprod)(x, axis=axis, dtype=x.dtype)
    if exclusive:
        first = np.full_like(np.take(y, [0], axis=axis) if x.shape[axis] else y, 0 if combiner == "sum" else 1)
        y = np.concatenate([first, np.take(y, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
    return np.ascontiguousarray(np.flip(y, axis) if reverse else y)


def _cum_grad(g, y, x, *, axis, combiner, exclusive, reverse):
    if not x.dtype.is_floating:
        return (None,)
    if combiner == "sum":       # y_i = sum_{j <= i} x_j  =>  dx_j = sum_{i >= j} g_i
        return (cumulative(g, axis=axis, combiner="sum", exclusive=exclusive, reverse=not reverse),)
    return (_cumprod_grad(g, x, axis, exclusive, reverse),)


def _cumprod_grad(g, x, axis, exclusive, reverse):
    """d cumprod, exact where x holds zeros (TF's ``cumsum(g * y, reverse) / x`` is not). For the
    inclusive forward scan, with z the first zero of a row:
    ``dx_k = sum_{i >= k} g_i y_i / x_k`` for k < z (no zero divides); ``dx_z = sum_{i >= z} g_i y'_i``
    with ``y'`` the scan of x with x_z set to 1 (the product of the others); ``dx_k = 0`` for k > z
    (every y_i it reaches holds x_z = 0). Reverse flips the axis; exclusive shifts g (y_i = Y_{i-1})."""
    cast, div, equal, logical_and, logical_not, mul, where = _ops.cast, _ops.div, _ops.equal, _ops.logical_and, _ops.logical_not, _ops.mul, _ops.where
    pad_op, slice_op = _ops.pad_op, _ops.slice_op
    n = x.shape[axis]
    if n == 0:
        return g
    full = [(0, d, 1) for d in x.shape]

    def flip(t):
        spec = list(full)
        spec[axis] = (n - 1, -1, -1)
        return slice_op(t, spec=tuple(spec))

    def scan(t, combiner, rev=False):
        return cumulative(t, axis=axis, combiner=combiner, exclusive=False, reverse=rev)

    if reverse:
        g, x = flip(g), flip(x)
    if exclusive:                # y_i = Y_{i-1} (Y the inclusive scan): dY_i = g_{i+1}, dY_{n-1} = 0
        spec, pads = list(full), [(0, 0)] * len(full)
        spec[axis], pads[axis] = (1, n, 1), (0, 1)
        g = pad_op(slice_op(g, spec=tuple(spec)), paddings=tuple(pads), constant_value=0.0)
    zero = equal(x, 0.0)
    clear = equal(cumulative(cast(zero, dtype=x.dtype), axis=axis, combiner="sum", exclusive=True, reverse=False), 0.0)
    before, first = logical_and(clear, logical_not(zero)), logical_and(clear, zero)
    d_before = div(scan(mul(g, scan(x, "prod")), "sum", True), where(before, x, 1.0))
    d_first = scan(mul(g, scan(where(first, 1.0, x), "prod")), "sum", True)
    dx = where(before, d_before, where(first, d_first, 0.0))
    return flip(dx) if reverse else dx


cumulative = Op("cumulative", infer=_cum_infer, reference=_cum_ref, kernel=_cum_kernel, grad=_cum_grad,
                doc="Scan along ``axis`` with ``combiner`` 'sum' or 'prod' (``cumsum``/``cumprod``).")


# ---- public front doors ---------------------------------------------------------------------

def _argsort(values, axis, direction):
    values = as_tensor(values)
    if len(values.shape) == 0:
        raise ValueError("sort: values must have rank >= 1, got a scalar")
    axis = normalize_axis(axis, len(values.shape), "sort")
    rank = sort_rank(values, axis=axis, descending=direction == "DESCENDING")
    return values, axis, invert_permutation_along(rank, axis=axis)


_DIRECTION = one_of("ASCENDING", "DESCENDING")


@op_signature(axis=axis_of("values"), direction=_DIRECTION)
def sort(values, axis=-1, direction="ASCENDING"):
    """``tf.sort``: ``values`` (int32 or float, rank >= 1) sorted along ``axis`` (an int).

    Order (stable, NaN as the largest value): ``"ASCENDING"`` puts NaN last (numpy's order);
    ``"DESCENDING"`` is its reverse for values (NaN first). O(n^2) work per sorted axis of size n
    (a rank count: see the module docstring). The gradient flows to the element each output
    position came from.

    Args:
        values: a tensor of rank >= 1, int32 or float.
        axis: an int, the axis to sort along; negative counts from the end.
        direction: ``"ASCENDING"`` or ``"DESCENDING"``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``values``' shape and dtype, sorted along ``axis``.
    Raises:
        TypeError: bool values; ``axis`` not an int.
        ValueError: a scalar; ``axis`` out of range; ``direction`` not "ASCENDING" or "DESCENDING".
    """
    values, axis, order = _argsort(values, axis, direction)
    return permute_along_axis(values, order, axis=axis)


@op_signature(axis=axis_of("values"), direction=_DIRECTION, stable=BOOL)
def argsort(values, axis=-1, direction="ASCENDING", stable=False):
    """``tf.argsort``: int32 indices that sort ``values`` along ``axis`` (see :func:`sort` for the
    order). Always stable (equal elements keep their index order), whatever ``stable`` says.

    Args:
        values: a tensor of rank >= 1, int32 or float.
        axis: an int, the axis to sort along; negative counts from the end.
        direction: ``"ASCENDING"`` or ``"DESCENDING"``.
        stable: a bool, accepted for TensorFlow's signature (the sort is always stable).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        An int32 tensor of ``values``' shape: along ``axis``, the indices of the sorted elements.
    Raises:
        TypeError: bool values; ``axis`` not an int; ``stable`` not a bool.
        ValueError: a scalar; ``axis`` out of range; ``direction`` not "ASCENDING" or "DESCENDING".
    """
    return _argsort(values, axis, direction)[2]


TopKV2 = namedtuple("TopKV2", ["values", "indices"])


@op_signature(k=NON_NEGATIVE_INT, sorted=BOOL)
def top_k(input, k=1, sorted=True):     # noqa: A002  (TF's argument names)
    """``tf.math.top_k``: the ``k`` largest entries of the last axis of ``input`` and their int32
    indices, as ``TopKV2(values, indices)``, both of shape ``input.shape[:-1] + (k,)``.

    Values are in decreasing order (also with ``sorted=False``, which TF leaves unspecified);
    equal values come lower index first; NaN counts as larger than every number (as
    ``torch.topk``). The gradient flows to the selected elements.

    Args:
        input: a tensor of rank >= 1, int32 or float.
        k: a non-negative int, at most the size of the last axis.
        sorted: a bool, accepted for TensorFlow's signature (the values are always sorted).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``TopKV2(values, indices)``: ``values`` of ``input``'s dtype and int32 ``indices``, both of
        shape ``input.shape[:-1] + (k,)``.
    Raises:
        TypeError: bool input; ``k`` not an int; ``sorted`` not a bool.
        ValueError: a scalar input; ``k`` negative or larger than the last axis.
    """
    slice_ = _ops.slice
    input, kk = as_tensor(input), k       # noqa: A001
    if len(input.shape) == 0:
        raise ValueError("top_k: input must have rank >= 1, got a scalar")
    n = input.shape[-1]
    if not 0 <= kk <= n:
        raise ValueError(f"top_k: k must be in [0, {n}] (the size of the last axis), got {kk}")
    values, axis, order = _argsort(input, -1, "DESCENDING")
    top = permute_along_axis(values, order, axis=axis)
    size = [-1] * len(input.shape)
    size[-1] = kk
    begin = [0] * len(input.shape)
    return TopKV2(slice_(top, begin, size), slice_(order, begin, size))


def _cum_front(combiner):
    def scan(x, axis=0, exclusive=False, reverse=False):
        x = as_tensor(x)
        if len(x.shape) == 0:
            raise ValueError(f"cum{combiner}: x must have rank >= 1, got a scalar")
        return cumulative(x, axis=normalize_axis(axis, len(x.shape), f"cum{combiner}"), combiner=combiner,
                          exclusive=exclusive, reverse=reverse)
    scan.__name__ = scan.__qualname__ = f"cum{combiner}"
    return op_signature(axis=axis_of("x"), exclusive=BOOL, reverse=BOOL)(scan)


cumsum = _cum_front("sum")
cumsum.__doc__ = """``tf.math.cumsum``: running sums of ``x`` (int32 or float, rank >= 1) along
    ``axis``: ``y_i = x_0 + ... + x_i``; ``exclusive`` leaves ``x_i`` out (``y_0 = 0``);
    ``reverse`` sums from the end. A masked reduction (O(n^2) work per axis of size n, parallel on
    every backend); float32 sums may differ from a sequential sum in the last bits.

    Args:
        x: a tensor of rank >= 1, int32 or float.
        axis: an int, the axis to sum along; negative counts from the end.
        exclusive: a bool; True leaves each ``x_i`` out of its own sum.
        reverse: a bool; True sums from the end of the axis.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape and dtype.
    Raises:
        TypeError: bool x; ``axis`` not an int; ``exclusive``/``reverse`` not bools.
        ValueError: a scalar x; ``axis`` out of range.
    """
cumprod = _cum_front("prod")
cumprod.__doc__ = """``tf.math.cumprod``: running products, with :func:`cumsum`'s arguments
    (``exclusive``: ``y_0 = 1``).

    Gradient: exact also where ``x`` holds zeros (TF's ``cumsum(g * y, reverse=not reverse) / x``
    is inf/NaN there): the rule in ``_cumprod_grad``, the way PyTorch's ``cumprod_backward`` does it.

    Args:
        x: a tensor of rank >= 1, int32 or float.
        axis: an int, the axis to multiply along; negative counts from the end.
        exclusive: a bool; True leaves each ``x_i`` out of its own product.
        reverse: a bool; True multiplies from the end of the axis.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape and dtype.
    Raises:
        TypeError: bool x; ``axis`` not an int; ``exclusive``/``reverse`` not bools.
        ValueError: a scalar x; ``axis`` out of range.
    """
