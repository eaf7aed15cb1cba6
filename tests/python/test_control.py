"""``webtensor.cond``, ``while_loop`` and ``scan``: eager and traced, against numpy loops, and their
gradients (eager tapes, traced tapes, ``value_and_grad``) against central finite differences.

Values: each case runs eagerly and inside ``webtensor.function`` on "reference" and "wasm" and is
compared with the same computation written as a numpy loop (float32 rounding: rtol 1e-5 or 1e-6).
Gradients: in ``float64_reference()`` (float32 stored as float64) against central differences with
step 1e-5 of the numpy function (measured error at most 2e-9: tolerance 1e-8); on "wasm" the traced
float32 gradient against the same differences (measured at most 1.6e-6 on values up to 10).
"""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt
from webtensor.core.numpy_util import float64_reference
from webtensor.tree import flatten, unflatten

DEVICES = ["reference", "wasm"]
EPS = 1e-5


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "wasm":
        pytest.importorskip("wasmtime")
    with wt.device(request.param):
        yield request.param


def both(fn, *args):
    """``fn`` run eagerly and traced (a fresh ``webtensor.function``), as numpy values."""
    def to_numpy(o):
        leaves: list = []
        struct = flatten(o, leaves)
        return unflatten(struct, iter([np.asarray(t) for t in leaves]))
    return [to_numpy(fn(*args)), to_numpy(wt.function(fn)(*args))]


def fd_grad(f, x: np.ndarray) -> np.ndarray:
    """Central finite differences of the scalar numpy function ``f`` at ``x`` (float64)."""
    g = np.zeros_like(x)
    for i in range(x.size):
        d = np.zeros_like(x)
        d.flat[i] = EPS
        g.flat[i] = (f(x + d) - f(x - d)) / (2 * EPS)
    return g


# ---- errors that point at the control-flow ops ------------------------------------------------------

def test_python_if_and_while_on_a_symbolic_tensor_name_cond_and_while_loop():
    @wt.function
    def with_if(x):
        if wt.reduce_sum(x) > 0:
            return x
        return -x

    @wt.function
    def with_while(x):
        while wt.reduce_sum(x) < 10:
            x = x * 2.0
        return x

    for f in (with_if, with_while):
        with pytest.raises(TypeError, match=r"webtensor\.cond.*webtensor\.while_loop"):
            f(wt.tensor([1.0, 2.0]))


# ---- cond ------------------------------------------------------------------------------------------

def _cond_fn(x, w):
    s = wt.reduce_sum(x)
    return wt.cond(s > 0, lambda: {"a": x * w, "b": (s, x - 1.0)}, lambda: {"a": wt.sin(x), "b": (-s, x * x)})


def _cond_np(x, w):
    s = x.sum()
    return (x * w, s, x - 1.0) if s > 0 else (np.sin(x), -s, x * x)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_takes_the_branch_numpy_takes(device, sign):
    x = (sign * np.array([0.5, 1.5, 2.0])).astype(np.float32)
    w = np.float32(3.0)
    want = _cond_np(x, w)
    for out in both(lambda x: _cond_fn(x, wt.tensor(w)), wt.tensor(x)):
        got = (out["a"], out["b"][0], out["b"][1]) if isinstance(out, dict) else out
        for g, e in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-6)


def test_traced_cond_is_one_node_that_runs_only_the_chosen_branch(device):
    calls = []

    @wt.function
    def f(x, p):
        return wt.cond(p, lambda: calls.append("t") or x + 1.0, lambda: calls.append("f") or x - 1.0)

    x = wt.tensor([1.0])
    assert f(x, wt.tensor(True)).numpy().tolist() == [2.0]
    assert f(x, wt.tensor(False)).numpy().tolist() == [0.0]
    assert sorted(calls) == ["f", "t"] and f.trace_count == 1    # each branch traced once, run per call


def test_cond_on_a_variable_reads_its_value_at_run_time(device):
    flag = wt.Variable(True, trainable=False)
    v = wt.Variable([2.0])
    f = wt.function(lambda x: wt.cond(flag, lambda: x * v, lambda: x + v))
    x = wt.tensor([3.0])
    assert f(x).numpy().tolist() == [6.0]
    flag.assign(False)
    v.assign([4.0])
    assert f(x).numpy().tolist() == [7.0]


