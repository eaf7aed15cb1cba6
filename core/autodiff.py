"""Reverse-mode autodiff over a recorded list of op applications.

The same routine serves ``GradientTape`` (eager: the list is the tape) and
traced functions (the list is built while tracing, so the gradient lands in the
same graph as the forward pass). Gradients are computed by calling ops, so they
are themselves recorded by any outer tape: that is how higher-order gradients work.
Source: the classic adjoint method, e.g. Griewank & Walther, *Evaluating
Derivatives* (2008), ch. 3; structured as in micrograd's ``backward``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .ops.namespace import ops


@dataclass(eq=False)
class Record:
    """One op application: ``out = op(*inputs, **attrs)`` (inputs and out are tensors; ``out`` is a
    tuple of tensors for a control-flow op, ``core/control.py``)."""
    op: Any
    inputs: tuple
    attrs: dict
    out: Any


def backward(records: list[Record], target, seed, sources: list) -> list:
    """Vector-Jacobian product of ``target`` (seeded with ``seed``) with respect to ``sources``.

    Returns one gradient per source (``None`` where the source does not influence the target).
    """
    return backward_many(records, [(target, seed)], sources)


def backward_many(records: list[Record], seeded: list, sources: list) -> list:
    """:func:`backward` of several ``(target, seed)`` pairs in one pass (their vector-Jacobian
    products add): targets that share ops are walked once, not once each."""
    grads: dict[int, Any] = {}
    for target, seed in seeded:
        prev = grads.get(id(target))
        grads[id(target)] = seed if prev is None else prev + seed
    for r in reversed(records):
        if isinstance(r.out, tuple):    # a control-flow op's results: its rule takes one seed each
            g = tuple(grads.get(id(o)) for o in r.out)
            if all(x is None for x in g):
                continue
        else:
            g = grads.get(id(r.out))
        if g is None or r.op.grad is None:
            continue
        in_grads = r.op.grad(g, r.out, *r.inputs, **r.attrs)
        for x, gx in zip(r.inputs, in_grads):
            if gx is None or not getattr(x, "dtype", None) or not x.dtype.is_floating:
                continue
            if gx.dtype != x.dtype:     # a gradient has its input's dtype (float16 beside float32: mixed precision)
                gx = ops.cast(gx, dtype=x.dtype)
            prev = grads.get(id(x))
            grads[id(x)] = gx if prev is None else prev + gx
    return [grads.get(id(s)) for s in sources]
