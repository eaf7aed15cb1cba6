"""Index simplification on the kernel IR, for every backend (issue 13, "one kernel-IR toolkit").

* :func:`nodes` -- the one topological traversal of an expression DAG (iterative);
* :func:`substitute` -- bottom-up rebuild with a per-node replacement hook;
* :func:`interval` -- interval arithmetic of one integer op (add, sub, mul, max, min, where,
  floor div and mod by a positive constant);
* :func:`compare_ranges` -- the value of an integer comparison decided by operand value ranges
  (how padding and bounds checks disappear);
* :class:`Aff` -- an integer expression as an affine form ``c + sum(k * atom)``;
* :class:`Simplifier` -- the rewrite: integer value ranges over a loop space, floor ``//`` and
  ``%`` by constants cancelled where the range allows (a reshape's
  ``unravel(linear_index(...))`` becomes the plain linear index), clamps, bounds checks and
  ``where`` s that can never change the result removed, ``c*(x // c) + x % c`` folded back to
  ``x``, constants folded.

Backends feed it kernels (WebAssembly, ``wasm/analysis.py``) or kernels whose loop indices they
have already rewritten over their own linear ids (WGSL, ``webgpu/flatten.py``); what differs
between them is two hooks, not rules: ``normalize`` (integer sums are rebuilt in a canonical
affine form, or a node is only replaced by a constant or one of its operands, so the emitted
text keeps the expression's shape) and ``same_repr`` (casts the backend computes as no-ops).
"""
from __future__ import annotations

from math import gcd
from typing import Callable

from . import kernel_ir as K
from .dtypes import DType, bool_, int32

I32MIN, I32MAX = -(1 << 31), (1 << 31) - 1
FULL = (I32MIN, I32MAX)


