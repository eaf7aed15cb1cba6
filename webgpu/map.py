"""``map`` kernels: one invocation per output element, or per four consecutive elements (``vec4``
values; :class:`VectorEmitter`) where the output's size is a multiple of 4. Workgroups are folded
into a 2-D/3-D grid when their count exceeds ``maxComputeWorkgroupsPerDimension``.

Four elements per invocation: a map is usually bound by memory and by the cost of each invocation,
not by its arithmetic (on SwiftShader, Dawn's CPU adapter, the ``gelu_tanh(x * a + b) *
sigmoid(x)`` chain over 2^20 elements takes 20-25 ms one element per invocation, 8-10 ms with
``vec4``; TF.js's WebGPU backend vectorises elementwise kernels by 4 for the same reason). Inputs
read at the linear id (plus a multiple of 4) are bound as ``array<vec4<T>>`` and read with one
load; any other load gathers its four lanes.

A map with siblings (``kernel_ir``) stores each sibling's value too, to ``result1``, ``result2``...
(the step's ``extra`` buffers), from the same ``let`` bindings: every value is computed before the
first store, so an output may be an input's buffer (``Kernel.inplace``: the input is read through
the output's binding, which WebGPU allows to be bound only once, writable).

Without run-time rows or packed inputs the pass carries its body as a :class:`~.emit.Segment`
(everything after the linear workgroup index ``wg``), which ``group.py`` runs as one segment of a
larger dispatch (horizontal fusion); the kernel's own source is that body behind ``wg``."""
from __future__ import annotations

import math

from ..core import kernel_ir as K
from .emit import Emitter, Inputs, Lowered, Pass, rows_bound, segment_pass, shader_header, store_code, workgroup_grid
from .flatten import Space, flatten, simplifier, topo
from .limits import Limits, compute_type, storage_type
from .ops import cast_code, literal

LANES = 4
_SWIZZLE = "xyzw"


def _lengths(ins: Inputs, outs, results, per) -> dict | None:
    """Fixed binding lengths (``shader_header``), or None under run-time rows (the buffers bound then
    hold fewer rows)."""
    if per is not None:
        return None
    return {**ins.lengths(), **{r: math.prod(k.out.shape) for k, (r, _) in zip(outs, results)}}