def test_cond_errors():
    x = wt.tensor([1.0, 2.0])
    p = wt.reduce_sum(x) > 0

    @wt.function
    def shapes(x):
        return wt.cond(wt.reduce_sum(x) > 0, lambda: x, lambda: x[:1])

    @wt.function
    def dtypes(x):
        return wt.cond(wt.reduce_sum(x) > 0, lambda: x, lambda: wt.cast(x, wt.int32))

    @wt.function
    def structure(x):
        return wt.cond(wt.reduce_sum(x) > 0, lambda: (x, x), lambda: x)

    with pytest.raises(ValueError, match=r"output 0 has shape \(2,\) but \(1,\)"):
        shapes(x)
    with pytest.raises(TypeError, match="output 0 has dtype float32 but int32"):
        dtypes(x)
    with pytest.raises(TypeError, match="same structure"):
        structure(x)
    with pytest.raises(TypeError, match="bool scalar"):
        wt.cond(x, lambda: x, lambda: x)
    with pytest.raises(TypeError, match="callables"):
        wt.cond(p, x, lambda: x)


# ---- while_loop -----------------------------------------------------------------------------------

def _newton_sqrt(a):
    """sqrt(a) by Newton's iteration until converged: a data-dependent number of iterations."""
    def cond(i, x, err):
        return (err > 1e-6) & (i < 50)

    def body(i, x, err):
        nx = 0.5 * (x + a / x)
        return i + 1, nx, wt.reduce_max(wt.abs(nx - x))
    return wt.while_loop(cond, body, (0, a, wt.tensor(1.0)))


def _newton_np(a):
    i, x, err = 0, a.copy(), 1.0
    while err > 1e-6 and i < 50:
        nx = np.float32(0.5) * (x + a / x)
        i, x, err = i + 1, nx, np.abs(nx - x).max()
    return i, x


def test_while_loop_runs_until_its_condition_fails_like_a_numpy_loop(device):
    for a in (np.array([2.0, 9.0], np.float32), np.array([1e4, 0.25, 7.0], np.float32)):
        n, want = _newton_np(a)
        for i, x, _ in both(_newton_sqrt, wt.tensor(a)):
            assert int(i) == n
            np.testing.assert_allclose(x, want, rtol=1e-6)
            np.testing.assert_allclose(x, np.sqrt(a), rtol=1e-5)


def test_while_loop_nested_structures_single_tensors_and_maximum_iterations(device):
    def f(x):
        out = wt.while_loop(lambda s: s["i"] < 100, lambda s: {"i": s["i"] + 1, "v": [s["v"][0] * 2.0]},
                            {"i": wt.tensor(0), "v": [x]}, maximum_iterations=3)
        single = wt.while_loop(lambda y: wt.reduce_sum(y) < 50.0, lambda y: y + 1.0, x)
        return out["i"], out["v"][0], single
    x = np.array([1.0, 2.0], np.float32)
    for i, v, single in both(f, wt.tensor(x)):
        assert int(i) == 3
        np.testing.assert_array_equal(v, x * 8)
        np.testing.assert_array_equal(single, x + 24)    # 3 + 2k >= 50 first at k = 24


def test_traced_while_loop_traces_its_body_once(device):
    traced = []

    @wt.function
    def f(x, n):
        return wt.while_loop(lambda i, y: i < n, lambda i, y: (traced.append(1) or i + 1, y * 1.5), (0, x))[1]

    x = wt.tensor([2.0])
    for n in (0, 1, 5):
        np.testing.assert_allclose(f(x, wt.tensor(n)).numpy(), [2.0 * 1.5 ** n], rtol=1e-6)
    assert len(traced) == 1 and f.trace_count == 1


