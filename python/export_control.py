"""Exporting signatures that hold control flow (``cond``, ``while_loop``, ``scan``): a graph cut into
straight-line *pieces* and a *program* that the loaders run on the host (``docs/artifact.md``,
"Control flow").

As ``core/runtime/control.py`` runs such graphs: the graph is cut at its control nodes; each run of
ordinary nodes between them becomes a piece, a graph without control flow that ``export`` compiles
and every backend exports exactly like a signature (a wasm driver, a list of WGSL dispatches); the
control nodes become steps of the program (``cond``: a predicate and two branch programs; ``while``:
a condition program, a body program, the loop variables, the sequences sliced per iteration, the
stacked per-iteration values and ``maximum_iterations``), recursively for the sub-graphs.

Host values. Every tensor that crosses a cut (a piece's input or output, a control step's operand
or result, a program's input or output) is a numbered *value* of the signature's ``"values"``
table. A constant or a Variable passed into a branch or loop body is not a value: the sub-graph's
input is bound to it (a constant embedded in the pieces that read it, a Variable read in place by
them), so an RNN's weights are never copied per iteration. A constant or Variable that must be a
value (a loop variable's initial value, a program's output) is copied out by a piece of its own.
"""
from __future__ import annotations

from math import prod

from .core import passes
from .core.control import split_at_control
from .core.graph import Graph, Node, Value
from .core.op import Aval
from .core.ops.movement import broadcast_to_op

UNIFORM_MIN_ELEMENTS = 256      # a constant this large that repeats one value is written as a fill


def _optimized(device, graph: Graph) -> Graph:
    return passes.optimize(graph, lambda op, datas, attrs, in_avals, out_aval:
                           device.execute(op, datas, attrs, in_avals, out_aval))


