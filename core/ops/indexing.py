"""Indexing by index tensors: ``gather_nd scatter_nd tensor_scatter_nd_update tensor_scatter_nd_add
boolean_mask segment_sum unsorted_segment_sum`` (TensorFlow's names and arguments).

Primitives, batched over a leading axis ``B`` (``gather_nd``'s ``batch_dims`` folded into it; 1
otherwise), with ``indices`` of shape ``(B, U, K)``: ``U`` index tuples of ``K`` entries each:

- ``gather_nd_op(params (B, *S), indices) -> (B, U, *S[K:])``: a ``map`` kernel whose load index
  is loaded (as ``gather``);
- ``scatter_nd_op(indices, updates (B, U, *S[K:]), shape=(B, *S))``: the sum of the updates whose
  index tuple is each output position: a ``reduce`` over ``U`` with an equality mask, so
  duplicates add up, on every backend, with no atomics. The two are each other's gradient;
- ``scatter_nd_winner(indices, shape=(B, *S[:K])) -> int32``: for each position, the last ``u``
  whose index tuple is that position (-1: none): how ``tensor_scatter_nd_update`` picks one of
  duplicate updates (TF leaves which one unspecified; here the last one wins).

Index rule (as ``gather``'s, ``movement.py``): an index entry ``i`` into an axis of size ``n``
may be negative, ``-n <= i < n``, counting from the end (TF's kernels reject negative entries:
this is a superset). An entry out of that range raises IndexError naming the op when its value is
known (eager); where it is not (inside ``webtensor.function``), ``gather_nd`` reads zeros for
that tuple and the scatters drop it: compiled code never reads or writes out of bounds.
Segment ids keep TF's rule instead: a negative id drops its row; an id ``>= num_segments``
raises IndexError when known, else its row is dropped.
"""
from __future__ import annotations

from math import prod

from .. import kernel_ir as K
from ..dtypes import bool_, int32
from ..op import Aval, Op, as_tensor, known_values
from ..signature import NON_NEGATIVE_INT, SHAPE, axis_of, op_signature, optional
from .namespace import ops as _ops


def _buf(a: Aval) -> K.Buffer:
    return K.Buffer(tuple(a.shape), a.dtype)


def _check_index_avals(name, indices: Aval):
    if indices.dtype != int32 or len(indices.shape) != 3:
        raise TypeError(f"{name}: indices must be int32 of shape (B, U, K), got {indices}")


def _entries(which: int, b, u, dims):
    """Index tuple ``(b, u)`` of input ``which`` (entries counted from the end where negative) and
    whether every entry is in range: ``([j_0 .. j_K-1], ok)``; ``ok`` is None when K == 0."""
    out, ok = [], None
    for k, n in enumerate(dims):
        sel = K.load(which, (b, u, K.const(k, int32)), int32)
        j = K.where(sel < 0, sel + n, sel)
        v = K.binary("and", j >= 0, j < n)
        ok = v if ok is None else K.binary("and", ok, v)
        out.append(j)
    return out, ok


def _np_entries(i, dims):
    """numpy: ``(entries (B, U, K) with negatives counted from the end, ok (B, U))``."""
    import numpy as np
    dims = np.array(dims, np.int64).reshape(1, 1, -1)
    j = np.where(i < 0, i + dims, i)
    return j, np.all((j >= 0) & (j < dims), axis=-1)


# ---- gather_nd ------------------------------------------------------------------------------

def _gather_nd_infer(params: Aval, indices: Aval) -> Aval:
    _check_index_avals("gather_nd", indices)
    bsz, u, k = indices.shape
    if not params.shape or params.shape[0] != bsz or k > len(params.shape) - 1:
        raise ValueError(f"gather_nd: params {params} and indices {indices} do not fit (B, *S) and (B, U, K <= len(S))")
    return Aval((bsz, u) + tuple(params.shape[1 + k:]), params.dtype)


