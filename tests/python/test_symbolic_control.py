"""Control flow in functions traced with None sizes (``function(input_signature=...)``): ``cond``,
``while_loop`` and ``scan`` are traced once with symbolic shapes (their branches, conditions and
bodies too) and specialised per concrete size (``core/symbolic.specialize``), on "reference",
"wasm" and "webgpu" (lavapipe here): one trace serves every size, checked against numpy and
against eager runs; a ``scan`` over a None axis takes its iteration count at run time, and so do
recurrent layers over a None length. What cannot work says so."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt

DEVICES = ["reference", "wasm", "webgpu"]
RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


@pytest.fixture(params=DEVICES)
def dev(request):
    if request.param == "webgpu":
        pytest.importorskip("wgpu")
        try:
            wt.get_device("webgpu")
        except Exception as e:      # no adapter here
            pytest.skip(f"no WebGPU device: {e}")
    with wt.device(request.param):
        yield request.param


S8 = [wt.TensorSpec((None, 8))]


def test_cond_takes_both_branches_at_several_sizes(dev):
    @wt.function(input_signature=S8)
    def f(x):
        return wt.cond(wt.reduce_sum(x) > 0, lambda: x * 2.0, lambda: wt.reduce_max(x, axis=1, keepdims=True) - x)

    for n, sign in ((2, 1), (5, -1), (3, -1), (7, 1)):
        x = np.abs(rand(n, 8)) * sign
        want = x * 2 if x.sum() > 0 else x.max(1, keepdims=True) - x
        np.testing.assert_array_equal(f(x).numpy(), want)      # the same float32 ops: measured equal
    assert f.trace_count == 1


def test_while_loop_with_a_data_dependent_count(dev):
    @wt.function(input_signature=S8)
    def f(x):
        return wt.while_loop(lambda i, y: wt.reduce_max(wt.abs(y)) < 100.0, lambda i, y: (i + 1, y * 2.0 + 1.0),
                             (wt.tensor(0), x))

    for n in (1, 4, 6):
        x = rand(n, 8)
        i, y, want = 0, x.copy(), x.copy()
        while np.abs(want).max() < 100:
            want, i = want * np.float32(2) + np.float32(1), i + 1
        got_i, got_y = f(x)
        assert int(got_i.numpy()) == i
        np.testing.assert_array_equal(got_y.numpy(), want)      # the same float32 ops in the same order
    assert f.trace_count == 1


def test_while_loop_bounded_by_a_none_size(dev):
    """``maximum_iterations=x.shape[0]`` (a symbolic size): the bound is taken at run time."""
    @wt.function(input_signature=S8)
    def f(x):
        return wt.while_loop(lambda i, s: True, lambda i, s: (i + 1, s + wt.reduce_sum(x)), (0, wt.zeros(())),
                             maximum_iterations=x.shape[0])

    for n in (2, 5):
        x = rand(n, 8)
        i, s = f(x)
        assert int(i.numpy()) == n
        np.testing.assert_allclose(s.numpy(), n * x.sum(dtype=np.float32), rtol=6e-7)   # 10x measured
    assert f.trace_count == 1


def test_gradient_of_a_while_loop_bounded_by_a_none_size(dev):
    """Its stored iterations are sized at run time: y_k = y_{k-1} / 2 + x for n steps, so
    dy_n/dx = sum_{k<n} 2^-k."""
    @wt.function(input_signature=S8)
    def f(x):
        with wt.GradientTape() as tape:
            tape.watch(x)
            _, y = wt.while_loop(lambda i, y: True, lambda i, y: (i + 1, y * 0.5 + x), (0, wt.zeros_like(x)),
                                 maximum_iterations=x.shape[0])
            s = wt.reduce_sum(y * y)
        return tape.gradient(s, x)

    for n in (2, 4):
        x = rand(n, 8)
        c = np.float32(sum(0.5 ** k for k in range(n)))
        np.testing.assert_allclose(f(x).numpy(), 2 * (c * x) * c, rtol=2e-6)     # 10x measured (1.9e-7)
    assert f.trace_count == 1


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_over_a_none_axis(dev, reverse):
    """The scan's iterations are the None size: its loop's maximum_iterations is specialised."""
    @wt.function(input_signature=S8)
    def f(x):
        return wt.scan(lambda a, r: a * 0.5 + r, x, wt.zeros((8,)), reverse=reverse)

    for n in (1, 3, 6):
        x = rand(n, 8)
        want, a = np.zeros_like(x), np.zeros(8, np.float32)
        for t in (range(n - 1, -1, -1) if reverse else range(n)):
            a = a * np.float32(0.5) + x[t]
            want[t] = a
        np.testing.assert_array_equal(f(x).numpy(), want)
    assert f.trace_count == 1


def test_scan_carrying_the_none_rows(dev):
    """A scan over a fixed axis whose state holds one value per row of the None axis."""
    @wt.function(input_signature=S8)
    def f(x):
        return wt.scan(lambda a, r: wt.tanh(a * 0.5 + r), wt.transpose(x), wt.zeros_like(x[:, 0]))

    for n in (2, 5):
        x = rand(n, 8)
        with wt.device("reference"):
            want = wt.scan(lambda a, r: wt.tanh(a * 0.5 + r), wt.transpose(wt.tensor(x)), wt.zeros((n,))).numpy()
        np.testing.assert_allclose(f(x).numpy(), want, rtol=0, atol=1.2e-6)    # 10x measured (1.2e-7)
    assert f.trace_count == 1


def test_gradients_through_control_flow(dev):
    """Reverse mode through a scan over the None axis and through a cond, against numpy's derivatives."""
    @wt.function(input_signature=S8)
    def f(x):
        with wt.GradientTape() as tape:
            tape.watch(x)
            s = wt.scan(lambda a, r: a * 0.5 + r * r, x, wt.zeros((8,)))
            y = wt.reduce_sum(s) + wt.reduce_sum(wt.cond(wt.reduce_sum(x) > 0, lambda: x * x, lambda: x * 3.0))
        return tape.gradient(y, x)

    for n in (2, 5):
        x = rand(n, 8)
        # d/dx_t of sum_s a_s, a_s = sum_{t<=s} 0.5^(s-t) x_t^2: 2 x_t sum_{s>=t} 0.5^(s-t)
        w = np.array([sum(0.5 ** (s - t) for s in range(t, n)) for t in range(n)], np.float32)[:, None]
        want = 2 * x * w + (2 * x if x.sum() > 0 else 3.0)
        np.testing.assert_allclose(f(x).numpy(), want, rtol=1e-6)     # measured equal
    assert f.trace_count == 1


