"""Models with several inputs (issue 12): Keras 3's conventions for ``x`` everywhere.

``x`` is one array, a list/tuple of arrays in the model's input order, or a dict keyed by input
name; ``fit(x, y)`` and Dataset elements ``(x, y)`` / ``(x, y, sample_weight)`` where ``x`` itself
is such a structure. Checked against a numpy forward pass and a numpy SGD step, through
``predict``, ``evaluate``, ``fit``, ``__call__``, ``export`` and the Python loader.
"""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn

N = 24
rng = np.random.default_rng(12)
XA = rng.standard_normal((N, 3)).astype(np.float32)
XB = rng.standard_normal((N, 4)).astype(np.float32)
XC = rng.standard_normal((N, 2)).astype(np.float32)
Y = rng.standard_normal((N, 2)).astype(np.float32)


def three_input_model(seed=0):
    """a (3,) -> Dense 5, b (4,) -> Dense 5, c (2,) -> Dense 3; concat(da + db, dc) -> Dense 2 (linear)."""
    wt.set_seed(seed)
    a, b, c = nn.Input((3,), name="a"), nn.Input((4,), name="b"), nn.Input((2,), name="c")
    s = nn.Dense(5, name="da")(a) + nn.Dense(5, name="db")(b)
    joined = nn.Lambda(lambda t: wt.concat(t, axis=-1), name="join")([s, nn.Dense(3, name="dc")(c)])
    return nn.Model([a, b, c], nn.Dense(2, name="out")(joined), name="three")


def numpy_forward(w, a, b, c):
    s = a @ w["da/kernel"] + w["da/bias"] + b @ w["db/kernel"] + w["db/bias"]
    h = np.concatenate([s, c @ w["dc/kernel"] + w["dc/bias"]], axis=-1)
    return h @ w["out/kernel"] + w["out/bias"]


def numpy_sgd_step(w, a, b, c, y, lr):
    """One SGD step on mean squared error (Keras' MSE: mean over the last axis, then over the batch)."""
    s = a @ w["da/kernel"] + w["da/bias"] + b @ w["db/kernel"] + w["db/bias"]
    hc = c @ w["dc/kernel"] + w["dc/bias"]
    h = np.concatenate([s, hc], axis=-1)
    out = h @ w["out/kernel"] + w["out/bias"]
    g_out = 2.0 * (out - y) / out.size
    g_h = g_out @ w["out/kernel"].T
    g_s, g_hc = g_h[:, :5], g_h[:, 5:]
    grads = {"out/kernel": h.T @ g_out, "out/bias": g_out.sum(0),
             "da/kernel": a.T @ g_s, "da/bias": g_s.sum(0), "db/kernel": b.T @ g_s, "db/bias": g_s.sum(0),
             "dc/kernel": c.T @ g_hc, "dc/bias": g_hc.sum(0)}
    return {k: w[k] - lr * grads[k] for k in w}


def numpy_weights(m):
    return {k: v.numpy() for k, v in nn.saving.weight_paths(m).items()}


def compiled(lr=0.1):
    m = three_input_model()
    m.compile(wt.optimizers.SGD(lr), "mse")
    return m


