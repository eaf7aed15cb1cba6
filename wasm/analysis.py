"""Kernel analysis for lowering: index simplification, byte-offset forms, loop-dimension collapse.

Pure Python (runs in Pyodide). The steps, in order:

1. core's :class:`~webtensor.core.simplify.Simplifier` (:func:`simplifier`: in affine normal
   form) rewrites a kernel's expression bottom-up with integer value ranges: floor ``//`` and
   ``%`` by constants are cancelled where the range allows, clamps and bounds checks that can
   never fire disappear (valid-padding convolutions lose their ``where``), and
   ``c*(x // c) + x % c`` folds back to ``x``.
2. Every ``load`` becomes an ``lda`` node (``ir.Node``) holding its element offset as an affine form:
   ``const + sum(coeff_d * i_d) + sum(coeff_a * atom_a)``, where atoms are the index
   sub-expressions that are not affine in the loop indices (gathers, true div/mod).
3. :func:`analyze` drops extent-1 dimensions and merges adjacent dimensions that every
   operand walks contiguously (``c_d == c_{d+1} * n_{d+1}``), so elementwise chains with
   broadcasts, reshapes and transposes become as few, as long loops as possible.
4. For a map whose innermost dim has borders (bounds tests and clamped, gathered loads along it:
   a pad, a padded window), ``_peel`` finds the longest range of that index where re-simplifying
   removes them all (``Analysis.peel``): the lowering runs it as plain vector code.

The result, :class:`Analysis`, is what ``lower.py`` turns into WebAssembly.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..core import kernel_ir as K
from ..core.simplify import Aff, Simplifier, atom_key, nodes, substitute
from .ir import Node


def simplifier(space) -> Simplifier:
    """The shared simplifier as this backend uses it: affine normal forms (offsets are read off
    them), and float casts between dtypes computed in the same WebAssembly type (float16 in f32)
    dropped."""
    return Simplifier(space, normalize=True,
                      same_repr=lambda a, b: a.wasm == b.wasm and a.kind == "f" and b.kind == "f")


def load_offset(s: Simplifier, e: K.Expr, shape) -> Node:
    """``lda`` node (``ir.Node``) for a ``load`` simplified by ``s``: arg = (input, ((dim, coeff)...),
    (atom coeffs), const), args = the opaque atoms. Offsets are in elements."""
    a, stride = Aff(), 1
    for ix, n in zip(reversed(e.args), reversed(shape)):
        a = a + s.lin(ix).scale(stride)
        stride *= n
    a = s.fold_pairs(a)
    dims = tuple(sorted((t.arg, k) for t, k in a.terms.items() if t.op == "idx"))
    atoms = sorted(((t, k) for t, k in a.terms.items() if t.op != "idx"), key=lambda t: atom_key(t[0]))
    return Node("lda", e.dtype, tuple(t for t, _ in atoms), (e.arg, dims, tuple(k for _, k in atoms), a.c))


@dataclass
class Analysis:
    """A kernel ready for code generation.

    ``ext``: extents of the loop dimensions after collapse (outer first; out dims, then reduced
    dims for a reduce). ``n_out``: how many are out dims. ``expr``: the value per point, with
    ``lda`` loads (offsets in elements over the new dims) and ``idx`` nodes of the new dims.
    ``empty``: the output has no elements; ``fill``: a reduce over an empty extent (the
    combiner's identity fills the output). ``peel``: None, or ``(lo, hi, expr)`` for a map kernel
    whose innermost dim (the last of ``ext``) has borders (padding, clamped windows): ``expr`` is
    the value simplified for that dim's index in ``[lo, hi)``, where every load walks it
    contiguously (its offsets are in the same coordinates as ``expr``'s).
    """
    kernel: K.Kernel
    ext: list
    n_out: int
    expr: K.Expr
    empty: bool = False
    fill: bool = False
    peel: tuple | None = None

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
        s = simplifier(space)
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
    root = substitute(simp, lambda e: load_offset(s, e, shapes[e.arg]) if e.op == "load" else None, {})
    peel = _peel(kernel, expr, simp, s, space, root) if kernel.kind == "map" else None
    all_nodes = nodes(root) + (nodes(peel[2]) if peel else [])
    ldas = [e for e in all_nodes if e.op == "lda"]
    pinned = {e.arg for e in all_nodes if e.op == "idx"}
    if peel is not None and len(space) - 1 not in pinned:
        peel = None         # the peeled dim must stay a loop of its own (not merged with another)

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
            return Node("lda", e.dtype, e.args, (k, nd, ak, c))
        return None

    root = substitute(root, renumber, {})
    if peel is not None:
        peel = (peel[0], peel[1], substitute(peel[2], renumber, {}))
    return Analysis(kernel, ext, kept_out, root, peel=peel)


PEEL_MIN = 8        # the interior range must hold at least two vectors
PEEL_WIDEN = 4      # re-simplifications tried per side to widen the range past a cut


def _border_cost(root, d: int) -> int:
    """How many nodes of a prepared expression make dim ``d`` costly to vectorise: loads whose
    non-affine offset atoms vary along it (per-lane gathers) and integer comparisons and clamps
    that vary along it (bounds tests)."""
    dep = deps(root)
    n = 0
    for e in nodes(root):
        if e.op == "lda":
            n += any(d in dep[x] for x in e.args)
        elif e.op in ("lt", "le", "gt", "ge", "eq", "ne", "min", "max") and e.args[0].dtype.kind == "i":
            n += d in dep[e]
    return n


def _peel(kernel, expr, simp, s: Simplifier, space, root):
    """``(lo, hi, prepared expr)`` when restricting the innermost dim to its longest border-free
    range ``[lo, hi)`` removes every gather and test along it (a pad's interior, a padded window's
    middle columns); else None. The range's ends are where an affine comparison or clamp of that
    index alone changes side. Offsets of the result are for the unshifted index."""
    d = len(space) - 1
    if d <= 0 or space[d] < PEEL_MIN or not _border_cost(root, d):
        return None
    n, i = space[d], K.idx(d)
    cuts = {0, n}
    for e in nodes(simp):
        if e.op in ("lt", "le", "gt", "ge", "eq", "ne", "min", "max") and e.args[0].dtype.kind == "i":
            a = s.lin(e.args[0]) + s.lin(e.args[1]).scale(-1)
            if set(a.terms) == {i}:
                x0 = -a.c // a.terms[i]         # floor of the root
                cuts.update(t for t in (x0, x0 + 1) if 0 < t < n)
    cuts = sorted(cuts)
    lo, hi = max(zip(cuts, cuts[1:]), key=lambda r: r[1] - r[0])
    shapes = [b.shape for b in kernel.inputs]

    def special(lo, hi):
        if hi - lo < PEEL_MIN:
            return None
        sub_space = space[:d] + (hi - lo,)
        s2 = simplifier(sub_space)
        e2 = s2.simp(substitute(expr, lambda e: K.idx(d) + lo if e.op == "idx" and e.arg == d else None, {}))

        def load(e):
            if e.op != "load":
                return None
            x = load_offset(s2, e, shapes[e.arg])
            k, dims, ak, c = x.arg
            c -= lo * dict(dims).get(d, 0)          # back to the unshifted index
            return Node("lda", x.dtype, x.args, (k, dims, ak, c))
        r = substitute(e2, load, {})
        if _border_cost(r, d):
            return None
        # the index itself, where the value still uses it, is the unshifted one too
        return substitute(r, lambda e: K.idx(d) - lo if e.op == "idx" and e.arg == d else None, {})

    best = special(lo, hi)
    if best is None:
        return None
    for step in (-1, 1):                # a cut can be a step or two inside the true border
        for _ in range(PEEL_WIDEN):
            if not (0 < lo if step < 0 else hi < n):
                break
            nlo, nhi = (lo - 1, hi) if step < 0 else (lo, hi + 1)
            r = special(nlo, nhi)
            if r is None:
                break
            lo, hi, best = nlo, nhi, r
    return lo, hi, best


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