def _gather_nd_kernel(ins, out, **_):
    p, i = ins
    k = i.shape[2]
    if 0 in p.shape:       # every tuple is out of range; an empty buffer must not be loaded from
        return K.map_kernel([_buf(a) for a in ins], _buf(out), K.const(0, p.dtype))
    dims = [K.idx(d) for d in range(len(out.shape))]
    b, u, rest = dims[0], dims[1], dims[2:]
    js, ok = _entries(1, b, u, p.shape[1:1 + k])
    ix = (b,) + tuple(K.clamp(j, 0, n - 1) for j, n in zip(js, p.shape[1:1 + k])) + tuple(rest)
    val = K.load(0, ix, p.dtype)
    return K.map_kernel([_buf(a) for a in ins], _buf(out), val if ok is None else K.where(ok, val, K.const(0, p.dtype)))


def _gather_nd_ref(p, i):
    import numpy as np
    bsz, u, k = i.shape
    out_shape = (bsz, u) + p.shape[1 + k:]
    if 0 in p.shape:
        return np.zeros(out_shape, p.dtype)
    j, ok = _np_entries(i, p.shape[1:1 + k])
    j = np.where(ok[..., None], j, 0)
    got = p[(np.arange(bsz)[:, None],) + tuple(j[..., c] for c in range(k))]
    return np.where(ok.reshape(ok.shape + (1,) * (len(out_shape) - 2)), got, np.zeros((), p.dtype)).astype(p.dtype)


def _gather_nd_grad(g, y, p, i):
    if not p.dtype.is_floating:
        return None, None
    return scatter_nd_op(i, g, shape=tuple(p.shape)), None


gather_nd_op = Op("gather_nd_op", infer=_gather_nd_infer, reference=_gather_nd_ref, kernel=_gather_nd_kernel,
                  grad=_gather_nd_grad, doc="Batched gather_nd (module docstring).")


# ---- scatter_nd -----------------------------------------------------------------------------

def _scatter_nd_infer(indices: Aval, updates: Aval, *, shape) -> Aval:
    _check_index_avals("scatter_nd", indices)
    bsz, u, k = indices.shape
    if updates.dtype == bool_:
        raise TypeError("scatter_nd: updates must be numeric (int32 or float), got bool")
    if tuple(updates.shape) != (bsz, u) + tuple(shape[1 + k:]) or shape[0] != bsz:
        raise ValueError(f"scatter_nd: updates {updates} do not fit indices {indices} and shape {shape}")
    return Aval(tuple(shape), updates.dtype)


def _match(which, b, u, pos, dims):
    """Whether index tuple ``(b, u)`` of input ``which`` is the position ``pos`` (never, out of range)."""
    js, ok = _entries(which, b, u, dims)
    for j, p in zip(js, pos):
        ok = K.binary("and", ok, K.binary("eq", j, p))
    return ok if ok is not None else K.const(True)


def _scatter_nd_kernel(ins, out, *, shape):
    i, upd = ins
    bsz, u, k = i.shape
    if u == 0:
        return K.map_kernel([_buf(a) for a in ins], _buf(out), K.const(0, out.dtype))
    dims = [K.idx(d) for d in range(len(shape))]
    uu = K.idx(len(shape))
    hit = _match(0, dims[0], uu, dims[1:1 + k], shape[1:1 + k])
    val = K.load(1, (dims[0], uu) + tuple(dims[1 + k:]), upd.dtype)
    return K.reduce_kernel([_buf(a) for a in ins], _buf(out), (u,), K.where(hit, val, K.const(0, upd.dtype)), "sum")


def _scatter_nd_ref(i, upd, *, shape):
    import numpy as np
    k = i.shape[2]
    out = np.zeros(shape, upd.dtype)
    j, ok = _np_entries(i, shape[1:1 + k])
    bb = np.broadcast_to(np.arange(i.shape[0])[:, None], ok.shape)
    np.add.at(out, (bb[ok],) + tuple(j[..., c][ok] for c in range(k)), upd[ok])
    return out


def _scatter_nd_grad(g, y, i, upd, *, shape):
    return None, (gather_nd_op(g, i) if upd.dtype.is_floating else None)


scatter_nd_op = Op("scatter_nd_op", infer=_scatter_nd_infer, reference=_scatter_nd_ref, kernel=_scatter_nd_kernel,
                   grad=_scatter_nd_grad, doc="Batched scatter_nd (module docstring): duplicates add up.")


def _winner_infer(indices: Aval, *, shape) -> Aval:
    _check_index_avals("tensor_scatter_nd_update", indices)
    if len(shape) != 1 + indices.shape[2] or shape[0] != indices.shape[0]:
        raise ValueError(f"scatter_nd_winner: shape {shape} does not fit indices {indices}")
    return Aval(tuple(shape), int32)