class Split:
    """A signature's graph cut into pieces (``pieces``: ``(graph, input ids, output ids)``; each
    graph's ``captures`` bind Variables) and control programs (``programs``, the signature's first),
    over the value table ``values`` (avals by id). ``updates``: ``(Variable, value id)`` assigned after the program.
    ``length_loops``: the while nodes of ``graph`` that step over a symbolic length (``export_length.py``;
    their steps are marked ``"length": true``)."""

    def __init__(self, graph: Graph, device, length_loops=frozenset()):
        self.device = device
        self.length_loops = length_loops             # while nodes that step over a symbolic length
        self.values: list = []
        self.pieces: list[tuple[Graph, list[int], list[int]]] = []
        self.programs: list = []                     # programs[0]: the signature's; a child after its parent
        self.ids: dict[Value, int] = {}
        self.parts: dict[Value, list[int]] = {}      # a control node's result -> its parts' ids
        _, updates = self._program(graph, {v: var for v, var in graph.captures}, {},
                                              list(graph.inputs), list(graph.outputs),
                                              [v for _, v in graph.updates])
        self.updates = [(var, i) for (var, _), i in zip(graph.updates, updates)]

    def _new(self, aval) -> int:
        self.values.append(aval)
        return len(self.values) - 1

    def _id(self, v: Value) -> int:
        if v not in self.ids:
            self.ids[v] = self._new(v.aval)
        return self.ids[v]

    def _program(self, g: Graph, var_of: dict, const_of: dict, inputs: list, outputs: list, extra=()):
        """The program of graph ``g`` whose values ``var_of`` are Variables, ``const_of`` constants
        (besides ``g.consts``) and ``inputs`` host values; returns it, and when ``extra`` is given
        (update values) also their ids. Returns the program's index in ``programs``."""
        index = len(self.programs)
        self.programs.append(None)
        consts = {**g.consts, **const_of}
        steps: list = []
        ins = [self._id(v) for v in inputs]
        at_end = set(outputs) | set(extra)

        def host(vs: list) -> list:
            """Ids of ``vs``; constants and Variables among them are copied out by a piece first."""
            bound = list(dict.fromkeys(v for v in vs if v not in self.ids and (v in consts or v in var_of)))
            if bound:
                filled = {v: self._uniform(v, consts[v]) for v in bound if v in consts}
                filled = {v: s for v, s in filled.items() if s is not None}
                self._piece(Graph(captures=[(v, var_of[v]) for v in bound if v in var_of],
                                  consts={**{v: consts[v] for v in bound if v in consts and v not in filled},
                                          **{s.inputs[0]: data for s, data in filled.values()}},
                                  nodes=[s for s, _ in filled.values()], outputs=bound), steps)
            return [self._id(v) for v in vs]

        for part in split_at_control(g.nodes, at_end):
            if part[0] == "nodes":
                _, run, used, outs = part
                self._piece(Graph(inputs=[v for v in used if v not in consts and v not in var_of],
                                  captures=[(v, var_of[v]) for v in used if v in var_of],
                                  consts={v: consts[v] for v in used if v in consts},
                                  nodes=run, outputs=outs), steps)
                continue
            n = part[1]
            if n.op.kind == "get":
                self.ids[n.out] = self.parts[n.inputs[0]][n.attrs["index"]]
            elif n.op.kind == "cond":
                steps.append(self._cond(n, var_of, consts, host))
            else:
                steps.append(self._while(n, var_of, consts, host))
        self.programs[index] = {"inputs": ins, "steps": steps, "outputs": host(list(outputs))}
        return index, host(list(extra))

    def _uniform(self, v: Value, data):
        """A large constant of one repeated value (a loop's zero accumulators, zero initial states) as
        ``(broadcast_to node of a scalar constant, that scalar's data)``, so the artifact stores one
        element of it; else None."""
        n = prod(v.aval.shape)
        if n < UNIFORM_MIN_ELEMENTS:
            return None
        host = bytes(self.device.to_host_bytes(data, v.aval))
        size = len(host) // n
        if host != host[:size] * n:
            return None
        scalar = Value(Aval((), v.aval.dtype))
        return (Node(broadcast_to_op, [scalar], {"shape": tuple(v.aval.shape)}, v),
                self.device.from_host(host[:size], scalar.aval))

    def _piece(self, graph: Graph, steps: list) -> None:
        self.pieces.append((graph, [self._id(v) for v in graph.inputs], [self._id(v) for v in graph.outputs]))
        steps.append({"piece": len(self.pieces) - 1})

    def _bind(self, sub: Graph, operands: list, sub_inputs: list, var_of: dict, consts: dict):
        """A sub-graph's inputs bound to the node's ``operands``: ``(sub var_of, sub const_of, the
        sub-graph inputs that stay host values, the operands they take)``."""
        svar, sconst, kept, taken = {}, {}, [], []
        for op_v, in_v in zip(operands, sub_inputs):
            if op_v not in self.ids and op_v in var_of:
                svar[in_v] = var_of[op_v]
            elif op_v not in self.ids and op_v in consts:
                sconst[in_v] = consts[op_v]
            else:
                kept.append(in_v)
                taken.append(op_v)
        return svar, sconst, kept, taken

    def _results(self, n) -> list[int]:
        self.parts[n.out] = [self._new(a) for a in n.out.aval.avals]
        return self.parts[n.out]

    def _cond(self, n, var_of, consts, host) -> dict:
        pred, operands = n.inputs[0], list(n.inputs[1:])
        branches, taken = [], None
        for g in n.attrs["branches"]:
            g = _optimized(self.device, g)
            svar, sconst, kept, t = self._bind(g, operands, g.inputs, var_of, consts)
            taken = t
            branches.append(self._program(g, svar, sconst, kept, list(g.outputs))[0])
        return {"cond": {"pred": host([pred])[0], "operands": host(taken), "branches": branches,
                         "outputs": self._results(n)}}

    def _while(self, n, var_of, consts, host) -> dict:
        a = n.attrs
        k, ns = a["n_vars"], a["n_sliced"]
        vars_, seqs, operands = list(n.inputs[:k]), list(n.inputs[k:k + ns]), list(n.inputs[k + ns:])
        body = _optimized(self.device, a["body"])
        cond = _optimized(self.device, a["cond"])
        svar, sconst, kept, taken = self._bind(body, operands, body.inputs[k + ns:], var_of, consts)
        body_prog = self._program(body, svar, sconst, list(body.inputs[:k + ns]) + kept, list(body.outputs))[0]
        always = not cond.nodes and cond.outputs[0] in cond.consts and _truthy(self.device, cond.consts[cond.outputs[0]],
                                                                               cond.outputs[0].aval)
        cond_prog = None
        if not always:
            cvar, cconst, ckept, _ = self._bind(cond, operands, cond.inputs[k:], var_of, consts)
            cond_prog = self._program(cond, cvar, cconst, list(cond.inputs[:k]) + ckept, list(cond.outputs))[0]
        step = {"vars": host(vars_), "seqs": host(seqs), "operands": host(taken), "body": body_prog,
                "reverse": bool(a["reverse"]), "outputs": self._results(n)}
        if cond_prog is not None:
            step["cond"] = cond_prog
        if a["maximum_iterations"] is not None:
            step["maximum_iterations"] = int(a["maximum_iterations"])
        if n in self.length_loops:
            step["length"] = True
        return {"while": step}


def _truthy(device, data, aval) -> bool:
    return bool(device.to_host_bytes(data, aval)[0])