def test_while_loop_errors():
    x = wt.tensor([1.0, 2.0])

    @wt.function
    def grows(x):
        return wt.while_loop(lambda y: wt.reduce_sum(y) < 10, lambda y: wt.concat([y, y], 0), x)

    with pytest.raises(ValueError, match=r"loop variable 0 has shape \(2,\) but \(4,\) after an iteration"):
        grows(x)
    with pytest.raises(ValueError, match="loop variable 0 has shape"):
        grows.python_function(x)                      # eagerly too
    with pytest.raises(TypeError, match="dtype float32 but int32"):
        wt.while_loop(lambda y: wt.reduce_sum(y) < 10, lambda y: wt.cast(y, wt.int32), x)
    with pytest.raises(TypeError, match="cond's result must be a bool scalar"):
        wt.while_loop(lambda y: y < 10, lambda y: y + 1.0, x)
    with pytest.raises(TypeError, match="structure of loop_vars"):
        wt.while_loop(lambda a, b: a < 10, lambda a, b: a + 1, (wt.tensor(0), x))
    with pytest.raises(ValueError, match="maximum_iterations must be >= 0"):
        wt.while_loop(lambda y: True, lambda y: y, x, maximum_iterations=-1)
    v = wt.Variable([1.0])

    @wt.function
    def assigns_in_cond(x):
        def cond(y):
            v.assign(y)
            return wt.reduce_sum(y) < 5
        return wt.while_loop(cond, lambda y: y + 1.0, x)

    with pytest.raises(NotImplementedError, match="assigned inside the cond of while_loop"):
        assigns_in_cond(wt.tensor([1.0]))