def _winner_kernel(ins, out, *, shape):
    (i,) = ins
    u = i.shape[1]
    if u == 0 or 0 in shape:      # no updates, or no positions: a max over nothing has no identity
        return K.map_kernel([_buf(i)], _buf(out), K.const(-1, int32))
    dims = [K.idx(d) for d in range(len(shape))]
    uu = K.idx(len(shape))
    hit = _match(0, dims[0], uu, dims[1:], shape[1:])
    return K.reduce_kernel([_buf(i)], _buf(out), (u,), K.where(hit, uu, K.const(-1, int32)), "max")


def _winner_ref(i, *, shape):
    import numpy as np
    out = np.full(shape, -1, np.int32)
    j, ok = _np_entries(i, shape[1:])
    for b in range(i.shape[0]):
        for u in range(i.shape[1]):          # in order: the last one wins
            if ok[b, u]:
                out[(b,) + tuple(j[b, u])] = u
    return out


scatter_nd_winner = Op("scatter_nd_winner", infer=_winner_infer, reference=_winner_ref, kernel=_winner_kernel,
                       doc="For each position, the last update index u that targets it, or -1 (module docstring).")


# ---- front doors ----------------------------------------------------------------------------

def _int_indices(name, indices):
    cast = _ops.cast
    indices = as_tensor(indices)
    if indices.dtype == int32:
        return indices
    if indices.dtype.is_floating or indices.dtype == bool_:
        raise TypeError(f"{name}: indices must be integers, got {indices.dtype}")
    return cast(indices, dtype=int32)


def _check_nd(name, indices, dims):
    """The eager half of the index rule: IndexError for a known index tuple with an entry outside
    ``[-n, n)`` of its axis."""
    v = known_values(indices)
    if v is None or not len(dims) or not len(v):
        return
    k = len(dims)
    if hasattr(v, "reshape"):                       # numpy: find the first bad entry without a Python loop
        import numpy as np
        d = np.array(dims).reshape(1, k)
        bad = np.flatnonzero(((v.reshape(-1, k) < -d) | (v.reshape(-1, k) >= d)).reshape(-1))
        positions = bad[:1]
    else:
        positions = [p for p, a in enumerate(v) if not -dims[p % k] <= a < dims[p % k]][:1]
    for pos in positions:
        pos = int(pos)
        raise IndexError(f"{name}: index {int(v[pos])} (entry {pos % k} of index tuple {pos // k}) is out of bounds "
                         f"for axis {pos % k} with size {dims[pos % k]}")


def _index_tuples(name, indices, rank):
    """indices ``(..., K)`` -> ``(K, number of tuples U, batch shape indices.shape[:-1])``."""
    if len(indices.shape) == 0:
        raise ValueError(f"{name}: indices must have rank >= 1 (index tuples along the last axis), got a scalar")
    k = indices.shape[-1]
    if k > rank:
        raise ValueError(f"{name}: index tuples of {k} entries (indices.shape[-1]) for a tensor of rank {rank}")
    return k, prod(indices.shape[:-1]), tuple(indices.shape[:-1])


