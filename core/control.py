"""Control flow in graphs: the node kinds ``cond`` and ``while`` and their results.

A control-flow node holds sub-graphs (:class:`~webtensor.core.graph.Graph`) in its attributes
and has several results. Graph nodes have one output each, so the node's output is one value of
a :class:`TupleAval`, and ``get`` nodes (attribute ``index``) project its parts:

- ``cond``: inputs ``(pred, *operands)``; attributes ``branches=(false_graph, true_graph)``. Both
  branch graphs take the operands as their inputs (in order; a branch may ignore some) and return
  values of the same avals.
- ``while``: inputs ``(*loop_vars, *operands)``; attributes ``cond`` (a graph of
  ``loop_vars + operands`` returning a bool scalar), ``body`` (a graph of the same inputs
  returning the next loop vars, same avals), ``n_vars`` and ``maximum_iterations`` (an int, or
  None: unbounded). Its results are the loop vars after the last iteration.

The API layer (``webtensor.cond``, ``webtensor.while_loop``: ``python/control.py``) builds these
nodes and gives them their gradient rules; the runtime layer (``core/runtime/control.py``) runs
graphs that hold them, as host-side loops over executables that each backend compiles as usual.
Control nodes are never constant-folded (``core/passes.py``) and have no kernel: a backend never
sees them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TupleAval:
    """The abstract value of a control node's output: several tensors (their ``avals``)."""
    avals: tuple
    shape: tuple = ()       # as Aval's, so passes that size values (constant folding) read it
    dtype: object = None

    def __str__(self):
        return f"({', '.join(map(str, self.avals))})"


class ControlOp:
    """A control-flow node kind. ``kind``: ``'cond'``, ``'while'`` or ``'get'``; ``grad``: the
    vector-Jacobian rule ``grad(gs, outs, *inputs, **attrs)`` (set by the API layer), whose ``gs``
    and ``outs`` are tuples (one per result; ``gs`` entries None where no gradient flows)."""
    control = True
    kernel = None

    def __init__(self, name: str, kind: str, grad=None):
        self.name, self.kind, self.grad = name, kind, grad

    def __repr__(self):
        return f"<control op {self.name}>"


def is_control(op) -> bool:
    """Whether ``op`` is a control-flow node kind (it has no kernel and is never folded)."""
    return getattr(op, "control", False)


def has_control(graph) -> bool:
    """Whether ``graph`` holds a control-flow node."""
    return any(is_control(n.op) for n in graph.nodes)


def split_at_control(nodes: list, needed_at_end) -> list:
    """``nodes`` (a graph's, in order) cut at its control nodes, as the host-side executor
    (``core/runtime/control.py``) and the exporter (``python/export_control.py``) both need:
    ``("nodes", run, used, outs)`` for each maximal run of ordinary nodes — ``used``: the values it
    reads and does not define (first use first), ``outs``: the values it defines that a later node
    reads or that are in ``needed_at_end`` — and ``("control", node)`` for each control node."""
    last_use: dict = {}                  # value -> index of the last node that reads it
    for i, n in enumerate(nodes):
        for v in n.inputs:
            last_use[v] = i
    parts, run = [], []

    def close(end: int):
        if run:
            defined = {n.out for n in run}
            used = list(dict.fromkeys(v for n in run for v in n.inputs if v not in defined))
            outs = [n.out for n in run if n.out in needed_at_end or last_use.get(n.out, -1) >= end]
            parts.append(("nodes", list(run), used, outs))
            run.clear()
    for i, n in enumerate(nodes):
        if is_control(n.op):
            close(i)
            parts.append(("control", n))
        else:
            run.append(n)
    close(len(nodes))
    return parts
