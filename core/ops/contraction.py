"""Tensor contractions: ``tensordot`` and ``einsum``, compositions of ``transpose``, ``reshape``,
``matmul`` (its tuned template on every backend), ``reduce_sum`` and ``gather`` (diagonals), so
they need no kernel or gradient rule of their own.
"""
from __future__ import annotations

import inspect
from math import prod

from ..op import as_tensor
from ..signature import NAME, Signature, _drop_name, _int, _ints, op_signature
from .linalg import matmul_op
from .movement import broadcast_to, gather_op, reshape, transpose
from .reduction import reduce_sum
from ..shapes import normalize_axis


def _contract(a, b, axes_a, axes_b):
    """``a`` and ``b`` contracted over the paired axes: ``free(a) + free(b)`` axes remain."""
    fa = [d for d in range(len(a.shape)) if d not in axes_a]
    fb = [d for d in range(len(b.shape)) if d not in axes_b]
    k = prod(a.shape[d] for d in axes_a)
    sa, sb = [a.shape[d] for d in fa], [b.shape[d] for d in fb]
    a2 = reshape(transpose(a, tuple(fa) + tuple(axes_a)), (prod(sa), k))
    b2 = reshape(transpose(b, tuple(axes_b) + tuple(fb)), (k, prod(sb)))
    return reshape(matmul_op(a2, b2, transpose_a=False, transpose_b=False), tuple(sa + sb))


def _check_pair(name, a, b):
    if a.dtype != b.dtype or a.dtype.name == "bool":
        raise TypeError(f"{name}: operand dtypes must match and be numeric, got {a.dtype} and {b.dtype}")


def _tensordot_axes(v, c):
    i = _int(v)
    if i is not None:
        if i < 0:
            raise c.value_error("must be a non-negative int or a pair of axis lists", v)
        return i
    try:
        pa, pb = v
    except (TypeError, ValueError):
        raise c.type_error("an int or a pair of sequences of axes", v) from None
    pa = (_int(pa),) if _int(pa) is not None else _ints(pa)
    pb = (_int(pb),) if _int(pb) is not None else _ints(pb)
    if pa is None or pb is None:
        raise c.type_error("an int or a pair of sequences of axes", v)
    return (pa, pb)


@op_signature(axes=_tensordot_axes)
def tensordot(a, b, axes):
    """``tf.tensordot``: the sum of products of ``a`` and ``b`` over paired axes. ``axes`` is an int
    ``N`` (the last N axes of ``a`` with the first N of ``b``) or a pair ``(axes_a, axes_b)`` of
    ints or equal-length sequences (negative counts from the end). Shape:
    ``free axes of a + free axes of b``. A transpose, a reshape and one matmul.

    Args:
        a: a numeric tensor.
        b: a numeric tensor of ``a``'s dtype.
        axes: a non-negative int ``N``, or a pair ``(axes_a, axes_b)`` of ints or sequences of ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``a``'s dtype and shape ``free axes of a + free axes of b`` (in order).
    Raises:
        TypeError: dtypes that differ or are bool; ``axes`` malformed. ValueError: axes out of
            range, repeated, of different lengths, or pairing different sizes.
    """
    a, b = as_tensor(a), as_tensor(b)
    _check_pair("tensordot", a, b)
    if isinstance(axes, int):
        if axes > min(len(a.shape), len(b.shape)):
            raise ValueError(f"tensordot: axes {axes} exceeds the rank of {tuple(a.shape)} or {tuple(b.shape)}")
        axes_a, axes_b = tuple(range(len(a.shape) - axes, len(a.shape))), tuple(range(axes))
    else:
        axes_a = tuple(normalize_axis(d, len(a.shape), "tensordot") for d in axes[0])
        axes_b = tuple(normalize_axis(d, len(b.shape), "tensordot") for d in axes[1])
    if len(axes_a) != len(axes_b) or len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b):
        raise ValueError(f"tensordot: axes {axes_a} and {axes_b} must be distinct and as many")
    for da, db in zip(axes_a, axes_b):
        if a.shape[da] != b.shape[db]:
            raise ValueError(f"tensordot: axis {da} of {tuple(a.shape)} (size {a.shape[da]}) and axis {db} of "
                             f"{tuple(b.shape)} (size {b.shape[db]}) differ")
    return _contract(a, b, axes_a, axes_b)


