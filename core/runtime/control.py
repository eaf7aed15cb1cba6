"""Running graphs with control flow (``core/control.py``): host-side loops over compiled segments.

Why on the host: every backend's executable is a sequence of kernel calls that the host starts
with one call (``wasm``: one module whose ``run`` calls the fused kernels; ``webgpu``: one
command encoder of dispatches), and buffers are planned statically per executable. A graph with
control flow is cut at its control nodes into segments of ordinary nodes, each compiled by the
device exactly as a graph without control flow (fusion, arena, one host call); the control nodes
run here: ``cond`` reads its predicate (one scalar read back) and runs the chosen branch's
executable; ``while`` runs its cond and body executables until the cond is false or
``maximum_iterations`` is reached. Loop-carried values stay device buffers: an iteration costs
one host call per executable and one scalar read, not a copy of the state. Sub-graphs are
optimised and compiled once, the first time they run, and belong to the executable.

The same code serves every device (``reference``, ``wasm``, ``webgpu``): it uses only the
``Device`` interface (``compile``, ``to_host_bytes``).
"""
from __future__ import annotations

import array
from math import prod

from .. import passes
from ..ops.movement import concat_op, gather_op
from ..control import has_control, split_at_control
from ..dtypes import int32
from ..graph import Graph, Node, Value
from ..op import Aval

GROUP = 8           # inputs per concat kernel when stacking a loop's per-iteration values
_INDEX = Aval((), int32)


def compile_graph(device, graph: Graph):
    """``device.compile(graph)``, or a :class:`ControlExecutable` when the graph holds control flow.
    Returns an object with ``run(inputs, captures) -> (outputs, updates)`` and ``device``."""
    if not has_control(graph):
        return device.compile(graph)
    return ControlExecutable(device, graph)


def _optimized(device, graph: Graph) -> Graph:
    return passes.optimize(graph, lambda op, datas, attrs, in_avals, out_aval:
                           device.execute(op, datas, attrs, in_avals, out_aval))


class _Sub:
    """A sub-graph (a branch, a loop's cond or body) compiled on first use."""
    __slots__ = ("device", "graph", "exe")

    def __init__(self, device, graph: Graph):
        self.device, self.graph, self.exe = device, graph, None

    def run(self, inputs: list) -> list:
        if self.exe is None:
            self.exe = compile_graph(self.device, _optimized(self.device, self.graph))
        return self.exe.run(list(inputs), [])[0]


