"""The kernel IR prepared for WGSL: the kernel's index space is cut into groups of dimensions,
each with one linear id (the shader's ``gid``; ``r`` and ``j``; ``z``), and the expression is
rewritten over them (:func:`flatten`): ``idx(g)`` now stands for group g's linear id (an int32
variable of the shader) and every load has one index, its flat row-major offset. That is still
core's vocabulary, so core's :class:`~webtensor.core.simplify.Simplifier` simplifies it over the
ids' extents (:func:`simplifier`).
"""
from __future__ import annotations

from ..core import kernel_ir as K
from ..core.dtypes import int32
from ..core.simplify import Simplifier, nodes


def linear_id(group: int) -> K.Expr:
    """Group ``group``'s linear id in a flattened expression."""
    return K.idx(group)


def simplifier(lin_extents) -> Simplifier:
    """The shared simplifier over the linear ids, keeping the expression's shape (the shader text
    follows it)."""
    return Simplifier(lin_extents, normalize=False)


def int_const(v: int) -> K.Expr:
    return K.const(v, int32)


def topo(root: K.Expr) -> list[K.Expr]:
    """The DAG's distinct nodes, operands before users, last operand's subtree first (the order
    of the shader's ``let`` bindings)."""
    return nodes(root, operand_order="last")


def row_major(shape) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


class Space:
    """The kernel's index space cut into groups of consecutive dimensions, each with a linear id
    (:func:`linear_id`): one group for a map kernel; output dims and reduced dims for a reduction."""

    def __init__(self, space, groups):
        self.space = tuple(space)
        self.groups = [tuple(g) for g in groups]
        self.stride, self.group_of = {}, {}
        for g, dims in enumerate(self.groups):
            s = 1
            for d in reversed(dims):
                self.stride[d], self.group_of[d] = s, g
                s *= self.space[d]

    def idx(self, d: int) -> K.Expr:
        """idx(d) in terms of its group's linear id."""
        if self.space[d] == 1:
            return int_const(0)
        lin = linear_id(self.group_of[d])
        return K.binary("mod", K.binary("idiv", lin, int_const(self.stride[d])), int_const(self.space[d]))

    def runs(self, coefs: dict) -> list[K.Expr]:
        """sum(coef[d] * idx(d)) as few terms as possible: consecutive dims whose coefficients are in
        row-major proportion form one run, ``((lin / stride) % size) * coef``."""
        terms = []
        for g, dims in enumerate(self.groups):
            run = None                              # [coef of innermost dim, its stride, run size]
            for d in reversed(dims):
                n, c = self.space[d], coefs.get(d, 0)
                if n == 1:
                    continue
                if c != 0 and run is not None and c == run[0] * run[2]:
                    run[2] *= n
                    continue
                if run is not None:
                    terms.append(self._term(g, *run))
                run = [c, self.stride[d], n] if c != 0 else None
            if run is not None:
                terms.append(self._term(g, *run))
        return terms

    @staticmethod
    def _term(g, coef, stride, size):
        part = K.binary("mod", K.binary("idiv", linear_id(g), int_const(stride)), int_const(size))
        return K.binary("mul", part, int_const(coef))


def add_all(terms: list[K.Expr]) -> K.Expr:
    out = None
    for t in terms:
        out = t if out is None else K.binary("add", out, t)
    return out if out is not None else int_const(0)


def flatten(kernel: K.Kernel, sp: Space) -> K.Expr:
    """Loads -> loads at flat offsets, idx -> expressions of linear ids (what the shader computes)."""
    forms = Simplifier(kernel.space)
    new: dict = {}
    for e in topo(kernel.expr):
        if e.op == "idx":
            new[e] = sp.idx(e.arg)
        elif e.op == "load":
            c0, coefs, rest = load_offset(e, kernel.inputs[e.arg].shape, forms)
            rest = [K.binary("mul", new[ix], int_const(st)) for ix, st in rest]
            new[e] = K.Expr("load", e.dtype, (add_all([int_const(c0)] + sp.runs(coefs) + rest),), e.arg)
        elif e.args:
            args = tuple(new[a] for a in e.args)
            new[e] = e if args == e.args else K.Expr(e.op, e.dtype, args, e.arg)
        else:
            new[e] = e
    return new[kernel.expr]


def load_offset(load: K.Expr, shape, forms: Simplifier):
    """A load's flat row-major offset as ``(c0, {dim: coef}, [(index expr, stride), ...])``: the
    affine part c0 + sum(coef * idx(dim)) plus the non-affine index components times their strides."""
    c0, coefs, rest = 0, {}, []
    for ix, n, st in zip(load.args, shape, row_major(shape)):
        if n == 1:
            continue                       # in bounds by construction: the index is 0
        a = forms.lin(ix)                  # affine in the loop indices, or not
        if any(t.op != "idx" for t in a.terms):
            rest.append((ix, st))
            continue
        c0 += a.c * st
        for t, c in a.terms.items():
            coefs[t.arg] = coefs.get(t.arg, 0) + c * st
    return c0, coefs, rest
