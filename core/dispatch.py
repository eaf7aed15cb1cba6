"""The one dispatch point of the op set: what the Python API installs (:func:`set_dispatcher`) to
execute or trace ops, convert Python values to tensors and read a tensor's values when they are
known. A leaf module: ``op.py`` (``Op.__call__``), ``signature.py`` and the op families read it.
"""
from __future__ import annotations

from typing import Callable

_dispatch: Callable | None = None


_convert: Callable | None = None
_values: Callable | None = None


def set_dispatcher(fn: Callable, convert: Callable, values: Callable | None = None) -> None:
    """Install ``fn(op, inputs, attrs) -> tensor``, the one place ops are executed or traced,
    ``convert(x) -> tensor`` for Python scalars, lists and arrays, and ``values(t)``: a tensor's
    elements, flat (a numpy array, or a list without numpy), or None when they are not known now
    (a symbolic tensor being traced; a GPU whose readback must be awaited)."""
    global _dispatch, _convert, _values
    _dispatch, _convert, _values = fn, convert, values


def as_tensor(x):
    """``x`` as a tensor of the Python API (a tensor is returned as is)."""
    return _convert(x)


def first_out_of_range(t, lo: int, hi: int):
    """``(flat position, value)`` of the first element of tensor ``t`` outside ``[lo, hi)`` when
    ``t``'s values are known now (eager), else None. Elements are compared as the int32 they cast
    to (float values truncate toward zero; NaN is out of range). How ops with index or label
    arguments raise eagerly, where compiled code cannot (``gather``, sparse labels)."""
    v = _values(t) if _values is not None else None
    if v is None or not len(v):
        return None
    if lo - 1 < v.min() and v.max() < hi if hasattr(v, "dtype") else all(lo - 1 < a < hi for a in v):
        return None                  # the common case; NaN fails every comparison
    for k, a in enumerate(v):
        if not (lo - 1 < a < hi):
            return k, a.item() if hasattr(a, "item") else a
    return None


def known_values(t):
    """Tensor ``t``'s elements, flat (a numpy array, or a list without numpy), when they are known now
    (eager), else None (traced; a browser GPU before its readback). How ops whose result's shape
    depends on values (``boolean_mask``, ``segment_sum``) and ops that check indices read them."""
    return _values(t) if _values is not None else None


def run(op, inputs, attrs):
    """Execute or trace ``op`` on ``inputs`` through the installed dispatcher."""
    if _dispatch is None:
        raise RuntimeError("no dispatcher installed: import webtensor")
    return _dispatch(op, inputs, attrs)
