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
