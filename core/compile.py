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

Siblings: a map whose value must be stored (an output, a Variable update) and which a later map
that must be stored too reads only at its own index (Adam's new moments, read by the new weights)
is computed by that later map's kernel, inline, and stored by it as well (``Kernel.siblings``,
``Step.extra``): one kernel instead of several, the same float operations for every value.

Prologues (``compile_graph(prologues=True)``: the WebGPU runtime; off where one program serves the
wasm matmul template too, whose packing loops read plain loads): an elementwise float32 map of one
float32 buffer read at an affine index (``relu``'s ``max(x, 0)``, maybe transposed; ``_prologue``) is substituted into
the operand loads of every ``matmul`` template kernel that reads it (the MLP train step's hidden
activations, read by the next layer's product and by its weight gradient): each operand load then
computes it, with the same float operations, and the map is materialised only for other users.

The buffer plan gives every buffer a first and last step; ``plan_arena`` packs the
temporaries into one arena with liveness-based reuse, so running a program allocates nothing.
"""
from __future__ import annotations

import dataclasses
import struct
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
    extra: list[int] = field(default_factory=list)   # the outputs of the kernel's siblings, in order


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
SIBLINGS = True    # likewise for siblings
PROLOGUES = True   # likewise for prologues, where the caller asks for them (compile_graph's ``prologues``)
SIBLING_BUFFERS = 8   # at most this many buffers (inputs and outputs) per kernel with siblings: WebGPU's default
#                       maxStorageBuffersPerShaderStage (more inputs would be copied into one packed binding
#                       first, webgpu/emit.py's Inputs); one-element constants do not count (inline_scalars)


def inline_scalars(kernel: K.Kernel, scalars: dict) -> K.Kernel:
    """``kernel`` with the loads of one-element constant inputs replaced by their values (``scalars``:
    input slot -> its 4 stored bytes), so that ``clip(x, 0, 6)``'s bounds are immediates (in wasm a
    constant operand makes ``max``/``min`` one instruction, and hoisting sees constants) and WebGPU
    binds no buffer for them. Inputs stay in the signature; the loads of a template kernel's own
    expression (its operands) and nan are left alone; epilogues and siblings are map code."""
    values = {}
    for slot, raw in scalars.items():
        dt = kernel.inputs[slot].dtype
        if dt.name not in ("float32", "int32") or len(raw) != 4:
            continue
        v = struct.unpack("<f" if dt.wasm == "f32" else "<i", raw)[0]
        if v == v:
            values[slot] = K.const(v, dt)
    if not values:
        return kernel

    def inline(e):
        return substitute(e, lambda x: values.get(x.arg) if x.op == "load" else None, {})
    epi = kernel.epilogue
    new = dataclasses.replace(
        kernel, expr=kernel.expr if kernel.template is not None else inline(kernel.expr),
        epilogue=None if epi is None else dataclasses.replace(epi, expr=inline(epi.expr)),
        siblings=tuple(dataclasses.replace(s, expr=inline(s.expr)) for s in kernel.siblings))
    return kernel if new == kernel else new


def _epilogue_slot(k: K.Kernel, ins: list, red: dict, n_users: dict, direct: set) -> int | None:
    """The input of map kernel ``k`` that is a pending reduction ``k`` can be the epilogue of: its only
    user, float32 like ``k``'s output, of ``k``'s shape, read only at ``k``'s own output index, and one
    of the node's own inputs (``direct``): a reduction reached through a fused movement map (which
    may be fused into several users) must stay materialisable for the others."""
    if k.kind != "map" or k.template is not None or k.out.dtype.name != "float32":
        return None
    def own(i, d):      # idx(d), or 0 along an extent of 1 (how broadcast_index writes it)
        return i == K.idx(d) or (k.space[d] == 1 and i.op == "const" and i.arg == 0)
    for slot, x in enumerate(ins):
        if x in red and x in direct and n_users.get(x, 0) == 1 and red[x][0].out.shape == k.space:
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


def _sibling_slot(k: K.Kernel, ins: list, later: dict, depends) -> int | None:
    """The input of map kernel ``k`` that is a map kept for later (``later``) that ``k`` can compute and
    store as a sibling: of ``k``'s space, read only at ``k``'s own index, and not needed (through
    values not materialised yet) by ``k``'s other inputs."""
    if k.kind != "map" or k.template is not None or k.out.dtype.name not in ("float32", "int32"):
        return None
    for slot, x in enumerate(ins):
        if x in later and later[x][0].space == k.space and later[x][0].out.dtype.name in ("float32", "int32") and _own_index_only(k, slot) and \
                not any(_own_loads(s, slot) for s in k.siblings) and \
                not any(depends(y, x) for j, y in enumerate(ins) if j != slot):
            return slot
    return None


def _own_loads(k: K.Kernel, slot: int) -> list:
    return [e for e in nodes(k.expr) if e.op == "load" and e.arg == slot]


