"""Kernel IR -> WebAssembly functions (pure Python; runs in Pyodide).

Every kernel becomes one function with the signature

    (out, in_0, ..., in_{n-1}, start, end, scratch: i32) -> ()

``out``/``in_k`` are byte addresses of contiguous row-major buffers in the imported linear
memory; ``[start, end)`` is the range of the outermost loop (``Lowered.rows`` in total), so
a kernel can be split over rows (threads later; one call with ``(0, rows)`` today);
``scratch`` is workspace for templates that need it (``Lowered.scratch`` bytes).

Generic lowering (``map`` and ``reduce`` kinds; ``analysis.py`` prepares the kernel):

- a loop nest over the collapsed dimensions (loops of at most 4 steps unrolled); each
  expression node is computed once per iteration of the loop it depends on (hoisted,
  memoised into locals), loads address memory through partial sums of their affine
  offsets kept per loop level;
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

``template == 'matmul'`` kernels go to :mod:`.matmul` when it covers them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from math import prod

from ..core import kernel_ir as K
from ..core.dtypes import bool_, int32
from ..core.simplify import nodes, substitute
from . import matmul, vmath
from .analysis import Analysis, analyze, deps as lda_deps, is_copy
from .binary import F32, I32, V128, Function, Module
from .ir import Lowered, Node, params

I32MIN = -(1 << 31)
UNROLL, UNROLL_PRODUCT = 4, 16      # loops of at most 4 steps are unrolled, at most 16 copies deep
IOTA = struct.pack("<4i", 0, 1, 2, 3)


def lower(module: Module, kernel: K.Kernel, name: str, export: bool = False, fma: bool = False) -> Lowered:
    """Add ``kernel``'s function to ``module`` (see the module docstring for its signature).

    ``fma``: use relaxed-SIMD ``f32x4.relaxed_madd`` (fused multiply-add where the hardware has
    it) in polynomials and the matmul micro-kernel; the module then needs an engine with the
    relaxed-SIMD feature, and results may differ from the unfused form in the last bit.
    """
    if kernel.template == "matmul":
        if matmul.supports(kernel):
            return matmul.lower(module, kernel, name, export, fma)
    a = analyze(kernel)
    n = len(kernel.inputs)
    f = module.function(name, params=params(n), export=export)
    if not a.empty:
        _Gen(f, a, fma).run()
    f.finish()
    return Lowered(name, n, max(a.rows, 1) if not a.empty else 0, 0, is_copy(a))


def kernel_module(kernel: K.Kernel, name: str = "kernel", fma: bool = False,
                  memory: dict | None = None) -> tuple[Module, Lowered]:
    """A module that imports ``env.memory`` and exports ``kernel`` as ``name`` (eager execution).
    ``memory``: further ``import_memory`` arguments (an engine's ``memory_import``, e.g. shared)."""
    m = Module()
    m.import_memory("env", "memory", 1, **(memory or {}))
    return m, lower(m, kernel, name, export=True, fma=fma)


# ---- code generation -------------------------------------------------------------------------

def _fl(dt) -> bool:
    return dt.kind == "f"


_FBIN = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "max", "min": "min",
         "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq", "ne": "ne"}
_IBIN = {"add": "add", "sub": "sub", "mul": "mul", "lt": "lt_s", "le": "le_s", "gt": "gt_s", "ge": "ge_s",
         "eq": "eq", "ne": "ne"}
_SWAP = {"lt": "gt_s", "le": "ge_s", "gt": "lt_s", "ge": "le_s"}   # order of bool masks is reversed
_COMBINE = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}


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