# ---- einsum -----------------------------------------------------------------------------------

def _parse(equation: str, shapes):
    """``(input label lists, output label list)``; ``...`` becomes labels ``'.0' '.1' ..``
    (aligned from the right across operands, as numpy's broadcasting)."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: equation must be a string, got {equation!r}")
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} has {len(terms)} operands, got {len(shapes)} tensors")
    n_ell = 0
    for t, s in zip(terms, shapes):
        if "..." in t:
            n_ell = max(n_ell, len(s) - (len(t) - 3))

    def labels(term, ndim):
        """``term``'s labels; ``ndim`` None for the output (whose ellipsis covers every broadcast axis)."""
        head, ell, tail = term.partition("...")
        if "." in head + tail or not all(ch.isalpha() for ch in head + tail):
            raise ValueError(f"einsum: labels must be letters (and one '...'), got {term!r} in {equation!r}")
        k = (n_ell if ndim is None else ndim - len(head) - len(tail)) if ell else 0
        if ndim is not None and (k < 0 or (not ell and len(term) != ndim)):
            raise ValueError(f"einsum: term {term!r} does not fit a tensor of rank {ndim}")
        return list(head) + [f".{n_ell - k + e}" for e in range(k)] + list(tail)

    ins = [labels(t, len(s)) for t, s in zip(terms, shapes)]
    if arrow:
        out = labels(rhs, None)
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: repeated output label in {equation!r}")
        known = {x for l in ins for x in l}
        for x in out:
            if x not in known:
                raise ValueError(f"einsum: output label {x!r} is in no input of {equation!r}")
    else:      # implicit mode: the ellipsis, then the labels that appear once, alphabetically
        counts = {}
        for l in ins:
            for x in l:
                counts[x] = counts.get(x, 0) + 1
        out = [f".{e}" for e in range(n_ell)] + sorted(x for x, c in counts.items() if c == 1 and x[0] != ".")
    return ins, out


def _diagonal(x, labels):
    """Repeated labels of one operand reduced to their diagonal (``ii -> i``)."""
    while len(set(labels)) != len(labels):
        lab = next(l for l in labels if labels.count(l) > 1)
        pos = [d for d, l in enumerate(labels) if l == lab]
        n = x.shape[pos[0]]
        if any(x.shape[p] != n for p in pos):
            raise ValueError(f"einsum: label {lab!r} repeats over axes of different sizes {tuple(x.shape)}")
        rest = [d for d in range(len(labels)) if d not in pos]
        x = reshape(transpose(x, tuple(rest) + tuple(pos)), tuple(x.shape[d] for d in rest) + (n ** len(pos),))
        step = sum(n ** e for e in range(len(pos)))     # (i, i, .., i) in the flattened block
        x = gather_op(x, [i * step for i in range(n)], axis=len(rest))      # a list: made on x's device
        labels = [labels[d] for d in rest] + [lab]
    return x, labels


def _sum_out(x, labels, keep):
    axes = tuple(d for d, l in enumerate(labels) if l not in keep)
    if not axes:
        return x, labels
    return reduce_sum(x, axes=axes, keepdims=False), [l for l in labels if l in keep]