def nodes(root: K.Expr, operand_order: str = "first") -> list[K.Expr]:
    """Distinct nodes of the DAG in topological order (operands before users); iterative, so deep
    fused graphs do not hit the recursion limit. ``operand_order="first"`` visits a node's operands
    first to last (the first operand's subtree comes first); ``"last"`` visits them last to first
    (the order WGSL emission has always used for its ``let`` bindings)."""
    order, seen, stack = [], set(), [(root, False)]
    first = operand_order == "first"
    while stack:
        e, done = stack.pop()
        if done:
            order.append(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        stack.append((e, True))
        stack.extend((a, False) for a in (reversed(e.args) if first else e.args) if a not in seen)
    return order


def substitute(e: K.Expr, fn, memo) -> K.Expr:
    """Rebuild bottom-up; ``fn(node_with_new_args)`` may return a replacement (None keeps it).
    A rebuilt node keeps its class (backends' own node types pass through)."""
    r = memo.get(e)
    if r is None:
        args = tuple(substitute(a, fn, memo) for a in e.args)
        new = e if args == e.args else type(e)(e.op, e.dtype, args, e.arg)
        r = fn(new)
        r = new if r is None else r
        memo[e] = r
    return r


def compare_ranges(op: str, a, b):
    """The comparison ``x op y``'s value for every x in inclusive range a and y in range b, or None
    if it varies (or op is not a comparison)."""
    if op == "lt":
        return True if a[1] < b[0] else False if a[0] >= b[1] else None
    if op == "le":
        return True if a[1] <= b[0] else False if a[0] > b[1] else None
    if op == "gt":
        return True if a[0] > b[1] else False if a[1] <= b[0] else None
    if op == "ge":
        return True if a[0] >= b[1] else False if a[1] < b[0] else None
    if op not in ("eq", "ne"):
        return None
    if a[0] == a[1] == b[0] == b[1]:
        return op == "eq"
    if a[1] < b[0] or b[1] < a[0]:
        return op == "ne"
    return None


def interval(op: str, a, b):
    """Inclusive value range of ``x op y`` for x in range a and y in range b (integer arithmetic),
    or None where this rule does not know it. ``idiv``/``mod`` need b a single positive value;
    ``where`` takes a and b as the ranges of its two branches (their hull)."""
    (a0, a1), (b0, b1) = a, b
    if op == "add":
        return (a0 + b0, a1 + b1)
    if op == "sub":
        return (a0 - b1, a1 - b0)
    if op == "mul":
        p = (a0 * b0, a0 * b1, a1 * b0, a1 * b1)
        return (min(p), max(p))
    if op == "max":
        return (max(a0, b0), max(a1, b1))
    if op == "min":
        return (min(a0, b0), min(a1, b1))
    if op == "where":
        return (min(a0, b0), max(a1, b1))
    if op in ("idiv", "mod") and b0 == b1 and b0 > 0:
        return (a0 // b0, a1 // b0) if op == "idiv" else (0, b0 - 1)
    return None


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

    def __eq__(self, o) -> bool:
        return isinstance(o, Aff) and self.c == o.c and self.terms == o.terms

    def scale(self, k: int) -> "Aff":
        return Aff({a: v * k for a, v in self.terms.items()}, self.c * k)

    def atom(self):
        """The atom if this is exactly ``1 * atom``, else None."""
        if self.c == 0 and len(self.terms) == 1:
            (a, k), = self.terms.items()
            if k == 1:
                return a
        return None


def atom_key(e: K.Expr):
    """Sort key of an atom: loop indices by dimension, then other atoms by their structure (not
    ``hash``, which varies between processes with PYTHONHASHSEED: the emitted bytes would too)."""
    return (0, e.arg, ()) if e.op == "idx" else (1, 0, _structure(e))


def _structure(e: K.Expr) -> tuple:
    return (e.op, e.dtype.name, repr(e.arg), tuple(_structure(a) for a in e.args))


_AFFINE_OPS = ("add", "sub", "neg", "mul", "idiv", "mod")


class Simplifier:
    """Bottom-up rewrite of kernel expressions with integer value ranges over ``space`` (``idx(d)``
    ranges over ``[0, space[d])``; see the module docstring).

    Args:
        space: the loop extents the expression's ``idx`` nodes range over.
        normalize: rebuild integer sums, products by constants, ``//`` and ``%`` in a canonical
            affine form (equal forms give equal nodes; the WebAssembly lowering reads offsets off
            them). False replaces such a node only by a constant or by one of its operands, so the
            expression keeps its shape (WGSL emits it as written).
        same_repr: ``same_repr(src, dst)`` is True where the backend computes a cast from ``src`` to
            ``dst`` as a no-op; such casts are dropped (None: none are).
    """

    def __init__(self, space, normalize: bool = True,
                 same_repr: Callable[[DType, DType], bool] | None = None):
        self.space = tuple(space)
        self.normalize, self.same_repr = normalize, same_repr
        self._simp: dict = {}
        self._lin: dict = {}
        self._rng: dict = {}

    # ---- affine forms ----
    def lin(self, e: K.Expr) -> Aff:
        """Affine form of an int32 expression."""
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
        for atom, k in sorted(a.terms.items(), key=lambda t: atom_key(t[0])):
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
    def simp(self, root: K.Expr) -> K.Expr:
        """``root`` simplified (memoised; iterative over the DAG)."""
        memo = self._simp
        if root not in memo:
            for e in nodes(root):
                if e not in memo:
                    memo[e] = self._rewrite(e, tuple(memo[a] for a in e.args))
        return memo[root]

    __call__ = simp

    def _rewrite(self, e: K.Expr, args: tuple) -> K.Expr:
        op = e.op
        if op == "const":
            return e
        if op == "idx":
            return _c(0) if self.space[e.arg] == 1 else e
        if op == "load":
            return K.Expr("load", e.dtype, args, e.arg)
        dt = e.dtype
        if dt == int32 and op in _AFFINE_OPS and all(a.dtype == int32 for a in args):
            a = self._int_arith(op, args)
            if a is not None and self.normalize:
                return self.build(self.fold_pairs(a))
            if a is not None:
                if not a.terms:
                    return _c(a.c)
                for x in args:
                    if self.lin(x) == a:
                        return x
                f = self.fold_pairs(a)      # (x // c) * c + x % c: x, a node the expression already has
                if f != a:
                    for m in a.terms:
                        if m.op == "mod" and self.lin(m.args[0]) == f:
                            return m.args[0]
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
            if x.dtype == dt or (self.same_repr is not None and self.same_repr(x.dtype, dt)):
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
