"""Graph passes: pure functions from a graph to a new graph.

- ``constant_fold``: nodes whose inputs are all constants become constants (control-flow nodes
  stay: ``core/control.py``);
- ``cse``: common-subexpression elimination (same op, same inputs, same attributes);
- ``dce``: dead-code elimination (nodes that reach no output or update go).
"""
from __future__ import annotations

from math import prod
from typing import Callable

from .control import is_control
from .graph import Graph, Node, Value

FOLD_LIMIT = 1 << 16  # elements: folding must not blow a small constant up into a big one


def _copy(g: Graph, nodes, consts=None, subst=None) -> Graph:
    subst = subst or {}
    s = lambda v: subst.get(v, v)
    return Graph(inputs=list(g.inputs), captures=list(g.captures),
                 consts=dict(g.consts if consts is None else consts),
                 nodes=[Node(n.op, [s(v) for v in n.inputs], n.attrs, n.out) for n in nodes],
                 outputs=[s(v) for v in g.outputs], updates=[(k, s(v)) for k, v in g.updates])


def constant_fold(g: Graph, evaluate: Callable) -> Graph:
    """Fold constant subgraphs with ``evaluate(op, datas, attrs, in_avals, out_aval) -> data``."""
    consts, kept = dict(g.consts), []
    for n in g.nodes:
        if all(v in consts for v in n.inputs) and prod(n.out.aval.shape) <= FOLD_LIMIT and not is_control(n.op):
            consts[n.out] = evaluate(n.op, [consts[v] for v in n.inputs], n.attrs,
                                     [v.aval for v in n.inputs], n.out.aval)
        else:
            kept.append(n)
    return dce(_copy(g, kept, consts))


def _key(n: Node):
    return (n.op.name, tuple(v.id for v in n.inputs), tuple(sorted(n.attrs.items(), key=lambda kv: kv[0])))


def cse(g: Graph) -> Graph:
    seen: dict = {}
    subst: dict[Value, Value] = {}
    kept = []
    for n in g.nodes:
        n = Node(n.op, [subst.get(v, v) for v in n.inputs], n.attrs, n.out)
        try:
            k = _key(n)
            hash(k)
        except TypeError:
            kept.append(n)
            continue
        if k in seen:
            subst[n.out] = seen[k]
        else:
            seen[k] = n.out
            kept.append(n)
    return _copy(g, kept, subst=subst)


def dce(g: Graph) -> Graph:
    live = set(g.outputs) | {v for _, v in g.updates}
    kept = []
    for n in reversed(g.nodes):
        if n.out in live:
            kept.append(n)
            live.update(n.inputs)
    kept.reverse()
    consts = {v: d for v, d in g.consts.items() if v in live}
    return _copy(g, kept, consts)


def optimize(g: Graph, evaluate: Callable | None = None) -> Graph:
    """The standard pipeline: CSE, then constant folding (when an evaluator is given), then DCE."""
    g = cse(g)
    if evaluate is not None:
        g = constant_fold(g, evaluate)
    return dce(g)
