"""The graph IR: nodes are op applications, edges are values (tensors).

A ``Graph`` is a pure function of its ``inputs`` (placeholders) and ``captures``
(variables read by reference at run time), with constants embedded, producing
``outputs`` and ``updates`` (new values for captured variables: how a traced
training step changes its parameters in place). Nodes are kept in topological
order; passes (``passes.py``) map a graph to a new graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Any

from .op import Aval, Op

_ids = count()


class Value:
    """An edge: one tensor flowing between nodes."""
    __slots__ = ("id", "aval")

    def __init__(self, aval: Aval):
        self.id = next(_ids)
        self.aval = aval

    def __repr__(self):
        return f"%{self.id}:{self.aval}"


@dataclass(eq=False)
class Node:
    op: Op
    inputs: list[Value]
    attrs: dict
    out: Value

    def __repr__(self):
        attrs = ", ".join(f"{k}={v}" for k, v in self.attrs.items())
        return f"{self.out} = {self.op.name}({', '.join(f'%{v.id}' for v in self.inputs)}{', ' if attrs else ''}{attrs})"


@dataclass(eq=False)
class Graph:
    inputs: list[Value] = field(default_factory=list)
    captures: list[tuple[Value, Any]] = field(default_factory=list)  # (value, variable key)
    consts: dict[Value, Any] = field(default_factory=dict)           # value -> concrete data
    nodes: list[Node] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    updates: list[tuple[Any, Value]] = field(default_factory=list)   # (variable key, new value)

    def add(self, op: Op, inputs: list[Value], attrs: dict, aval: Aval) -> Value:
        out = Value(aval)
        self.nodes.append(Node(op, list(inputs), dict(attrs), out))
        return out

    def producers(self) -> dict[Value, Node]:
        return {n.out: n for n in self.nodes}

    def consumers(self) -> dict[Value, list[Node]]:
        users: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                users.setdefault(v, []).append(n)
        return users

    def environment(self, inputs, captures) -> dict:
        """``{value: data}`` to start running the graph: its constants, ``inputs`` (in ``self.inputs``
        order) and ``captures`` (in ``self.captures`` order)."""
        env = dict(self.consts)
        env.update(zip(self.inputs, inputs))
        env.update(zip((v for v, _ in self.captures), captures))
        return env

    def __str__(self):
        lines = [f"graph({', '.join(map(repr, self.inputs))})"]
        lines += [f"  capture {v!r}" for v, _ in self.captures]
        lines += [f"  const {v!r}" for v in self.consts]
        lines += [f"  {n!r}" for n in self.nodes]
        lines.append(f"  return {', '.join(map(repr, self.outputs))}")
        lines += [f"  update {k!r} <- {v!r}" for k, v in self.updates]
        return "\n".join(lines)