class _Gen:
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
        a, f = self.a, self.f
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
        self.root = root
        allnodes, seen = [], set()
        for r in [root] + extra:
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
        # with fma, a vector float multiply feeding only one add (or the subtrahend of one sub)
        # is fused into it: computed there as relaxed_madd / relaxed_nmadd, not on its own
        self.fused = set()
        if self.fma and self.v is not None:
            for e in allnodes:
                if e.op in ("add", "sub") and _fl(e.dtype) and self.v in self.dep[e]:
                    for x in (e.args if e.op == "add" else e.args[1:]):
                        if x.op == "mul" and len(uses[x]) == 1 and self.v in self.dep[x] and x not in self.fused:
                            self.fused.add(x)
                            break
        # exp(-y) takes the negation into exp's constants; an exp seen only through 1 / (c + e^y)
        # (sigmoid, gelu) skips the second scale factor that only the extreme ranges need
        self.negated = {e for e in allnodes if e.op == "neg" and all(u is not None and u.op == "exp" for u in uses[e])}
        self.saturating = {e for e in allnodes if e.op == "exp" and _only_in_reciprocals(e, uses)}
        # ... and when that c + e^y is its one use, the scaling multiply also adds c
        self.into_add = {e for e in self.saturating if len(uses[e]) == 1}
        skip = self.fused | self.negated | self.into_add
        self.by_level: dict[int, list] = {}
        for e in allnodes:
            if e.op != "const" and e not in skip:
                self.by_level.setdefault(self.level[e], []).append(e)
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
            chain, cv, vatoms = self._chain(k, list(dims), list(zip(e.args, acoef)), c)
            return Node("ld", e.dtype, (chain,) + tuple(x for x, _ in vatoms),
                        (cv, tuple(kk for _, kk in vatoms)))
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
        for e in self.by_level.get(lev, ()):
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
        loc = self.f.local(V128 if vec else (F32 if _fl(dt) else I32))
        self.f.local_set(loc)
        return loc

    def _splat(self, e, loc):
        f = self.f
        if e.op == "const":
            self._const(e, True)
        else:
            f.local_get(loc)
            if _fl(e.dtype):
                f.f32x4_splat()
            else:
                f.i32x4_splat()
                if e.dtype == bool_:
                    f.i32x4_neg()
        return self._new(True, e.dtype)

    def _const(self, e, vec):
        f, v, dt = self.f, e.arg, e.dtype
        if _fl(dt):
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
        elif op == "exp" and _fl(e.dtype) or op == "add" and any(x in self.into_add for x in e.args):
            ex, c = e, None
            if op == "add":                 # c + e^y, computed by exp
                ex, c = (e.args[0], e.args[1]) if e.args[0] in self.into_add else (e.args[1], e.args[0])
            y = ex.args[0]
            neg = y in self.negated
            x = self.val(y.args[0] if neg else y, vec)
            f.local_get(vmath.exp(vmath.Lanes(f, 4 if vec else 1, self.fma), x, negate=neg,
                                  full_range=ex not in self.saturating, plus=None if c is None else c.arg))
        elif vec and op in ("add", "sub") and any(x in self.fused for x in e.args):
            m = next(x for x in (e.args if op == "add" else e.args[1:]) if x in self.fused)
            other = e.args[1] if e.args[0] is m else e.args[0]
            p, q, c = (self.val(y, True) for y in (m.args[0], m.args[1], other))
            f.local_get(p)
            f.local_get(q)
            f.local_get(c)
            f.f32x4_relaxed_madd() if op == "add" else f.f32x4_relaxed_nmadd()
        else:
            args = [self.val(x, vec) for x in e.args]
            self._op(e, vec, args)
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
        cv, acoef = e.arg
        base = self.val(e.args[0])
        atoms = e.args[1:]
        dt = e.dtype
        if not vec:
            f.local_get(base)
            if cv:
                self._mad(self.i[self.v], 4 * cv)
            for x, c in zip(atoms, acoef):
                self._mad(self.val(x), 4 * c)
            f.f32_load() if _fl(dt) else f.i32_load()
            return
        iv = self.i[self.v]
        if cv == 1 and not atoms:
            f.local_get(base)
            self._mad(iv, 4)
            f.v128_load(0, 0)
        else:
            a0 = f.local(I32)
            f.local_get(base)
            if cv:
                self._mad(iv, 4 * cv)
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
            f.f32_store() if _fl(dt) else f.i32_store()

    # ---- operations ----
    def _op(self, e, vec, a):
        f, op, dt = self.f, e.op, e.dtype
        adt = e.args[0].dtype if e.args else dt
        fl = _fl(adt)
        pre = ("f32x4." if vec else "f32.") if fl else ("i32x4." if vec else "i32.")
        get = lambda *xs: [f.local_get(x) for x in xs]
        if op == "cast":
            return self._cast(adt, dt, vec, a[0])
        if op == "where":
            get(a[1], a[2], a[0])
            return f.v128_bitselect() if vec else f.select()
        if op in vmath.FUNCTIONS:
            f.local_get(vmath.FUNCTIONS[op](vmath.Lanes(f, 4 if vec else 1, self.fma), a[0]))
            return
        if op == "pow" and fl:
            f.local_get(vmath.pow(vmath.Lanes(f, 4 if vec else 1, self.fma), a[0], a[1]))
            return
        if op in ("sqrt", "floor", "ceil", "round", "abs", "neg") and fl:
            get(a[0])
            return f.op(pre + {"round": "nearest"}.get(op, op))
        if op in ("floor", "ceil", "round"):
            return get(a[0])                        # integers are already integral
        if op == "neg":
            if vec:
                get(a[0])
                return f.i32x4_neg()
            f.i32_const(0)
            get(a[0])
            return f.i32_sub()
        if op == "abs":
            if vec:
                get(a[0])
                return f.i32x4_abs()
            f.i32_const(0)
            get(a[0])
            f.i32_sub()
            get(a[0], a[0])
            f.i32_const(0)
            f.i32_lt_s()
            return f.select()
        if op == "not":
            get(a[0])
            return f.v128_not() if vec else f.i32_eqz()
        if op in ("and", "or"):
            get(a[0], a[1])
            return f.op(("v128." if vec else "i32.") + op)
        if fl and vec and op in ("max", "min"):
            # f32x4.pmax(x, c) = x < c ? c : x is numpy's maximum when c is a constant (a nan x stays
            # nan) and one instruction, where f32x4.max costs ~8 on x86: relu, clamps
            for var, c in ((0, 1), (1, 0)):
                if e.args[c].op == "const" and e.args[c].arg == e.args[c].arg:
                    get(a[var], a[c])
                    return f.op(pre + ("pmax" if op == "max" else "pmin"))
        if fl and op in _FBIN:
            get(a[0], a[1])
            return f.op(pre + _FBIN[op])
        if fl and op in ("idiv", "mod"):
            get(a[0], a[1])
            f.op(pre + "div")
            f.op(pre + "floor")
            if op == "mod":                         # a - floor(a / b) * b
                t = self._new(vec, adt)
                get(a[0], t, a[1])
                f.op(pre + "mul")
                f.op(pre + "sub")
            return
        if op in ("max", "min"):
            get(a[0], a[1])
            if vec:
                return f.op(f"i32x4.{op}_s")
            get(a[0], a[1])
            f.op("i32.gt_s" if op == "max" else "i32.lt_s")
            return f.select()
        if op in _IBIN:
            get(a[0], a[1])
            if vec and adt == bool_ and op in _SWAP:
                return f.op("i32x4." + _SWAP[op])
            return f.op(pre + _IBIN[op])
        if op in ("idiv", "mod", "div", "pow"):
            if not vec:
                return self._int_scalar(op, a[0], a[1])
            return self._per_lane(op, a)
        raise NotImplementedError(f"wasm lowering: op {op!r} on {adt}")

    def _cast(self, src, dst, vec, x):
        f = self.f
        f.local_get(x)
        if src == dst or (_fl(src) and _fl(dst)):
            return
        if _fl(src) and dst == int32:
            return f.i32x4_trunc_sat_f32x4_s() if vec else f.i32_trunc_sat_f32_s()
        if src == int32 and _fl(dst):
            return f.f32x4_convert_i32x4_s() if vec else f.f32_convert_i32_s()
        if src == bool_ and _fl(dst):
            if vec:
                f.v128_const(struct.pack("<f", 1.0) * 4)
                return f.v128_and()
            return f.f32_convert_i32_u()
        if src == bool_ and dst == int32:
            return f.i32x4_neg() if vec else None
        if dst == bool_:
            if _fl(src):
                f.v128_const(bytes(16)) if vec else f.f32_const(0.0)
                return f.f32x4_ne() if vec else f.f32_ne()
            f.v128_const(bytes(16)) if vec else f.i32_const(0)
            return f.i32x4_ne() if vec else f.i32_ne()
        raise NotImplementedError(f"wasm lowering: cast {src} -> {dst}")

    def _int_scalar(self, op, a, b):
        """Integer floor division / modulo (x // 0 = x % 0 = 0, INT_MIN // -1 wraps) and power."""
        f = self.f
        get = lambda *xs: [f.local_get(x) for x in xs]
        if op == "pow":
            return self._int_pow(a, b)
        bb, q, r = f.local(I32), f.local(I32), f.local(I32)
        f.i32_const(1)
        get(b, b)
        f.i32_eqz()
        get(a)
        f.i32_const(I32MIN)
        f.i32_eq()
        get(b)
        f.i32_const(-1)
        f.i32_eq()
        f.i32_and()
        f.i32_or()
        f.select()
        f.local_set(bb)
        get(a, bb)
        f.i32_rem_s()
        f.local_set(r)
        # adjust when the remainder is nonzero and its sign differs from the divisor's
        adj = f.local(I32)
        get(r)
        f.i32_const(0)
        f.i32_ne()
        get(r, bb)
        f.i32_xor()
        f.i32_const(0)
        f.i32_lt_s()
        f.i32_and()
        f.local_set(adj)
        if op == "mod":
            get(r, bb)
            f.i32_const(0)
            get(adj)
            f.select()
            return f.i32_add()
        get(a, bb)
        f.i32_div_s()
        get(adj)
        f.i32_sub()
        f.local_set(q)
        get(q)
        f.i32_const(0)
        get(b)
        f.i32_const(0)
        f.i32_ne()
        return f.select()

    def _int_pow(self, a, b):
        """Square-and-multiply; negative exponents give 1 for base 1, +-1 for base -1, else 0."""
        f = self.f
        r, base, ex = f.local(I32), f.local(I32), f.local(I32)
        get = lambda *xs: [f.local_get(x) for x in xs]
        f.i32_const(1)
        f.local_set(r)
        get(a)
        f.local_set(base)
        get(b)
        f.local_set(ex)
        get(b)
        f.i32_const(0)
        f.i32_lt_s()
        with f.if_():
            # 1 ** -n = 1; (-1) ** -n = +-1; others truncate to 0
            get(a)
            f.i32_const(1)
            f.i32_eq()
            get(a)
            f.i32_const(-1)
            f.i32_eq()
            f.i32_or()
            with f.if_():
                get(a)
                f.local_set(base)
                f.i32_const(0)
                get(ex)
                f.i32_sub()
                f.local_set(ex)
                f.else_()
                f.i32_const(0)
                f.local_set(r)
                f.i32_const(0)
                f.local_set(ex)
        with f.block():
            with f.loop():
                get(ex)
                f.i32_eqz()
                f.br_if(1)
                get(ex)
                f.i32_const(1)
                f.i32_and()
                with f.if_():
                    get(r, base)
                    f.i32_mul()
                    f.local_set(r)
                get(base, base)
                f.i32_mul()
                f.local_set(base)
                get(ex)
                f.i32_const(1)
                f.i32_shr_u()
                f.local_set(ex)
                f.br(0)
        get(r)

    def _per_lane(self, op, a):
        f = self.f
        res = f.local(V128)
        f.v128_const(bytes(16))
        f.local_set(res)
        lanes = [f.local(I32) for _ in a]
        for lane in range(4):
            for src, dst in zip(a, lanes):
                f.local_get(src)
                f.i32x4_extract_lane(lane)
                f.local_set(dst)
            self._int_scalar(op, *lanes)
            t = f.local(I32)
            f.local_set(t)
            f.local_get(res)
            f.local_get(t)
            f.i32x4_replace_lane(lane)
            f.local_set(res)
        f.local_get(res)

    # ---- loops ----
    def _for(self, d, lo, step, body):
        """i_d from its start (lo=None: from its current value) while i_d + step <= its end."""
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
            f.i32_const(self.ext[d] - step + 1)
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
                self._emit_level(d)
                self._loops(d + 1)
                self._pop()
            self.unrolled //= n
            return
        if d != self.v:
            return self._for(d, lo, 1, lambda: self._loops(d + 1))
        self._push()
        self.vec = True
        for e in self.splats:
            self.val(e, True)
        self._for(d, lo, 4, lambda: self._loops(d + 1))
        self.vec = False
        self._pop()
        self._for(d, None, 1, lambda: self._loops(d + 1))

    # ---- map points and reductions ----
    def _point(self):
        vec = self.vec
        if not self.reduce:
            return self._store(self.val(self.root, vec), vec, self.k.out.dtype)
        acc = self.acc[vec]
        x = self.val(self.root, vec)
        f = self.f
        if self.comb in ("argmax", "argmin"):
            av, ai = acc
            dt = self.root.dtype
            if vec and dt == bool_:
                f.local_get(x)
                f.i32x4_neg()
                x = self._new(True, int32)
            f.local_get(x)
            f.local_get(av)
            cmp = "gt" if self.comb == "argmax" else "lt"
            if _fl(dt):     # x wins when it compares better, or is the first nan (numpy)
                p = "f32x4." if vec else "f32."
                f.op(p + cmp)
                f.local_get(x)
                f.local_get(x)
                f.op(p + "ne")
                f.local_get(av)
                f.local_get(av)
                f.op(p + "eq")
                f.op("v128.and" if vec else "i32.and")
                f.op("v128.or" if vec else "i32.or")
            else:
                f.op(("i32x4." if vec else "i32.") + cmp + "_s")
            m = self._new(vec, int32)
            sel = (lambda: f.v128_bitselect()) if vec else (lambda: f.select())
            f.local_get(x)
            f.local_get(av)
            f.local_get(m)
            sel()
            f.local_set(av)
            f.local_get(self.val(self.ridx, vec))
            f.local_get(ai)
            f.local_get(m)
            sel()
            f.local_set(ai)
            return
        if isinstance(acc, tuple):      # vector float max/min: pmax plus a sticky nan mask
            av, nan = acc
            f.local_get(av)
            f.local_get(x)
            f.op("f32x4.pmax" if self.comb == "max" else "f32x4.pmin")
            f.local_set(av)
            f.local_get(nan)
            f.local_get(x)
            f.local_get(x)
            f.f32x4_ne()
            f.v128_or()
            f.local_set(nan)
            return
        self._combine(acc, x, vec, self.root.dtype)
        f.local_set(acc)

    def _combine(self, acc, x, vec, dt):
        """stack <- acc (combiner) x."""
        f = self.f
        op = _COMBINE[self.comb]
        f.local_get(acc)
        f.local_get(x)
        if _fl(dt):
            return f.op(("f32x4." if vec else "f32.") + op)
        if op in ("max", "min"):
            if vec:
                return f.op(f"i32x4.{op}_s")
            f.local_get(acc)
            f.local_get(x)
            f.op("i32.gt_s" if op == "max" else "i32.lt_s")
            return f.select()
        f.op(("i32x4." if vec else "i32.") + op)

    def _identity(self, dt, vec):
        f = self.f
        c = self.comb
        if c in ("argmax", "max"):
            v = float("-inf") if _fl(dt) else I32MIN
        elif c in ("argmin", "min"):
            v = float("inf") if _fl(dt) else -I32MIN - 1
        else:
            v = 1 if c == "prod" else 0
        if _fl(dt):
            f.v128_const(struct.pack("<f", v) * 4) if vec else f.f32_const(v)
        else:
            f.v128_const(struct.pack("<i", int(v)) * 4) if vec else f.i32_const(int(v))
        return self._new(vec, dt)

    def _init_acc(self):
        dt = self.root.dtype
        if self.comb in ("argmax", "argmin"):
            dt = int32 if dt == bool_ else dt
            mk = lambda vec: (self._identity(dt, vec), self._zero(vec))
        elif self.comb in ("max", "min") and _fl(dt):
            mk = lambda vec: (self._identity(dt, vec), self._zero(vec)) if vec else self._identity(dt, vec)
        else:
            mk = lambda vec: self._identity(dt, vec)
        self.acc = {}
        if self.strategy == "B":
            self.acc = {True: mk(True), False: mk(False)}
        else:
            self.acc = {self.vec: mk(self.vec)}

    def _zero(self, vec):
        self.f.v128_const(bytes(16)) if vec else self.f.i32_const(0)
        return self._new(vec, int32)

    def _finish_acc(self):
        f = self.f
        out_dt = self.k.out.dtype
        for key, acc in list(self.acc.items()):
            if key and isinstance(acc, tuple) and self.comb in ("max", "min"):   # apply the nan mask
                av, nan = acc
                f.v128_const(struct.pack("<f", float("nan")) * 4)
                f.local_get(av)
                f.local_get(nan)
                f.v128_bitselect()
                f.local_set(av)
                self.acc[key] = av
        if self.strategy != "B":
            acc = self.acc[self.vec]
            if self.comb in ("argmax", "argmin"):
                acc = acc[1]
            return self._store(acc, self.vec, out_dt)
        vacc, sacc = self.acc[True], self.acc[False]
        dt = self.root.dtype
        if self.comb in ("argmax", "argmin"):
            (vv, vi), (sv, si) = vacc, sacc
            dt = int32 if dt == bool_ else dt
            fl = _fl(dt)
            lv, li = f.local(F32 if fl else I32), f.local(I32)
            cmp = ("f32." if fl else "i32.") + ("gt" if self.comb == "argmax" else "lt") + ("" if fl else "_s")
            for lane in range(4):
                f.local_get(vv)
                f.f32x4_extract_lane(lane) if fl else f.i32x4_extract_lane(lane)
                f.local_set(lv)
                f.local_get(vi)
                f.i32x4_extract_lane(lane)
                f.local_set(li)
                # better = lv beats sv, or ties it with a smaller index, or (floats) lv is nan
                # and sv is not nan or has a larger index: the first nan wins, as in numpy
                f.local_get(lv)
                f.local_get(sv)
                f.op(cmp)
                f.local_get(lv)
                f.local_get(sv)
                f.op("f32.eq" if fl else "i32.eq")
                f.local_get(li)
                f.local_get(si)
                f.i32_lt_s()
                f.i32_and()
                f.i32_or()
                if fl:
                    f.local_get(lv)
                    f.local_get(lv)
                    f.f32_ne()
                    f.local_get(sv)
                    f.local_get(sv)
                    f.f32_eq()
                    f.local_get(li)
                    f.local_get(si)
                    f.i32_lt_s()
                    f.i32_or()
                    f.i32_and()
                    f.i32_or()
                m = f.local(I32)
                f.local_set(m)
                for src, dst in ((lv, sv), (li, si)):
                    f.local_get(src)
                    f.local_get(dst)
                    f.local_get(m)
                    f.select()
                    f.local_set(dst)
            return self._store(si, False, out_dt)
        fl = _fl(dt)
        lane_v = f.local(F32 if fl else I32)
        for lane in range(4):
            f.local_get(vacc)
            f.f32x4_extract_lane(lane) if fl else f.i32x4_extract_lane(lane)
            f.local_set(lane_v)
            self._combine(sacc, lane_v, False, dt)
            f.local_set(sacc)
        self._store(sacc, False, out_dt)

    def _fill(self):
        """A reduction over an empty extent: the combiner's identity everywhere."""
        f, k = self.f, self.k
        self.comb = k.combiner
        n = prod(k.out.shape)
        if k.combiner in ("argmax", "argmin"):
            f.i32_const(0)
            val = self._new(False, int32)
        else:
            val = self._identity(k.out.dtype, False)
        i = self.i[0]
        with f.block():
            with f.loop():
                f.local_get(i)
                f.i32_const(n)
                f.i32_ge_s()
                f.br_if(1)
                f.local_get(0)
                f.local_get(i)
                f.i32_const(2)
                f.i32_shl()
                f.i32_add()
                f.local_get(val)
                f.f32_store() if _fl(k.out.dtype) and k.combiner not in ("argmax", "argmin") else f.i32_store()
                f.local_get(i)
                f.i32_const(1)
                f.i32_add()
                f.local_set(i)
                f.br(0)
