"""core/simplify.py: the traversal, substitution and range helpers both backends share."""
from webtensor.core import kernel_ir as K
from webtensor.core.dtypes import int32
from webtensor.core.simplify import compare_ranges, interval, nodes, substitute


def _i(v):
    return K.const(v, int32)


def test_nodes_topological_distinct_and_operand_order():
    a, b = K.idx(0), K.idx(1)
    s = K.binary("add", a, b)
    root = K.binary("mul", s, s)
    first, last = nodes(root), nodes(root, operand_order="last")
    for order in (first, last):
        assert len(order) == len(set(order)) == 4 and order[-1] is root
        assert order.index(a) < order.index(s) and order.index(b) < order.index(s)
    assert first.index(a) < first.index(b) and last.index(b) < last.index(a)


def test_nodes_deep_chain_without_recursion():
    e = K.idx(0)
    for k in range(5000):
        e = K.binary("add", e, _i(k))
    assert len(nodes(e)) == 1 + 2 * 5000


def test_substitute_replaces_bottom_up():
    e = K.binary("add", K.idx(0), _i(3))
    out = substitute(e, lambda n: _i(7) if n.op == "idx" else None, {})
    assert out == K.binary("add", _i(7), _i(3))


def test_interval_and_compare_ranges():
    assert interval("add", (0, 3), (1, 2)) == (1, 5)
    assert interval("sub", (0, 3), (1, 2)) == (-2, 2)
    assert interval("mul", (-2, 3), (4, 5)) == (-10, 15)
    assert interval("max", (0, 3), (2, 5)) == (2, 5) and interval("min", (0, 3), (2, 5)) == (0, 3)
    assert interval("where", (0, 3), (5, 9)) == (0, 9)
    assert interval("idiv", (0, 9), (4, 4)) == (0, 2) and interval("mod", (0, 9), (4, 4)) == (0, 3)
    assert interval("idiv", (0, 9), (0, 4)) is None
    assert compare_ranges("lt", (0, 3), (4, 9)) is True and compare_ranges("ge", (0, 3), (4, 9)) is False
    assert compare_ranges("lt", (0, 5), (4, 9)) is None
    assert compare_ranges("eq", (2, 2), (2, 2)) is True and compare_ranges("ne", (0, 1), (3, 4)) is True
    assert compare_ranges("add", (0, 1), (3, 4)) is None


# ---- the Simplifier both backends use -------------------------------------------------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from webtensor.core.dtypes import bool_, float16, float32  # noqa: E402
from webtensor.core.simplify import Simplifier  # noqa: E402


def _random_int_expr(rng, depth):
    """A random int32 index expression over idx(0..2) with the ops index math uses."""
    if depth == 0 or rng.random() < 0.2:
        return K.idx(int(rng.integers(3))) if rng.random() < 0.7 else _i(int(rng.integers(-3, 9)))
    a = _random_int_expr(rng, depth - 1)
    op = rng.choice(["add", "sub", "mulc", "idivc", "modc", "max", "min", "where", "neg", "mul"])
    if op in ("mulc", "idivc", "modc"):
        c = _i(int(rng.choice([-3, -2, 0, 1, 2, 3, 4, 6, 8])))
        return K.binary({"mulc": "mul", "idivc": "idiv", "modc": "mod"}[op], a, c)
    if op == "neg":
        return K.unary("neg", a)
    b = _random_int_expr(rng, depth - 1)
    if op == "where":       # often a bounds test against a constant, as padding writes them
        c = _i(int(rng.integers(-1, 9))) if rng.random() < 0.5 else b
        cmp = K.binary(str(rng.choice(["lt", "le", "eq", "ne", "gt", "ge"])), a, c)
        return K.where(cmp, a, b)
    return K.binary(op, a, b)


def _eval(expr, space):
    k = K.map_kernel([], K.Buffer(space, expr.dtype), expr)
    return K.evaluate(k, [])


