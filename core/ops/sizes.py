"""Sizes as tensors: ``shape`` and ``size`` (tf.shape, tf.size), and ``size_value``, how ops whose
result depends on a size (``mean``'s ``1 / n``) read a symbolic size (a ``None`` dimension of an
``input_signature``, :class:`~webtensor.core.shapes.Dim`) at run time instead of baking in a number.

A symbolic size ``d`` is computed in the graph as ``reduce_sum(broadcast_to(1, (d,)))``: once the
graph is specialised for concrete sizes (``core/symbolic.py``) this folds to a constant, so it
costs nothing at run time.
"""
from __future__ import annotations

from ..dtypes import int32
from ..op import as_tensor
from ..shapes import Dim
from ..signature import DTYPE, op_signature
from .namespace import ops as _ops


def size_value(d, dtype=int32):
    """A size as a scalar tensor of ``dtype``: a constant for an int, computed in the graph for a
    symbolic size (so a traced function reads the run-time size).

    Args:
        d: an int or a :class:`~webtensor.core.shapes.Dim`.
        dtype: the result's dtype.
    Returns:
        A 0-d tensor of ``dtype``.
    """
    if not isinstance(d, Dim):
        return as_tensor(int(d)) if dtype == int32 else _ops.cast(as_tensor(int(d)), dtype=dtype)
    n = _ops.sum(_ops.broadcast_to(as_tensor(1), shape=(d,)))
    return n if dtype == int32 else _ops.cast(n, dtype=dtype)


@op_signature(out_type=DTYPE)
def shape(x, out_type=int32):
    """The shape of ``x`` as a 1-D tensor (tf.shape): inside a function traced with an
    ``input_signature``, a ``None`` dimension gives its size at run time (``x.shape`` gives the
    symbolic size, which has no value before run time).

    Args:
        x: tensor of any shape and dtype.
        out_type: the result's dtype (int32 by default, as TensorFlow).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``(rank,)`` and dtype ``out_type``.
    """
    x = as_tensor(x)
    if not any(isinstance(d, Dim) for d in x.shape):
        return _ops.cast(as_tensor([int(d) for d in x.shape] if x.shape else []), dtype=out_type) if x.shape \
            else _ops.reshape(_ops.cast(as_tensor(0), dtype=out_type), shape=(0,))
    return _ops.stack([size_value(d, out_type) for d in x.shape])


@op_signature(out_type=DTYPE)
def size(x, out_type=int32):
    """The number of elements of ``x`` as a 0-d tensor (tf.size); read at run time for ``None``
    dimensions of an ``input_signature``.

    Args:
        x: tensor of any shape and dtype.
        out_type: the result's dtype (int32 by default, as TensorFlow).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A 0-d tensor of dtype ``out_type``.
    """
    x = as_tensor(x)
    n = size_value(1, out_type)
    for d in x.shape:
        n = n * size_value(d, out_type) if isinstance(d, Dim) else n * int(d) if d != 1 else n
    return n