def test_recurrent_layers_over_a_none_batch_and_length(dev):
    """Embedding -> LSTM -> GRU over int32 ids (None, None): one trace (the time loop's count is
    the length), equal to the eager layers on the same device."""
    wt.set_seed(3)
    emb, lstm, gru = wt.nn.Embedding(20, 4, mask_zero=True), wt.nn.LSTM(6, return_sequences=True), wt.nn.GRU(5)

    @wt.function(input_signature=[wt.TensorSpec((None, None), "int32")])
    def f(ids):
        h = lstm(emb(ids))
        return h, gru(h)

    for n, length in ((2, 3), (5, 7), (1, 1)):
        ids = RNG.integers(1, 20, (n, length)).astype(np.int32)
        ids[0, length - length // 3:] = 0
        got = f(ids)
        h = lstm(emb(wt.tensor(ids)))
        for g, w in zip(got, (h, gru(h))):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=4e-8)    # 10x measured (3.7e-9)
    assert f.trace_count == 1


def test_scan_without_an_initializer_over_a_none_axis_is_refused():
    @wt.function(input_signature=S8)
    def f(x):
        return wt.scan(lambda a, r: a + r, x)

    with pytest.raises(NotImplementedError, match="axis 0 is a None dimension of an input_signature.*pass an "
                                                  "initializer"):
        f(rand(3, 8))


def test_fit_of_a_recurrent_model_traces_once_for_a_partial_last_batch():
    """``fit``/``predict`` steps holding an LSTM's loop keep their symbolic batch: 10 rows at batch 4
    trace each step once, with the results of one trace per batch shape (measured equal)."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(1, 20, (10, 6)).astype(np.int32), rng.integers(0, 2, 10).astype(np.int32)
    runs = []
    with wt.device("wasm"):
        for symbolic in (True, False):
            wt.set_seed(0)
            m = wt.nn.Sequential([wt.nn.Input((6,), dtype="int32"), wt.nn.Embedding(20, 4, mask_zero=True),
                                  wt.nn.LSTM(5), wt.nn.Dense(2)])
            m.compile(optimizer="adam", loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
            if not symbolic:        # one trace per batch shape, as for a step that needs concrete sizes
                for kind in ("train", "predict"):
                    m._step_function(kind)._symbolic_batch = False
            loss = m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False).history["loss"]
            pred = m.predict(x, batch_size=4, verbose=0).numpy()
            runs.append((loss, pred, [m._step_function(k).trace_count for k in ("train", "predict")]))
    (l1, p1, c1), (l0, p0, c0) = runs
    assert c1 == [1, 1] and c0 == [2, 2]
    np.testing.assert_array_equal(l1, l0)      # the same kernels per row: measured equal
    np.testing.assert_array_equal(p1, p0)
