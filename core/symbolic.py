"""Graphs with symbolic sizes: specialising a graph traced with :class:`~webtensor.core.shapes.Dim`
sizes (the ``None`` dimensions of an ``input_signature``) for concrete sizes.

A graph is traced once with symbolic input shapes; each op's ``infer`` computes with the symbols
(``Dim`` is a polynomial), and attributes that hold sizes (``reshape``'s target, ``broadcast_to``'s
shape) hold ``Dim`` values. :func:`specialize` binds the symbols from the concrete input shapes,
substitutes them into every attribute and re-runs each op's ``infer`` on concrete avals: the
result is an ordinary fixed-shape graph that the passes and devices compile as before. Values that
depend on a size (``mean``'s ``1 / n``, ``webtensor.shape``) are computed in the graph from
``broadcast_to`` of a constant (``size_value``), so they take the run-time size and constant-fold
after specialisation.
"""
from __future__ import annotations

from .control import is_control
from .graph import Graph, Node, Value
from .op import Aval
from .shapes import Dim, evaluate_shape, is_symbolic


def bind(symbolic: list, concrete: list, what: str = "input") -> dict:
    """``{symbol: size}`` from the symbolic input shapes (each ``Dim`` a lone symbol) and the
    concrete ones. Raises ValueError when a shape does not match or one symbol gets two sizes."""
    sizes: dict = {}
    for i, (s, c) in enumerate(zip(symbolic, concrete)):
        if len(s) != len(c):
            raise ValueError(f"{what} {i}: expected rank {len(s)} (shape {_fmt(s)}), got shape {tuple(c)}")
        for d, n in zip(s, c):
            if isinstance(d, Dim):
                (name,), _ = d.terms[0]
                if sizes.setdefault(name, n) != n:
                    raise ValueError(f"{what} {i}: size {name} is {sizes[name]} elsewhere, {n} here")
            elif d != n:
                raise ValueError(f"{what} {i}: expected shape {_fmt(s)}, got {tuple(c)}")
    return sizes


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if isinstance(d, Dim) else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _subst(x, sizes):
    if isinstance(x, Dim):
        return x.evaluate(sizes)
    if type(x) is tuple:
        return tuple(_subst(a, sizes) for a in x)
    if type(x) is list:
        return [_subst(a, sizes) for a in x]
    return x


def graph_is_symbolic(g: Graph) -> bool:
    """Whether any value of ``g`` has a symbolic size."""
    return any(is_symbolic(v.aval.shape) for v in g.inputs) or any(is_symbolic(n.out.aval.shape) for n in g.nodes)


def specialize(g: Graph, sizes: dict) -> Graph:
    """``g`` with every symbol replaced by its size in ``sizes``: new values with concrete avals,
    each node's attributes substituted and its ``infer`` re-run (which raises the op's own error for
    sizes that do not fit, e.g. a reshape). Constants and captures are shared with ``g``.

    Raises:
        NotImplementedError: a control-flow node (its branches are traced graphs of their own).
    """
    env: dict[Value, Value] = {}

    def new(v: Value, aval: Aval | None = None) -> Value:
        nv = env[v] = Value(aval or Aval(evaluate_shape(v.aval.shape, sizes), v.aval.dtype))
        return nv

    out = Graph(inputs=[new(v) for v in g.inputs], captures=[(new(v), k) for v, k in g.captures])
    for v, data in g.consts.items():
        out.consts[new(v)] = data
    for n in g.nodes:
        if is_control(n.op):
            raise NotImplementedError(f"{n.op.name}: control flow in a function with symbolic sizes "
                                      "(an input_signature with None dimensions) is not supported yet")
        ins = [env[v] for v in n.inputs]
        attrs = {k: _subst(a, sizes) for k, a in n.attrs.items()}
        aval = n.op.infer(*(v.aval for v in ins), **attrs)
        out.nodes.append(Node(n.op, ins, attrs, new(n.out, aval)))
    out.outputs = [env[v] for v in g.outputs]
    out.updates = [(k, env[v]) for k, v in g.updates]
    return out