@op_signature(batch_dims=NON_NEGATIVE_INT)
def gather_nd(params, indices, batch_dims=0):
    """``tf.gather_nd``: slices of ``params`` at integer index tuples along the last axis of
    ``indices``. With ``batch_dims = b``, the first ``b`` axes of both are batch axes (equal sizes).
    Shapes: ``indices (*batch, *I, K)`` with ``K <= params.ndim - b`` gives
    ``(*batch, *I) + params.shape[b + K:]``, dtype of ``params``. Entries follow the module's
    index rule (negative ones count from the end; out of range: IndexError when known, else zeros).

    Args:
        params: a tensor of any dtype, of rank >= ``batch_dims``.
        indices: an integer tensor of rank > ``batch_dims`` (cast to int32), index tuples along its
            last axis.
        batch_dims: a non-negative int, the number of leading batch axes.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``params``' dtype and shape ``(*batch, *I) + params.shape[batch_dims + K:]``.
    Raises:
        IndexError: an entry outside ``[-n, n)`` whose value is known (eager).
        TypeError: float or bool indices; ``batch_dims`` not an int.
        ValueError: shapes that do not fit as above; ``batch_dims`` negative.
    """
    reshape = _ops.reshape
    params, indices = as_tensor(params), _int_indices("gather_nd", as_tensor(indices))
    b = batch_dims
    if len(indices.shape) == 0:
        raise ValueError("gather_nd: indices must have rank >= 1 (index tuples along the last axis), got a scalar")
    if b >= len(indices.shape) or b > len(params.shape) or tuple(params.shape[:b]) != tuple(indices.shape[:b]):
        raise ValueError(f"gather_nd: batch_dims {b} needs indices of rank > {b} and equal leading sizes, got "
                         f"params {tuple(params.shape)} and indices {tuple(indices.shape)}")
    batch, s = tuple(params.shape[:b]), tuple(params.shape[b:])
    k, _, lead = _index_tuples("gather_nd", indices, len(s))
    _check_nd("gather_nd", indices, s[:k])
    nb = prod(batch)
    u = prod(lead[b:])
    y = gather_nd_op(reshape(params, (nb,) + s), reshape(indices, (nb, u, k)))
    return reshape(y, lead + s[k:])


def _scatter_args(name, indices, updates, shape):
    reshape = _ops.reshape
    k, u, lead = _index_tuples(name, indices, len(shape))
    want = lead + tuple(shape[k:])
    if tuple(updates.shape) != want:
        raise ValueError(f"{name}: updates must have shape indices.shape[:-1] + shape[K:] = {want}, "
                         f"got {tuple(updates.shape)}")
    _check_nd(name, indices, tuple(shape[:k]))
    return k, reshape(indices, (1, u, k)), reshape(updates, (1, u) + tuple(shape[k:]))


@op_signature(shape=SHAPE)
def scatter_nd(indices, updates, shape):
    """``tf.scatter_nd``: zeros of ``shape`` with ``updates`` added at integer index tuples (the last
    axis of ``indices``, ``K <= len(shape)`` entries each); duplicate tuples add up.
    ``updates`` has shape ``indices.shape[:-1] + shape[K:]``; the result its dtype. Entries follow
    the module's index rule (out of range: IndexError when known, else dropped).

    Args:
        indices: an integer tensor (cast to int32) of index tuples along its last axis, ``K``
            entries each.
        updates: a tensor of shape ``indices.shape[:-1] + shape[K:]``.
        shape: the result's shape, an int or a sequence of non-negative ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``shape`` and ``updates``' dtype.
    Raises:
        IndexError: an entry outside ``[-n, n)`` whose value is known (eager).
        TypeError: float or bool indices; bool updates; ``shape`` not ints.
        ValueError: shapes that do not fit; a negative size in ``shape``.
    """
    reshape = _ops.reshape
    indices, updates = _int_indices("scatter_nd", indices), as_tensor(updates)
    shape = tuple(shape)
    _, i3, u3 = _scatter_args("scatter_nd", indices, updates, shape)
    return reshape(scatter_nd_op(i3, u3, shape=(1,) + shape), shape)


@op_signature()
def tensor_scatter_nd_update(tensor, indices, updates):
    """``tf.tensor_scatter_nd_update``: ``tensor`` with the slices at integer index tuples replaced
    by ``updates`` (of shape ``indices.shape[:-1] + tensor.shape[K:]``, ``tensor``'s dtype). Of
    duplicate tuples, the last update wins (TF leaves it unspecified). Entries follow the module's
    index rule. Gradient: to ``tensor`` where not replaced, to each winning update.

    Args:
        tensor: a tensor of any shape.
        indices: an integer tensor (cast to int32) of index tuples along its last axis, ``K``
            entries each.
        updates: a tensor of ``tensor``'s dtype and shape ``indices.shape[:-1] + tensor.shape[K:]``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``tensor``'s shape and dtype.
    Raises:
        IndexError: an entry outside ``[-n, n)`` whose value is known (eager).
        TypeError: float or bool indices; dtypes that differ. ValueError: shapes that do not fit.
    """
    greater_equal, maximum, where = _ops.greater_equal, _ops.maximum, _ops.where
    gather_op, reshape = _ops.gather_op, _ops.reshape
    tensor, indices, updates = as_tensor(tensor), _int_indices("tensor_scatter_nd_update", indices), as_tensor(updates)
    if tensor.dtype != updates.dtype:
        raise TypeError(f"tensor_scatter_nd_update: updates must have tensor's dtype {tensor.dtype}, got {updates.dtype}")
    shape = tuple(tensor.shape)
    k, i3, u3 = _scatter_args("tensor_scatter_nd_update", indices, updates, shape)
    u = i3.shape[1]
    if u == 0:
        return tensor
    p, r = prod(shape[:k]), prod(shape[k:])
    win = reshape(scatter_nd_winner(i3, shape=(1,) + shape[:k]), (p, 1))
    vals = gather_op(reshape(u3, (u, r)), reshape(maximum(win, 0), (p,)), axis=0)      # (p, r)
    return reshape(where(greater_equal(win, 0), vals, reshape(tensor, (p, r))), shape)


