"""Graph -> Program: kernels with fusion, and a static buffer plan. Shared by all backends.

Each node's op gives one kernel (``op.kernel``). Fusion substitutes a producer's
``map`` expression into its consumer's loads (``idx(d)`` -> the consumer's index
expressions), so chains of elementwise and movement ops become one loop, and an
elementwise prologue folds into a reduction (``sum(exp(x - m))`` is one kernel).
A producer is fused when it is a ``map`` kernel and either has one consumer or is a
pure data movement (a single load); ``reshape`` of a materialised buffer is a view.
Kernels with a template hint keep their operands as plain loads so the template applies.

Epilogues: an elementwise consumer of a float32 reduction (a matmul's bias add, activation,
scaling, residual add; a mean's division) that reads the reduced value only at its own output
index, as the reduction's only user, becomes the reduction kernel's ``epilogue``
(``kernel_ir``'s docstring): it is computed before the store, in the same dispatch, with the
same float operations as the separate map kernel it replaces (results are bitwise equal).

The buffer plan gives every buffer a first and last step; ``plan_arena`` packs the
temporaries into one arena with liveness-based reuse, so running a program allocates nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from . import kernel_ir as K
from .graph import Graph, Value
from .simplify import nodes


@dataclass
class Buf:
    """A buffer of the program. ``role``: input | capture | const | temp."""
    id: int
    shape: tuple[int, ...]
    dtype: object
    role: str
    first: int = -1   # first step that writes or reads it
    last: int = -1    # last step that reads it (outputs and updates live to the end)

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * 4 if self.dtype.wasm in ("f32", "i32") else prod(self.shape) * self.dtype.itemsize


@dataclass
class Step:
    kernel: K.Kernel
    inputs: list[int]   # buffer ids, in the order of the kernel's inputs
    output: int


@dataclass
class Program:
    bufs: list[Buf] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    captures: list[int] = field(default_factory=list)
    consts: dict[int, object] = field(default_factory=dict)   # buffer id -> host/device data
    outputs: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)

    def __str__(self):
        out = [f"program: {len(self.steps)} kernels, {len(self.bufs)} buffers"]
        for i, s in enumerate(self.steps):
            out.append(f"[{i}] b{s.output} <- {s.kernel.kind} b{s.inputs}: {s.kernel}")
        return "\n".join(out)


def substitute(e: K.Expr, fn, memo=None) -> K.Expr:
    """Rebuild ``e`` bottom-up, replacing each node for which ``fn`` returns an Expr."""
    memo = {} if memo is None else memo
    if e in memo:
        return memo[e]
    args = tuple(substitute(a, fn, memo) for a in e.args)
    new = e if args == e.args else K.Expr(e.op, e.dtype, args, e.arg)
    r = fn(new)
    memo[e] = new if r is None else r
    return memo[e]


def _fuse(k: K.Kernel, ins: list, slot: int, producer: K.Kernel, prod_ins: list) -> tuple[K.Kernel, list]:
    """Inline ``producer`` (a map kernel) at every load of input ``slot`` of kernel ``k``."""
    base = len(ins)

    def repl(e):
        if e.op == "load" and e.arg == slot:
            index = e.args
            return substitute(producer.expr, lambda p: index[p.arg] if p.op == "idx" else
                              K.Expr("load", p.dtype, p.args, base + p.arg) if p.op == "load" else None, {})
        return None
    return _rebuild(k, substitute(k.expr, repl, {}), ins + list(prod_ins))


EPILOGUES = True   # fuse epilogues (module docstring); tests set it False to compare with the unfused program


def _epilogue_slot(k: K.Kernel, ins: list, red: dict, n_users: dict) -> int | None:
    """The input of map kernel ``k`` that is a pending reduction ``k`` can be the epilogue of: its only
    user, float32 like ``k``'s output, of ``k``'s shape, read only at ``k``'s own output index."""
    if k.kind != "map" or k.template is not None or k.out.dtype.name != "float32":
        return None
    def own(i, d):      # idx(d), or 0 along an extent of 1 (how broadcast_index writes it)
        return i == K.idx(d) or (k.space[d] == 1 and i.op == "const" and i.arg == 0)
    for slot, x in enumerate(ins):
        if x in red and n_users.get(x, 0) == 1 and red[x][0].out.shape == k.space:
            loads = [e for e in nodes(k.expr) if e.op == "load" and e.arg == slot]
            if all(all(own(i, d) for d, i in enumerate(e.args)) for e in loads):
                return slot
    return None


