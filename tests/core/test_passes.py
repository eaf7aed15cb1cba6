"""Graph passes: node counts before and after constant folding, CSE and DCE, and the optimised
graph still computes the same values."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import passes
from webtensor.core.graph import Graph, Value
from webtensor.core.op import OPS, Aval


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def _dev():
    return wt.get_device("reference")


def _evaluate(op, datas, attrs, in_avals, out_aval):
    return _dev().execute(op, datas, attrs, in_avals, out_aval)


def _run(g: Graph, inputs, captures=()):
    outs, updates = _dev().compile(g).run([np.asarray(a) for a in inputs], list(captures))
    return outs, updates


def _ops(g: Graph):
    return [n.op.name for n in g.nodes]


def _traced(fn, *args):
    return wt.function(fn).get_concrete(*args).raw_graph


X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
C = np.arange(4, dtype=np.float32)


def _same_values(raw, opt, inputs, captures=()):
    a, ua = _run(raw, inputs, captures)
    b, ub = _run(opt, inputs, captures)
    assert len(a) == len(b) and len(ua) == len(ub)
    for p, q in zip(a + ua, b + ub):
        np.testing.assert_allclose(q, p, rtol=1e-6, atol=1e-7)


# ---- constant folding -----------------------------------------------------------------------------

def test_constant_subgraph_disappears():
    c = wt.tensor(C)

    def f(x):
        k = wt.exp(c) * 2.0 + wt.sum(c) - wt.reshape(wt.transpose(wt.reshape(c, (2, 2))), (4,))
        return x * k

    raw = _traced(f, wt.tensor(X))
    assert _ops(raw).count("mul") == 2 and len(raw.nodes) >= 7
    folded = passes.constant_fold(raw, _evaluate)
    assert _ops(folded) == ["mul"]                       # only the node that reads the input is left
    assert len(folded.consts) == 1                       # the folded k (the dead constants are gone)
    (k,) = folded.consts.values()
    np.testing.assert_allclose(k, np.exp(C) * 2 + C.sum() - C.reshape(2, 2).T.reshape(4), rtol=1e-6)
    _same_values(raw, folded, [X])


def test_folding_keeps_large_results_symbolic():
    c = wt.tensor(np.float32(1.5))
    big = (passes.FOLD_LIMIT // 256 + 1, 256)           # one more row than the folding limit allows

    def f(x):
        return wt.sum(wt.broadcast_to(c * 2.0, big)) + x

    raw = _traced(f, wt.tensor(X))
    folded = passes.constant_fold(raw, _evaluate)
    assert _ops(folded) == ["broadcast_to", "reduce_sum", "add"]   # c * 2.0 folded, the broadcast kept
    _same_values(raw, folded, [X])


def test_function_graph_is_folded():
    c = wt.tensor(C)
    f = wt.function(lambda x: x + wt.tanh(c) * wt.max(c))
    cc = f.get_concrete(wt.tensor(X))
    assert len(cc.raw_graph.nodes) == 4 and _ops(cc.graph) == ["add"]
    np.testing.assert_allclose(f(wt.tensor(X)).numpy(), X + np.tanh(C) * C.max(), rtol=1e-6)


# ---- CSE ----------------------------------------------------------------------------------------

def test_duplicated_subexpression_is_computed_once():
    def f(x):
        a = wt.exp(x * 2.0) + 1.0
        b = wt.exp(x * 2.0) + 1.0                            # same ops, same inputs, same attributes
        return a * b + wt.sum(x, axis=0) + wt.sum(x, axis=0)

    raw = _traced(f, wt.tensor(X))
    out = passes.cse(raw)
    assert _ops(raw).count("exp") == 2 and _ops(out).count("exp") == 1
    assert _ops(raw).count("reduce_sum") == 2 and _ops(out).count("reduce_sum") == 1
    assert len(out.nodes) == len(raw.nodes) - 4            # exp, mul, add (+1.0) and reduce_sum once more
    _same_values(raw, out, [X])


def test_cse_keeps_nodes_that_differ():
    def f(x):
        return wt.sum(x, axis=0, keepdims=True) * wt.sum(x, axis=1, keepdims=True) + wt.exp(x) + wt.exp(x * x)

    raw = _traced(f, wt.tensor(X))
    out = passes.cse(raw)
    assert _ops(out) == _ops(raw)                            # different attributes or inputs: nothing merged
    _same_values(raw, out, [X])


def test_cse_chains_through_merged_nodes():
    x, y = Value(Aval((3,), wt.float32)), Value(Aval((3,), wt.float32))
    g = Graph(inputs=[x, y])
    a1 = g.add(OPS["mul"], [x, y], {}, x.aval)
    a2 = g.add(OPS["mul"], [x, y], {}, x.aval)
    b1 = g.add(OPS["exp"], [a1], {}, x.aval)
    b2 = g.add(OPS["exp"], [a2], {}, x.aval)                  # equal only once a2 is replaced by a1
    c1 = g.add(OPS["mul"], [y, x], {}, x.aval)                # operand order differs: kept
    g.outputs = [b1, b2, c1]
    out = passes.cse(g)
    assert _ops(out) == ["mul", "exp", "mul"]
    assert out.outputs[0] is out.outputs[1]
    _same_values(g, out, [np.float32([1, 2, 3]), np.float32([0.5, -1, 2])])
    assert len(g.nodes) == 5                                  # the pass did not modify its input


# ---- DCE ----------------------------------------------------------------------------------------

def test_unused_branch_goes():
    def f(x):
        unused = wt.tanh(x) @ wt.transpose(x)                     # never returned
        del unused
        return wt.relu(x) * 2.0

    raw = _traced(f, wt.tensor(X))
    out = passes.dce(raw)
    assert {"tanh", "matmul", "transpose"} <= set(_ops(raw))
    assert _ops(out) == ["relu", "mul"]
    _same_values(raw, out, [X])


def test_dce_keeps_variable_updates():
    v = wt.Variable(np.zeros(4, np.float32), name="v")

    def f(x):
        v.assign_add(wt.sum(x, axis=0))     # reaches no output, but updates state
        wt.exp(x)                            # dead
        return x[0]

    raw = _traced(f, wt.tensor(X))
    out = passes.dce(raw)
    assert "reduce_sum" in _ops(out) and "add" in _ops(out) and "exp" not in _ops(out)
    assert len(out.updates) == 1
    _same_values(raw, out, [X], [np.ones(4, np.float32)])


def test_dce_drops_dead_constants():
    c, d = wt.tensor(C), wt.tensor(C * 3)

    def f(x):
        _ = x * d
        return x + c

    raw = _traced(f, wt.tensor(X))
    assert len(raw.consts) == 2
    out = passes.dce(raw)
    assert len(out.consts) == 1 and _ops(out) == ["add"]
    np.testing.assert_array_equal(next(iter(out.consts.values())), C)


# ---- the pipeline -------------------------------------------------------------------------------

def test_optimize_pipeline_counts_and_values():
    c = wt.tensor(C)
    w = wt.Variable(np.ones((4, 2), np.float32))

    def f(x):
        k = wt.softmax(c)                                 # constant: folds
        h = wt.tanh(x * k) @ w
        h2 = wt.tanh(x * k) @ w                           # duplicate: CSE
        wt.exp(h2) * 3.0                                  # dead: DCE
        return h + h2, wt.mean(h)

    raw = _traced(f, wt.tensor(X))
    opt = passes.optimize(raw, _evaluate)
    assert len(opt.nodes) < len(raw.nodes)
    names = _ops(opt)
    assert names.count("tanh") == 1 and names.count("matmul") == 1 and "exp" not in names
    assert "reduce_max" not in names                     # the softmax of the constant was folded
    _same_values(raw, opt, [X], [w.numpy()])
    eager = f(wt.tensor(X))
    outs, _ = _run(opt, [X], [w.numpy()])
    for got, want in zip(outs, eager):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_optimize_gradient_graph_removes_unused_work():
    vg = wt.value_and_grad(lambda w, x: wt.sum(wt.square(x @ w)))
    w, x = wt.tensor(np.ones((4, 2), np.float32)), wt.tensor(X)
    cc = vg.get_concrete(w, x)
    assert len(cc.graph.nodes) < len(cc.raw_graph.nodes)   # the gradient w.r.t. x is never returned
    _same_values(cc.raw_graph, cc.graph, [w.numpy(), X])
    v, g = vg(w, x)
    np.testing.assert_allclose(g.numpy(), 2 * X.T @ (X @ np.ones((4, 2))), rtol=1e-5)
