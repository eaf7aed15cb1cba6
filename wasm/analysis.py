"""Kernel analysis for lowering: index simplification, byte-offset forms, loop-dimension collapse.

Pure Python (runs in Pyodide). The steps, in order:

1. :class:`Simplifier` rewrites a kernel's expression bottom-up with integer value ranges:
   floor ``//`` and ``%`` by constants are cancelled where the range allows (so a reshape's
   ``unravel(linear_index(...))`` becomes the plain linear index), clamps and bounds checks
   that can never fire disappear (valid-padding convolutions lose their ``where``), and
   ``c*(x // c) + x % c`` folds back to ``x``.
2. Every ``load`` becomes an ``lda`` node holding its element offset as an affine form:
   ``const + sum(coeff_d * i_d) + sum(coeff_a * atom_a)``, where atoms are the index
   sub-expressions that are not affine in the loop indices (gathers, true div/mod).
3. :func:`analyze` drops extent-1 dimensions and merges adjacent dimensions that every
   operand walks contiguously (``c_d == c_{d+1} * n_{d+1}``), so elementwise chains with
   broadcasts, reshapes and transposes become as few, as long loops as possible.

The result, :class:`Analysis`, is what ``lower.py`` turns into WebAssembly.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd, prod

from ..core import kernel_ir as K
from ..core.dtypes import bool_, int32
from ..core.simplify import I32MAX, I32MIN, compare_ranges, interval, nodes, substitute  # noqa: F401 (re-exported)

FULL = (I32MIN, I32MAX)


def _c(v, dtype=int32) -> K.Expr:
    return K.const(v, dtype)


def _e(op, dtype, *args) -> K.Expr:
    return K.Expr(op, dtype, tuple(args))


class Aff:
    """``c + sum(terms[atom] * atom)`` over integer atoms (``idx`` nodes or opaque expressions)."""
    __slots__ = ("terms", "c")

    def __init__(self, terms=None, c: int = 0):
        self.terms = {a: k for a, k in (terms or {}).items() if k}
        self.c = c

    def __add__(self, o: "Aff") -> "Aff":
        t = dict(self.terms)
        for a, k in o.terms.items():
            t[a] = t.get(a, 0) + k
        return Aff(t, self.c + o.c)

    def scale(self, k: int) -> "Aff":
        return Aff({a: v * k for a, v in self.terms.items()}, self.c * k)

    def atom(self):
        """The atom if this is exactly ``1 * atom``, else None."""
        if self.c == 0 and len(self.terms) == 1:
            (a, k), = self.terms.items()
            if k == 1:
                return a
        return None


def _key(e: K.Expr):
    """Sort key of an atom: loop indices by dimension, then other atoms by their structure (not
    ``hash``, which varies between processes with PYTHONHASHSEED: the emitted bytes would too)."""
    return (0, e.arg, ()) if e.op == "idx" else (1, 0, _structure(e))


def _structure(e: K.Expr) -> tuple:
    return (e.op, e.dtype.name, repr(e.arg), tuple(_structure(a) for a in e.args))


class Simplifier:
    """Bottom-up rewrite of kernel expressions with value ranges over ``space`` (see module doc)."""

    def __init__(self, space):
        self.space = tuple(space)
        self._simp: dict = {}
        self._lin: dict = {}
        self._rng: dict = {}

    # ---- affine forms ----
    def lin(self, e: K.Expr) -> Aff:
        """Affine form of a simplified int32 expression."""
        r = self._lin.get(e)
        if r is None:
            op = e.op
            if op == "const":
                r = Aff({}, int(e.arg))
            elif op == "add":
                r = self.lin(e.args[0]) + self.lin(e.args[1])
            elif op == "sub":
                r = self.lin(e.args[0]) + self.lin(e.args[1]).scale(-1)
            elif op == "neg":
                r = self.lin(e.args[0]).scale(-1)
            elif op == "mul" and e.args[1].op == "const":
                r = self.lin(e.args[0]).scale(int(e.args[1].arg))
            elif op == "mul" and e.args[0].op == "const":
                r = self.lin(e.args[1]).scale(int(e.args[0].arg))
            else:
                r = Aff({e: 1}, 0)
            self._lin[e] = r
        return r

    def build(self, a: Aff) -> K.Expr:
        """An expression for an affine form (canonical term order, so equal forms give equal nodes)."""
        out = None
        for atom, k in sorted(a.terms.items(), key=lambda t: _key(t[0])):
            t = atom if k == 1 else _e("mul", int32, atom, _c(k))
            out = t if out is None else _e("add", int32, out, t)
        if out is None:
            return _c(a.c)
        return _e("add", int32, out, _c(a.c)) if a.c else out

    def arange(self, a: Aff):
        lo = hi = a.c
        for atom, k in a.terms.items():
            l, h = self.rng(atom)
            lo, hi = (lo + k * l, hi + k * h) if k > 0 else (lo + k * h, hi + k * l)
        return lo, hi

    def rng(self, e: K.Expr):
        """Inclusive value range of an int32/bool expression (FULL when unknown)."""
        r = self._rng.get(e)
        if r is not None:
            return r
        op = e.op
        if e.dtype == bool_:
            r = (int(e.arg), int(e.arg)) if op == "const" else (0, 1)
        elif e.dtype != int32:
            r = FULL
        elif op == "const":
            r = (int(e.arg), int(e.arg))
        elif op == "idx":
            r = (0, self.space[e.arg] - 1)
        elif op in ("add", "sub", "neg") or (op == "mul" and "const" in (e.args[0].op, e.args[1].op)):
            r = self.arange(self.lin(e))
        elif op in ("idiv", "mod") and e.args[1].op == "const" and e.args[1].arg > 0:
            c = e.args[1].arg
            r = interval(op, self.rng(e.args[0]), (c, c))
        elif op in ("mul", "max", "min"):
            r = interval(op, self.rng(e.args[0]), self.rng(e.args[1]))
        elif op == "where":
            r = interval(op, self.rng(e.args[1]), self.rng(e.args[2]))
        elif op == "cast" and e.args[0].dtype == bool_:
            r = (0, 1)
        else:
            r = FULL
        r = (max(r[0], I32MIN), min(r[1], I32MAX))
        self._rng[e] = r
        return r

    # ---- floor division and modulo by a positive constant ----
    def _factor(self, a: Aff, c: int):
        """A common factor g of c and the large terms with the rest in [0, g): a = g*big + small.
        Returns (g, big, small) for the largest such g > 1, or None."""
        for g in sorted({gcd(c, k) for k in a.terms.values()} - {1}, reverse=True):
            q, r = divmod(a.c, g)
            big = Aff({t: k // g for t, k in a.terms.items() if k % g == 0}, q)
            small = Aff({t: k for t, k in a.terms.items() if k % g}, r)
            lo, hi = self.arange(small)
            if lo >= 0 and hi < g:
                return g, big, small
        return None

    def _div(self, a: Aff, c: int) -> Aff:
        if c == 1:
            return a
        q = {t: k // c for t, k in a.terms.items() if k % c == 0}
        r = Aff({t: k for t, k in a.terms.items() if k % c}, a.c % c)
        q0 = a.c // c
        lo, hi = self.arange(r)
        if lo // c == hi // c:
            return Aff(q, q0 + lo // c)
        fac = self._factor(a, c)
        if fac is not None:                 # (g big + small) // (g c') = big // c'  when 0 <= small < g
            g, big, _ = fac
            return self._div(big, c // g)
        g = gcd(c, r.c, *r.terms.values())
        if g > 1:
            r, c = Aff({t: k // g for t, k in r.terms.items()}, r.c // g), c // g
        inner = r.atom()
        if inner is not None and inner.op == "idiv" and inner.args[1].op == "const" and inner.args[1].arg > 0:
            atom = _e("idiv", int32, inner.args[0], _c(inner.args[1].arg * c))   # (x // a) // b = x // (ab)
        else:
            atom = _e("idiv", int32, self.build(r), _c(c))
        return Aff(q, q0) + Aff({atom: 1})

    def _mod(self, a: Aff, c: int) -> Aff:
        if c == 1:
            return Aff({}, 0)
        r = Aff({t: k for t, k in a.terms.items() if k % c}, a.c % c)
        lo, hi = self.arange(r)
        if lo // c == hi // c:
            return r + Aff({}, -c * (lo // c))
        fac = self._factor(r, c)
        if fac is not None:                 # (g big + small) % (g c') = g (big % c') + small
            g, big, small = fac
            return self._mod(big, c // g).scale(g) + small
        g = gcd(c, r.c, *r.terms.values())
        if g > 1:   # (g r') % (g c') = g (r' % c')
            return self._mod(Aff({t: k // g for t, k in r.terms.items()}, r.c // g), c // g).scale(g)
        return Aff({_e("mod", int32, self.build(r), _c(c)): 1})

    def fold_pairs(self, a: Aff) -> Aff:
        """Fold ``k*c*(x // c) + k*(x % c)`` into ``k*x`` (floor division identity)."""
        changed = True
        while changed:
            changed = False
            for m, k in list(a.terms.items()):
                if m.op != "mod" or m.args[1].op != "const":
                    continue
                c = m.args[1].arg
                d = self._div(self.lin(m.args[0]), c).atom()
                if d is not None and a.terms.get(d) == k * c:
                    t = dict(a.terms)
                    del t[m], t[d]
                    a = Aff(t, a.c) + self.lin(m.args[0]).scale(k)
                    changed = True
                    break
        return a

    # ---- the rewrite ----
    def simp(self, e: K.Expr) -> K.Expr:
        r = self._simp.get(e)
        if r is None:
            r = self._simp[e] = self._rewrite(e)
        return r

    def _rewrite(self, e: K.Expr) -> K.Expr:
        op = e.op
        if op == "const":
            return e
        if op == "idx":
            return _c(0) if self.space[e.arg] == 1 else e
        args = tuple(self.simp(a) for a in e.args)
        if op == "load":
            return K.Expr("load", e.dtype, args, e.arg)
        dt = e.dtype
        if dt == int32 and op in ("add", "sub", "neg", "mul", "idiv", "mod") and \
                all(a.dtype == int32 for a in args):
            a = self._int_arith(op, args)
            if a is not None:
                return self.build(self.fold_pairs(a))
        if op in ("max", "min") and dt == int32:
            (a, b), (c, d) = self.rng(args[0]), self.rng(args[1])
            if a >= d:
                return args[0] if op == "max" else args[1]
            if b <= c:
                return args[1] if op == "max" else args[0]
        if op in K.COMPARISONS and args[0].dtype in (int32, bool_):
            v = compare_ranges(op, *(self.rng(x) for x in args))
            if v is not None:
                return _c(v, bool_)
        if op in ("and", "or"):
            a, b = args
            for x, y in ((a, b), (b, a)):
                if x.op == "const":
                    if op == "and":
                        return y if x.arg else _c(False, bool_)
                    return _c(True, bool_) if x.arg else y
        if op == "not" and args[0].op == "const":
            return _c(not args[0].arg, bool_)
        if op == "where":
            c, a, b = args
            if c.op == "const":
                return a if c.arg else b
            if a == b:
                return a
        if op == "cast":
            (x,) = args
            if x.op == "const":
                v = x.arg
                if dt.kind == "f":
                    return _c(float(v), dt)
                if dt == bool_:
                    return _c(v != 0, bool_)
                if x.dtype.kind != "f":
                    return _c(int(v), dt)
            if x.dtype == dt or (x.dtype.wasm == dt.wasm and dt.kind == "f" and x.dtype.kind == "f"):
                return x
        return K.Expr(op, dt, args, e.arg)

    def _int_arith(self, op, args):
        if op == "add":
            return self.lin(args[0]) + self.lin(args[1])
        if op == "sub":
            return self.lin(args[0]) + self.lin(args[1]).scale(-1)
        if op == "neg":
            return self.lin(args[0]).scale(-1)
        if op == "mul":
            if args[1].op == "const":
                return self.lin(args[0]).scale(int(args[1].arg))
            if args[0].op == "const":
                return self.lin(args[1]).scale(int(args[0].arg))
            return None
        b = args[1]
        if b.op != "const":
            return None
        c = int(b.arg)
        a = self.lin(args[0])
        if c == 0:
            return Aff({}, 0)               # numpy: integer x // 0 and x % 0 give 0
        if c < 0:                           # x // -c = (-x) // c;  x % -c = -((-x) % c)
            return self._div(a.scale(-1), -c) if op == "idiv" else self._mod(a.scale(-1), -c).scale(-1)
        return self._div(a, c) if op == "idiv" else self._mod(a, c)

    def load_offset(self, e: K.Expr, shape) -> K.Expr:
        """``lda`` node for a simplified ``load``: arg = (input, ((dim, coeff)...), (atom coeffs), const),
        args = the opaque atoms. Offsets are in elements."""
        a, stride = Aff(), 1
        for ix, n in zip(reversed(e.args), reversed(shape)):
            a = a + self.lin(ix).scale(stride)
            stride *= n
        a = self.fold_pairs(a)
        dims = tuple(sorted((t.arg, k) for t, k in a.terms.items() if t.op == "idx"))
        atoms = sorted(((t, k) for t, k in a.terms.items() if t.op != "idx"), key=lambda t: _key(t[0]))
        return K.Expr("lda", e.dtype, tuple(t for t, _ in atoms), (e.arg, dims, tuple(k for _, k in atoms), a.c))


@dataclass
class Analysis:
    """A kernel ready for code generation.

    ``ext``: extents of the loop dimensions after collapse (outer first; out dims, then reduced
    dims for a reduce). ``n_out``: how many are out dims. ``expr``: the value per point, with
    ``lda`` loads (offsets in elements over the new dims) and ``idx`` nodes of the new dims.
    ``empty``: the output has no elements; ``fill``: a reduce over an empty extent (the
    combiner's identity fills the output).
    """
    kernel: K.Kernel
    ext: list
    n_out: int
    expr: K.Expr
    empty: bool = False
    fill: bool = False

    @property
    def rows(self) -> int:
        return self.ext[0] if self.ext else 0


def analyze(kernel: K.Kernel) -> Analysis:
    """Simplify, split and merge loop dimensions, and turn loads into offset forms (module docstring)."""
    space = tuple(kernel.space)
    n_out = len(kernel.out.shape)
    if prod(kernel.out.shape) == 0:
        return Analysis(kernel, [], 0, kernel.expr, empty=True)
    if prod(space) == 0:
        return Analysis(kernel, [1], 1, kernel.expr, fill=True)
    expr = kernel.expr
    for tries in range(17):                 # split dims that index math divides (im2col after a reshape)
        s = Simplifier(space)
        simp = s.simp(expr)
        split = _split_candidate(simp, space)
        if split is None or tries == 16:
            break
        d, c = split
        expr = substitute(expr, lambda e: (K.idx(d) * c + K.idx(d + 1) if e.arg == d else K.idx(e.arg + 1))
                          if e.op == "idx" and e.arg >= d else None, {})
        space = space[:d] + (space[d] // c, c) + space[d + 1:]
        n_out += d < n_out
    shapes = [b.shape for b in kernel.inputs]
    root = substitute(simp, lambda e: s.load_offset(e, shapes[e.arg]) if e.op == "load" else None, {})
    all_nodes = nodes(root)
    ldas = [e for e in all_nodes if e.op == "lda"]
    pinned = {e.arg for e in all_nodes if e.op == "idx"}

    # groups of original dims forming each new dim; extent-1 dims vanish
    groups, kept_out = [], 0
    for part, dims in ((0, range(n_out)), (1, range(n_out, len(space)))):
        cur: list[list[int]] = []
        for d in dims:
            if space[d] == 1:
                continue
            if cur and _mergeable(cur[-1][-1], d, space, pinned, ldas):
                cur[-1].append(d)
            else:
                cur.append([d])
        if part == 0:
            kept_out = len(cur) or 1
            cur = cur or [[]]                   # a dummy out dim of extent 1
        elif not cur:
            cur = [[]] if kernel.kind == "reduce" else []
        groups.extend(cur)
    new_of = {d: i for i, g in enumerate(groups) for d in g}
    ext = [prod(space[d] for d in g) for g in groups]

    def renumber(e):
        if e.op == "idx":
            return K.idx(new_of[e.arg])
        if e.op == "lda":
            k, dims, ak, c = e.arg
            coeff = dict(dims)
            nd = tuple((i, coeff[g[-1]]) for i, g in enumerate(groups) if g and g[-1] in coeff)
            return K.Expr("lda", e.dtype, e.args, (k, nd, ak, c))
        return None

    root = substitute(root, renumber, {})
    return Analysis(kernel, ext, kept_out, root)


def _split_candidate(expr: K.Expr, space):
    """(dim, factor): a dim whose index is floor-divided or reduced modulo a proper factor of its
    extent (``i // c``, ``i % c``, ``(i // c) % m``): splitting it into (n / c, c) turns that
    arithmetic into plain loop indices. The smallest such factor of the innermost such dim."""
    best = None
    for e in nodes(expr):
        if e.op not in ("idiv", "mod") or e.args[1].op != "const":
            continue
        x, c = e.args[0], e.args[1].arg
        if x.op == "idiv" and x.args[1].op == "const" and x.args[0].op == "idx":
            x, c = x.args[0], x.args[1].arg         # (i // c) % m: split by c first
        if x.op != "idx" or not 1 < c < space[x.arg] or space[x.arg] % c:
            continue
        cand = (x.arg, c)
        if best is None or cand[0] > best[0] or (cand[0] == best[0] and c < best[1]):
            best = cand
    return best


def _mergeable(d0: int, d1: int, space, pinned, ldas) -> bool:
    """Can loop dims d0, d1 (adjacent, d0 outer) become one? Every load must walk them as one
    contiguous run, and no index computation may use them individually."""
    if d0 in pinned or d1 in pinned:
        return False
    for e in ldas:
        c = dict(e.arg[1])
        if c.get(d0, 0) != c.get(d1, 0) * space[d1]:
            return False
    return True


def deps(root: K.Expr) -> dict:
    """node -> frozenset of the loop dims it depends on (through idx and lda offsets)."""
    out: dict = {}
    for e in nodes(root):
        s = set()
        for a in e.args:
            s |= out[a]
        if e.op == "idx":
            s.add(e.arg)
        elif e.op == "lda":
            s.update(d for d, _ in e.arg[1])
        out[e] = frozenset(s)
    return out


def is_copy(a: Analysis) -> bool:
    """True if the kernel's output is byte-for-byte its first input (a reshape, an identity)."""
    k = a.kernel
    if k.kind != "map" or a.empty or not k.inputs or k.inputs[0].dtype != k.out.dtype:
        return False
    e = a.expr
    if e.op != "lda" or e.args or e.arg[0] != 0 or e.arg[3] != 0:
        return False
    n = prod(k.out.shape)
    if prod(k.inputs[0].shape) != n:
        return False
    return (len(a.ext) == 1 and e.arg[1] == ((0, 1),)) or (n == 1 and e.arg[1] == ())