@pytest.mark.parametrize("normalize", [True, False])
def test_simplifier_keeps_every_value(normalize):
    """Both modes against the IR's numpy evaluator on random index expressions (floor semantics,
    x // 0 = x % 0 = 0, negative divisors, clamps, comparisons folded by ranges)."""
    rng = np.random.default_rng(0)
    space = (3, 5, 8)
    changed = 0
    for _ in range(400):
        e = _random_int_expr(rng, 4)
        s = Simplifier(space, normalize=normalize)
        out = s.simp(e)
        changed += out != e
        np.testing.assert_array_equal(_eval(out, space), _eval(e, space), err_msg=str(e))
        for x in nodes(out):        # every node's value lies in its range
            if x.dtype == int32:
                v, (lo, hi) = _eval(x, space), s.rng(x)
                assert lo <= v.min() and v.max() <= hi, (str(x), (lo, hi))
    assert changed > 100            # the rules really fired


def test_normalize_cancels_reshape_index_math():
    i, j = K.idx(0), K.idx(1)
    lin = K.linear_index([i, j], (3, 4))
    s = Simplifier((3, 4))
    assert [s.simp(x) for x in K.unravel(lin, (3, 4))] == [i, j]
    assert s.simp(K.binary("add", K.binary("mul", K.binary("idiv", lin, _i(4)), _i(4)),
                           K.binary("mod", lin, _i(4)))) == s.simp(lin)   # c*(x // c) + x % c -> x


def test_local_mode_keeps_the_shape():
    """normalize=False (WGSL) only replaces a node by a constant, one of its operands, or the ``x`` of
    ``(x // c) * c + x % c``."""
    i, j = K.idx(0), K.idx(1)
    s = Simplifier((4, 6), normalize=False)
    ji = K.binary("add", j, i)
    assert s.simp(ji) == ji                                   # not reordered to i + j
    assert Simplifier((4, 6)).simp(ji) == K.binary("add", i, j)
    assert s.simp(K.binary("add", K.binary("mul", ji, _i(1)), _i(0))) == ji
    assert s.simp(K.binary("mod", i, _i(4))) == i and s.simp(K.binary("idiv", i, _i(4))) == _i(0)
    assert s.simp(K.binary("sub", ji, ji)) == _i(0)
    assert s.simp(K.binary("idiv", K.binary("add", K.binary("mul", i, _i(6)), j), _i(6))) == \
        K.binary("idiv", K.binary("add", K.binary("mul", i, _i(6)), j), _i(6))   # i, but not an operand
    # ... or by the x of (x // c) * c + x % c (a node the expression has: a reshape's index math)
    pair = K.binary("add", K.binary("mul", K.binary("idiv", j, _i(4)), _i(4)), K.binary("mod", j, _i(4)))
    assert s.simp(pair) == j
    assert s.simp(K.binary("add", K.binary("mul", K.binary("idiv", j, _i(4)), _i(3)), K.binary("mod", j, _i(4)))) != j


def test_ranges_decide_bounds_checks_and_clamps():
    i = K.idx(0)
    s = Simplifier((5,))
    x = K.load(0, (i,), float32)
    assert s.simp(K.where(K.binary("lt", i, _i(5)), x, 0.0)) == x
    assert s.simp(K.clamp(i, 0, 4)) == i
    assert s.simp(K.binary("ge", i, _i(5))) == K.const(False)
    assert s.rng(K.where(K.binary("lt", i, _i(2)), i, _i(9))) == (0, 9)
    assert s.rng(K.cast(K.binary("lt", i, _i(2)), int32)) == (0, 1)


def test_same_repr_hook_drops_only_the_casts_it_names():
    x = K.load(0, (K.idx(0),), float16)
    c = K.cast(x, float32)
    assert Simplifier((4,)).simp(c) == c
    assert Simplifier((4,), same_repr=lambda a, b: a.kind == b.kind == "f").simp(c) == x
    assert Simplifier((4,)).simp(K.cast(_i(3), float32)) == K.const(3.0, float32)
    assert Simplifier((4,)).simp(K.cast(_i(3), bool_)) == K.const(True)


def test_core_expr_has_only_core_kinds():
    with pytest.raises(ValueError, match="no node kind 'lda'"):
        K.Expr("lda", int32)
    from webtensor.wasm.ir import Node
    n = Node("lda", float32, (K.idx(0),), (0, (), (1,), 0))
    with pytest.raises(ValueError):
        Node("add", int32, (_i(1), _i(2)))
    root = K.binary("add", n, K.const(1.0, float32))
    out = substitute(root, lambda e: _i(5) if e.op == "idx" else None, {})
    assert type(out.args[0]) is Node and out.args[0].args == (_i(5),)
