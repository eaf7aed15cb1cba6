"""``Op``: one op, all its rules side by side (the JAX ``Primitive`` idea).

An op carries
- ``infer(*avals, **attrs) -> Aval``: shape/dtype inference with clear errors;
- ``reference(*arrays, **attrs)``: the numpy oracle;
- ``grad(g, y, *xs, **attrs) -> tuple``: the vector-Jacobian product, written with other ops
  (``None`` for an input with no gradient);
- ``kernel(in_avals, out_aval, **attrs) -> Kernel``: its kernel in the kernel IR.

Calling an op (``mul(x, y)``) first checks the call against the op's signature
(:mod:`webtensor.core.signature`: the tensor inputs are ``infer``'s positional parameters, the
attributes its keyword-only ones), then goes through the one dispatch point that the Python
API installs (:func:`set_dispatcher`): eager execution on a device, or a node in the
graph being traced, and a record on any active ``GradientTape``.
Attributes are hashable keyword arguments; they key kernel caches and CSE.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .dtypes import DType
from .kernel_ir import Kernel
from . import dispatch
from .dispatch import as_tensor, first_out_of_range, known_values, set_dispatcher  # noqa: F401 (re-exported)
from .signature import NAME, Signature


@dataclass(frozen=True)
class Aval:
    """Abstract value: what is known of a tensor before it is computed."""
    shape: tuple[int, ...]
    dtype: DType

    def __str__(self):
        return f"{self.dtype.name}{list(self.shape)}"


OPS: dict[str, "Op"] = {}
class Op:
    """A primitive op. ``inputs`` names the tensor inputs where ``infer`` takes ``*xs``;
    ``attrs`` maps attribute names to a kind (:mod:`webtensor.core.signature`) for attributes
    checked on every call (those of primitives that users call directly)."""

    def __init__(self, name: str, *, infer, reference, grad=None, kernel=None, doc: str = "", inputs=None,
                 attrs=None):
        if name in OPS:
            raise ValueError(f"op {name!r} is defined twice")
        self.name, self.infer, self.reference, self.grad, self.kernel = name, infer, reference, grad, kernel
        self.__doc__ = doc
        self.signature = _signature_of(name, infer, inputs, attrs or {})
        self.__signature__ = inspect.Signature(
            # tensors by position or by name (``add(x=a, y=b)``), as check_op_call accepts them
            [inspect.Parameter(n, inspect.Parameter.VAR_POSITIONAL if self.signature.variadic
                               else inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in self.signature.tensors] +
            [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in self.signature.attrs] + [NAME])
        OPS[name] = self

    def __call__(self, *inputs, **attrs):
        sig = self.signature
        if len(inputs) != sig.arity or attrs.keys() != sig.attr_names:
            inputs, attrs = sig.check_op_call(inputs, attrs)
        if sig.checked:
            attrs = sig.check_attrs(attrs)
        return dispatch.run(self, inputs, attrs)

    def __repr__(self):
        return f"<op {self.name}>"


def _signature_of(name, infer, inputs, kinds) -> Signature:
    """An op's signature from its ``infer`` rule: positional parameters are the tensor inputs
    (``*xs``: any number, at least one), keyword-only parameters the attributes."""
    tensors, attrs, variadic = [], {}, False
    for p in inspect.signature(infer).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            tensors.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            tensors.append(p.name)
            variadic = True
        elif p.kind is p.KEYWORD_ONLY:
            attrs[p.name] = kinds.get(p.name)
    if inputs is not None:
        tensors, variadic = list(inputs), False
    unknown = set(kinds) - set(attrs)
    if unknown:
        raise TypeError(f"{name}: kinds declared for unknown attributes {sorted(unknown)}")
    return Signature(name, tensors, attrs, variadic=variadic)
