"""Kernel IR -> WebAssembly functions (pure Python; runs in Pyodide).

Every kernel becomes one function with the signature ``(out, in_0, ..., in_{n-1}, start, end,
scratch: i32) -> ()`` (``ir.py``: byte addresses of row-major buffers, the row range
``[start, end)`` of ``Lowered.rows``, workspace for templates).

Generic lowering (``map`` and ``reduce`` kinds; ``analysis.py`` prepares the kernel):

- a loop nest over the collapsed dimensions (loops of at most 4 steps unrolled; in an unrolled
  copy of a map's loop the index is a constant, folded into the selects that test it, so a
  concat's rows compute only their own piece); each expression node is computed once per
  iteration of the loop it depends on (hoisted, memoised into locals), loads address memory
  through partial sums of their affine offsets kept per loop level, a non-negative constant
  offset in the load's memarg (the taps of a window share one address);
- a map whose innermost dim has borders (a pad, a padded window) runs its interior
  ``[lo, hi)`` with the border-free form ``analysis.py`` derives, between scalar head and tail
  loops of the general form;
- 4-wide SIMD128 over one dimension (the innermost; for reductions the innermost output
  dim or the innermost reduced dim, whichever every operand walks contiguously), with a
  scalar tail. Contiguous loads are ``v128.load``, invariant ones splats, others per-lane
  ``v128.load32_lane``; integer division, modulo and power fall back to per-lane code;
- reductions accumulate in registers: per output lane (vector over outputs) or in a lane
  vector reduced horizontally at the end (vector over the reduced axis); argmax/argmin
  keep the first index on ties and, like numpy, pick the first nan when there is one;
- semantics of the IR: ``idiv``/``mod`` floor (integer x // 0 = x % 0 = 0, as numpy),
  ``round`` half to even (``nearest``), float -> int casts truncate (saturating), bools are
  i32 0/1 in memory and lane masks (-1/0) inside vector code; ``max``/``min`` propagate nan
  (a constant operand uses the one-instruction ``pmax``/``pmin``, reductions a nan mask);
- with ``fma``, polynomials and single-use vector multiplies feeding an add/sub become
  relaxed-SIMD multiply-adds;
- ``exp(-y)`` folds the negation into exp's constants, and an exp that is only ever seen
  through ``1 / (c + e^y)`` (sigmoid, gelu) uses :func:`.vmath.exp`'s short form, with
  ``c +`` folded into its last multiply-add where it is the exp's one use.

``template == 'matmul'`` kernels go to :mod:`.matmul` when it covers them, and so do
``template == 'conv2d'`` kernels (the micro-kernel with A's panels packed from the windows). A reduction with an
epilogue (``kernel_ir``) is two functions, called one after the other on the same rows by the
kernel's function: the reduction's, then the epilogue's, a map kernel over the same rows of
the output that reads the reduced values in place (:func:`_lower_epilogue`). A map with siblings
is one function per map, called on the same rows; the siblings' outputs are passed after the
inputs (:func:`_lower_siblings`). :func:`inline_scalars`
turns one-element constant inputs of a compiled step or export into immediates.

Where each part lives: ``analysis.py`` (simplification, offset forms, loop collapse), this
module (planning, values, loads and stores, loops), ``ops.py`` (one IR op's instructions),
``reduce.py`` (accumulators), ``vmath.py`` (transcendentals), ``ir.py`` (the lowering's node
kinds, :class:`~.ir.Lowered`).
"""
from __future__ import annotations

import dataclasses
import struct
from math import prod

from ..core import kernel_ir as K
from ..core.compile import inline_scalars  # noqa: F401 (the runtime and the exporter import it from here)
from ..core.dtypes import bool_, float16, int32
from ..core.simplify import nodes, substitute
from . import depthwise, half, matmul, vmath
from .analysis import Analysis, analyze, deps as lda_deps, is_copy
from .binary import I32, V128, Function, Module
from .ir import Lowered, Node, params
from .ops import emit_fused, emit_op, fused_multiplies, is_float, new_local
from .reduce import Reductions

UNROLL, UNROLL_PRODUCT = 4, 16      # loops of at most 4 steps are unrolled, at most 16 copies deep
IOTA = struct.pack("<4i", 0, 1, 2, 3)