def _fuse_epilogue(red: K.Kernel, red_ins: list, k: K.Kernel, ins: list, slot: int) -> tuple[K.Kernel, list]:
    """Reduction ``red`` with map ``k`` (whose input ``slot`` is ``red``'s value) computed in its epilogue."""
    new_ins = list(red_ins)
    renum = {}
    for j, x in enumerate(ins):
        if j != slot:
            if x not in new_ins:
                new_ins.append(x)
            renum[j] = new_ins.index(x)
    acc = len(new_ins)
    identity = tuple(K.idx(d) for d in range(len(k.space)))
    prev = red.epilogue.expr if red.epilogue is not None else K.load(red.acc, identity, red.out.dtype)
    prev = substitute(prev, lambda e: K.Expr("load", e.dtype, e.args, acc) if e.op == "load" and e.arg == red.acc
                      else None, {})
    expr = substitute(k.expr, lambda e: (prev if e.arg == slot else K.Expr("load", e.dtype, e.args, renum[e.arg]))
                      if e.op == "load" else None, {})
    bufs = tuple(_buffer_of(x) for x in new_ins)
    epilogue = K.Kernel("map", bufs + (red.out,), k.out, k.space, expr)
    return K.Kernel(red.kind, bufs, k.out, red.space, red.expr, red.combiner, red.template, red.params,
                    epilogue), new_ins


def _is_movement(k: K.Kernel) -> bool:
    e = k.expr.args[0] if k.expr.op == "cast" else k.expr
    return k.kind == "map" and e.op in ("load", "const")


def compile_graph(g: Graph, fuse: bool = True) -> Program:
    """Lower a (optimised) graph to a Program."""
    prog = Program()
    buf_of: dict[Value, int] = {}

    def new_buf(v: Value, role: str) -> int:
        b = Buf(len(prog.bufs), tuple(v.aval.shape), v.aval.dtype, role)
        prog.bufs.append(b)
        buf_of[v] = b.id
        return b.id

    for v in g.inputs:
        prog.inputs.append(new_buf(v, "input"))
    for v, _ in g.captures:
        prog.captures.append(new_buf(v, "capture"))
    for v, data in g.consts.items():
        prog.consts[new_buf(v, "const")] = data

    n_users = {v: len({id(n) for n in ns}) for v, ns in g.consumers().items()}
    keep = set(g.outputs) | {v for _, v in g.updates}
    pending: dict[Value, tuple[K.Kernel, list[Value]]] = {}  # fusible maps not materialised (yet)
    red: dict[Value, tuple[K.Kernel, list[Value]]] = {}      # reductions that may take an epilogue (yet)
    alias: dict[Value, Value] = {}                          # reshape views of materialised buffers

    def materialise(v: Value):
        v = alias.get(v, v)
        if v in buf_of:
            return
        k, ins = pending.pop(v) if v in pending else red.pop(v)
        emit(v, k, ins)

    def emit(v, k, ins):
        for x in ins:
            materialise(x)
        out = new_buf(v, "temp")
        prog.steps.append(Step(k, [buf_of[alias.get(x, x)] for x in ins], out))

    def fusible(x):
        return x in pending and (n_users.get(x, 0) == 1 or _is_movement(pending[x][0]))

    for n in g.nodes:
        k = n.op.kernel([x.aval for x in n.inputs], n.out.aval, **n.attrs)
        ins = list(n.inputs)
        if fuse and n.op.name == "reshape" and n.out not in keep and ins[0] not in pending:
            alias[n.out] = alias.get(ins[0], ins[0])   # a view: same bytes, new shape
            continue
        while fuse and k.template is None:
            slot = next((i for i, x in enumerate(ins) if fusible(x)), None)
            if slot is None:
                break
            pk, pins = pending[ins[slot]]
            k, ins = _fuse(k, ins, slot, pk, pins)
        slot = _epilogue_slot(k, ins, red, n_users) if fuse and EPILOGUES else None
        if slot is not None:
            rk, rins = red.pop(ins[slot])
            k, ins = _fuse_epilogue(rk, rins, k, ins, slot)
        if fuse and k.kind == "map" and n.out not in keep:
            pending[n.out] = (k, ins)
        elif fuse and EPILOGUES and k.kind == "reduce" and k.combiner in ("sum", "prod", "max", "min") and \
                k.out.dtype.name == "float32" and n.out not in keep:
            red[n.out] = (k, ins)
        else:
            emit(n.out, k, ins)

    for v in list(g.outputs) + [v for _, v in g.updates]:
        materialise(v)
    prog.outputs = [buf_of[alias.get(v, v)] for v in g.outputs]
    prog.updates = [buf_of[alias.get(v, v)] for _, v in g.updates]
    _liveness(prog)
    return prog


