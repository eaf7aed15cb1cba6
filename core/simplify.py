"""Shared kernel-IR utilities for index simplification (issue 13, "two simplifiers"), used by both
backends (``wasm/analysis.py``, ``webgpu/wgsl.py``):

* :func:`nodes` -- the one topological traversal of an expression DAG (iterative);
* :func:`substitute` -- bottom-up rebuild with a per-node replacement hook;
* :func:`interval` -- interval arithmetic of one integer op (add, sub, mul, max, min, where,
  floor div and mod by a positive constant), the core of both value-range analyses;
* :func:`compare_ranges` -- the value of an integer comparison decided by operand value ranges
  (how padding and bounds checks disappear).

Not yet moved here (see docs/architecture.md, "Index simplification"): the range analyses and
rewrite rules themselves, which still differ between ``wasm/analysis.py`` (affine forms,
floor-div/mod cancellation, ``c*(x//c) + x%c -> x``) and ``webgpu/wgsl.py`` (local rules over
``lin`` ids). The backend-private node kinds ``lda`` (wasm: a load with its affine element offset)
and ``lin``/``ld`` (WGSL: a dimension group's linear id, a load at a flat offset) are backend-local:
they never leave the backend that creates them and are not part of core's ``Expr`` vocabulary.
"""
from __future__ import annotations

from . import kernel_ir as K

I32MIN, I32MAX = -(1 << 31), (1 << 31) - 1


def nodes(root: K.Expr, operand_order: str = "first") -> list[K.Expr]:
    """Distinct nodes of the DAG in topological order (operands before users); iterative, so deep
    fused graphs do not hit the recursion limit. ``operand_order="first"`` visits a node's operands
    first to last (the first operand's subtree comes first); ``"last"`` visits them last to first
    (the order WGSL emission has always used for its ``let`` bindings)."""
    order, seen, stack = [], set(), [(root, False)]
    first = operand_order == "first"
    while stack:
        e, done = stack.pop()
        if done:
            order.append(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        stack.append((e, True))
        stack.extend((a, False) for a in (reversed(e.args) if first else e.args) if a not in seen)
    return order


def substitute(e: K.Expr, fn, memo) -> K.Expr:
    """Rebuild bottom-up; ``fn(node_with_new_args)`` may return a replacement (None keeps it)."""
    r = memo.get(e)
    if r is None:
        args = tuple(substitute(a, fn, memo) for a in e.args)
        new = e if args == e.args else K.Expr(e.op, e.dtype, args, e.arg)
        r = fn(new)
        r = new if r is None else r
        memo[e] = r
    return r


def compare_ranges(op: str, a, b):
    """The comparison ``x op y``'s value for every x in inclusive range a and y in range b, or None
    if it varies (or op is not a comparison)."""
    if op == "lt":
        return True if a[1] < b[0] else False if a[0] >= b[1] else None
    if op == "le":
        return True if a[1] <= b[0] else False if a[0] > b[1] else None
    if op == "gt":
        return True if a[0] > b[1] else False if a[1] <= b[0] else None
    if op == "ge":
        return True if a[0] >= b[1] else False if a[1] < b[0] else None
    if op not in ("eq", "ne"):
        return None
    if a[0] == a[1] == b[0] == b[1]:
        return op == "eq"
    if a[1] < b[0] or b[1] < a[0]:
        return op == "ne"
    return None


def interval(op: str, a, b):
    """Inclusive value range of ``x op y`` for x in range a and y in range b (integer arithmetic),
    or None where this rule does not know it. ``idiv``/``mod`` need b a single positive value;
    ``where`` takes a and b as the ranges of its two branches (their hull)."""
    (a0, a1), (b0, b1) = a, b
    if op == "add":
        return (a0 + b0, a1 + b1)
    if op == "sub":
        return (a0 - b1, a1 - b0)
    if op == "mul":
        p = (a0 * b0, a0 * b1, a1 * b0, a1 * b1)
        return (min(p), max(p))
    if op == "max":
        return (max(a0, b0), max(a1, b1))
    if op == "min":
        return (min(a0, b0), min(a1, b1))
    if op == "where":
        return (min(a0, b0), max(a1, b1))
    if op in ("idiv", "mod") and b0 == b1 and b0 > 0:
        return (a0 // b0, a1 // b0) if op == "idiv" else (0, b0 - 1)
    return None