def lower(module: Module, kernel: K.Kernel, name: str, export: bool = False, fma: bool = False,
          splat: bool = True, run_k: tuple[int, int] | None = None) -> Lowered:
    """Add ``kernel``'s function to ``module`` (see the module docstring for its signature).

    ``fma``: use relaxed-SIMD ``f32x4.relaxed_madd`` (fused multiply-add where the hardware has
    it) in polynomials and the matmul micro-kernel; the module then needs an engine with the
    relaxed-SIMD feature, and results may differ from the unfused form in the last bit.
    ``splat``: how the matmul micro-kernel broadcasts A (``matmul.lower``'s ``splat``: a speed choice
    per engine; results are the same bits either way).
    ``run_k``: a matmul whose K is taken at run time (``matmul.lower``'s; ``runtime_k(kernel)`` must
    hold, and the kernel is not float16).
    """
    if kernel.out.dtype == float16:     # computed in f32, rounded on output (half.py)
        return half.rounded(module, kernel, name, export, lambda body: _lower(module, kernel, body, False, fma, splat))
    return _lower(module, kernel, name, export, fma, splat, run_k)


def runtime_k(kernel: K.Kernel) -> bool:
    """Whether ``lower`` takes the kernel's reduced length at run time with ``run_k``: a float32
    matmul (epilogue allowed) that ``matmul.runtime_k`` accepts."""
    return kernel.out.dtype != float16 and matmul.runtime_k(dataclasses.replace(kernel, epilogue=None))


def _lower(module: Module, kernel: K.Kernel, name: str, export: bool, fma: bool, splat: bool = True,
           run_k: tuple[int, int] | None = None) -> Lowered:
    if kernel.epilogue is not None:
        epi = matmul.register_epilogue(kernel) if run_k is None else None
        if epi is None:
            return _lower_epilogue(module, kernel, name, export, fma, splat, run_k)
        return matmul.lower(module, kernel, name, export, fma, splat, epi=epi)    # in the micro-kernel
    if run_k is not None:
        return matmul.lower(module, kernel, name, export, fma, splat, run_k)
    if kernel.siblings:
        return _lower_siblings(module, kernel, name, export, fma, splat)
    if kernel.template in ("matmul", "matmul_q8", "conv2d"):
        if matmul.supports(kernel):
            return matmul.lower(module, kernel, name, export, fma, splat)
    if kernel.template == "depthwise_conv2d":
        low = _lower_depthwise(module, kernel, name, export, fma, splat)
        if low is not None:
            return low
    a = analyze(kernel)
    n = len(kernel.inputs)
    f = module.function(name, params=params(n), export=export)
    if not a.empty:
        _Gen(f, a, fma).run()
    f.finish()
    return Lowered(name, n, max(a.rows, 1) if not a.empty else 0, 0, is_copy(a))