# ---- scan -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_a_numpy_loop(device, reverse):
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(5, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3)).astype(np.float32) * 0.5
    order = range(4, -1, -1) if reverse else range(5)

    def rnn_np(init):
        h, out = init, np.zeros((5, 3), np.float32)
        for t in order:
            h = np.tanh(h @ w + xs[t])
            out[t] = h
        return out

    def f(x):
        return wt.scan(lambda h, e: wt.tanh(h @ wt.tensor(w) + e), x, initializer=wt.zeros((3,)), reverse=reverse)
    for got in both(f, wt.tensor(xs)):
        np.testing.assert_allclose(got, rnn_np(np.zeros(3, np.float32)), rtol=1e-5, atol=1e-6)

    # no initializer: the first element (last with reverse) starts it; nested elems and accumulators
    def g(x):
        out = wt.scan(lambda a, e: {"x": a["x"] + e["x"] * e["y"][0], "y": (a["y"][0] + 1.0,)},
                      {"x": x, "y": (x * 2.0,)}, reverse=reverse)
        return out["x"], out["y"][0]
    prods = xs * xs * 2
    want = np.cumsum(prods[::-1], 0)[::-1] if reverse else np.cumsum(prods, 0)
    first = 4 if reverse else 0
    want = want - prods[first] + xs[first]      # the starting element is x, not x * y
    steps = np.abs(np.arange(5) - first)[:, None]
    for got, count in both(g, wt.tensor(xs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(count, xs[first] * 2 + steps, rtol=1e-6)


def test_scan_errors():
    x = wt.tensor([[1.0, 2.0]])
    with pytest.raises(ValueError, match="different first dimensions"):
        wt.scan(lambda a, e: a, (x, wt.tensor([1.0, 2.0])), initializer=wt.tensor(0.0))
    with pytest.raises(ValueError, match="rank >= 1"):
        wt.scan(lambda a, e: a, wt.tensor(1.0))
    with pytest.raises(ValueError, match=r"accumulator 0 has shape \(\) but \(2,\)"):
        wt.scan(lambda a, e: a + e, x, initializer=wt.tensor(0.0))


# ---- gradients: finite differences in float64 ---------------------------------------------------

def _loop_fn(x, w):
    """A loop with a data-dependent count, a captured weight, an int counter and two float vars."""
    def cond(i, h, acc):
        return (i < 6) & (wt.reduce_sum(acc) < 4.0)

    def body(i, h, acc):
        h = wt.tanh(h @ w + 0.1 * wt.cast(i, wt.float32))
        return i + 1, h, acc + h * h
    _, h, acc = wt.while_loop(cond, body, (0, x, wt.zeros_like(x)), maximum_iterations=8)
    return wt.reduce_sum(h) + wt.reduce_sum(acc * acc)


def _loop_np(x, w):
    i, h, acc = 0, x, np.zeros_like(x)
    while i < 6 and acc.sum() < 4.0:
        h = np.tanh(h @ w + 0.1 * i)
        i, acc = i + 1, acc + h * h
    return h.sum() + (acc * acc).sum()


def _cond_loss(x, w):
    return wt.reduce_sum(wt.cond(wt.reduce_sum(x) > 0, lambda: wt.tanh(x @ w) * x, lambda: wt.sin(x) * 2.0))


def _cond_loss_np(x, w):
    return (np.tanh(x @ w) * x).sum() if x.sum() > 0 else (np.sin(x) * 2).sum()


def _scan_loss(x, w):
    hs = wt.scan(lambda h, e: wt.tanh(h @ w + e), x, initializer=wt.zeros((x.shape[1],)))
    return wt.reduce_sum(hs * hs)


def _scan_loss_np(x, w):
    h, total = np.zeros(x.shape[1]), 0.0
    for t in range(x.shape[0]):
        h = np.tanh(h @ w + x[t])
        total += (h * h).sum()
    return total


CASES = {
    "while_loop": (_loop_fn, _loop_np, (2, 3)),
    "cond_true": (_cond_loss, _cond_loss_np, (2, 3)),
    "cond_false": (_cond_loss, _cond_loss_np, (2, 3)),
    "scan": (_scan_loss, _scan_loss_np, (19, 3)),     # 19 rows: stacked in groups of 8, then 3
}


def _inputs(case):
    rng = np.random.default_rng(len(case))
    shape = CASES[case][2]
    x = rng.uniform(-0.8, 0.8, shape) + (-1.0 if case == "cond_false" else 0.3)
    w = rng.normal(size=(3, 3)) * 0.6
    return x, w


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_against_finite_differences(case):
    fn, np_fn, _ = CASES[case]
    x, w = _inputs(case)
    want_x = fd_grad(lambda a: np_fn(a, w), x)
    want_w = fd_grad(lambda b: np_fn(x, b), w)
    with wt.device("reference"), float64_reference():
        xt, wv = wt.tensor(x), wt.Variable(w)
        with wt.GradientTape() as tape:           # eager: the tape records the iterations
            tape.watch(xt)
            loss = fn(xt, wv)
        eager = tape.gradient(loss, [xt, wv], unconnected_gradients="zero")

        @wt.function
        def traced(x):                            # traced: the gradient of the graph node
            with wt.GradientTape() as tape:
                tape.watch(x)
                loss = fn(x, wv)
            return loss, tape.gradient(loss, [x, wv], unconnected_gradients="zero")
        tl, tg = traced(xt)
        _, vg = wt.value_and_grad(lambda x: fn(x, wv))(xt)
        np.testing.assert_allclose(tl.numpy(), np_fn(x, w), rtol=1e-12)
        for gx, gw in (eager, tg):       # measured: at most 2e-9 (values up to 10)
            np.testing.assert_allclose(gx.numpy(), want_x, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(gw.numpy(), want_w, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(vg.numpy(), want_x, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_traced_gradients_on_wasm_match_float64(case):
    pytest.importorskip("wasmtime")
    fn, np_fn, _ = CASES[case]
    x, w = _inputs(case)
    want = [fd_grad(lambda a: np_fn(a, w), x), fd_grad(lambda b: np_fn(x, b), w)]
    with wt.device("wasm"):
        wv = wt.Variable(w.astype(np.float32))

        @wt.function
        def traced(x):
            with wt.GradientTape() as tape:
                tape.watch(x)
                loss = fn(x, wv)
            return tape.gradient(loss, [x, wv], unconnected_gradients="zero")
        for g, e in zip(traced(wt.tensor(x.astype(np.float32))), want):     # measured: at most 1.6e-6
            np.testing.assert_allclose(g.numpy(), e, rtol=2e-6, atol=4e-6)


def test_nested_control_flow_and_its_gradient():
    """A cond inside a while body inside a cond: values against numpy, gradient against differences."""
    def f(x):
        def body(i, y):
            return i + 1, wt.cond(wt.reduce_sum(y) > 1.0, lambda: y * 0.5, lambda: y * y + 0.3)
        inner = lambda: wt.while_loop(lambda i, y: i < 4, body, (0, x), maximum_iterations=4)[1]
        return wt.reduce_sum(wt.cond(wt.reduce_max(x) > 0, inner, lambda: -x))

    def f_np(x):
        if x.max() <= 0:
            return -x.sum()
        y = x
        for _ in range(4):
            y = y * 0.5 if y.sum() > 1.0 else y * y + 0.3
        return y.sum()
    x = np.array([0.3, 0.45])
    with wt.device("reference"), float64_reference():
        val, g = wt.value_and_grad(f)(wt.tensor(x))
        np.testing.assert_allclose(val.numpy(), f_np(x), rtol=1e-12)
        np.testing.assert_allclose(g.numpy(), fd_grad(f_np, x), rtol=1e-6)


def test_gradient_of_a_traced_while_loop_needs_maximum_iterations():
    @wt.function
    def f(x):
        with wt.GradientTape() as tape:
            tape.watch(x)
            y = wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, x)
        return tape.gradient(y, x)
    with pytest.raises(ValueError, match="needs maximum_iterations"):
        f(wt.tensor([1.0]))


def test_export_carries_control_flow(tmp_path):
    """More in tests/python/test_export_control.py."""
    pytest.importorskip("wasmtime")
    f = wt.function(lambda x: wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, x))
    m = wt.export(f, (wt.tensor([1.0]),), path=tmp_path / "a", backends=("wasm",))
    assert "control" in m["signatures"]["predict"]
    np.testing.assert_array_equal(wt.load(tmp_path / "a", backend="wasm").predict(np.array([1.5], np.float32)), [12.0])


def test_a_scan_is_one_loop_that_slices_and_stacks_and_its_gradient_stores_only_what_it_reads():
    """No loop carries a [n, ...] stack (writing a row of one costs O(n) per iteration): the scan
    slices its elems and stacks its results per iteration (O(1) each); recorded by a tape, it also
    stacks the accumulator each iteration starts from (not the results, which the backward pass only
    writes), so the gradient does not run it again; the backward loop stacks the elems' gradient."""
    w = wt.Variable(np.eye(3, dtype=np.float32))
    g = wt.grad(lambda x: wt.reduce_sum(wt.scan(lambda a, e: wt.tanh(a @ w + e), x,
                                                initializer=wt.zeros((3,))) ** 2))
    graph = g.get_concrete(wt.tensor(np.ones((7, 3), np.float32))).graph
    loops = []
    for n in graph.nodes:
        if n.op.name == "while":
            a, k = n.attrs, n.attrs["n_vars"]
            loops.append(([tuple(v.aval.shape) for v in n.inputs[:k]],
                          [tuple(v.aval.shape) for v in n.inputs[k:k + a["n_sliced"]]],
                          [tuple(x.shape) for x in n.out.aval.avals[k:]], a["reverse"]))
    assert loops == [([(), (3,)], [(7, 3)], [(7, 3), (7, 3)], False),      # the scan: counter, a; results, a's
                     ([(), (3,), (3, 3)], [], [(7, 3)], True)]             # backward: d a, d w; d elems


def test_control_flow_on_webgpu():
    """WebGPU: the same host-side loops over dispatches (lavapipe where no GPU exists)."""
    pytest.importorskip("wgpu")
    try:
        dev = wt.get_device("webgpu")
    except RuntimeError as e:
        pytest.skip(f"no webgpu device: {e}")
    x, w = _inputs("while_loop")
    with wt.device(dev):
        for a in (np.array([2.0, 9.0], np.float32),):
            n, want = _newton_np(a)
            i, got, _ = wt.function(_newton_sqrt)(wt.tensor(a))
            assert int(i) == n
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
        c = wt.function(lambda x: wt.cond(wt.reduce_sum(x) > 0, lambda: x, lambda: x * 2.0))
        assert c(wt.tensor([1.0])).numpy().tolist() == [1.0] and c(wt.tensor([-1.0])).numpy().tolist() == [-2.0]
        wv = wt.Variable(w.astype(np.float32))
        gx = wt.grad(lambda x: _loop_fn(x, wv))(wt.tensor(x.astype(np.float32)))
        xs, ws = _inputs("scan")
        ws_v = wt.Variable(ws.astype(np.float32))
        gs = wt.grad(lambda x: _scan_loss(x, ws_v))(wt.tensor(xs.astype(np.float32)))
    # float32 on the GPU: measured 2.4e-7 and 5e-7
    np.testing.assert_allclose(gx.numpy(), fd_grad(lambda a: _loop_np(a, w), x), rtol=2e-6, atol=4e-6)
    np.testing.assert_allclose(gs.numpy(), fd_grad(lambda a: _scan_loss_np(a, ws), xs), rtol=2e-6, atol=4e-6)


def test_readme_example_runs_and_is_right():
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Control flow in graphs"):]
    section = section[:section.index("\n## ", 1)]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    env: dict = {}
    exec(compile(block, "README control flow", "exec"), env)
    np.testing.assert_allclose(env["root"].numpy(), np.sqrt([2.0, 9.0]), rtol=1e-6)
    w = np.array([[0.5, -0.2], [0.1, 0.4]])

    def loss_np(xs):
        h, total = np.zeros(2), 0.0
        for x in xs:
            h = np.tanh(h @ w + x)
            total += h.sum()
        return total
    xs = np.ones((6, 2))
    np.testing.assert_allclose(env["value"].numpy(), loss_np(xs), rtol=1e-5)
    np.testing.assert_allclose(env["grad"].numpy(), fd_grad(loss_np, xs), rtol=1e-4, atol=1e-5)


def test_tensorflow_keyword_arguments():
    x = wt.tensor([1.0, 2.0])
    with wt.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, [x], shape_invariants=[(2,)],
                          parallel_iterations=1, swap_memory=True, maximum_iterations=5, name="loop")[0]
        z = wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, x, back_prop=False)
        s = wt.scan(lambda a, e: a + e, x, back_prop=False, reverse=True, infer_shape=True, name="s")
    np.testing.assert_array_equal(y.numpy(), [4.0, 8.0])
    np.testing.assert_array_equal(s.numpy(), [3.0, 2.0])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [4.0, 4.0])
    assert tape.gradient(z, x) is None or not np.any(tape.gradient(z, x).numpy())
    with pytest.raises(ValueError, match="shape_invariants"):
        wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, x, shape_invariants=(None,))