class ControlExecutable:
    """A graph cut into steps: ``("exe", executable, input values, output values)`` for a segment
    of ordinary nodes, ``("node", node)`` for a control node or a ``get``."""

    def __init__(self, device, graph: Graph):
        self.device, self.graph = device, graph
        self.steps: list = []
        self._subs: dict = {}
        self._indices: list = []
        for part in split_at_control(graph.nodes, set(graph.outputs) | {v for _, v in graph.updates}):
            if part[0] == "nodes":
                _, run, ins, outs = part
                consts = {v: graph.consts[v] for v in ins if v in graph.consts}
                ins = [v for v in ins if v not in consts]
                sub = Graph(inputs=ins, consts=consts, nodes=run, outputs=outs)
                self.steps.append(("exe", device.compile(sub), ins, outs))
                continue
            n = part[1]
            self.steps.append(("node", n))
            if n.op.kind == "cond":
                self._subs[n] = [_Sub(device, g) for g in n.attrs["branches"]]
            elif n.op.kind == "while":
                a = n.attrs
                seqs = [v.aval for v in n.inputs[a["n_vars"]:a["n_vars"] + a["n_sliced"]]]
                self._subs[n] = (_Sub(device, a["cond"]),
                                 _Sub(device, _then_test(a["body"], a["cond"], a["n_vars"], seqs)))

    def run(self, inputs, captures):
        g = self.graph
        env = g.environment(inputs, captures)
        for step in self.steps:
            if step[0] == "exe":
                _, exe, ins, outs = step
                env.update(zip(outs, exe.run([env[v] for v in ins], [])[0]))
            else:
                n = step[1]
                args = [env[v] for v in n.inputs]
                env[n.out] = args[0][n.attrs["index"]] if n.op.kind == "get" else self._control(n, args)
        return [env[v] for v in g.outputs], [env[v] for _, v in g.updates]

    def _truth(self, data, aval) -> bool:
        try:
            return bool(self.device.to_host_bytes(data, aval)[0])
        except RuntimeError as e:       # a browser GPU: readback must be awaited
            raise RuntimeError(f"cond/while_loop on {self.device.name}: a predicate is read back on every branch "
                               f"or iteration, which this device cannot do synchronously ({e})") from None

    def _control(self, n, args: list) -> list:
        if n.op.kind == "cond":
            pred = self._truth(args[0], n.inputs[0].aval)
            return self._subs[n][int(pred)].run(args[1:])
        a = n.attrs
        cond, step = self._subs[n]
        k, ns, limit, rev = a["n_vars"], a["n_sliced"], a["maximum_iterations"], a["reverse"]
        vars_, seqs, rest = args[:k], args[k:k + ns], args[k + ns:]
        rows = n.inputs[k].aval.shape[0] if ns else 0
        bool_aval = a["cond"].outputs[0].aval
        ys: list = []
        go, i = limit != 0 and self._truth(cond.run(vars_ + rest)[0], bool_aval), 0
        while go and (limit is None or i < limit):
            at = [self._index(rows - 1 - i if rev else i)] if ns else []
            *outs, more = step.run(vars_ + seqs + at + rest)   # one executable: rows, body, next test
            vars_ = outs[:k]
            ys.append(outs[k:])
            go, i = self._truth(more, bool_aval), i + 1
        return vars_ + self._stacks(ys, n.out.aval.avals[k:], rev)

    def _index(self, i: int):
        """Device int32 scalar ``i`` (kept: each loop slices its sequences at the same rows every run)."""
        while len(self._indices) <= i:
            self._indices.append(self.device.from_host(array.array("i", [len(self._indices)]), _INDEX))
        return self._indices[i]

    def _stacks(self, ys: list, avals, rev: bool) -> list:
        """Per-iteration values (each ``[1, ...]``) stacked into ``[maximum_iterations, ...]`` (rows of
        iterations that did not run are zeros; ``rev``: the first iteration's is the last row)."""
        out = []
        for m, aval in enumerate(avals):
            row = Aval((1,) + tuple(aval.shape[1:]), aval.dtype)
            parts = [(y[m], 1) for y in ys]
            if len(parts) < aval.shape[0]:
                parts += [(self._zeros(row), 1)] * (aval.shape[0] - len(parts))
            if rev:
                parts.reverse()
            stack = getattr(self.device, "stack_rows", None)     # a device's copy, where it has one
            out.append(self._zeros(aval) if not parts else stack([d for d, _ in parts], aval) if stack
                       else self._concat(parts, aval))
        return out

    def _concat(self, parts: list, aval):
        """``(data, rows)`` parts concatenated along axis 0, in groups of at most ``GROUP`` (a concat
        kernel selects among its inputs per element: one of n inputs would cost O(n) per element)."""
        rest = tuple(aval.shape[1:])
        while len(parts) > 1:
            merged = []
            for j in range(0, len(parts), GROUP):
                group = parts[j:j + GROUP]
                total = sum(r for _, r in group)
                data = group[0][0] if len(group) == 1 else self.device.execute(
                    concat_op, [d for d, _ in group], {"axis": 0},
                    [Aval((r,) + rest, aval.dtype) for _, r in group], Aval((total,) + rest, aval.dtype))
                merged.append((data, total))
            parts = merged
        return parts[0][0]

    def _zeros(self, aval):
        return self.device.from_host(bytes(aval.dtype.itemsize * prod(aval.shape)), aval)

def _then_test(body: Graph, cond: Graph, k: int, seqs: list) -> Graph:
    """One graph for a loop iteration: the rows of the sequences (``seqs``: their avals; gathered at
    an int32 index input), the body, then the condition on the new loop variables. Inputs: the ``k``
    loop variables, the sequences, the index (if any sequence), the body's other inputs; outputs:
    the new variables, the per-iteration values, then the bool. One host call per iteration."""
    ns = len(seqs)
    seq_vals = [Value(a) for a in seqs]
    index = [Value(_INDEX)] if ns else []
    rows = [Node(gather_op, [q] + index, {"axis": 0}, r) for q, r in zip(seq_vals, body.inputs[k:k + ns])]
    subst = dict(zip(cond.inputs, list(body.outputs[:k]) + list(body.inputs[k + ns:])))
    s = lambda v: subst.get(v, v)
    nodes = rows + list(body.nodes) + [Node(n.op, [s(v) for v in n.inputs], n.attrs, n.out) for n in cond.nodes]
    return Graph(inputs=list(body.inputs[:k]) + seq_vals + index + list(body.inputs[k + ns:]),
                 consts={**body.consts, **cond.consts}, nodes=nodes, outputs=list(body.outputs) + [s(cond.outputs[0])])
