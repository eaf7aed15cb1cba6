"""From a flattened expression to shader source: ``let`` bindings (:class:`Emitter`), input
bindings (:class:`Inputs`), the shader header, workgroup grids, and the result types
(:class:`Pass`, :class:`Lowered`)."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Callable

from ..core import kernel_ir as K
from ..core.dtypes import DType
from ..core.simplify import Simplifier
from .flatten import Space, flatten, simplifier, topo
from .helpers import helper_source, with_deps
from .limits import BufferTooLarge, Limits, compute_type, storage_type
from .ops import CODE, CODE_INT, CODE_NONNEG, cast_code, literal


class Emitter:
    """Writes an expression DAG as ``let`` bindings, one per distinct node. A node that depends on
    a linear id of level 2 (the reduction index) goes to ``lines[2]`` (the loop body); all others to
    ``lines[1]`` (before the loop)."""

    def __init__(self, limits: Limits, simplifier: Simplifier, lin_names: dict, lin_levels: dict,
                 load: Callable[[int, str, DType], str]):
        self.limits, self.simp, self.load = limits, simplifier, load
        self.lin_names, self.lin_levels = lin_names, lin_levels
        self.lines: dict[int, list[str]] = {1: [], 2: []}
        self.names: dict = {}
        self.level: dict = {}
        self.helpers: set[str] = set()

    def t(self, dt: DType) -> str:
        return compute_type(dt, self.limits)

    def value(self, root: K.Expr) -> str:
        """The WGSL value of ``root`` (a name or a literal); its bindings are appended to ``lines``."""
        for e in topo(root):
            if e not in self.names:
                self.names[e] = self._node(e)
        return self.names[root]

    def _node(self, e: K.Expr) -> str:
        if e.op == "const":
            self.level[e] = 0
            return literal(e.arg, self.t(e.dtype))
        if e.op == "idx":
            self.level[e] = self.lin_levels[e.arg]
            return self.lin_names[e.arg]
        a = [self.names[x] for x in e.args]
        level = self.level[e] = max(self.level[x] for x in e.args)
        code = self._render(e, a)
        self.helpers.update(re.findall(r"\b(wt_\w+)\(", code))
        name = f"v{len(self.names)}"
        self.lines[2 if level >= 2 else 1].append(f"let {name} = {code};")
        return name

    def _render(self, e: K.Expr, a: list[str]) -> str:
        op = e.op
        if op == "load":
            return self.load(e.arg, a[0], e.dtype)
        if op == "cast":
            return cast_code(a[0], self.t(e.args[0].dtype), self.t(e.dtype))
        if op == "where":
            return f"select({a[2]}, {a[1]}, {a[0]})"
        return self.op_format(e).format(*a, t=self.t(e.args[0].dtype), i="i32", u="u32")

    def op_format(self, e: K.Expr) -> str:
        """The format string of ``e``'s op: integer forms for integer operands, unsigned ones
        (no sign guards) where both operands are provably non-negative."""
        fmt = CODE[e.op]
        if e.args[0].dtype.kind == "i":
            fmt = CODE_INT.get(e.op, fmt)
            if e.op in CODE_NONNEG and self.simp.rng(e.args[0])[0] >= 0 and self.simp.rng(e.args[1])[0] > 0:
                fmt = CODE_NONNEG[e.op]
        return fmt


BYTES = {"f16": 2, "f32": 4, "i32": 4, "u32": 4}     # WGSL scalar sizes (workgroup memory)


@dataclass(frozen=True)
class Segment:
    """A one-pass kernel's work as a part of a larger dispatch (``group.py``, horizontal fusion):
    ``body``, WGSL statements computing everything for the workgroup of linear index ``wg`` (an
    ``i32`` starting at 0) and ``lid`` (``local_invocation_index``), which name the pass's bindings
    as ``decls`` (``(name, WGSL element type, writable)``, binding order) do; ``lengths``: their
    fixed lengths (``shader_header``); ``helpers``: the ``wt_*`` helpers it calls; ``workgroups``:
    how many workgroups it needs (1-D workgroups of the pass's ``workgroup_size``)."""
    decls: tuple[tuple[str, str, bool], ...]
    lengths: tuple[tuple[str, int], ...]
    helpers: frozenset
    body: str
    workgroups: int


@dataclass(frozen=True)
class Pass:
    """One compute dispatch: its WGSL ``source``, the buffers bound (``(name, writable)`` in binding
    order; names are ``in<k>`` for kernel input k, ``packed``, ``partials``, ``result``), the
    workgroup counts to dispatch, the shader's ``@workgroup_size`` and its ``var<workgroup>`` bytes
    (what an artifact lists as required limits). ``segment``: the same work as a part of a larger
    dispatch (:class:`Segment`), where the lowering can give it (single-pass maps)."""
    source: str
    bindings: tuple[tuple[str, bool], ...]
    workgroups: tuple[int, int, int]
    workgroup_size: tuple[int, int, int]
    workgroup_storage: int = 0
    rows: tuple[int, int, int] | None = None
    segment: Segment | None = dataclasses.field(default=None, compare=False, repr=False)


# Run-time rows (docs/artifact.md, "Run-time rows: WebGPU"): a kernel of a symbolic-batch signature
# lowered with ``rows=chunk`` reads the number of batch rows to compute from a uniform bound after its
# storage bindings, bounds its work by it (its per-row computation and the workgroup each item lands
# in stay those of the chunk, so the rows it computes have the chunk's bits), and its Pass carries
# ``rows = (a, b, c)``: the host dispatches ceil(rows * a / b) * c workgroups (``rows_workgroups``).
ROWS = "i32(wt_rows)"


def rows_bound(per_row: int) -> str:
    """WGSL for ``rows * per_row`` (run-time rows times a per-row count)."""
    return ROWS if per_row == 1 else f"{ROWS} * {per_row}"


def rows_total(rows: int, formula) -> int:
    """Workgroups a pass with run-time rows ``formula`` = (a, b, c) needs for ``rows``: ceil(rows * a / b) * c."""
    a, b, c = formula
    return -(-rows * a // b) * c


def rows_workgroups(rows: int, formula, chunk_grid) -> tuple[int, int, int]:
    """The dispatch for ``rows`` run-time rows: :func:`rows_total` workgroups folded as the chunk's
    grid ``chunk_grid`` folds them (its x, then its y), so ``workgroup_grid``'s ``wg`` line (fixed
    at the chunk's x and y) numbers them the same; never more per dimension than the chunk's when
    the total is at most the chunk's (loaders check that at the chunk's rows)."""
    total = rows_total(rows, formula)
    x, y = chunk_grid[0], chunk_grid[1]
    if total <= x:
        return (total, 1, 1)
    if total <= x * y:
        return (x, -(-total // x), 1)
    return (x, y, -(-total // (x * y)))


@dataclass(frozen=True)
class Lowered:
    """A kernel as WGSL passes. ``packed``: ``(input k, u32 word offset)`` for inputs the runtime copies
    into the ``packed`` buffer before the passes (more inputs than bindings); ``scratch``: ``(name,
    bytes)`` of the buffers the passes share (``packed``, ``partials``). No passes: nothing to compute."""
    passes: tuple[Pass, ...]
    packed: tuple[tuple[int, int], ...] = ()
    scratch: tuple[tuple[str, int], ...] = ()


def workgroup_grid(total: int, limits: Limits) -> tuple[tuple[int, int, int], str]:
    """Workgroup counts for ``total`` workgroups, folded into 2-D/3-D past the per-dimension limit,
    and the WGSL line computing the linear workgroup id ``wg``."""
    m = limits.max_compute_workgroups_per_dimension
    x = max(1, min(total, m))
    rest = -(-total // x)
    y = max(1, min(rest, m))
    z = max(1, -(-rest // y))
    if z > m:
        raise ValueError(f"a dispatch of {total} workgroups exceeds {m}^3 (maxComputeWorkgroupsPerDimension)")
    code = "wid.x"
    if y > 1 or z > 1:
        code += f" + wid.y * {x}u"
    if z > 1:
        code += f" + wid.z * {x * y}u"
    return (x, y, z), f"let wg = i32({code});"


MAIN = "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32)"


def segment_pass(decls, limits: Limits, helpers, lengths: dict | None, body: str, workgroups: int,
                 packed: bool) -> Pass:
    """A 1-D pass of ``workgroups`` workgroups running ``body`` (``Segment.body``) over bindings
    ``decls``, with its :class:`Segment` unless the kernel has ``packed`` inputs (their copies make
    it more than one dispatch) or run-time rows (``lengths`` None)."""
    wgs = limits.workgroup_size
    grid, wg_line = workgroup_grid(workgroups, limits)
    src = shader_header(list(decls), limits, helpers, lengths=lengths) + \
        f"\n@compute @workgroup_size({wgs})\n{MAIN} {{\n  {wg_line}\n  {body}\n}}\n"
    seg = None if packed or lengths is None else \
        Segment(tuple(decls), tuple(sorted(lengths.items())), frozenset(helpers), body, workgroups)
    return Pass(src, tuple((name, w) for name, _, w in decls), grid, (wgs, 1, 1), segment=seg)


def shader_header(decls: list[tuple[str, str, bool]], limits: Limits, helpers=(), shared: str = "",
                  rows: bool = False, lengths: dict[str, int] | None = None) -> str:
    """``rows``: also the run-time rows uniform ``wt_rows`` (u32), bound after the storage bindings.
    ``lengths``: bindings declared as fixed-size arrays of that many scalar elements (a quarter as
    many ``vec4`` elements; the buffers bound must hold at least that many); the others (and a
    ``vec4`` binding of a length not a multiple of 4) are runtime-sized. A fixed length turns the
    bounds clamp WebGPU implementations add to every access (``min(i, arrayLength(&b) - 1)``, the
    length read from a uniform) into a clamp by a constant: on Dawn/SwiftShader the 256 and 1024
    matmuls' kernels ran 1.2-1.3x faster (CPU time per call, same process, alternating)."""
    # every shader of an f16 device enables f16: a fused body may compute in f16 between f32 buffers
    lines = ["enable f16;"] if limits.shader_f16 else []
    lengths = lengths or {}
    for i, (name, t, writable) in enumerate(decls):
        n = lengths.get(name, 0)
        if t.startswith("vec4<"):
            n = n // 4 if n % 4 == 0 else 0
        lines.append(f"@group(0) @binding({i}) var<storage, {'read_write' if writable else 'read'}> "
                     f"{name}: array<{t}{f', {n}' if n > 0 else ''}>;")
    if rows:
        lines.append(f"@group(0) @binding({len(decls)}) var<uniform> wt_rows: u32;")
    lines += [helper_source(h) for h in with_deps(helpers)]
    if shared:
        lines.append(shared)
    return "\n".join(lines) + "\n"


def store_code(v: str, t: str) -> str:
    return f"select(0i, 1i, {v})" if t == "bool" else v


class Inputs:
    """How the shader reads kernel inputs: its own binding each, or (past the binding budget) one
    ``packed`` u32 binding the runtime fills with copies."""

    def __init__(self, kernel: K.Kernel, limits: Limits, outputs: int):
        loaded = sorted(kernel.loaded())
        budget = limits.max_storage_buffers_per_shader_stage - outputs
        if budget < 1 or (len(loaded) > budget and budget < 2):
            raise ValueError(f"the device allows {limits.max_storage_buffers_per_shader_stage} storage buffers "
                             f"per shader stage; webgpu kernels need at least {outputs + 2}")
        self.limits, self.kernel = limits, kernel
        self.direct = loaded if len(loaded) <= budget else loaded[:budget - 1]
        # an input that is an output's buffer (Kernel.inplace) is read through that output's binding
        self.alias = {k: "result" if j == 0 else f"result{j}" for k, j in kernel.inplace if k in self.direct}
        self.packed: dict[int, int] = {}
        words = 0
        for k in loaded[len(self.direct):]:
            b = kernel.inputs[k]
            if storage_type(b.dtype, limits) == "f16":
                raise ValueError("a kernel with more float16 inputs than storage bindings is not supported")
            self.packed[k] = words
            words += max(math.prod(b.shape), 1)
        self.words = words
        if words * 4 > limits.max_storage_buffer_binding_size:
            raise BufferTooLarge(f"the packed inputs of a kernel need {words * 4} bytes, above this device's "
                                 f"maxStorageBufferBindingSize of {limits.max_storage_buffer_binding_size} bytes")

    def decls(self, only=None) -> list[tuple[str, str, bool]]:
        """The input bindings (``only``: of these inputs)."""
        d = [(f"in{k}", storage_type(self.kernel.inputs[k].dtype, self.limits), False) for k in self.direct
             if (only is None or k in only) and k not in self.alias]
        return d + ([("packed", "u32", False)] if self.packed and (only is None or set(self.packed) & only) else [])

    def lengths(self) -> dict[str, int]:
        """Elements of each direct input binding not read through an output's (for
        ``shader_header``'s fixed-size arrays)."""
        return {self.name(k): math.prod(self.kernel.inputs[k].shape) for k in self.direct if k not in self.alias}

    def load(self, k: int, off: str, dt: DType) -> str:
        t = compute_type(dt, self.limits)
        if k in self.packed:
            word = f"packed[{self.packed[k]} + {off}]" if self.packed[k] else f"packed[{off}]"
            return f"({word} != 0u)" if t == "bool" else f"bitcast<{'i32' if t == 'i32' else 'f32'}>({word})"
        v = f"{self.name(k)}[{off}]"
        return f"({v} != 0i)" if t == "bool" else v

    def name(self, k: int) -> str:
        """The binding input ``k`` (a direct one) is read from."""
        return self.alias.get(k, f"in{k}")

    def lowered(self, passes, scratch=()) -> Lowered:
        packed = tuple(sorted(self.packed.items()))
        scratch = tuple(scratch) + ((("packed", self.words * 4),) if self.packed else ())
        return Lowered(tuple(passes), packed, scratch)


class Epilogue:
    """A reduction's epilogue (``kernel_ir``) as the WGSL function ``epilogue(acc, gid) -> T``: the
    value stored for output element ``gid`` (a flat row-major index) whose reduced value is ``acc``.
    Its body is what ``map.py`` emits for the same map kernel (one element per invocation; the
    reduced value where the map loads it), so the stored values are those of the unfused kernels.
    ``inputs``: the kernel inputs it reads; ``helpers``: the ``wt_*`` helpers it calls."""

    def __init__(self, kernel: K.Kernel, ins: Inputs, limits: Limits):
        epi = kernel.epilogue
        n = math.prod(epi.out.shape)
        simp = simplifier((n,))
        expr = simp(flatten(epi, Space(epi.space, [range(len(epi.space))])))
        em = Emitter(limits, simp, {0: "gid"}, {0: 1},
                     lambda k, off, dt: "acc" if k == kernel.acc else ins.load(k, off, dt))
        v = em.value(expr)
        self.inputs = {e.arg for e in topo(expr) if e.op == "load" and e.arg != kernel.acc}
        self.helpers = em.helpers
        acc_t, t = compute_type(kernel.out.dtype, limits), compute_type(epi.out.dtype, limits)
        body = "\n  ".join(em.lines[1] + em.lines[2] + [f"return {v};"])
        self.source = f"fn epilogue(acc: {acc_t}, gid: i32) -> {t} {{\n  {body}\n}}\n"

    @staticmethod
    def of(kernel: K.Kernel, ins: Inputs, limits: Limits) -> "Epilogue | None":
        return Epilogue(kernel, ins, limits) if kernel.epilogue is not None else None


def epilogue_store(epi: "Epilogue | None", acc: str, gid: str) -> str:
    """The value to store for output element ``gid`` whose reduced value is ``acc``."""
    return acc if epi is None else f"epilogue({acc}, {gid})"
