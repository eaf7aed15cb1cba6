"""``Op``: one op, all its rules side by side (the JAX ``Primitive`` idea).

An op carries
- ``infer(*avals, **attrs) -> Aval``: shape/dtype inference with clear errors;
- ``reference(*arrays, **attrs)``: the numpy oracle;
- ``grad(g, y, *xs, **attrs) -> tuple``: the vector-Jacobian product, written with other ops
  (``None`` for an input with no gradient);
- ``kernel(in_avals, out_aval, **attrs) -> Kernel``: its kernel in the kernel IR.

Calling an op (``mul(x, y)``) goes through the one dispatch point that the Python
API installs (:func:`set_dispatcher`): eager execution on a device, or a node in the
graph being traced, and a record on any active ``GradientTape``.
Attributes are hashable keyword arguments; they key kernel caches and CSE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .dtypes import DType
from .kernel_ir import Kernel


@dataclass(frozen=True)
class Aval:
    """Abstract value: what is known of a tensor before it is computed."""
    shape: tuple[int, ...]
    dtype: DType

    def __str__(self):
        return f"{self.dtype.name}{list(self.shape)}"


OPS: dict[str, "Op"] = {}
_dispatch: Callable | None = None


_convert: Callable | None = None


def set_dispatcher(fn: Callable, convert: Callable) -> None:
    """Install ``fn(op, inputs, attrs) -> tensor``, the one place ops are executed or traced,
    and ``convert(x) -> tensor`` for Python scalars, lists and arrays."""
    global _dispatch, _convert
    _dispatch, _convert = fn, convert


def as_tensor(x):
    """``x`` as a tensor of the Python API (a tensor is returned as is)."""
    return _convert(x)


class Op:
    def __init__(self, name: str, *, infer, reference, grad=None, kernel=None, doc: str = ""):
        if name in OPS:
            raise ValueError(f"op {name!r} is defined twice")
        self.name, self.infer, self.reference, self.grad, self.kernel = name, infer, reference, grad, kernel
        self.__doc__ = doc
        OPS[name] = self

    def __call__(self, *inputs, **attrs):
        if _dispatch is None:
            raise RuntimeError("no dispatcher installed: import webtensor")
        return _dispatch(self, inputs, attrs)

    def __repr__(self):
        return f"<op {self.name}>"