def _pair(a, la, b, lb, keep):
    """Two operands contracted: batch labels (in both, kept), contracted (in both, not kept)."""
    sizes = {}
    for x, ls in ((a, la), (b, lb)):
        for d, l in enumerate(ls):
            n = x.shape[d]
            if sizes.get(l, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum: label {l!r} has sizes {sizes[l]} and {n}")
            sizes[l] = n if sizes.get(l, 1) == 1 else sizes[l]
    # size-1 broadcasting (ellipsis dims): make shared labels equal in size
    a = broadcast_to(a, tuple(sizes[l] for l in la)) if any(a.shape[d] != sizes[l] for d, l in enumerate(la)) else a
    b = broadcast_to(b, tuple(sizes[l] for l in lb)) if any(b.shape[d] != sizes[l] for d, l in enumerate(lb)) else b
    batch = [l for l in la if l in lb and l in keep]
    con = [l for l in la if l in lb and l not in keep]
    fa = [l for l in la if l not in lb]
    fb = [l for l in lb if l not in la]
    nb, nfa, nfb, nk = (prod(sizes[l] for l in g) for g in (batch, fa, fb, con))
    a3 = reshape(transpose(a, tuple(la.index(l) for l in batch + fa + con)), (nb, nfa, nk))
    b3 = reshape(transpose(b, tuple(lb.index(l) for l in batch + con + fb)), (nb, nk, nfb))
    y = matmul_op(a3, b3, transpose_a=False, transpose_b=False)
    labels = batch + fa + fb
    return reshape(y, tuple(sizes[l] for l in labels)), labels


def einsum(*args, **kwargs):    # (equation, *inputs, name=None), as tf.einsum
    """``tf.einsum``: the Einstein summation ``equation`` (numpy's notation: letters, ``...``
    for broadcast axes, ``->`` with the output's labels, or implicit: the labels appearing once,
    alphabetically) over ``inputs`` of one numeric dtype. Repeated labels in one operand take
    its diagonal (``"ii->i"``); labels absent from the output are summed. Operands are
    contracted left to right, each pair as one transpose-reshape-matmul.

    Args:
        equation: a str, the subscripts (``"ij,jk->ik"``).
        *inputs: one numeric tensor per term of ``equation``, all of one dtype.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the inputs' dtype, with one axis per output label (in the output's order), each
        of that label's size.
    Raises:
        TypeError: a non-string equation; no tensor; an unexpected keyword argument; ``name`` not a
            str or None; dtypes that differ or are bool.
        ValueError: a malformed equation; a term that does not fit its tensor's rank; a label
            with different sizes; an output label in no input.
    """
    if "name" in kwargs:
        kwargs = _drop_name("einsum", dict(kwargs))
    for k in kwargs:
        if k != "equation":
            raise TypeError(f"einsum() got an unexpected keyword argument {k!r}; it takes equation, *inputs, name")
    if "equation" in kwargs:
        args = (kwargs["equation"],) + args
    if not args or not isinstance(args[0], str) or len(args) < 2:
        raise TypeError(f"einsum() takes an equation string and at least 1 tensor argument (inputs...), got "
                        f"{', '.join(type(a).__name__ for a in args) or 'nothing'}")
    equation, xs = args[0], [as_tensor(x) for x in args[1:]]
    for x in xs[1:]:
        _check_pair("einsum", xs[0], x)
    if xs[0].dtype.name == "bool":
        raise TypeError("einsum: operands must be numeric, got bool")
    ins, out = _parse(equation, [tuple(x.shape) for x in xs])
    ops = [_diagonal(x, list(l)) for x, l in zip(xs, ins)]
    x, lx = ops[0]
    for k, (y, ly) in enumerate(ops[1:], 1):
        later = set(out).union(*(set(l) for _, l in ops[k + 1:]))
        x, lx = _sum_out(x, lx, later | set(ly))
        y, ly = _sum_out(y, ly, later | set(lx))
        x, lx = _pair(x, lx, y, ly, later)
    x, lx = _sum_out(x, lx, set(out))
    perm = tuple(lx.index(l) for l in out)
    return transpose(x, perm) if perm != tuple(range(len(perm))) else x


einsum.signature = Signature("einsum", ["inputs"], {"equation": None}, variadic=True, positional=("equation",),
                             required=("equation",))
einsum.__signature__ = inspect.Signature([inspect.Parameter("equation", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                                          inspect.Parameter("inputs", inspect.Parameter.VAR_POSITIONAL), NAME])