def _own_index_only(k: K.Kernel, slot: int) -> bool:
    """Whether ``k`` reads input ``slot`` only at its own output index (0 along extents of 1)."""
    def own(i, d):
        return i == K.idx(d) or (k.space[d] == 1 and i.op == "const" and i.arg == 0)
    return all(all(own(i, d) for d, i in enumerate(e.args)) for e in _own_loads(k, slot))


def _absorb(k: K.Kernel, ins: list, slot: int, xk: K.Kernel, xins: list) -> tuple[K.Kernel, list]:
    """``k`` computing map ``xk`` (its input ``slot``) inline, and storing it: ``xk`` and its siblings
    become siblings of ``k`` (after ``k``'s own), over ``k``'s new inputs."""
    main, new_ins = _fuse(dataclasses.replace(k, siblings=()), ins, slot, dataclasses.replace(xk, siblings=()), xins)
    new_ins = list(new_ins)

    def renumber(sk: K.Kernel, old: list) -> K.Expr:
        def f(e):
            if e.op != "load":
                return None
            if old[e.arg] not in new_ins:
                new_ins.append(old[e.arg])
            return K.Expr("load", e.dtype, e.args, new_ins.index(old[e.arg]))
        return substitute(sk.expr, f, {})
    parts = [(s, renumber(s, ins)) for s in k.siblings]
    parts += [(s, renumber(s, xins)) for s in (xk,) + tuple(xk.siblings)]
    bufs = tuple(_buffer_of(x) for x in new_ins)
    sibs = tuple(K.Kernel("map", bufs, s.out, s.space, e) for s, e in parts)
    return dataclasses.replace(main, inputs=bufs, siblings=sibs), new_ins


def writes_in_place(k: K.Kernel, slot: int, out: int) -> bool:
    """Whether kernel ``k`` may store output ``out`` (0: its own, ``j``: sibling ``j``) into input
    ``slot``'s buffer (``Kernel.inplace``). A map: every part of the kernel (its own map, then each
    sibling: the order in which the wasm lowering runs them over a row range, and WebGPU computes
    every value before its stores) reads ``slot`` only at its own index, and no part after ``out``
    reads it at all. A reduction with an epilogue (an SGD update in its gradient's kernel): the
    reduction does not read ``slot``, the epilogue only at its own index (the wasm lowering then
    keeps the reduced values in its scratch, not in the output). Each element is then read before
    it is overwritten, by the thread that overwrites it, so the results are those of separate
    buffers. float32/int32 outputs only (a float16 output is rounded by a second pass over the
    stored values).

    Args:
        k: a step's kernel.
        slot: the input that would share the output's buffer (a variable's old value).
        out: the output: 0 for the kernel's own, ``j`` for sibling ``j``.
    Returns:
        True where the plan may put both in one buffer (``Kernel.inplace``).
    """
    if k.kind == "reduce" and k.epilogue is not None and out == 0:
        epi = k.epilogue
        return epi.out.dtype.name == "float32" and k.inputs[slot].dtype == epi.out.dtype and \
            tuple(k.inputs[slot].shape) == tuple(epi.out.shape) == tuple(epi.space) and \
            not _own_loads(k, slot) and _own_index_only(epi, slot)
    if k.kind != "map" or k.template is not None or k.epilogue is not None:
        return False
    parts = (k,) + tuple(k.siblings)
    if parts[out].out.dtype.name not in ("float32", "int32") or k.inputs[slot].dtype != parts[out].out.dtype or \
            not tuple(k.inputs[slot].shape) == tuple(parts[out].out.shape) == tuple(k.space):
        return False
    for j, p in enumerate(parts):
        if j > out and _own_loads(p, slot):
            return False
        if p.space != k.space or not _own_index_only(p, slot):
            return False
    return True


def _prologue(k: K.Kernel) -> bool:
    """Whether map ``k`` can be computed in a matmul template's operand loads: a float32 elementwise
    function (constants and elementwise ops, no index arithmetic) of one load of a float32 input at
    an affine index (its own, or a transpose's: indices of ``idx``, ``add``, ``mul`` and constants,
    so that the template's operand analysis still applies)."""
    if k.kind != "map" or k.template is not None or k.siblings or k.out.dtype.name != "float32" or \
            len(k.inputs) != 1 or k.inputs[0].dtype.name != "float32":
        return False
    affine = all(e.op in ("idx", "const", "add", "mul") for ld in _own_loads(k, 0) for i in ld.args for e in nodes(i))
    return affine and all(e.op != "idx" for e in _value_nodes(k.expr))


def _value_nodes(e: K.Expr):
    """The nodes of ``e`` outside loads' index expressions."""
    out, stack, seen = [], [e], set()
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            out.append(x)
            if x.op != "load":
                stack.extend(x.args)
    return out


def _is_movement(k: K.Kernel) -> bool:
    e = k.expr.args[0] if k.expr.op == "cast" else k.expr
    return k.kind == "map" and e.op in ("load", "const")