def test_a_traced_training_step_through_scan_matches_the_eager_one(device):
    """Variables read in the loop body, the gradient through the stored iterations, and updates after
    the loop in one traced step: three SGD steps equal the eager ones (a Python loop on a tape)."""
    rng = np.random.default_rng(3)
    xs = wt.tensor(rng.normal(size=(9, 4, 3)).astype(np.float32))
    target = wt.tensor(rng.normal(size=(4, 3)).astype(np.float32))
    w0 = (rng.normal(size=(3, 3)) * 0.5).astype(np.float32)

    def make():
        w = wt.Variable(w0)

        def step(xs, target):
            with wt.GradientTape() as tape:
                hs = wt.scan(lambda h, x: wt.tanh(h @ w + x), xs, initializer=wt.zeros((4, 3)))
                loss = wt.reduce_mean((hs[-1] - target) ** 2)
            w.assign_sub(0.5 * tape.gradient(loss, w))
            return loss
        return w, step
    w_eager, eager = make()
    w_traced, traced = make()
    traced = wt.function(traced)
    for _ in range(3):
        np.testing.assert_allclose(traced(xs, target).numpy(), eager(xs, target).numpy(), rtol=1e-5)
    np.testing.assert_allclose(w_traced.numpy(), w_eager.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(w_traced.numpy(), w0)


def test_variables_assigned_in_branches_and_loop_bodies(device):
    """As in TensorFlow: a branch's assignment happens when that branch runs; a Variable a loop body
    assigns is carried by the loop (its condition and body see the current value) and holds the last
    value after it. Traced and eager agree with each other and with numpy."""
    def f(x):
        wt.cond(wt.reduce_sum(x) > 0, lambda: (v.assign(v * 2.0), None)[1], lambda: (count.assign_add(10), None)[1])

        def body(i, y):
            count.assign_add(1)
            v.assign(v + y)
            return i + 1, y * 0.5
        i, y = wt.while_loop(lambda i, y: (i < 10) & (count < 4), body, (0, x), maximum_iterations=10)
        s = wt.scan(lambda a, e: (count.assign_add(1), a + e * v)[1], x, initializer=wt.zeros((2,)))
        return i, y, s
    results = []
    for traced in (False, True):
        for x in ([1.0, 2.0], [-1.0, -2.0]):
            v, count = wt.Variable([0.5, 1.0]), wt.Variable(0, trainable=False)   # read by f
            fn = wt.function(f) if traced else f
            i, y, s = fn(wt.tensor(x))
            results.append((int(i), y.numpy(), s.numpy(), v.numpy(), int(count.numpy())))
    for eager, traced in zip(results[:2], results[2:]):
        assert eager[0] == traced[0] and eager[4] == traced[4]
        for a, b in zip(eager[1:4], traced[1:4]):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    # numpy: x = [1, 2]: v doubles, the loop runs 4 times (count 0..4), the scan twice
    v = np.array([1.0, 2.0])
    y = np.array([1.0, 2.0])
    for _ in range(4):
        v, y = v + y, y * 0.5
    assert results[0][0] == 4 and results[0][4] == 6
    np.testing.assert_allclose(results[0][3], v)
    np.testing.assert_allclose(results[0][2], np.cumsum(np.array([[1.0, 2.0]]).T * v, 0))
    assert results[1][0] == 0 and results[1][4] == 12      # x < 0: count 10, no iteration, scan +2


def test_control_flow_runs_without_numpy():
    """Pyodide pages have no numpy: traced cond, while_loop, scan and their gradient on "wasm"."""
    pytest.importorskip("wasmtime")
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent("""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "numpy" or name.startswith("numpy."):
                    raise ImportError("numpy is blocked in this test")
        sys.meta_path.insert(0, _Block())
        import webtensor as wt
        with wt.device("wasm"):
            f = wt.function(lambda x: wt.while_loop(lambda y: wt.reduce_sum(y) < 20.0, lambda y: y * 2.0, x))
            g = wt.grad(lambda x: wt.reduce_sum(wt.scan(lambda a, e: a * e, x, initializer=wt.tensor(1.0))))
            c = wt.function(lambda x: wt.cond(wt.reduce_sum(x) > 0, lambda: x + 1.0, lambda: x - 1.0))
            x = wt.tensor([1.0, 2.0])
            print(f(x).tolist(), g(wt.tensor([2.0, 3.0])).tolist(), c(x).tolist(), "numpy" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # 3 -> 24 (x8); d/dx of x0 + x0*x1 = (1 + x1, x0)
    assert r.stdout.split() == ["[8.0,", "16.0]", "[4.0,", "2.0]", "[2.0,", "3.0]", "False"]


@pytest.mark.parametrize("kind", ["while_loop", "scan"])
def test_second_derivatives_through_loops(kind):
    """Nested tapes in a traced function: the gradient of a loop's gradient (the backward loop reads
    the stacks the forward loop recorded) against differences of the numpy gradient."""
    def f(x):
        if kind == "scan":
            return wt.reduce_sum(wt.scan(lambda a, e: wt.sin(a) * e, x, initializer=wt.tensor(0.8)))
        return wt.reduce_sum(wt.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, wt.sin(y) * 1.5), (0, x),
                                           maximum_iterations=3)[1])

    def f_np(x):
        if kind == "scan":
            a, total = 0.8, 0.0
            for e in x:
                a = np.sin(a) * e
                total += a
            return total
        y = x
        for _ in range(3):
            y = np.sin(y) * 1.5
        return y.sum()

    @wt.function
    def grad_of_grad_sum(x):
        with wt.GradientTape() as outer:
            outer.watch(x)
            with wt.GradientTape() as inner:
                inner.watch(x)
                y = f(x)
            s = wt.reduce_sum(inner.gradient(y, x))
        return outer.gradient(s, x)
    x = np.array([0.3, -0.5, 0.9])
    with wt.device("reference"), float64_reference():
        got = grad_of_grad_sum(wt.tensor(x)).numpy()
    # nested central differences: measured error 6e-7 (while_loop), 1.5e-7 (scan)
    np.testing.assert_allclose(got, fd_grad(lambda a: fd_grad(f_np, a).sum(), x), rtol=1e-6, atol=2e-6)


def test_maximum_iterations_computed_in_the_graph(device):
    f = wt.function(lambda x, m: wt.while_loop(lambda y: wt.reduce_sum(y) < 100.0, lambda y: y * 2.0, x,
                                               maximum_iterations=m))
    x = wt.tensor([1.0, 2.0])
    for m, want in ((0, 1.0), (2, 4.0), (50, 64.0)):      # 3 * 2^k >= 100 first at k = 6
        np.testing.assert_array_equal(f(x, wt.tensor(m)).numpy(), [want, 2 * want])
    assert f.trace_count == 1
    with pytest.raises(TypeError, match="int32 scalar"):
        wt.function(lambda x: wt.while_loop(lambda y: True, lambda y: y, x, maximum_iterations=x[0]))(x)