def _lower_epilogue(module: Module, kernel: K.Kernel, name: str, export: bool, fma: bool, splat: bool,
                    run_k: tuple[int, int] | None = None) -> Lowered:
    """A reduction with an epilogue: the reduction's function (``<name>_reduce``) stores its values in the
    output, then the epilogue's (``<name>_epilogue``: the very map kernel that would otherwise run on
    its own, re-spaced over the same rows, with the output as its input ``kernel.acc``) rewrites those
    rows in place. Each element is read before it is written, at its own address, so in place is
    safe; the same map code gives the same bits as the separate kernel. The rows are the
    reduction's when they are output rows (a matmul without batch dims or whose batch dims fold into
    its rows, ``matmul._fold_batch``; a generic reduction); else (a batched matmul whose B varies
    per batch: its rows are M within each batch) the function has one row, so it is not split over
    threads. Written in place (``Kernel.inplace``: the output is a variable the epilogue
    reads, an SGD update), the reduction stores into scratch past its own workspace instead, at the
    output's offsets (a thread's tiles into its own scratch), and the epilogue reads it there."""
    n = len(kernel.inputs)
    base = dataclasses.replace(kernel, epilogue=None)
    main = _lower(module, base, f"{name}_reduce", False, fma, splat, run_k)
    total = prod(kernel.out.shape)
    rows = main.rows
    mp = matmul.plan(base) if kernel.template in ("matmul", "matmul_q8") else None
    batched = mp is not None and mp.window is None and prod(mp.batch) > 1
    if batched or not rows or total % rows:
        rows = 1
    low = _lower(module, _respace(kernel.epilogue, rows, total // rows), f"{name}_epilogue", False, fma, splat)
    # the epilogue's own rows (its loop dims are collapsed or split as its loads allow): ``scale`` of
    # them per row of the reduction, or the whole output at once
    scale = (total // rows) // (total // low.rows) if low.rows and (total // rows) % (total // low.rows) == 0 \
        else None
    if scale is None:
        rows = 1
    f = module.function(name, params=params(n), export=export)
    start, end, scratch = n + 1, n + 2, n + 3
    # written in place (Kernel.inplace: the output is an input the epilogue reads): the reduced values
    # go to scratch past the reduction's own, at the output's offsets, so no input is overwritten early
    held = _align(main.scratch) if kernel.inplace else None
    # the reduction is called per tile with scratch as passed: its reuses_b bit (Lowered) passes through
    reuses_b = main.reuses_b and rows == main.rows

    def clean_scratch():
        f.local_get(scratch)
        if reuses_b:
            f.i32_const(-2).i32_and()

    def reduced():
        if held is None:
            f.local_get(0)
        else:
            clean_scratch()
            f.i32_const(held).i32_add()
    if rows == main.rows:
        reduced()
        for p in range(1, n + 4):
            f.local_get(p)
        f.call(main.name)
    else:                           # one row: the whole reduction when it is called (start < end)
        f.local_get(start)
        f.local_get(end)
        f.i32_lt_s()
        with f.if_():
            reduced()
            for p in range(1, n + 1):
                f.local_get(p)
            f.i32_const(0)
            f.i32_const(main.rows)
            f.local_get(scratch)
            f.call(main.name)
    for p in range(n + 1):
        f.local_get(p)
    reduced()
    for p in (start, end):
        f.local_get(p)
        if rows != main.rows or scale is None:
            f.i32_const(low.rows if p == end else 0)
            f.i32_mul()         # (start, end) = (0, 1) -> (0, all rows); (0, 0) -> (0, 0)
        elif scale != 1:
            f.i32_const(scale)
            f.i32_mul()
    clean_scratch()
    f.call(low.name)
    f.finish()
    return Lowered(name, n, rows, main.scratch if held is None else held + 4 * total, False, reuses_b)


def _align(n: int, a: int = 64) -> int:
    return -(-n // a) * a


def _lower_depthwise(module: Module, kernel: K.Kernel, name: str, export: bool, fma: bool,
                     splat: bool) -> Lowered | None:
    """A depthwise convolution (``depthwise.py``) as a loop over its images ``n`` in ``[start, end)``:
    the pad kernel's image ``n`` (padding included) stored in ``scratch``, then the reduction's
    image ``n`` reading it there (both kernels' padded buffer is passed as ``scratch - n * block``, so
    image ``n`` of it lands at ``scratch``). Its rows are the images: a batch smaller than a tile
    (``threads.PACKED_ROWS``) stays on one thread. None where the split does not apply.
    Measured (wasmtime, 2-vCPU machine at load ~1, 01:05 UTC 2026-12-06; best of 3 alternating runs),
    generic reduction time / this form's: batch 8, 'same': 56x56x32 3x3 1.58x, 28x28x128 3x3 1.40x,
    40x40x64 5x5 2.70x, 20x20x96 5x5 stride 2 2.27x, 28x28x16 3x3 multiplier 4 1.87x; batch 1
    112x112x32 3x3 stride 2 1.19x; bitwise equal in each."""
    sp = depthwise.split(kernel)
    if sp is None:
        return None
    parts = [_lower(module, sp.pad, f"{name}_pad", False, fma, splat),
             _lower(module, sp.conv, f"{name}_conv", False, fma, splat)]
    if any(p.rows % sp.rows or p.scratch for p in parts):
        return None
    n = len(kernel.inputs)
    f = module.function(name, params=params(n), export=export)
    start, end, scratch = n + 1, n + 2, n + 3
    r, base = f.local(I32), f.local(I32)
    f.local_get(start)
    f.local_set(r)
    f.local_get(start)
    f.local_get(end)
    f.i32_lt_s()
    with f.if_():
        with f.loop():
            f.local_get(scratch)
            f.local_get(r)
            f.i32_const(sp.block)
            f.i32_mul()
            f.i32_sub()
            f.local_set(base)
            for p, args in zip(parts, ((base, 1), (0, base, 2))):
                for a in args:
                    f.local_get(a)
                scale = p.rows // sp.rows
                for k in (0, 1):            # rows [n * scale, (n + 1) * scale) of the part
                    f.local_get(r)
                    if k:
                        f.i32_const(1)
                        f.i32_add()
                    if scale != 1:
                        f.i32_const(scale)
                        f.i32_mul()
                f.i32_const(0)
                f.call(p.name)
            f.local_get(r)
            f.i32_const(1)
            f.i32_add()
            f.local_tee(r)
            f.local_get(end)
            f.i32_lt_s()
            f.br_if(0)
    f.finish()
    return Lowered(name, n, sp.rows, sp.block, False)


def _lower_siblings(module: Module, kernel: K.Kernel, name: str, export: bool, fma: bool, splat: bool) -> Lowered:
    """A map with siblings: ``(out, in..., sibling outs..., start, end, scratch)`` calls the map's own
    function and each sibling's (``<name>_<j>``, the separate kernels' code) on the same rows. Each
    one's rows are its collapsed outermost loop: where a sibling's are a multiple of the map's, its
    range is scaled; otherwise the function has one row (every map over all its rows when called)."""
    n, s = len(kernel.inputs), len(kernel.siblings)
    parts = [_lower(module, dataclasses.replace(kernel, siblings=()), f"{name}_0", False, fma, splat)]
    parts += [_lower(module, sk, f"{name}_{j + 1}", False, fma, splat) for j, sk in enumerate(kernel.siblings)]
    rows = parts[0].rows
    if rows and any(p.rows % rows for p in parts):
        rows = 1
    f = module.function(name, params=params(n + s), export=export)
    start, end = n + s + 1, n + s + 2
    for j, p in enumerate(parts if rows else ()):
        f.local_get(0 if j == 0 else n + j)
        for q in range(n):
            f.local_get(1 + q)
        for q in (start, end):
            f.local_get(q)
            scale = p.rows // rows if rows == parts[0].rows else p.rows   # one row: (0, 1) -> (0, all rows)
            if scale != 1:
                f.i32_const(scale)
                f.i32_mul()
        f.local_get(end + 1)
        f.call(p.name)
    f.finish()
    return Lowered(name, n + s, rows, max(p.scratch for p in parts), False)


def _respace(epi: K.Kernel, rows: int, per_row: int) -> K.Kernel:
    """Map kernel ``epi`` over the space ``(rows, per_row)`` (the same elements, row-major) instead of
    its output's shape."""
    lin = K.idx(0) * per_row + K.idx(1) if per_row > 1 else K.idx(0)
    ix = K.unravel(lin, epi.out.shape)
    expr = substitute(epi.expr, lambda e: ix[e.arg] if e.op == "idx" else None, {})
    out = K.Buffer((rows, per_row), epi.out.dtype)
    return K.Kernel("map", epi.inputs, out, out.shape, expr)


def kernel_module(kernel: K.Kernel, name: str = "kernel", fma: bool = False,
                  memory: dict | None = None, splat: bool = True) -> tuple[Module, Lowered]:
    """A module that imports ``env.memory`` and exports ``kernel`` as ``name`` (eager execution).
    ``memory``: further ``import_memory`` arguments (an engine's ``memory_import``, e.g. shared)."""
    m = Module()
    m.import_memory("env", "memory", 1, **(memory or {}))
    return m, lower(m, kernel, name, export=True, fma=fma, splat=splat)


# ---- code generation -------------------------------------------------------------------------

_FOLD = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "min": min, "max": max, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
         "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
         "ge": lambda a, b: a >= b, "and": lambda a, b: bool(a and b), "or": lambda a, b: bool(a or b)}


def _fold_index(e, d: int, value: int):
    """``substitute`` hook: ``idx(d)`` -> ``value``, integer and boolean arithmetic on constants
    folded, selects and logic with a constant condition reduced to what they pick (None: keep)."""
    op, a = e.op, e.args
    if op == "idx":
        return K.const(value, int32) if e.arg == d else None
    if op == "where" and a[0].op == "const":
        return a[1] if a[0].arg else a[2]
    if op in ("and", "or") and e.dtype == bool_:
        for x, y in ((a[0], a[1]), (a[1], a[0])):
            if x.op == "const":     # false and y = false, true and y = y; true or y = true, false or y = y
                return y if bool(x.arg) == (op == "and") else x
    if op in _FOLD and all(x.op == "const" for x in a) and e.dtype in (int32, bool_):
        return K.const(_FOLD[op](a[0].arg, a[1].arg), e.dtype)
    if op == "not" and a[0].op == "const":
        return K.const(not a[0].arg, bool_)
    return None



def _only_in_reciprocals(e, uses) -> bool:
    """Whether every use of ``e`` is ``c + e`` with |c| >= 2^-100, itself used only as a divisor.
    There, e below 2e-38 is invisible (under half an ulp of c) and e = inf in place of a huge
    finite value changes a quotient by at most |numerator| * 4.2e-39."""
    for u in uses[e]:
        if u is None or u.op != "add" or u.args[0] is u.args[1]:
            return False
        c = u.args[1] if u.args[0] is e else u.args[0]
        if c.op != "const" or not abs(c.arg) >= 2.0 ** -100:
            return False
        if not all(d is not None and d.op == "div" and d.args[1] is u and d.args[0] is not u for d in uses[u]):
            return False
    return bool(uses[e])


class _Gen(Reductions):
    """Emits one generic kernel (module docstring). Values live in locals keyed by (node, vector?)."""

    def __init__(self, f: Function, a: Analysis, fma: bool = False):
        self.f, self.a, self.k, self.fma = f, a, a.kernel, fma
        self.n_in = len(self.k.inputs)
        self.start, self.end, self.scratch = self.n_in + 1, self.n_in + 2, self.n_in + 3
        self.ext, self.n_out = a.ext, a.n_out
        self.reduce = self.k.kind == "reduce"
        self.memo: dict = {}
        self.scopes: list[list] = [[]]
        self.vec = False            # inside the vector loop of dim self.v
        self.fused: set = set()
        self.unrolled = 1           # product of the extents of the enclosing unrolled loops
        self.i = [f.local(I32) for _ in self.ext]

    # ---- planning ----
    def run(self):
        a = self.a
        if a.fill:
            return self._fill()
        self.comb = self.k.combiner
        self.v, self.strategy = self._choose_vector_dim()
        self.dep: dict = {}
        root = self._prepare(a.expr)
        n = len(self.ext)
        out_terms = [(d, prod(self.ext[d + 1:self.n_out])) for d in range(self.n_out) if self.ext[d] > 1]
        self.out_addr, self.out_cv, _ = self._chain(-1, out_terms, [], 0)
        extra = [self.out_addr]
        self.ridx = None
        if self.comb in ("argmax", "argmin"):
            self.ridx = K.linear_index([K.idx(d) for d in range(self.n_out, n)], self.ext[self.n_out:])
            extra.append(self.ridx)
        self.root = self._general_root = root
        # a map with borders along the vector dim: its interior runs a border-free form (analysis._peel)
        self.proot = self.peeling = None
        if a.peel and self.v is not None and self.v == n - 1 and n > 1:
            self.proot = self._prepare(a.peel[2])
        allnodes, seen = [], set()
        for r in [root] + extra + ([self.proot] if self.proot is not None else []):
            for e in nodes(r):
                if e not in seen:
                    seen.add(e)
                    allnodes.append(e)
        for e in allnodes:
            self._deps(e)
        self.level = {e: max(self.dep[e], default=-1) for e in allnodes}
        uses: dict = {e: [] for e in allnodes}     # node -> the nodes using it (None: the output)
        for e in allnodes:
            for x in e.args:
                uses[x].append(e)
        uses[root].append(None)
        if self.proot is not None:
            uses[self.proot].append(None)
        # with fma, a vector float multiply feeding only one add (or the subtrahend of one sub)
        # is fused into it: computed there as relaxed_madd / relaxed_nmadd, not on its own
        self.fused = fused_multiplies(allnodes, lambda x: len(uses[x]), lambda x: self.v in self.dep[x]) \
            if self.fma and self.v is not None else set()
        # exp(-y) takes the negation into exp's constants; an exp seen only through 1 / (c + e^y)
        # (sigmoid, gelu) skips the second scale factor that only the extreme ranges need
        self.negated = {e for e in allnodes if e.op == "neg" and all(u is not None and u.op == "exp" for u in uses[e])}
        self.saturating = {e for e in allnodes if e.op == "exp" and _only_in_reciprocals(e, uses)}
        # ... and when that c + e^y is its one use, the scaling multiply also adds c
        self.into_add = {e for e in self.saturating if len(uses[e]) == 1}
        self.skip = self.fused | self.negated | self.into_add
        self.extra = extra
        self.by_level, self.peel_level, self.live = self._plan(root, self.proot)
        # scalar nodes outside the vector loop that vector code consumes: splat once per entry
        self.splats = []
        if self.v is not None:
            want = set()
            for e in allnodes:
                if self.v in self.dep[e]:
                    for x in (e.args[1:] if e.op == "ld" else e.args):
                        if self.v not in self.dep[x] and self.level[x] < self.v:
                            want.add(x)
            self.splats = [e for e in allnodes if e in want]
        self._emit_level(-1)
        self._loops(0)

    def _plan(self, root, proot, floor: int = -1):
        """Nodes to compute per loop level: ``(by_level, the vector dim's nodes of the peeled
        form)``; the vector dim's own level lists only the general form's nodes (each loop over it
        computes its own form). Nodes first seen here (a specialised form's) get their level,
        raised to ``floor``."""
        general = nodes(root)
        for x in self.extra:
            general += nodes(x)
        special = nodes(proot) if proot is not None else []
        gset, sset = set(general), set(special)
        by_level: dict[int, list] = {}
        seen = set()
        for e in general + special:
            if e in seen or e.op == "const" or e in self.skip:
                continue
            seen.add(e)
            if e not in self.level:
                self.level[e] = max(max(self._deps(e), default=-1), floor)
            by_level.setdefault(self.level[e], []).append(e)
        peel_level = None
        if proot is not None:
            inner = by_level.pop(self.v, [])
            by_level[self.v] = [e for e in inner if e in gset]
            peel_level = [e for e in inner if e in sset]
        return by_level, peel_level, seen

    def _specialise(self, d: int, value: int):
        """In an unrolled copy of loop ``d`` (``i_d == value``): fold the index into the forms,
        so selects on it (a concat's pieces, a pad's rows) keep only the branch taken. Returns
        the state to restore, or None where nothing folds."""
        def fold(root):
            return substitute(root, lambda e: _fold_index(e, d, value), {})
        root, proot = fold(self._general_root), (fold(self.proot) if self.proot is not None else None)
        if root is self._general_root and proot is self.proot:
            return None
        saved = (self._general_root, self.root, self.proot, self.by_level, self.peel_level, self.live)
        self.by_level, self.peel_level, self.live = self._plan(root, proot, floor=d)
        self._general_root, self.root, self.proot = root, root, proot
        return saved

    def _choose_vector_dim(self):
        """(vector dim or None, 'map' | 'A' (over outputs) | 'B' (over the reduced axis) | 'C')."""
        ext, n, n_out = self.ext, len(self.ext), self.n_out
        dep = lda_deps(self.a.expr)
        ldas = [e for e in nodes(self.a.expr) if e.op == "lda"]

        def bad(v):   # loads that vary along v other than contiguously
            return sum(1 for e in ldas if v in dep[e] and
                       (dict(e.arg[1]).get(v, 0) != 1 or any(v in dep[x] for x in e.args)))
        if not self.reduce:
            return (n - 1 if ext[n - 1] >= 4 else None), "map"
        cands = []
        if ext[n_out - 1] >= 4:
            cands.append((bad(n_out - 1), 0, n_out - 1, "A"))
        if ext[n - 1] >= 4:
            cands.append((bad(n - 1), 1, n - 1, "B"))
        if not cands:
            return None, "C"
        _, _, v, s = min(cands)
        return v, s

    def _prepare(self, root):
        """``lda`` -> address chain (``base``/``addr`` nodes per loop level) + ``ld``."""
        def fn(e):
            if e.op != "lda":
                return None
            k, dims, acoef, c = e.arg
            # a constant offset goes into the load's memarg where the rest of the address cannot be
            # below the buffer (no atom, no negative stride: the memarg sum does not wrap), so the
            # loads of one input that differ only by it (a window's taps) share one address chain
            moff = 4 * c if 0 < c < 2 ** 28 and not e.args and all(cc >= 0 for _, cc in dims) else 0
            chain, cv, vatoms = self._chain(k, list(dims), list(zip(e.args, acoef)), c - moff // 4)
            return Node("ld", e.dtype, (chain,) + tuple(x for x, _ in vatoms),
                        (cv, tuple(kk for _, kk in vatoms), moff))
        return substitute(root, fn, {})

    def _chain(self, k, dims, atoms, const):
        """Partial sums of an offset by loop level (the vector dim's terms excluded)."""
        v = self.v
        cv, vatoms, by = 0, [], {}
        for d, c in dims:
            if d == v:
                cv = c
            else:
                by.setdefault(d, ([], []))[0].append((d, c))
        for x, c in atoms:
            dx = self._deps(x)
            if v is not None and v in dx:
                vatoms.append((x, c))
            else:
                by.setdefault(max(dx, default=-1), ([], []))[1].append((x, c))
        node = Node("base", int32, (), (k, const))
        for lev in sorted(by):
            ds, ats = by[lev]
            node = Node("addr", int32, (node,) + tuple(x for x, _ in ats), (tuple(ds), tuple(c for _, c in ats)))
        return node, cv, vatoms

    def _deps(self, x):
        """Loop dims a (prepared) node depends on, memoised in ``self.dep``."""
        if x not in self.dep:
            for e in nodes(x):
                if e in self.dep:
                    continue
                s = set()
                for a in e.args:
                    s |= self.dep[a]
                if e.op == "idx":
                    s.add(e.arg)
                elif e.op == "addr":
                    s.update(d for d, _ in e.arg[0])
                elif e.op == "ld" and e.arg[0]:
                    s.add(self.v)
                self.dep[e] = frozenset(s)
        return self.dep[x]

    # ---- scopes and values ----
    def _push(self):
        self.scopes.append([])

    def _pop(self):
        for key in self.scopes.pop():
            del self.memo[key]

    def _remember(self, key, local):
        self.memo[key] = local
        self.scopes[-1].append(key)
        return local

    def _is_vec(self, e):
        return self.vec and self.v in self.dep.get(e, ())

    def _emit_level(self, lev):
        for e in (self.peel_level if self.peeling and lev == self.v else self.by_level.get(lev, ())):
            self.val(e)

    def val(self, e, want_vec: bool | None = None) -> int:
        """Local holding node ``e`` (computed here if needed); ``want_vec`` splats a scalar."""
        isv = self._is_vec(e)
        key = (e, isv)
        loc = self.memo.get(key)
        if loc is None:
            loc = self._remember(key, self._compute(e, isv))
        if want_vec and not isv:
            skey = (e, "splat")
            s = self.memo.get(skey)
            if s is None:
                s = self._remember(skey, self._splat(e, loc))
            return s
        return loc

    def _new(self, vec: bool, dt) -> int:
        return new_local(self.f, vec, dt)

    def _splat(self, e, loc):
        f = self.f
        if e.op == "const":
            self._const(e, True)
        else:
            f.local_get(loc)
            if is_float(e.dtype):
                f.f32x4_splat()
            else:
                f.i32x4_splat()
                if e.dtype == bool_:
                    f.i32x4_neg()
        return self._new(True, e.dtype)

    def _const(self, e, vec):
        f, v, dt = self.f, e.arg, e.dtype
        if is_float(dt):
            f.v128_const(struct.pack("<f", v) * 4) if vec else f.f32_const(v)
        else:
            iv = (-1 if v else 0) if (dt == bool_ and vec) else int(v)
            f.v128_const(struct.pack("<i", iv) * 4) if vec else f.i32_const(iv)

    def _compute(self, e, vec) -> int:
        f, op = self.f, e.op
        if op == "const":
            self._const(e, vec)
        elif op == "idx":
            f.local_get(self.i[e.arg])
            if vec:
                f.i32x4_splat()
                f.v128_const(IOTA)
                f.i32x4_add()
        elif op == "base":
            k, c = e.arg
            f.local_get(0 if k < 0 else 1 + k)
            if c:
                f.i32_const(4 * c)
                f.i32_add()
        elif op == "addr":
            f.local_get(self.val(e.args[0]))
            for d, c in e.arg[0]:
                self._mad(self.i[d], 4 * c)
            for x, c in zip(e.args[1:], e.arg[1]):
                self._mad(self.val(x), 4 * c)
        elif op == "ld":
            self._load(e, vec)
        elif op == "exp" and is_float(e.dtype) or op == "add" and any(x in self.into_add for x in e.args):
            ex, c = e, None
            if op == "add":                 # c + e^y, computed by exp
                ex, c = (e.args[0], e.args[1]) if e.args[0] in self.into_add else (e.args[1], e.args[0])
            y = ex.args[0]
            neg = y in self.negated
            x = self.val(y.args[0] if neg else y, vec)
            f.local_get(vmath.exp(vmath.Lanes(f, 4 if vec else 1, self.fma), x, negate=neg,
                                  full_range=ex not in self.saturating, plus=None if c is None else c.arg))
        elif vec and emit_fused(f, e, self.fused, lambda y: self.val(y, True)):
            pass
        else:
            args = [self.val(x, vec) for x in e.args]
            emit_op(f, e, vec, args, self.fma)
        return self._new(vec, e.dtype)

    def _mad(self, loc, c):
        """stack += local * c (i32)."""
        f = self.f
        f.local_get(loc)
        if c & (c - 1) == 0 and c > 0:
            if c > 1:
                f.i32_const(c.bit_length() - 1)
                f.i32_shl()
        else:
            f.i32_const(c)
            f.i32_mul()
        f.i32_add()

    # ---- loads and stores ----
    def _load(self, e, vec):
        f = self.f
        cv, acoef, moff = e.arg
        base = self.val(e.args[0])
        atoms = e.args[1:]
        dt = e.dtype
        if not vec:
            f.local_get(base)
            if cv:
                self._mad(self.i[self.v], 4 * cv)
            for x, c in zip(atoms, acoef):
                self._mad(self.val(x), 4 * c)
            f.f32_load(moff) if is_float(dt) else f.i32_load(moff)
            return
        iv = self.i[self.v]
        if cv == 1 and not atoms:
            key = (e.args[0], "vaddr")       # base + 4 i, once per vector step for all its loads
            a = self.memo.get(key)
            if a is None:
                f.local_get(base)
                self._mad(iv, 4)
                a = self._remember(key, f.local(I32))
                f.local_set(a)
            f.local_get(a)
            f.v128_load(moff, 0)
        else:
            a0 = f.local(I32)
            f.local_get(base)
            if cv:
                self._mad(iv, 4 * cv)
            if moff:
                f.i32_const(moff)
                f.i32_add()
            f.local_set(a0)
            offs = None
            if atoms:   # lane byte offsets: 4*cv*lane + sum 4*c*atom
                f.v128_const(struct.pack("<4i", *(4 * cv * l for l in range(4))))
                for x, c in zip(atoms, acoef):
                    f.local_get(self.val(x, True))
                    f.v128_const(struct.pack("<i", 4 * c) * 4)
                    f.i32x4_mul()
                    f.i32x4_add()
                offs = f.local(V128)
                f.local_set(offs)
            res = f.local(V128)
            f.v128_const(bytes(16))
            f.local_set(res)
            for lane in range(4):
                f.local_get(a0)
                mem_off = 0
                if offs is not None:
                    f.local_get(offs)
                    f.i32x4_extract_lane(lane)
                    f.i32_add()
                elif cv > 0:
                    mem_off = 4 * cv * lane
                elif lane:
                    f.i32_const(4 * cv * lane)
                    f.i32_add()
                f.local_get(res)
                f.v128_load32_lane(lane, mem_off, 0)
                f.local_set(res)
            f.local_get(res)
        if dt == bool_:
            f.i32x4_neg()

    def _store(self, loc, vec, dt):
        f = self.f
        f.local_get(self.val(self.out_addr))
        if self.out_cv:
            self._mad(self.i[self.v], 4 * self.out_cv)
        f.local_get(loc)
        if vec:
            if dt == bool_:
                f.i32x4_neg()
            f.v128_store(0, 0)
        else:
            f.f32_store() if is_float(dt) else f.i32_store()

    # ---- loops ----
    def _for(self, d, lo, step, body, stop=None):
        """i_d from its start (lo=None: from its current value) while i_d + step <= its end
        (``stop``: an end below the extent, for d > 0)."""
        f, i = self.f, self.i[d]
        if lo is not None:
            f.local_get(self.start) if d == 0 else f.i32_const(0)
            f.local_set(i)
        lim = f.local(I32)
        if d == 0:
            f.local_get(self.end)
            if step > 1:
                f.i32_const(step - 1)
                f.i32_sub()
        else:
            f.i32_const((self.ext[d] if stop is None else stop) - step + 1)
        f.local_set(lim)
        with f.block():
            f.local_get(i)
            f.local_get(lim)
            f.i32_ge_s()
            f.br_if(0)
            with f.loop():
                self._push()
                self._emit_level(d)
                body()
                self._pop()
                f.local_get(i)
                f.i32_const(step)
                f.i32_add()
                f.local_tee(i)
                f.local_get(lim)
                f.i32_lt_s()
                f.br_if(0)

    def _loops(self, d):
        n = len(self.ext)
        if d == n:
            return self._point()
        if self.reduce and d == self.n_out:
            self._init_acc()
            self._dim(d)
            return self._finish_acc()
        self._dim(d)

    def _dim(self, d):
        lo = 0                      # start at `start` (dim 0) or 0
        n = self.ext[d]
        if d != self.v and d != 0 and n <= UNROLL and self.unrolled * n <= UNROLL_PRODUCT:
            self.unrolled *= n      # short loops (pooling windows, 3x3 patches): unrolled
            for value in range(n):
                self.f.i32_const(value)
                self.f.local_set(self.i[d])
                self._push()
                saved = self._specialise(d, value) if not self.reduce else None
                self._emit_level(d)
                self._loops(d + 1)
                if saved is not None:
                    self._general_root, self.root, self.proot, self.by_level, self.peel_level, self.live = saved
                self._pop()
            self.unrolled //= n
            return
        if d != self.v:
            return self._for(d, lo, 1, lambda: self._loops(d + 1))
        vstart, vstop = lo, None
        if self.proot is not None:      # scalar head [0, plo), vector interior, scalar tail
            plo, vstop = self.a.peel[:2]
            self._for(d, lo, 1, lambda: self._loops(d + 1), stop=plo)
            vstart, self.peeling, self.root = None, True, self.proot
        self._push()
        self.vec = True
        for e in self.splats:
            if e in self.live:
                self.val(e, True)
        self._for(d, vstart, 4, lambda: self._loops(d + 1), stop=vstop)
        self.vec = False
        self._pop()
        self.peeling, self.root = None, self._general_root
        self._for(d, None, 1, lambda: self._loops(d + 1))

