"""Symbolic sizes: ``webtensor.TensorSpec``, ``function(input_signature=...)`` traced once for every
size of a None dimension (``core/shapes.Dim``, ``core/symbolic.specialize``), and ``fit``/``predict``/
``evaluate`` steps traced once for every batch size."""
from __future__ import annotations

import re

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core.shapes import Dim, SymbolicSizeError

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


# ---- Dim ----------------------------------------------------------------------------------------

def test_dim_is_a_polynomial():
    b = Dim("b")
    assert b * 784 == (b * 28) * 28 and hash(b * 784) == hash(28 * (b * 28))
    assert (b * 784) // 784 == b and b - b == 0 and type(b - b) is int
    assert b * 2 + 3 != b * 2 and (b * 3).evaluate({"b": 5}) == 15
    assert not (b < 0) and b >= 0           # sizes are never negative: decidable
    for undecidable in (lambda: b < 2, lambda: int(b), lambda: bool(b), lambda: b // 3, lambda: (b * 2) % 4):
        with pytest.raises(SymbolicSizeError, match="symbolic size"):
            undecidable()


# ---- TensorSpec ---------------------------------------------------------------------------------

def test_tensor_spec():
    s = wt.TensorSpec([None, 3], name="x")
    assert s.shape == (None, 3) and s.dtype == wt.float32 and s.name == "x"
    assert repr(s) == "TensorSpec(shape=(None, 3), dtype=webtensor.float32, name='x')"
    assert s == wt.TensorSpec((None, 3), "float32", name="x") and hash(s) == hash(wt.TensorSpec((None, 3), name="x"))
    assert s != wt.TensorSpec((None, 3)) and s != wt.TensorSpec((None, 3), wt.int32, name="x")
    assert s.is_compatible_with(np.zeros((7, 3), np.float32)) and s.is_compatible_with(wt.TensorSpec((2, 3)))
    assert not s.is_compatible_with(np.zeros((7, 4), np.float32))
    assert not s.is_compatible_with(np.zeros((7, 3), np.int32))
    assert not s.is_compatible_with(np.zeros((7, 3, 1), np.float32))
    assert wt.TensorSpec.from_tensor(wt.zeros((2, 5), wt.int32)) == wt.TensorSpec((2, 5), wt.int32)
    with pytest.raises(ValueError, match=">= 0"):
        wt.TensorSpec((-1, 3))
    with pytest.raises(TypeError, match="ints and Nones"):
        wt.TensorSpec((2.5, 3))
    with pytest.raises(TypeError, match="sequence"):
        wt.TensorSpec(3)


# ---- input_signature ----------------------------------------------------------------------------

@pytest.mark.parametrize("dev", ["reference", "wasm"])
def test_one_trace_serves_every_size(dev):
    """The size-dependent ops read the run-time size: mean divides by it, reshape(-1) and shape()
    give it. Several sizes, one trace, results equal to numpy (and to a fixed-shape trace)."""
    calls = []

    @wt.function(input_signature=[wt.TensorSpec([None, 3])])
    def f(x):
        calls.append(1)
        return wt.mean(x, axis=0), wt.reshape(x, (-1,)), wt.shape(x), wt.mean(x), wt.size(x)

    fixed = wt.function(f.python_function)
    with wt.device(dev):
        for b in (2, 5, 1, 7, 5):
            x = rand(b, 3)
            m, r, s, mm, n = f(x)
            np.testing.assert_allclose(m.numpy(), x.mean(0), rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(r.numpy(), x.reshape(-1))
            assert s.numpy().tolist() == [b, 3] and s.dtype == wt.int32 and int(n.numpy()) == 3 * b
            np.testing.assert_allclose(mm.numpy(), x.mean(), rtol=1e-6)
            for a, e in zip((m, mm), fixed(x)[::3]):       # the same graph as a fixed-shape trace
                np.testing.assert_array_equal(a.numpy(), e.numpy())
    assert f.experimental_get_tracing_count() == 1 and len(calls) == 1 + 4   # f once; fixed: 2, 5, 1, 7
    assert len(f._cache) == 1


def test_shared_sizes_and_symbolic_shape_in_python():
    seen = []

    @wt.function(input_signature=[wt.TensorSpec([None, 4], name="a"), wt.TensorSpec([4, None], name="b")])
    def f(a, b):
        seen.append((a.shape, b.shape))
        return wt.matmul(a, b), wt.reshape(a, (a.shape[0] * 2, 2))

    for n, m in ((2, 3), (5, 1)):
        a, b = rand(n, 4), rand(4, m)
        y, r = f(a, b)
        np.testing.assert_allclose(y.numpy(), a @ b, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(r.numpy(), a.reshape(n * 2, 2))
    assert f.trace_count == 1
    (sa, sb), = seen
    assert isinstance(sa[0], Dim) and sa[1] == 4 and repr(sa[0]) == "a:0" and repr(sb[1]) == "b:1"


def test_signature_checks_like_tensorflow():
    f = wt.function(lambda x: x * 2.0, input_signature=[wt.TensorSpec([None, 3])])
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*TensorSpec\(shape=\(None, 3\)"):
        f(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="incompatible"):
        f(np.zeros((3,), np.float32))
    with pytest.raises(TypeError, match="dtype int32"):
        f(wt.zeros((2, 3), wt.int32))
    with pytest.raises(TypeError, match="takes 1 positional"):
        f(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(f([[1, 2, 3]]).numpy(), [[2, 4, 6]])   # converted to the spec's dtype
    with pytest.raises(TypeError, match="list or tuple of webtensor.TensorSpec"):
        wt.function(lambda x: x, input_signature=wt.TensorSpec([None]))
    assert f.trace_count == 1


def test_value_needed_in_python_is_a_clear_error():
    f = wt.function(lambda x: x * float(x.shape[0]), input_signature=[wt.TensorSpec([None])])
    with pytest.raises(TypeError, match=r"symbolic size input_0:0 has no value.*webtensor.shape"):
        f(np.zeros(3, np.float32))


def test_gradient_through_symbolic_sizes():
    w = wt.Variable(rand(3, 2))

    @wt.function(input_signature=[wt.TensorSpec([None, 3])])
    def step(x):
        with wt.GradientTape() as tape:
            loss = wt.mean(wt.matmul(x, w) ** 2)
        return loss, tape.gradient(loss, w)

    for b in (4, 2):
        x = rand(b, 3)
        loss, g = step(x)
        y = x @ w.numpy()
        np.testing.assert_allclose(loss.numpy(), (y ** 2).mean(), rtol=1e-5)
        np.testing.assert_allclose(g.numpy(), x.T @ (2 * y / y.size), rtol=1e-5, atol=1e-6)
    assert step.trace_count == 1


def test_specializations_are_bounded_by_the_traces_limit():
    old = wt.config.get_cache_limits()
    wt.config.set_cache_limits(traces=4)
    try:
        f = wt.function(lambda x: x + 1.0, input_signature=[wt.TensorSpec([None])])
        for n in range(1, 12):
            np.testing.assert_array_equal(f(np.zeros(n, np.float32)).numpy(), np.ones(n))
        concrete = dict.get(f._cache, next(iter(f._cache)))
        assert len(concrete.sizes) <= 4 and concrete.sizes.evictions > 0 and f.trace_count == 1
    finally:
        wt.config.set_cache_limits(**old)


def test_webgpu_one_trace():
    @wt.function(input_signature=[wt.TensorSpec([None, 2])])
    def f(x):
        return wt.mean(x * x, axis=1)

    with wt.device("webgpu"):
        for b in (3, 6):
            x = rand(b, 2)
            np.testing.assert_allclose(f(x).numpy(), (x * x).mean(1), rtol=1e-6)
    assert f.trace_count == 1


# ---- fit / evaluate / predict -------------------------------------------------------------------

def _model():
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((3,)), nn.Dense(8, activation="relu"), nn.BatchNormalization(), nn.Dropout(0.25),
                       nn.Dense(2)])
    m.compile(optimizer="adam", loss=nn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def test_fit_traces_once_for_a_partial_last_batch():
    """10 rows at batch 4: batches of 4, 4, 2, one trace per step function; the same results as
    the steps traced per batch shape (the symbolic mode turned off), Dropout's masks included."""
    x, y = rand(10, 3), RNG.integers(0, 2, 10).astype(np.int32)
    runs = []
    for symbolic in (True, False):
        m = _model()
        if not symbolic:        # what fit did before: one trace per batch shape
            for kind in ("train", "test", "predict"):
                m._step_function(kind)._symbolic_batch = False
        hist = m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False).history
        ev = m.evaluate(x, y, batch_size=4, verbose=0)
        pred = m.predict(x, batch_size=4, verbose=0).numpy()
        counts = [m._step_function(k).trace_count for k in ("train", "test", "predict")]
        runs.append((hist, ev, pred, counts))
    (h1, e1, p1, c1), (h0, e0, p0, c0) = runs
    assert c1 == [1, 1, 1] and c0 == [2, 2, 2]
    for k in h0:
        np.testing.assert_allclose(h1[k], h0[k], rtol=1e-6)
    np.testing.assert_allclose(e1, e0, rtol=1e-6)
    np.testing.assert_allclose(p1, p0, rtol=1e-6, atol=1e-7)


def test_step_that_needs_concrete_sizes_falls_back_to_one_trace_per_shape():
    class M(nn.Model):
        def __init__(self):
            super().__init__()
            self.d = nn.Dense(2)

        def call(self, x, training=False):
            return self.d(x) * float(int(x.shape[0]) > 0)     # reads the size in Python

    m = M()
    x = rand(10, 3)
    p = m.predict(x, batch_size=4, verbose=0)
    assert p.shape == (10, 2) and not m.predict_function._symbolic_batch and m.predict_function.trace_count == 2


# ---- independent rows (core/symbolic.independent_rows) -----------------------------------------

def _batch_graph(fn, *args):
    f = wt.function(fn)
    f._symbolic_batch = True
    c = f._concrete(*f._signature(args, {}), count=False)
    assert f._symbolic_batch, "traced with concrete sizes"
    return c.raw_graph


def test_independent_rows_of_models():
    from webtensor.core.symbolic import independent_rows
    cnn = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(), nn.Flatten(),
                         nn.Dense(10), nn.Activation("softmax")])
    mlp = nn.Sequential([nn.Input((5,)), nn.Dense(16, activation="relu"), nn.BatchNormalization(), nn.Dropout(0.3),
                         nn.Dense(3)])
    assert independent_rows(_batch_graph(cnn.predict_step, rand(2, 8, 8, 1)), "batch") is None
    assert independent_rows(_batch_graph(mlp.predict_step, rand(2, 5)), "batch") is None
    mlp.compile(optimizer="sgd", loss="mse")
    assert "updates variables" in independent_rows(_batch_graph(mlp.train_step, rand(2, 5), rand(2, 3)), "batch")


@pytest.mark.parametrize("fn,reason", [
    (lambda x: x - wt.mean(x, axis=0), "reduce_sum .* reduces over batch"),          # a mean over rows
    (lambda x: x / wt.cast(wt.shape(x)[0], wt.float32), "reads its size"),         # the batch size itself
    (lambda x: wt.matmul(x, x, transpose_b=True), "mixes rows"),                   # (b, b)
    (lambda x: wt.matmul(x, x, transpose_a=True), "matmul .* reduces over batch"),  # (3, 3): a sum over rows
    (lambda x: wt.cumsum(x, axis=0), "mixes rows"),
    (lambda x: wt.transpose(x), "mixes rows"),
])
def test_rows_mixed_are_found(fn, reason):
    from webtensor.core.symbolic import independent_rows
    assert re.search(reason, independent_rows(_batch_graph(fn, rand(4, 3)), "batch") or "independent")


def test_rowwise_compositions_are_independent():
    from webtensor.core.symbolic import independent_rows
    for fn in (lambda x: wt.softmax(x, axis=-1),
               lambda x: wt.concat([x, x * 2.0], axis=1),
               lambda x: wt.reshape(wt.transpose(wt.reshape(x, (-1, 3, 1)), (0, 2, 1)), (-1, 3)),
               lambda x: wt.gather(wt.tensor(rand(5, 2)), wt.cast(wt.abs(x[:, 0]) * 0, wt.int32)),
               lambda x: wt.reduce_max(x, axis=1)):
        assert independent_rows(_batch_graph(fn, rand(4, 3)), "batch") is None


def test_errors_of_a_step_still_raise():
    """The symbolic-batch trace falls back to concrete shapes on any error; a real error then raises
    from the concrete trace, once."""
    calls = []

    def step(x):
        calls.append(1)
        raise ValueError("boom")

    f = wt.function(step)
    f._symbolic_batch = True
    with pytest.raises(ValueError, match="boom"):
        f(np.zeros((3, 2), np.float32))
    assert len(calls) == 2 and not f._symbolic_batch and f.trace_count == 0


def _positions(x, reverse=False):
    """Each row's position (0, 1, ...) from no input data: an exclusive running sum of ones, as
    counter-based random numbers number their draws (Dropout)."""
    ones = wt.broadcast_to(wt.tensor(1.0), (x.shape[0], 1))
    return wt.cumsum(ones, axis=0, exclusive=True, reverse=reverse)


@pytest.mark.parametrize("fn,with_positions", [
    (lambda x: x * _positions(x), None),                           # a row's position: only with positions
    (lambda x: x * _positions(x, reverse=True), "mixes rows"),     # counted from the end: depends on the batch size
    (lambda x: wt.cumsum(x, axis=0), "mixes rows"),                # a running sum of data
    (lambda x: x / wt.reduce_sum(_positions(x)), "reduces over batch"),   # a sum over all rows
])
def test_positions_number_rows_without_data(fn, with_positions):
    """``positions=True`` (train steps padded at their end) lets rows depend on their position, not on
    the batch size nor on other rows' data."""
    from webtensor.core.symbolic import independent_rows
    g = _batch_graph(fn, rand(4, 3))
    assert independent_rows(g, "batch") is not None
    got = independent_rows(g, "batch", positions=True)
    assert got is None if with_positions is None else re.search(with_positions, got), got