@op_signature()
def tensor_scatter_nd_add(tensor, indices, updates):
    """``tf.tensor_scatter_nd_add``: ``tensor`` plus :func:`scatter_nd` of ``updates`` at integer
    index tuples (duplicates add up); shapes and index rule as :func:`tensor_scatter_nd_update`.

    Args:
        tensor: a tensor of any shape, int32 or float.
        indices: an integer tensor (cast to int32) of index tuples along its last axis, ``K``
            entries each.
        updates: a tensor of ``tensor``'s dtype and shape ``indices.shape[:-1] + tensor.shape[K:]``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``tensor``'s shape and dtype.
    Raises:
        IndexError: an entry outside ``[-n, n)`` whose value is known (eager).
        TypeError: float or bool indices; dtypes that differ; bool tensors.
        ValueError: shapes that do not fit.
    """
    add = _ops.add
    tensor, updates = as_tensor(tensor), as_tensor(updates)
    if tensor.dtype != updates.dtype:
        raise TypeError(f"tensor_scatter_nd_add: updates must have tensor's dtype {tensor.dtype}, got {updates.dtype}")
    return add(tensor, scatter_nd(indices, updates, tuple(tensor.shape)))


@op_signature(num_segments=NON_NEGATIVE_INT)
def unsorted_segment_sum(data, segment_ids, num_segments):
    """``tf.math.unsorted_segment_sum``: ``out[s, ...] = sum of data[i..., ...] over segment_ids[i...] == s``.
    ``segment_ids`` (integers) has a prefix of ``data``'s shape; the result has shape
    ``(num_segments,) + data.shape[segment_ids.ndim:]`` and ``data``'s dtype (zeros for empty
    segments). A negative id drops its row (TF); an id ``>= num_segments`` raises IndexError when
    known, else its row is dropped.

    Args:
        data: a tensor, int32 or float.
        segment_ids: an integer tensor (cast to int32) whose shape is a prefix of ``data``'s.
        num_segments: a non-negative int, the number of segments.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``data``'s dtype and shape ``(num_segments,) + data.shape[segment_ids.ndim:]``.
    Raises:
        IndexError: a known id ``>= num_segments``.
        TypeError: float or bool ids; bool data; ``num_segments`` not an int.
        ValueError: ``segment_ids``' shape not a prefix of ``data``'s; ``num_segments`` negative.
    """
    less, where = _ops.less, _ops.where
    reshape = _ops.reshape
    data, ids = as_tensor(data), _int_indices("unsorted_segment_sum", segment_ids)
    n = num_segments
    r = len(ids.shape)
    if tuple(data.shape[:r]) != tuple(ids.shape):
        raise ValueError(f"unsorted_segment_sum: segment_ids' shape {tuple(ids.shape)} must be a prefix of "
                         f"data's shape {tuple(data.shape)}")
    v = known_values(ids)
    if v is not None and len(v) and max(v) >= n:
        raise IndexError(f"unsorted_segment_sum: segment id {int(max(v))} is out of range for num_segments {n}")
    u, rest = prod(ids.shape), tuple(data.shape[r:])
    ids = where(less(ids, 0), n, ids)      # negative ids: past the end, so the scatter drops them
    y = scatter_nd_op(reshape(ids, (1, u, 1)), reshape(data, (1, u) + rest), shape=(1, n) + rest)
    return reshape(y, (n,) + rest)