def _rebuild(k: K.Kernel, expr: K.Expr, ins: list) -> tuple[K.Kernel, list]:
    """Drop inputs no longer loaded and renumber loads (repeated values share one input)."""
    loaded, stack, seen = set(), [expr], set()
    while stack:
        e = stack.pop()
        if e not in seen:
            seen.add(e)
            if e.op == "load":
                loaded.add(e.arg)
            stack.extend(e.args)
    used, remap = [], {}
    for old in sorted(loaded):
        if ins[old] not in used:
            used.append(ins[old])
        remap[old] = used.index(ins[old])
    expr = substitute(expr, lambda e: K.Expr("load", e.dtype, e.args, remap[e.arg]) if e.op == "load" else None, {})
    return K.Kernel(k.kind, tuple(_buffer_of(x) for x in used), k.out, k.space, expr, k.combiner, k.template,
                    k.params), used   # (maps and prologue fusion only: no epilogue yet)


def _buffer_of(v: Value) -> K.Buffer:
    return K.Buffer(tuple(v.aval.shape), v.aval.dtype)


def _liveness(prog: Program) -> None:
    for i, s in enumerate(prog.steps):
        for b in s.inputs + [s.output]:
            buf = prog.bufs[b]
            if buf.first < 0:
                buf.first = i
            buf.last = i
    end = len(prog.steps)
    for b in prog.outputs + prog.updates:
        prog.bufs[b].last = end


def plan_arena(prog: Program, align: int = 16) -> tuple[dict[int, int], int]:
    """Offsets (bytes) for the program's temporaries in one arena, reusing memory whose
    buffer is dead (greedy first fit over live intervals). Returns (offsets, arena size)."""
    temps = sorted((b for b in prog.bufs if b.role == "temp"), key=lambda b: (b.first, -b.nbytes))
    placed: list[tuple[int, int, Buf]] = []   # (offset, size, buf)
    offsets: dict[int, int] = {}
    top = 0
    for b in temps:
        size = -(-max(b.nbytes, 1) // align) * align
        live = sorted((o, s) for o, s, q in placed if not (q.last < b.first or b.last < q.first))
        off = 0
        for o, s in live:
            if off + size <= o:
                break
            off = max(off, o + s)
        offsets[b.id] = off
        placed.append((off, size, b))
        top = max(top, off + size)
    return offsets, top


def run_with_numpy(prog: Program, inputs: list, captures: list) -> tuple[list, list]:
    """Execute a program with the kernel IR's numpy evaluator (tests: fusion vs the reference)."""
    env = dict(prog.consts)
    env.update(zip(prog.inputs, inputs))
    env.update(zip(prog.captures, captures))
    for s in prog.steps:
        arrays = [env[b].reshape(k.shape) for b, k in zip(s.inputs, s.kernel.inputs)]
        env[s.output] = K.evaluate(s.kernel, arrays)
    shape = lambda b: prog.bufs[b].shape
    return ([env[b].reshape(shape(b)) for b in prog.outputs], [env[b].reshape(shape(b)) for b in prog.updates])
