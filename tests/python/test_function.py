"""``webtensor.function``: tracing, caching per signature, variables, outputs, grad transforms, errors."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import webtensor as wt


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def t(*shape, seed=0):
    return wt.tensor(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def op_names(graph):
    return [n.op.name for n in graph.nodes]


# ---- caching and retracing ------------------------------------------------------------------

def test_traces_once_per_signature():
    calls = []

    @wt.function
    def f(x, y):
        calls.append(1)  # Python side effects happen at trace time only
        return x * y + 1.0

    a, b = t(2, 3), t(2, 3, seed=1)
    np.testing.assert_allclose(f(a, b).numpy(), a.numpy() * b.numpy() + 1, rtol=1e-6)
    a2, b2 = t(2, 3, seed=2), t(2, 3, seed=3)
    np.testing.assert_allclose(f(a2, b2).numpy(), a2.numpy() * b2.numpy() + 1, rtol=1e-6)
    assert f.trace_count == 1 and len(calls) == 1

    f(t(4, 3), t(4, 3))                                   # new shape
    assert f.trace_count == 2
    f(wt.tensor([[1, 2, 3]]), wt.tensor([[4, 5, 6]]))     # new dtype (int32)
    assert f.trace_count == 3
    f(t(2, 3), t(3))                                       # broadcasting, another shape
    assert f.trace_count == 4
    f(t(4, 3, seed=5), t(4, 3, seed=6))                    # seen before: cached
    f(wt.tensor([[7, 8, 9]]), wt.tensor([[1, 1, 1]]))
    assert f.trace_count == 4 and len(calls) == 4
    np.testing.assert_array_equal(f(wt.tensor([[7, 8, 9]]), wt.tensor([[1, 1, 1]])).numpy(), [[8, 9, 10]])


def test_retraces_on_new_device(monkeypatch):
    device_module = importlib.import_module("webtensor.core.runtime.device")

    class Other(device_module.ReferenceDevice):
        name = "other"
    monkeypatch.setitem(device_module._FACTORIES, "other", Other)
    monkeypatch.setitem(device_module._INSTANCES, "other", Other())
    f = wt.function(lambda x: wt.exp(x) + 1.0)
    x = t(3)
    f(x)
    y = f(x.to("other"))
    assert f.trace_count == 2 and y.device.name == "other"
    np.testing.assert_allclose(y.numpy(), np.exp(x.numpy()) + 1, rtol=1e-6)
    f(t(3, seed=1).to("other"))
    assert f.trace_count == 2


def test_numpy_arguments_are_tensors_in_the_signature():
    f = wt.function(lambda x: x * 2.0)
    np.testing.assert_allclose(f(np.ones((2, 2), np.float32)).numpy(), 2 * np.ones((2, 2)))
    np.testing.assert_allclose(f(np.full((2, 2), 3, np.float32)).numpy(), 6 * np.ones((2, 2)))
    assert f.trace_count == 1
    f(np.ones((3,), np.float32))
    assert f.trace_count == 2


def test_retraces_on_new_static_argument():
    @wt.function
    def f(x, power, scale=1.0):
        y = x
        for _ in range(power - 1):   # Python control flow, unrolled at trace time
            y = y * x
        return y * scale

    x = t(5)
    np.testing.assert_allclose(f(x, 3).numpy(), x.numpy() ** 3, rtol=1e-5)
    np.testing.assert_allclose(f(x, 3).numpy(), x.numpy() ** 3, rtol=1e-5)
    assert f.trace_count == 1
    np.testing.assert_allclose(f(x, 2).numpy(), x.numpy() ** 2, rtol=1e-5)
    assert f.trace_count == 2
    np.testing.assert_allclose(f(x, 2, scale=3.0).numpy(), 3 * x.numpy() ** 2, rtol=1e-5)
    assert f.trace_count == 3
    f(x, 2, scale=3.0)
    assert f.trace_count == 3
    # the unrolled loop: one mul per iteration in the graph (plus the scale)
    assert op_names(f.get_concrete(x, 5).raw_graph).count("mul") == 5


def test_python_control_flow_is_unrolled_at_trace_time():
    @wt.function
    def f(x, mode):
        if mode == "relu":
            return wt.relu(x)
        return wt.tanh(x) if mode == "tanh" else -x

    x = t(3, 4)
    np.testing.assert_allclose(f(x, "relu").numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(f(x, "tanh").numpy(), np.tanh(x.numpy()), rtol=1e-6)
    assert "relu" in op_names(f.get_concrete(x, "relu").graph)
    assert "tanh" not in op_names(f.get_concrete(x, "relu").graph)
    assert op_names(f.get_concrete(x, "tanh").graph) == ["tanh"]
    assert f.trace_count == 2


def test_python_control_flow_on_shapes():
    @wt.function
    def f(x):
        while x.shape[0] > 1:        # shapes are static: a Python loop over them is fine
            x = x[::2] + x[1::2] if x.shape[0] % 2 == 0 else x[:-1] + x[-1:]
        return x

    x = wt.tensor(np.arange(8, dtype=np.float32))
    np.testing.assert_allclose(f(x).numpy(), [28.0])


# ---- variables ----------------------------------------------------------------------------------

def test_variables_are_read_by_reference():
    v = wt.Variable(np.float32([1.0, 2.0, 3.0]), name="v")
    f = wt.function(lambda x: x * v + wt.sum(v))
    x = t(3)
    np.testing.assert_allclose(f(x).numpy(), x.numpy() * [1, 2, 3] + 6, rtol=1e-6)
    v.assign(np.float32([10.0, 0.0, -1.0]))
    np.testing.assert_allclose(f(x).numpy(), x.numpy() * [10, 0, -1] + 9, rtol=1e-6)
    assert f.trace_count == 1
    c = f.get_concrete(x)
    assert [var for _, var in c.graph.captures] == [v]     # a capture, not a constant baked in


def test_assign_inside_function_updates_in_place():
    v = wt.Variable(np.zeros((2,), np.float32), name="acc")
    step = wt.Variable(0, name="step", trainable=False)

    @wt.function
    def accumulate(x):
        v.assign_add(x)
        step.assign_add(1)
        before = v.read_value()           # reads see the assignment
        v.assign(v * 2.0)
        v.assign_sub(1.0)
        return before

    out = accumulate(wt.tensor([1.0, 2.0]))
    np.testing.assert_allclose(out.numpy(), [1, 2])
    np.testing.assert_allclose(v.numpy(), [1, 3])
    out = accumulate(wt.tensor([1.0, 1.0]))
    np.testing.assert_allclose(out.numpy(), [2, 4])
    np.testing.assert_allclose(v.numpy(), [3, 7])
    assert step.numpy() == 2 and step.dtype == wt.int32
    assert accumulate.trace_count == 1
    g = accumulate.get_concrete(wt.tensor([1.0, 1.0])).graph
    assert {var for var, _ in g.updates} == {v, step}


def test_variable_created_outside_and_model_method():
    class Model:
        def __init__(self, seed):
            self.w = wt.Variable(t(3, 2, seed=seed), name="w")

        @wt.function
        def __call__(self, x):
            return x @ self.w

    m1, m2 = Model(1), Model(2)
    x = t(4, 3)
    np.testing.assert_allclose(m1(x).numpy(), x.numpy() @ m1.w.numpy(), rtol=1e-5)
    np.testing.assert_allclose(m2(x).numpy(), x.numpy() @ m2.w.numpy(), rtol=1e-5)
    m1(x)
    assert Model.__call__.__get__(m1).trace_count == 1


# ---- outputs ------------------------------------------------------------------------------------

def test_nested_outputs_keep_their_structure():
    @wt.function
    def f(x):
        return {"sum": wt.sum(x), "pair": (x + 1.0, [x * 2.0, 7]), "label": "static"}, x[0]

    x = t(3)
    out, first = f(x)
    assert set(out) == {"sum", "pair", "label"} and out["label"] == "static"
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list) and out["pair"][1][1] == 7
    np.testing.assert_allclose(out["sum"].numpy(), x.numpy().sum(), rtol=1e-6)
    np.testing.assert_allclose(out["pair"][0].numpy(), x.numpy() + 1)
    np.testing.assert_allclose(out["pair"][1][0].numpy(), x.numpy() * 2)
    np.testing.assert_allclose(first.numpy(), x.numpy()[0])
    assert isinstance(first, wt.Tensor) and first.device.name == "reference"


def test_none_and_other_static_outputs():
    f = wt.function(lambda x: (x * 2.0, None, 3, {"nothing": None}))
    y, none, three, d = f(t(2))
    assert none is None and three == 3 and d == {"nothing": None}
    assert isinstance(y, wt.Tensor)
    assert wt.function(lambda x: None)(t(2)) is None


def test_no_tensor_arguments_and_repeated_arguments():
    v = wt.Variable(np.float32([1.0, 2.0]))
    f = wt.function(lambda: v * 2.0)
    np.testing.assert_allclose(f().numpy(), [2, 4])
    x = t(3)
    np.testing.assert_allclose(wt.function(lambda a, b: a - b * 2.0)(x, x).numpy(), -x.numpy())


def test_nested_inputs():
    @wt.function
    def f(params, x):
        return x @ params["w"] + params["b"][0]

    p = {"w": t(3, 2), "b": [t(2, seed=4)]}
    x = t(5, 3, seed=7)
    np.testing.assert_allclose(f(p, x).numpy(), x.numpy() @ p["w"].numpy() + p["b"][0].numpy(), rtol=1e-5)
    assert f.trace_count == 1


def test_outputs_match_eager_execution():
    def f(x, w):
        return wt.softmax(wt.relu(x @ w) - wt.mean(x, axis=-1, keepdims=True)), wt.argmax(x @ w, axis=1)

    x, w = t(4, 3), t(3, 5, seed=1)
    for traced, eager in zip(wt.function(f)(x, w), f(x, w)):
        assert traced.dtype == eager.dtype and traced.shape == eager.shape
        np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=1e-6, atol=1e-7)


# ---- gradients ----------------------------------------------------------------------------------

def _loss(w, x):
    return wt.sum(wt.tanh(x @ w))


def test_value_and_grad_is_one_graph_holding_forward_and_backward():
    w, x = t(3, 2), t(4, 3, seed=1)
    vg = wt.value_and_grad(_loss)
    value, grad = vg(w, x)
    z = x.numpy() @ w.numpy()
    np.testing.assert_allclose(value.numpy(), np.tanh(z).sum(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), x.numpy().T @ (1 - np.tanh(z) ** 2), rtol=1e-5, atol=1e-6)
    c = vg.get_concrete(w, x)
    assert len(c.graph.outputs) == 2
    names = op_names(c.graph)
    matmuls = [n.attrs for n in c.graph.nodes if n.op.name == "matmul"]
    assert "tanh" in names and "reduce_sum" in names                  # forward
    assert {"transpose_a": False, "transpose_b": False} in matmuls     # forward x @ w
    assert any(a["transpose_a"] or a["transpose_b"] for a in matmuls)  # backward x^T @ g
    assert "mul" in names and "sub" in names                           # backward of tanh: g * (1 - y*y)
    vg(t(3, 2, seed=8), t(4, 3, seed=9))
    assert vg.trace_count == 1


def test_grad_with_argnums_and_conv_graph():
    def loss(x, f):
        return wt.mean(wt.square(wt.conv2d(x, f, strides=2, padding="same")))

    x, f = t(1, 5, 5, 2), t(3, 3, 2, 3, seed=1)
    g = wt.grad(loss, argnums=(0, 1))
    gx, gf = g(x, f)
    with wt.GradientTape() as tape:
        tape.watch([x, f])
        y = loss(x, f)
    ex, ef = tape.gradient(y, [x, f])
    np.testing.assert_allclose(gx.numpy(), ex.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gf.numpy(), ef.numpy(), rtol=1e-5, atol=1e-6)
    names = op_names(g.get_concrete(x, f).graph)
    assert "extract_patches" in names and "extract_patches_grad" in names
    assert len(g.get_concrete(x, f).graph.outputs) == 2
    only_x = wt.grad(loss)(x, f)
    np.testing.assert_allclose(only_x.numpy(), ex.numpy(), rtol=1e-5, atol=1e-6)


def test_grad_of_unconnected_argument_is_zero():
    g = wt.grad(lambda x, y: wt.sum(x * 2.0), argnums=(0, 1))
    gx, gy = g(t(3), t(2))
    np.testing.assert_allclose(gx.numpy(), [2, 2, 2])
    np.testing.assert_allclose(gy.numpy(), [0, 0])


def test_function_under_a_tape_is_differentiable():
    f = wt.function(lambda x: wt.sum(wt.exp(x)))
    x = t(4)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.exp(x.numpy()), rtol=1e-6)


def test_training_step_with_variables():
    w = wt.Variable(np.zeros((3, 1), np.float32), name="w")
    x = t(16, 3)
    y = x @ wt.tensor([[1.0], [-2.0], [0.5]])

    @wt.function
    def step(x, y):
        with wt.GradientTape() as tape:
            loss = wt.mean(wt.square(x @ w - y))
        (g,) = tape.gradient(loss, [w])
        w.assign_sub(0.1 * g)
        return loss

    losses = [float(step(x, y)) for _ in range(200)]
    assert step.trace_count == 1
    assert losses[-1] < 1e-6 < losses[0]
    np.testing.assert_allclose(w.numpy()[:, 0], [1, -2, 0.5], atol=1e-3)


# ---- nesting ------------------------------------------------------------------------------------

def test_nested_functions_inline():
    inner = wt.function(lambda x: wt.exp(x) * 2.0)

    @wt.function
    def outer(x):
        return inner(x) + inner(x * 3.0)

    x = t(4)
    np.testing.assert_allclose(outer(x).numpy(), 2 * np.exp(x.numpy()) + 2 * np.exp(3 * x.numpy()), rtol=1e-5)
    assert inner.trace_count == 0                    # no graph of its own: inlined into outer's
    assert op_names(outer.get_concrete(x).raw_graph).count("exp") == 2


# ---- errors -------------------------------------------------------------------------------------

def test_numpy_on_symbolic_tensor_raises():
    @wt.function
    def f(x):
        x.numpy()

    with pytest.raises(RuntimeError, match="symbolic.*webtensor.function"):
        f(t(2))


@pytest.mark.parametrize("use", [float, bool, lambda y: y.item(), np.asarray], ids=["float", "bool", "item", "asarray"])
def test_python_values_of_symbolic_tensors_raise(use):
    f = wt.function(lambda x: use(wt.sum(x)))
    with pytest.raises(RuntimeError, match="symbolic"):
        f(t(2))


def test_variable_numpy_inside_trace_raises():
    v = wt.Variable([1.0], name="v")
    with pytest.raises(RuntimeError, match="'v'.*tracing"):
        wt.function(lambda x: x * v.numpy())(t(1))


def test_escaped_symbolic_tensor_raises():
    kept = []

    @wt.function
    def f(x):
        kept.append(x * 2.0)
        return x

    f(t(2))
    with pytest.raises(RuntimeError, match="escaped"):
        kept[0] + 1.0


def test_unhashable_static_argument_raises():
    f = wt.function(lambda x, opts: x)
    with pytest.raises(TypeError, match="neither a tensor nor hashable"):
        f(t(2), {1, 2})  # a set: neither a tensor nor a container the signature can flatten
