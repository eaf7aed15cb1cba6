"""Shape rules shared by all ops: numpy broadcasting and axis normalisation."""
from __future__ import annotations

from math import prod

Shape = tuple[int, ...]


def broadcast_shapes(*shapes: Shape, op: str = "op") -> Shape:
    """numpy broadcasting (https://numpy.org/doc/stable/user/basics.broadcasting.html).

    Raises:
        ValueError: naming the op and the shapes when they do not broadcast.
    """
    if len(shapes) == 2:                # fast paths for what nearly every binary op sees
        a, b = shapes
        if a == b or not b:
            return tuple(a)
        if not a:
            return tuple(b)
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError(f"{op}: shapes {', '.join(map(str, shapes))} are not broadcast-compatible "
                             f"(dimension {i - ndim}: sizes {sorted(dims)})")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, ndim: int, op: str = "op") -> int:
    """A possibly negative axis as a non-negative one. Raises ValueError if out of range."""
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim


def normalize_axes(axis, ndim: int, op: str = "op") -> tuple[int, ...]:
    """``None`` (all axes), an int or a sequence of ints as a sorted tuple of distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted(normalize_axis(a, ndim, op) for a in axis))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return axes


def normalize_pair(v, name: str) -> tuple[int, int]:
    """An int or a pair of ints (kernel size, strides, dilations) as a pair; ``ValueError`` otherwise."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return v


def strides_of(shape: Shape) -> Shape:
    """Row-major element strides of a contiguous tensor."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def size_of(shape: Shape) -> int:
    return prod(shape)