@op_signature()
def segment_sum(data, segment_ids):
    """``tf.math.segment_sum``: :func:`unsorted_segment_sum` for sorted, non-negative 1-D
    ``segment_ids`` (one per row of ``data``), with ``max(segment_ids) + 1`` segments. The number
    of segments depends on the ids' values, so they must be known: eager only.

    Args:
        data: a tensor of rank >= 1, int32 or float.
        segment_ids: a 1-D integer tensor (cast to int32), sorted and non-negative, one id per row
            of ``data``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``data``'s dtype and shape ``(max(segment_ids) + 1,) + data.shape[1:]`` (0 rows
        for empty ids).
    Raises:
        ValueError: ids not 1-D with one per row, not sorted, negative, or not known (inside
            ``webtensor.function``: use ``unsorted_segment_sum`` with ``num_segments``).
        TypeError: float or bool ids; bool data.
    """
    data, ids = as_tensor(data), _int_indices("segment_sum", segment_ids)
    if len(ids.shape) != 1 or not data.shape or ids.shape[0] != data.shape[0]:
        raise ValueError(f"segment_sum: segment_ids must be 1-D with one id per row of data, got shapes "
                         f"{tuple(ids.shape)} and {tuple(data.shape)}")
    v = known_values(ids)
    if v is None:
        raise ValueError("segment_sum: the number of segments depends on segment_ids' values, which are not known "
                         "here (inside webtensor.function); use unsorted_segment_sum(data, segment_ids, num_segments)")
    v = [int(a) for a in v]
    if v and (v[0] < 0 or any(a > b for a, b in zip(v, v[1:]))):
        raise ValueError("segment_sum: segment_ids must be sorted and non-negative")
    return unsorted_segment_sum(data, ids, (v[-1] + 1) if v else 0)



@op_signature(axis=optional(axis_of("tensor")))
def boolean_mask(tensor, mask, axis=None):
    """``tf.boolean_mask``: the entries of ``tensor`` where the bool ``mask`` is True. ``mask``'s
    shape (rank k >= 1) must equal ``tensor.shape[axis:axis + k]`` (``axis`` default 0); those
    axes become one of length ``count(mask)``, in row-major order. The result's shape depends on
    ``mask``'s values: eager only. Gradient: to the selected entries.

    Args:
        tensor: a tensor of any dtype.
        mask: a bool tensor of rank k >= 1, of shape ``tensor.shape[axis:axis + k]``.
        axis: None (0) or an int, the first axis ``mask`` covers; negative counts from the end.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``tensor``'s dtype and shape ``tensor.shape[:axis] + (count(mask),) +
        tensor.shape[axis + k:]``.
    Raises:
        ValueError: a scalar mask, shapes that do not fit, or mask values not known (inside
            ``webtensor.function``, or a browser GPU before its readback).
        TypeError: a mask that is not bool; ``axis`` not an int.
    """
    gather_op, reshape, slice_op = _ops.gather_op, _ops.reshape, _ops.slice_op
    tensor, mask = as_tensor(tensor), as_tensor(mask)
    if mask.dtype != bool_:
        raise TypeError(f"boolean_mask: mask must be bool, got {mask.dtype}")
    k = len(mask.shape)
    if k == 0:
        raise ValueError("boolean_mask: mask must have rank >= 1, got a scalar")
    axis = 0 if axis is None else axis
    if tuple(tensor.shape[axis:axis + k]) != tuple(mask.shape):
        raise ValueError(f"boolean_mask: mask's shape {tuple(mask.shape)} must equal tensor.shape[{axis}:{axis + k}] "
                         f"(tensor shape {tuple(tensor.shape)})")
    v = known_values(mask)
    if v is None:
        raise ValueError("boolean_mask: the result's shape depends on mask's values, which are not known here "
                         "(inside webtensor.function); use webtensor.where(mask, tensor, 0) for a fixed shape")
    keep = [i for i, a in enumerate(v) if a]
    s = tuple(tensor.shape)
    flat = reshape(tensor, s[:axis] + (prod(mask.shape),) + s[axis + k:])
    if not keep:
        return slice_op(flat, spec=tuple((0, 0, 1) if d == axis else (0, n, 1) for d, n in enumerate(flat.shape)))
    return gather_op(flat, keep, axis=axis)      # a list: made on tensor's device