@pytest.mark.parametrize("form", ["list", "tuple", "dict", "dict-extra-key"])
def test_call_predict_and_predict_on_batch_take_lists_tuples_and_dicts(form):
    m = three_input_model()
    want = numpy_forward(numpy_weights(m), XA, XB, XC)
    x = {"list": [XA, XB, XC], "tuple": (XA, XB, XC), "dict": {"c": XC, "a": XA, "b": XB},
         "dict-extra-key": {"c": XC, "a": XA, "b": XB, "unused": XA}}[form]
    np.testing.assert_allclose(m(x).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict(x, batch_size=5, verbose=0).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict_on_batch(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_predict_takes_a_dataset_of_x_tuples_and_python_lists():
    m = three_input_model()
    want = numpy_forward(numpy_weights(m), XA, XB, XC)
    ds = wt.data.Dataset.from_tensor_slices(((XA, XB, XC),)).batch(7)
    np.testing.assert_allclose(m.predict(ds, verbose=0).numpy(), want, rtol=1e-5, atol=1e-5)
    # nested Python lists are data, one per input
    got = m.predict([XA.tolist(), XB.tolist(), XC.tolist()], verbose=0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("form", ["list", "dict", "dataset-tuple", "dataset-dict", "dataset-weighted"])
def test_fit_on_each_form_equals_numpy_sgd(form):
    """One epoch of SGD without shuffling: batches of 8 in order, each a numpy SGD step."""
    m = compiled(lr=0.1)
    w = numpy_weights(m)
    for i in range(0, N, 8):
        w = numpy_sgd_step(w, XA[i:i + 8], XB[i:i + 8], XC[i:i + 8], Y[i:i + 8], 0.1)
    if form == "list":
        m.fit([XA, XB, XC], Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    elif form == "dict":
        m.fit({"b": XB, "c": XC, "a": XA}, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    elif form == "dataset-tuple":
        m.fit(wt.data.Dataset.from_tensor_slices(((XA, XB, XC), Y)).batch(8), epochs=1, verbose=0)
    elif form == "dataset-dict":
        m.fit(wt.data.Dataset.from_tensor_slices(({"a": XA, "b": XB, "c": XC}, Y)).batch(8), epochs=1, verbose=0)
    else:   # (x, y, sample_weight) with weights 1: the same steps
        ones = np.ones((N,), np.float32)
        m.fit(wt.data.Dataset.from_tensor_slices(((XA, XB, XC), Y, ones)).batch(8), epochs=1, verbose=0)
    got = numpy_weights(m)
    for k in w:
        np.testing.assert_allclose(got[k], w[k], rtol=1e-4, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(m.predict([XA, XB, XC], verbose=0).numpy(), numpy_forward(w, XA, XB, XC),
                               rtol=1e-4, atol=1e-5)


def test_fit_validation_split_and_evaluate_with_several_inputs():
    m = compiled(lr=0.05)
    w = numpy_weights(m)
    want = float(np.mean((numpy_forward(w, XA, XB, XC) - Y) ** 2))
    assert m.evaluate([XA, XB, XC], Y, batch_size=N, verbose=0) == pytest.approx(want, rel=1e-5)
    assert m.evaluate({"a": XA, "b": XB, "c": XC}, Y, batch_size=N, verbose=0) == pytest.approx(want, rel=1e-5)
    h = m.fit([XA, XB, XC], Y, batch_size=6, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    assert len(h.history["val_loss"]) == 2
    w = numpy_weights(m)
    val = float(np.mean((numpy_forward(w, XA[18:], XB[18:], XC[18:]) - Y[18:]) ** 2))
    assert h.history["val_loss"][-1] == pytest.approx(val, rel=1e-4)


def test_several_inputs_errors_are_clear():
    m = compiled()
    with pytest.raises(ValueError, match=r"takes 3 inputs \('a', 'b', 'c'\).*got 2"):
        m.predict([XA, XB], verbose=0)
    with pytest.raises(ValueError, match=r"missing.*'c'"):
        m.predict({"a": XA, "b": XB}, verbose=0)
    with pytest.raises(ValueError, match="cardinality.*x sizes: 24, 23, 24"):
        m.fit([XA, XB[:-1], XC], Y, verbose=0)
    with pytest.raises(ValueError, match=r"input 'b' expects shape \(None, 4\)"):
        m.predict([XA, XC, XB], verbose=0)


def test_export_example_inputs_and_batch_size_then_load(tmp_path):
    pytest.importorskip("wasmtime")
    m = compiled()
    w = numpy_weights(m)
    xs = [XA[:4], XB[:4], XC[:4]]
    for kw, d in (({"example_inputs": xs}, "ex"), ({"example_inputs": {"a": XA[:4], "c": XC[:4], "b": XB[:4]}}, "exd"),
                  ({"example_inputs": (xs, Y[:4])}, "exy"), ({"batch_size": 4}, "bs")):
        man = m.export(str(tmp_path / d), **kw)
        assert [s["name"] for s in man["signatures"]["predict"]["inputs"]] == ["a", "b", "c"], d
        assert [s["shape"] for s in man["signatures"]["predict"]["inputs"]] == [[4, 3], [4, 4], [4, 2]]
        assert [s["name"] for s in man["signatures"]["train_step"]["inputs"]] == ["a", "b", "c", "y"]
    art = wt.load(str(tmp_path / "bs"), backend="wasm")
    want = numpy_forward(w, *xs)
    for got in (art.predict(*xs), art.predict(xs), art.predict(tuple(xs)),
                art.predict({"c": xs[2], "a": xs[0], "b": xs[1]}), art.run("predict", *xs)["output_0"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the artifact's train_step is the model's: one SGD step
    art.train_step(xs, Y[:4])
    art.train_step({"a": xs[0], "b": xs[1], "c": xs[2]}, Y[:4])
    w1 = numpy_sgd_step(numpy_sgd_step(w, *xs, Y[:4], 0.1), *xs, Y[:4], 0.1)
    got = art.get_weights()
    for k in w1:
        np.testing.assert_allclose(got[k], w1[k], rtol=1e-4, atol=1e-5, err_msg=k)
    with pytest.raises(ValueError, match=r"takes 3 input\(s\) \(a, b, c\), got 2"):
        art.predict(xs[0], xs[1])
    with pytest.raises(ValueError, match="input 'c' is missing"):
        art.predict({"a": xs[0], "b": xs[1]})
    with pytest.raises(ValueError, match="has no input 'd'"):
        art.predict({"a": xs[0], "b": xs[1], "c": xs[2], "d": xs[2]})


def test_export_several_inputs_bitwise_on_wasm(tmp_path):
    """On a wasm device without FMA the artifact's predict equals the model's bit for bit."""
    pytest.importorskip("wasmtime")
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact_mi", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact_mi").name = "wasm_exact_mi"
    with wt.device("wasm_exact_mi"):
        m = compiled()
        m.export(str(tmp_path / "m"), batch_size=6)
        want = m.predict_on_batch([XA[:6], XB[:6], XC[:6]]).numpy()
    art = wt.load(str(tmp_path / "m"), backend="wasm")
    np.testing.assert_array_equal(art.predict(XA[:6], XB[:6], XC[:6]), want)


def test_single_input_models_keep_their_signature_names(tmp_path):
    pytest.importorskip("wasmtime")
    wt.set_seed(0)
    inp = nn.Input((3,), name="features")
    m = nn.Model(inp, nn.Dense(2)(inp))
    m.compile("sgd", "mse")
    man = m.export(str(tmp_path / "one"), batch_size=2)
    assert [s["name"] for s in man["signatures"]["predict"]["inputs"]] == ["x"]
    assert [s["name"] for s in man["signatures"]["train_step"]["inputs"]] == ["x", "y"]
    art = wt.load(str(tmp_path / "one"), backend="wasm")
    x = XA[:2]
    want = m.predict_on_batch(x).numpy()
    for got in (art.predict(x), art.predict([x]), art.predict({"x": x}), art.predict(x.tolist())):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # a dict keyed by the Input's name works for the model itself (Keras)
    np.testing.assert_allclose(m.predict({"features": x}, verbose=0).numpy(), want, rtol=1e-6)


def test_a_dict_of_inputs_is_matched_by_key_everywhere(tmp_path):
    """Model({'img': ..., 'meta': ...}, out): keys are the input names (in sorted order, as tf.nest)."""
    wt.set_seed(1)
    img, meta = nn.Input((3,), name="pixels"), nn.Input((2,), name="extra")
    m = nn.Model({"meta": meta, "img": img}, nn.Dense(2, name="d")(nn.Lambda(lambda t: wt.concat(t, -1))([img, meta])))
    assert m.input_names == ["img", "meta"]
    m.compile(wt.optimizers.SGD(0.1), "mse")
    w = {k: v.numpy() for k, v in nn.saving.weight_paths(m).items()}
    want = np.concatenate([XA, XC], -1) @ w["d/kernel"] + w["d/bias"]
    for x in ({"meta": XC, "img": XA}, [XA, XC]):
        np.testing.assert_allclose(m.predict(x, verbose=0).numpy(), want, rtol=1e-5, atol=1e-5)
    m.fit({"img": XA, "meta": XC}, Y, batch_size=8, epochs=1, verbose=0)
    pytest.importorskip("wasmtime")
    man = m.export(str(tmp_path / "d"), batch_size=2)
    assert [s["name"] for s in man["signatures"]["predict"]["inputs"]] == ["img", "meta"]
    art = wt.load(str(tmp_path / "d"), backend="wasm")
    np.testing.assert_allclose(art.predict({"img": XA[:2], "meta": XC[:2]}),
                               m.predict_on_batch({"img": XA[:2], "meta": XC[:2]}).numpy(), rtol=1e-6)


def test_one_input_models_still_read_lists_as_data():
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((3,)), nn.Dense(2)])
    rows = [XA[0], XA[1], XA[2]]                 # a list of samples, stacked as before
    np.testing.assert_allclose(m.predict(rows, verbose=0).numpy(), m.predict(XA[:3], verbose=0).numpy(), rtol=1e-6)


def test_a_subclassed_model_with_a_tuple_or_dict_of_inputs(tmp_path):
    """Keras: a subclassed model's call(inputs) gets the tuple or dict as given; export names its inputs
    x_0, x_1 (a tuple) or by key (a dict)."""
    pytest.importorskip("wasmtime")

    class Two(nn.Model):
        def __init__(self):
            super().__init__(name="two")
            self.da, self.db = nn.Dense(2), nn.Dense(2)

        def call(self, inputs, training=False):
            if isinstance(inputs, dict):
                inputs = (inputs["p"], inputs["q"])
            return self.da(inputs[0]) + self.db(inputs[1])
    wt.set_seed(0)
    m = Two()
    m.compile(wt.optimizers.SGD(0.1), "mse")
    m.fit((XA, XB), Y, batch_size=8, epochs=1, verbose=0)
    want = m.predict_on_batch((XA[:3], XB[:3])).numpy()
    np.testing.assert_allclose(m.predict([XA[:3], XB[:3]], verbose=0).numpy(), want, rtol=1e-6)
    man = m.export(str(tmp_path / "t"), example_inputs=((XA[:3], XB[:3]), Y[:3]))
    assert [s["name"] for s in man["signatures"]["train_step"]["inputs"]] == ["x_0", "x_1", "y"]
    np.testing.assert_allclose(wt.load(str(tmp_path / "t"), backend="wasm").predict(XA[:3], XB[:3]), want, rtol=1e-5)
    man = m.export(str(tmp_path / "d"), example_inputs={"q": XB[:3], "p": XA[:3]})
    assert [s["name"] for s in man["signatures"]["predict"]["inputs"]] == ["p", "q"]
    np.testing.assert_allclose(wt.load(str(tmp_path / "d"), backend="wasm").predict({"p": XA[:3], "q": XB[:3]}),
                               want, rtol=1e-5)


def test_lists_of_rows_and_of_numpy_scalars_are_data():
    """A model with one output reads a list of target rows as one array; 0-d arrays (numpy scalars)
    collected in a list are numbers, never a structure."""
    m1, m2 = compiled(), compiled()
    m1.fit([XA, XB, XC], Y, batch_size=8, shuffle=False, verbose=0)
    m2.fit([XA, XB, XC], [row for row in Y], batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    scalars = [np.float32(v) for v in Y[:, 0]]
    np.testing.assert_array_equal(nn.model._as_tensors(scalars).numpy(), Y[:, 0])