def compile_graph(g: Graph, fuse: bool = True, prologues: bool = False) -> Program:
    """Lower a (optimised) graph to a Program; ``prologues``: fuse prologues into matmul templates
    (module docstring; for backends whose matmul template computes any operand expression)."""
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
    scalars = {v for v in g.consts if prod(v.aval.shape) == 1 and v.aval.dtype.name in ("float32", "int32")}
    keep = set(g.outputs) | {v for _, v in g.updates}
    pending: dict[Value, tuple[K.Kernel, list[Value]]] = {}  # fusible maps not materialised (yet)
    red: dict[Value, tuple[K.Kernel, list[Value]]] = {}      # reductions that may take an epilogue (yet)
    later: dict[Value, tuple[K.Kernel, list[Value]]] = {}    # kept maps that a later kept map may store
    owner: dict[Value, Value] = {}                           # a sibling's value -> the value of its step
    sibs: dict[Value, list[Value]] = {}                      # a kernel's value -> its siblings' values

    def unmaterialised(v):
        v = alias.get(v, v)
        for table in (pending, red, later):
            if v in table:
                return table[v][1]
        return None

    def depends(v, x, seen=None):
        """Whether value ``v`` needs ``x`` through values not materialised yet."""
        seen = set() if seen is None else seen
        if v is x or owner.get(v) is x:
            return True
        ins = unmaterialised(owner.get(v, v))
        if ins is None or v in seen:
            return False
        seen.add(v)
        return any(depends(y, x, seen) for y in ins)
    alias: dict[Value, Value] = {}                          # reshape views of materialised buffers

    def materialise(v: Value):
        v = alias.get(v, v)
        while v in owner:
            v = owner[v]
        if v in buf_of:
            return
        k, ins = next(table.pop(v) for table in (pending, red, later) if v in table)
        emit(v, k, ins)

    def emit(v, k, ins):
        for x in ins:
            materialise(x)
        out = new_buf(v, "temp")
        extra = [new_buf(x, "temp") for x in sibs.pop(v, [])]
        prog.steps.append(Step(k, [buf_of[alias.get(x, x)] for x in ins], out, extra))

    def fusible(x):
        return x in pending and (n_users.get(x, 0) == 1 or _is_movement(pending[x][0]))

    for n in g.nodes:
        k = n.op.kernel([x.aval for x in n.inputs], n.out.aval, **n.attrs)
        ins = list(n.inputs)
        if fuse and n.op.name == "reshape" and n.out not in keep and ins[0] not in pending:
            alias[n.out] = alias.get(ins[0], ins[0])   # a view: same bytes, new shape
            continue
        if fuse and (EPILOGUES or SIBLINGS) and k.template is None and len(set(ins)) < len(ins):
            k, ins = _rebuild(k, k.expr, ins)     # x + x: one input, so that x is one slot to fuse
        while fuse and k.template is None:
            slot = next((i for i, x in enumerate(ins) if fusible(x)), None)
            if slot is None:
                break
            pk, pins = pending[ins[slot]]
            k, ins = _fuse(k, ins, slot, pk, pins)
        if fuse and prologues and PROLOGUES and k.template == "matmul":
            while (x := next((x for x in ins if x in pending and _prologue(pending[x][0])), None)) is not None:
                k, ins = _fuse(k, ins, ins.index(x), *pending[x])   # (a transpose of a relu: both)
        slot = _epilogue_slot(k, ins, red, n_users, set(n.inputs)) if fuse and EPILOGUES else None
        if slot is not None:
            rk, rins = red.pop(ins[slot])
            k, ins = _fuse_epilogue(rk, rins, k, ins, slot)
        if fuse and SIBLINGS and n.out in keep:
            while (slot := _sibling_slot(k, ins, later, depends)) is not None:
                x = ins[slot]
                nk, nins = _absorb(k, ins, slot, *later[x])
                if sum(y not in scalars for y in nins) + 1 + len(nk.siblings) > SIBLING_BUFFERS:
                    break
                k, ins = nk, nins
                del later[x]
                sibs[n.out] = sibs.get(n.out, []) + [x] + sibs.pop(x, [])
                for y in sibs[n.out]:
                    owner[y] = n.out
        if fuse and k.kind == "map" and n.out not in keep:
            pending[n.out] = (k, ins)
        elif fuse and EPILOGUES and k.kind == "reduce" and k.combiner in ("sum", "prod", "max", "min") and \
                k.out.dtype.name == "float32" and n.out not in keep:
            red[n.out] = (k, ins)
        elif fuse and SIBLINGS and k.kind == "map" and k.template is None:   # kept: a later kept map may store it
            later[n.out] = (k, ins)
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
        for b in s.inputs + [s.output] + s.extra:
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
        for b, sk in zip(s.extra, s.kernel.siblings):
            env[b] = K.evaluate(sk, arrays)
    shape = lambda b: prog.bufs[b].shape
    return ([env[b].reshape(shape(b)) for b in prog.outputs], [env[b].reshape(shape(b)) for b in prog.updates])