def lower_map(kernel: K.Kernel, limits: Limits, chunk: int | None = None) -> Lowered:
    """``chunk``: run-time rows (``emit.py``) of a kernel whose loop space's axis 0 holds ``chunk``
    batch rows: its first ``wt_rows * n / chunk`` elements are computed (row-major, batch outermost)."""
    n = math.prod(kernel.space)
    ins = Inputs(kernel, limits, 1 + len(kernel.siblings))   # each sibling binds its own output
    sp = Space(kernel.space, [range(len(kernel.space))])
    simp = simplifier((n,))
    outs = (kernel,) + tuple(kernel.siblings)
    exprs = [simp(flatten(k, sp)) for k in outs]
    results = [("result" if j == 0 else f"result{j}", k.out.dtype) for j, k in enumerate(outs)]
    per = n // chunk if chunk else None
    if n % LANES == 0 and set(ins.alias) <= _vector_inputs(kernel, exprs, ins):   # an output read in place is
        return _lower_vector(kernel, exprs, results, ins, simp, n, limits, per)    # read as it is declared
    wgs = limits.workgroup_size
    em = Emitter(limits, simp, {0: "gid"}, {0: 1}, ins.load)
    vs = [em.value(e) for e in exprs]
    body = "\n  ".join(em.lines[1] + em.lines[2])
    stores = "\n  ".join(f"{r}[gid] = {store_code(v, compute_type(dt, limits))};" for (r, dt), v in zip(results, vs))
    decls = ins.decls() + [(r, storage_type(dt, limits), True) for r, dt in results]
    lengths = _lengths(ins, outs, results, per)
    if per is None:
        return ins.lowered([segment_pass(decls, limits, em.helpers, lengths, f"""let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  {body}
  {stores}""", -(-n // wgs), bool(ins.packed))])
    grid, wg_line = workgroup_grid(-(-n // wgs), limits)
    src = shader_header(decls, limits, em.helpers, rows=True, lengths=lengths) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {rows_bound(per)}) {{ return; }}
  {body}
  {stores}
}}
"""
    binds = tuple((name, w) for name, _, w in decls)
    return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1), rows=(per, wgs, 1))])


def contiguous_offset(off: K.Expr) -> int | None:
    """``c`` where a flat load offset is the linear id plus the constant ``c``; else None."""
    if off.op == "idx":
        return 0
    if off.op == "add":
        a, b = off.args
        if a.op == "const" and b.op == "idx":
            a, b = b, a
        if a.op == "idx" and b.op == "const":
            return int(b.arg)
    return None


def _vector_inputs(kernel: K.Kernel, exprs: list[K.Expr], ins: Inputs) -> set[int]:
    """The inputs every load of which reads at the linear id plus a multiple of 4, within bounds of
    an input whose size is a multiple of 4: bound as ``array<vec4<T>>``."""
    offsets: dict[int, list] = {}
    for e in {x for expr in exprs for x in topo(expr)}:
        if e.op == "load":
            offsets.setdefault(e.arg, []).append(contiguous_offset(e.args[0]))
    n = math.prod(kernel.space)
    out = set()
    for k, cs in offsets.items():
        size = math.prod(kernel.inputs[k].shape)
        if k in ins.direct and size % LANES == 0 and all(c is not None and c % LANES == 0 and 0 <= c <= size - n
                                                         for c in cs):
            out.add(k)
    return out


class VectorEmitter(Emitter):
    """An :class:`Emitter` over four consecutive elements (lanes) per invocation: a node that depends
    on the linear id (``lin``, a ``vec4<i32>``) is a ``vec4`` value, others stay scalars (splatted
    where they meet a vector). WGSL's operators and builtins act per component; an op written with a
    helper function (``wt_*``) or a float -> int conversion is applied lane by lane."""

    def __init__(self, limits: Limits, simplifier, load, vector_inputs: set[int], name=lambda k: f"in{k}"):
        super().__init__(limits, simplifier, {0: "lin"}, {0: 1}, load)
        self.vector_inputs, self.name = vector_inputs, name

    def vector(self, e: K.Expr) -> bool:
        return self.level[e] >= 1

    def splat(self, e: K.Expr, name: str) -> str:
        return name if self.vector(e) else f"vec4<{self.t(e.dtype)}>({name})"

    def lanes(self, args: list[K.Expr], names: list[str], dtype, fmt) -> str:
        """``vec4<T>(fmt(lane 0 operands), ...)``: an op applied lane by lane."""
        per = [fmt(*[f"{n}.{s}" if self.vector(x) else n for x, n in zip(args, names)]) for s in _SWIZZLE]
        return f"vec4<{self.t(dtype)}>({', '.join(per)})"

    def _render(self, e: K.Expr, a: list[str]) -> str:
        if not self.vector(e):
            return super()._render(e, a)
        op, t = e.op, self.t(e.dtype)
        if op == "load":
            if e.arg in self.vector_inputs:
                c = contiguous_offset(e.args[0])
                v = f"{self.name(e.arg)}[gid + {c // LANES}]" if c else f"{self.name(e.arg)}[gid]"
                return f"({v} != vec4<i32>(0i))" if t == "bool" else v
            return self.lanes(e.args, a, e.dtype, lambda off: self.load(e.arg, off, e.dtype))
        if op == "cast":
            src = self.t(e.args[0].dtype)
            if src == t:
                return a[0]
            if t == "bool":
                return f"(!({a[0]} == vec4<{src}>({literal(0, src)})))"
            if src == "bool":
                return f"select(vec4<{t}>({literal(0, t)}), vec4<{t}>({literal(1, t)}), {a[0]})"
            if t == "i32" and src in ("f32", "f16"):
                return self.lanes(e.args, a, e.dtype, lambda x: cast_code(x, src, t))
            return f"vec4<{t}>({a[0]})"
        s = [self.splat(x, n) for x, n in zip(e.args, a)]
        if op == "where":
            return f"select({s[2]}, {s[1]}, {s[0]})"
        t0 = self.t(e.args[0].dtype)
        fmt = self.op_format(e)
        if "wt_" in fmt:
            return self.lanes(e.args, a, e.dtype, lambda *x: fmt.format(*x, t=t0))
        return fmt.format(*s, t=t0, i="vec4<i32>", u="vec4<u32>")


def _lower_vector(kernel: K.Kernel, exprs: list[K.Expr], results: list, ins: Inputs, simp, n: int,
                  limits: Limits, per: int | None = None) -> Lowered:
    """``per``: elements per batch row (run-time rows): the first ceil(wt_rows * per / 4) groups run;
    where ``per`` is not a multiple of 4 the last group also writes up to 3 elements of the next
    row (inside the chunk's buffer; rows past the end are never read: they are independent)."""
    vin = _vector_inputs(kernel, exprs, ins)
    em = VectorEmitter(limits, simp, ins.load, vin, ins.name)
    stores = []
    for expr, (r, dt) in zip(exprs, results):
        v = em.value(expr)
        if not em.vector(expr):
            v = em.splat(expr, v)
        v = f"select(vec4<i32>(0i), vec4<i32>(1i), {v})" if compute_type(dt, limits) == "bool" else v
        stores.append(f"{r}[gid] = {v};")
    wgs, groups = limits.workgroup_size, n // LANES
    vnames = {f"in{k}" for k in vin}
    decls = [(name, f"vec4<{t}>" if name in vnames else t, w) for name, t, w in ins.decls()]
    decls += [(r, f"vec4<{storage_type(dt, limits)}>", True) for r, dt in results]
    body = "\n  ".join(em.lines[1] + em.lines[2])
    store = "\n  ".join(stores)
    bound = groups if per is None else rows_bound(per // LANES) if per % LANES == 0 else \
        f"({rows_bound(per)} + {LANES - 1}) / {LANES}"
    lengths = _lengths(ins, (kernel,) + tuple(kernel.siblings), results, per)
    main = f"""let gid = wg * {wgs} + i32(lid);
  if (gid >= {bound}) {{ return; }}
  let lin = vec4<i32>(gid * {LANES}) + vec4<i32>(0i, 1i, 2i, 3i);
  {body}
  {store}"""
    if per is None:
        return ins.lowered([segment_pass(decls, limits, em.helpers, lengths, main, -(-groups // wgs),
                                         bool(ins.packed))])
    grid, wg_line = workgroup_grid(-(-groups // wgs), limits)
    src = shader_header(decls, limits, em.helpers, rows=True, lengths=lengths) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  {main}
}}
"""
    binds = tuple((name, w) for name, _, w in decls)
    return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1), rows=(per, LANES * wgs, 1))])
