"""Mixed precision (issue 18): dtype policies as Keras 3 documents them, LossScaleOptimizer against a
numpy re-implementation of Keras 3's algorithm (keras/src/optimizers/loss_scale_optimizer.py),
gradients under loss scaling, training on digits, export."""
import numpy as np
import pytest

import webtensor as wt
from webtensor.datasets import digits_arrays

mp = wt.nn.mixed_precision
DEVICES = ["reference", "wasm", "webgpu"]
F16_EPS = 2.0 ** -10        # float16's spacing at 1 (10 fraction bits)


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    mp.set_global_policy("float32")


# ---- policies ----------------------------------------------------------------------------------

def test_policy_names_and_dtypes():
    p = mp.Policy("mixed_float16")
    assert (p.name, p.compute_dtype, p.variable_dtype) == ("mixed_float16", "float16", "float32")
    assert (mp.Policy("float32").compute_dtype, mp.Policy("float32").variable_dtype) == ("float32", "float32")
    assert mp.Policy("float16").variable_dtype == "float16"
    assert mp.Policy("mixed_float16") == mp.Policy("mixed_float16") != mp.Policy("float32")
    assert repr(p) == '<Policy "mixed_float16">' and mp.DTypePolicy is mp.Policy
    assert mp.Policy.from_config(p.get_config()) == p
    with pytest.raises(ValueError, match="mixed_float16"):
        mp.Policy("mixed_bfloat16")         # webtensor has no bfloat16
    with pytest.raises(TypeError, match="must be a string"):
        mp.Policy(16)


def test_global_policy_and_layer_dtypes_as_keras_documents():
    # keras.mixed_precision / DTypePolicy docstring: layers made after set_global_policy use it,
    # dtype="float32" overrides it, set back to float32 at the end
    assert mp.global_policy() == mp.Policy("float32")
    mp.set_global_policy("mixed_float16")
    assert mp.global_policy().name == "mixed_float16" and mp.Policy().name == "mixed_float16"
    layer1 = wt.nn.Dense(10)
    layer2 = wt.nn.Dense(10, dtype="float32")
    assert layer1.dtype_policy == mp.Policy("mixed_float16") and layer2.dtype_policy == mp.Policy("float32")
    assert (layer1.compute_dtype, layer1.variable_dtype, layer1.dtype) == ("float16", "float32", wt.float32)
    layer3 = wt.nn.Dense(10, dtype=mp.Policy("float16"))
    mp.set_global_policy(None)
    assert mp.global_policy().name == "float32" and wt.nn.Dense(2).dtype_policy.name == "float32"
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    y1, y2, y3 = layer1(x), layer2(x), layer3(x)
    assert (y1.dtype, y2.dtype, y3.dtype) == (wt.float16, wt.float32, wt.float16)
    assert layer1.kernel.dtype == wt.float32 and layer3.kernel.dtype == wt.float16
    assert layer2(wt.tensor(x).astype("float16")).dtype == wt.float32     # inputs cast to float32
    assert layer1.get_config()["dtype"] == "mixed_float16"
    assert wt.nn.Dense.from_config(layer1.get_config()).dtype_policy.name == "mixed_float16"
    with pytest.raises(ValueError, match="mixed_float16"):
        wt.nn.Dense(2, dtype="mixed_float8")


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_dense_computes_in_float16(device):
    # outputs are float16 values of the float16 computation: inputs and weights rounded to float16,
    # products accumulated (float32 or wider), each op's result rounded to float16
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 33)).astype(np.float32)
    with wt.device(device):
        layer = wt.nn.Dense(17, activation="relu", dtype="mixed_float16", bias_initializer="glorot_uniform")
        y = layer(wt.tensor(x)).numpy()
    x16 = x.astype(np.float16).astype(np.float64)
    w, b = (v.numpy().astype(np.float16).astype(np.float64) for v in (layer.kernel, layer.bias))
    xw = (x16 @ w).astype(np.float16).astype(np.float64)
    ref = np.maximum((xw + b).astype(np.float16), 0).astype(np.float64)
    assert y.dtype == np.float16
    # error bound: x @ w's float16 rounding may go the other way (one ulp of |xw|, carried through
    # the bias add) and the output's rounding too; WebGPU's generic f16 reduction (matrix-vector
    # products) also rounds each product to float16 before its f32 accumulator: u * sum|x_i w_i|
    # more (u = 2**-11, Higham 2002 3.1); its matmul kernels multiply exactly in f32
    bound = F16_EPS * (np.abs(xw) + np.abs(ref)) + 2 ** -24
    if device == "webgpu":
        bound += 2.0 ** -11 * (np.abs(x16) @ np.abs(w))
    err = np.abs(y.astype(np.float64) - ref)
    assert (err <= bound).all(), float((err / bound).max())
    y32 = np.maximum(x @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    assert np.abs(y32 - ref).max() > 0 and not np.array_equal(y, y32)


def test_integer_inputs_are_not_cast():
    emb = wt.nn.Embedding(10, 4, dtype="mixed_float16")
    out = emb(np.array([[1, 2, 3]], np.int32))
    assert out.dtype == wt.float16 and emb.embeddings.dtype == wt.float32


def test_compile_wraps_the_optimizer_as_keras():
    mp.set_global_policy("mixed_float16")
    model = wt.nn.Sequential([wt.nn.Input((4,)), wt.nn.Dense(3)])
    model.compile("sgd", "mse")
    assert isinstance(model.optimizer, wt.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, wt.optimizers.SGD)
    model.compile("sgd", "mse", auto_scale_loss=False)
    assert isinstance(model.optimizer, wt.optimizers.SGD)
    mp.set_global_policy("float32")
    model = wt.nn.Sequential([wt.nn.Input((4,)), wt.nn.Dense(3)])
    model.compile("sgd", "mse")
    assert isinstance(model.optimizer, wt.optimizers.SGD)


# ---- LossScaleOptimizer -----------------------------------------------------------------------

def _keras_loss_scale(grads_seq, w0, lr, initial_scale, growth):
    """numpy re-implementation of Keras 3's LossScaleOptimizer around SGD: per step (scale, counter,
    weights) after it. Gradients are those of the scaled loss."""
    scale, counter, w, it = np.float32(initial_scale), 0, w0.astype(np.float32).copy(), 0
    out = []
    for g in grads_seq:
        g = np.asarray(g, np.float32)
        if np.all(np.isfinite(g)):
            w = (w - np.float32(lr) * (g / scale)).astype(np.float32)       # inner SGD on unscaled grads
            it += 1
            if counter == growth - 1:
                counter, scale = 0, scale * np.float32(2.0)
            else:
                counter += 1
        else:                                                              # skip, halve
            counter, scale = 0, scale * np.float32(0.5)
        out.append((float(scale), counter, w.copy(), it))
    return out


@pytest.mark.parametrize("device,traced", [("reference", False), ("reference", True), ("wasm", True),
                                           ("webgpu", True)])
def test_loss_scale_sequence_matches_keras_algorithm(device, traced):
    with wt.device(device):
        _check_loss_scale_sequence(traced)


def _check_loss_scale_sequence(traced):
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(5).astype(np.float32)
    grads = [rng.standard_normal(5).astype(np.float32) * 100 for _ in range(12)]
    grads[4][2] = np.inf                 # skipped: weights unchanged, scale halved
    grads[5][0] = np.nan
    grads[9][:] = -np.inf
    w = wt.Variable(w0)
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(0.01), initial_scale=64.0, dynamic_growth_steps=3)

    def step(g):
        opt.apply_gradients([(g, w)])
    step_fn = wt.function(step) if traced else step
    expected = _keras_loss_scale(grads, w0, 0.01, 64.0, 3)
    scales = []
    for i, (g, (scale, counter, w_ref, it)) in enumerate(zip(grads, expected)):
        before = w.numpy().copy()
        step_fn(wt.tensor(g))
        scales.append(float(opt.dynamic_scale.numpy()))
        assert scales[-1] == scale and int(opt.step_counter.numpy()) == counter, i
        assert int(opt.iterations.numpy()) == it, i
        np.testing.assert_allclose(w.numpy(), w_ref, rtol=1e-6, atol=1e-7)
        if not np.all(np.isfinite(g)):
            np.testing.assert_array_equal(w.numpy(), before)      # a skipped step changes nothing
    # the sequence itself: 3 finite steps double, a non-finite one halves
    assert scales == [64, 64, 128, 128, 64, 32, 32, 32, 64, 32, 32, 32]


def test_skipped_step_leaves_adam_state_unchanged():
    w = wt.Variable(np.ones(3, np.float32))
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.Adam(0.1), initial_scale=4.0, dynamic_growth_steps=10)
    opt.apply_gradients([(wt.tensor(np.float32([1, 2, 3])), w)])
    state = [v.numpy().copy() for v in opt.variables]
    weights = w.numpy().copy()
    opt.apply_gradients([(wt.tensor(np.float32([1, np.inf, 3])), w)])
    np.testing.assert_array_equal(w.numpy(), weights)
    after = {v.name: v.numpy() for v in opt.variables}
    assert after["loss_scale_optimizer/dynamic_scale"] == 2.0 and after["loss_scale_optimizer/step_counter"] == 0
    for v, old in zip(opt.variables[2:], state[2:]):     # Adam's iterations, rate and moments
        np.testing.assert_array_equal(v.numpy(), old)


def test_loss_scale_optimizer_arguments_and_config():
    with pytest.raises(TypeError, match="inner_optimizer"):
        wt.optimizers.LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="initial_scale"):
        wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(), initial_scale=float("inf"))
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(), dynamic_growth_steps=0)
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(0.5), initial_scale=8, dynamic_growth_steps=7)
    assert opt.learning_rate == 0.5
    opt.learning_rate = 0.25
    assert opt.inner_optimizer.learning_rate == 0.25
    spec = wt.nn.saving.serialize_keras_object(opt)
    back = wt.nn.saving.deserialize_keras_object(spec)
    assert isinstance(back, wt.optimizers.LossScaleOptimizer) and isinstance(back.inner_optimizer, wt.optimizers.SGD)
    assert (back.initial_scale, back.dynamic_growth_steps, back.learning_rate) == (8.0, 7, 0.25)


def _mlp(policy, seed=3):
    """The issue's recipe: the global policy, and a float32 softmax at the end (Keras' advice)."""
    wt.set_seed(seed)
    mp.set_global_policy(policy)
    model = wt.nn.Sequential([wt.nn.Input((64,)), wt.nn.Dense(32, activation="relu"), wt.nn.Dense(10),
                              wt.nn.Activation("softmax", dtype="float32")])
    mp.set_global_policy("float32")
    return model


def test_scaled_gradients_equal_unscaled_gradients():
    ((x, y), _), _ = digits_arrays()
    x = np.asarray(x, np.float32).reshape(-1, 64)[:64]
    y = np.asarray(y, np.int32)[:64]
    loss_fn = wt.nn.losses.SparseCategoricalCrossentropy()
    ref_model, model = _mlp("float32"), _mlp("mixed_float16")
    model.set_weights(ref_model.get_weights())

    def grads(m, factor):
        with wt.GradientTape() as tape:
            loss = loss_fn(y, m(x, training=True)) * factor
            scaled = opt.scale_loss(loss)
        return [g.numpy() / float(opt.dynamic_scale.numpy()) for g in tape.gradient(scaled, m.trainable_variables)]

    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(), initial_scale=2.0 ** 15)
    exact = [g * 1e-5 for g in grads(ref_model, 1.0)]       # float32: the reference
    scaled = grads(model, 1e-5)                                # float16 layers, loss scaled by 2**15
    for g, e in zip(scaled, exact):
        assert g.dtype == np.float32
        # float16 forward and backward: measured up to 6e-4 of the largest entry (wasm)
        np.testing.assert_allclose(g, e, atol=3e-3 * np.abs(e).max())
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(), initial_scale=1.0)
    unscaled = grads(model, 1e-5)                              # no scaling: small float16 gradients flush to 0
    lost = sum(int(((u == 0) & (e != 0)).sum()) for u, e in zip(unscaled, exact))
    kept = sum(int(((s == 0) & (e != 0)).sum()) for s, e in zip(scaled, exact))
    assert kept == 0 and lost > 300          # measured: 723 of 2410 gradients flush to zero unscaled


def _digits_accuracy(policy, epochs=15):
    ((x, y), (xt, yt)), _ = digits_arrays()
    x, xt = (np.asarray(a, np.float32).reshape(-1, 64) for a in (x, xt))
    y, yt = np.asarray(y, np.int32), np.asarray(yt, np.int32)
    model = _mlp(policy)
    model.compile(wt.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=False)
    return model, model.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]


@pytest.mark.parametrize("device", ["reference", "wasm"])
def test_mixed_float16_trains_digits_as_well_as_float32(device):
    with wt.device(device):
        model32, acc32 = _digits_accuracy("float32")
        model, acc16 = _digits_accuracy("mixed_float16")
    # the runs differ (float16 rounding moved the weights: measured 2e-2 on wasm), yet land together
    assert np.abs(model.layers[0].kernel.numpy() - model32.layers[0].kernel.numpy()).max() > 1e-3
    assert isinstance(model.optimizer, wt.optimizers.LossScaleOptimizer)
    assert model.layers[0].kernel.dtype == wt.float32
    assert acc32 > 0.9 and abs(acc16 - acc32) <= 0.01 + 1e-9, (acc32, acc16)


def test_mixed_model_exports_and_trains_from_the_artifact(tmp_path):
    mp.set_global_policy("mixed_float16")
    model = wt.nn.Sequential([wt.nn.Input((6,)), wt.nn.Dense(8, activation="relu"), wt.nn.Dense(3),
                              wt.nn.Activation("softmax", dtype="float32")])
    model.compile(wt.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    mp.set_global_policy("float32")
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((4, 6)).astype(np.float32), np.array([0, 1, 2, 1], np.int32)
    manifest = model.export(tmp_path / "m", batch_size=4)
    names = [v["name"] for v in manifest["variables"]]
    assert "optimizer/dynamic_scale" in names
    art = wt.load(tmp_path / "m")
    # fused kernels keep f32 between float16 loads and stores: within float16 rounding of predict
    np.testing.assert_allclose(art.predict(x), model.predict(x, verbose=0), atol=4 * F16_EPS)
    loss = float(np.asarray(art.train_step(x, y)))
    with wt.GradientTape():
        ref = float(model.compute_loss(x, y, model(x, training=True)))
    assert abs(loss - ref) < 4 * F16_EPS * abs(ref)


def test_webgpu_f16_export_computes_float16_as_f16(tmp_path):
    """``export(..., webgpu_f16=True)``: every WGSL kernel enables f16 (loaders then need the adapter's
    shader-f16), float16 temporaries take 2 bytes an element, the matmuls read f16; module.wasm is
    the default export's. On an adapter with shader-f16 the WebGPU code agrees with the wasm code
    (f32 arithmetic rounded to float16) within float16 rounding: predict within 4 * F16_EPS as the
    test above (measured 7e-8 on probabilities), the losses within 4 * F16_EPS relative (4e-7)."""
    import glob
    import re
    import warnings
    from webtensor.webgpu.artifact import webgpu_shortfall
    mp.set_global_policy("mixed_float16")
    model = wt.nn.Sequential([wt.nn.Input((64,)), wt.nn.Dense(96, activation="relu"), wt.nn.Dense(32),
                              wt.nn.Activation("softmax", dtype="float32")])
    model.compile(wt.optimizers.LossScaleOptimizer(wt.optimizers.Adam(1e-3)), "sparse_categorical_crossentropy")
    mp.set_global_policy("float32")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 64)).astype(np.float32), rng.integers(0, 32, 128).astype(np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no signature falls back
        half = model.export(tmp_path / "f16", batch_size=128, webgpu_f16=True)
    full = model.export(tmp_path / "f32", batch_size=128)
    srcs = {d: [open(f).read() for f in glob.glob(str(tmp_path / d / "kernels" / "*.wgsl"))] for d in ("f16", "f32")}
    assert all(s.startswith("enable f16;") for s in srcs["f16"]) and not any("f16" in s for s in srcs["f32"])
    assert sum("acc00" in s and "in0: array<f16" in s for s in srcs["f16"]) >= 3     # matmul kernels on f16
    assert (tmp_path / "f16" / "module.wasm").read_bytes() == (tmp_path / "f32" / "module.wasm").read_bytes()
    def temp(m, s):
        return sum(b["bytes"] for b in m["signatures"][s]["webgpu"]["buffers"] if b["role"] == "temp")
    assert temp(half, "predict") * 2 == temp(full, "predict")     # float16 activations only
    files = {p: (tmp_path / "f16" / p).read_bytes() for p in {k["wgsl"] for s in half["signatures"].values()
                                                            for k in s["webgpu"]["kernels"]}}
    # a device meeting every limit: the feature is what it lacks
    kebab = {re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), k): 1 << 31
             for sig in half["signatures"].values() for k in sig["webgpu"]["required_limits"]}
    assert "needs the WebGPU feature 'shader-f16'" in webgpu_shortfall(half, files, kebab, set())
    assert webgpu_shortfall(half, files, kebab, {"shader-f16"}) is None
    dev = wt.get_device("webgpu")
    if not dev.limits.shader_f16:
        pytest.skip("this adapter has no shader-f16: the f16 artifact runs on WebAssembly only")
    gpu, cpu = wt.load(tmp_path / "f16", backend="webgpu"), wt.load(tmp_path / "f16", backend="wasm")
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), atol=4 * F16_EPS)
    for _ in range(3):
        a, b = float(np.asarray(gpu.train_step(x, y))), float(np.asarray(cpu.train_step(x, y)))
        assert abs(a - b) < 4 * F16_EPS * abs(b)


def test_webgpu_f16_export_falls_back_where_float16_storage_cannot_go(tmp_path):
    """A float16 constant tensor (artifacts store constants as float32): that signature is compiled
    without shader-f16, with a warning."""
    c = wt.tensor(np.linspace(-1, 1, 64).astype(np.float16))

    def f(x):
        return wt.cast(wt.cast(x, "float16") * c, "float32")
    with pytest.warns(UserWarning, match="without shader-f16: a float16 constant tensor"):
        wt.export(None, path=tmp_path / "c", signatures={"predict": (f, (np.ones(64, np.float32),))}, webgpu_f16=True)
    assert not any("f16" in p.read_text() for p in (tmp_path / "c" / "kernels").glob("*.wgsl"))
    got = wt.load(tmp_path / "c", backend="wasm").predict(np.full(64, 2.0, np.float32))
    np.testing.assert_array_equal(got, (np.float16(2.0) * c.numpy()).astype(np.float32))


def test_save_and_load_keep_the_loss_scale_and_inner_state(tmp_path):
    mp.set_global_policy("mixed_float16")
    model = wt.nn.Sequential([wt.nn.Input((5,)), wt.nn.Dense(8, activation="relu"), wt.nn.Dense(3),
                              wt.nn.Activation("softmax", dtype="float32")])
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.Adam(), initial_scale=64.0, dynamic_growth_steps=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    mp.set_global_policy("float32")
    rng = np.random.default_rng(5)
    x, y = rng.random((8, 5)).astype(np.float32), np.arange(8) % 3
    model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert float(model.optimizer.dynamic_scale.numpy()) == 128.0        # 4 finite steps, growth every 3
    model.save(tmp_path / "m.keras")
    back = wt.nn.load_model(tmp_path / "m.keras")
    assert back.layers[0].dtype_policy.name == "mixed_float16"
    saved = {v.name: v.numpy() for v in model.optimizer.variables}
    loaded = {v.name: v.numpy() for v in back.optimizer.variables}
    assert saved.keys() == loaded.keys() and all(np.array_equal(saved[k], loaded[k]) for k in saved)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    back.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)                              # training goes on identically
    assert float(back.optimizer.dynamic_scale.numpy()) == 256.0


def test_python_floats_stay_weak_beside_float16():
    # numpy's NEP 50 (and TF): a Python scalar does not widen a float16 tensor
    h = wt.tensor(np.float16([1.5, -2.0]))
    assert (h * 0.1).dtype == wt.float16 and (2.0 + h).dtype == wt.float16
    np.testing.assert_array_equal((h * 0.1).numpy(), np.float16([1.5, -2.0]) * 0.1)
    assert (wt.tensor([1, 2]) * 0.5).dtype == wt.float32        # an int tensor still becomes float32


def test_gradients_have_their_inputs_dtype():
    # x (float16) reaches the loss twice: through a float32 cast and directly into a float32 sum;
    # its gradient is the float16 sum of both paths
    x = wt.tensor(np.float16([0.5, -1.25, 2.0]))
    w = wt.tensor(np.float32([3.0, 0.5, -1.0]))
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = wt.reduce_sum(wt.cast(x, "float32") * w + x)
    g = tape.gradient(y, x)
    assert g.dtype == wt.float16
    np.testing.assert_array_equal(g.numpy(), (w.numpy() + 1).astype(np.float16))


@pytest.mark.parametrize("kind", ["conv_batchnorm", "layernorm", "attention"])
def test_layers_train_under_mixed_float16(kind):
    rng = np.random.default_rng(6)
    nn = wt.nn
    mp.set_global_policy("mixed_float16")
    if kind == "conv_batchnorm":
        body = [nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                nn.BatchNormalization(), nn.Flatten(), nn.Dropout(0.2), nn.Dense(3)]
        x = rng.random((16, 8, 8, 1)).astype(np.float32)
    elif kind == "layernorm":
        body = [nn.Input((6,)), nn.Dense(8), nn.LayerNormalization(), nn.Dense(3)]
        x = rng.random((16, 6)).astype(np.float32)
    else:
        q = nn.Input((4, 8))
        body = None
        out = nn.Dense(3)(nn.Flatten()(nn.MultiHeadAttention(2, 4)(q, q)))
        x = rng.random((16, 4, 8)).astype(np.float32)
    if body is None:
        model = nn.Model(q, nn.Activation("softmax", dtype="float32")(out))
    else:
        model = nn.Sequential(body + [nn.Activation("softmax", dtype="float32")])
    model.compile(wt.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    mp.set_global_policy("float32")
    y = rng.integers(0, 3, 16)
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0, shuffle=False).history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert all(v.dtype == wt.float32 for v in model.variables if v.dtype.is_floating)
    assert model.layers[1].compute_dtype == "float16" and model.predict(x, verbose=0).dtype == wt.float32


def test_losses_compute_in_float32_as_keras():
    # without a float32 last layer the predictions are float16; the loss is float32 all the same
    y_pred16 = wt.tensor(np.float16([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    loss = wt.nn.losses.SparseCategoricalCrossentropy()(np.array([0, 2]), y_pred16)
    assert loss.dtype == wt.float32
    p = np.float16([0.7, 0.8]).astype(np.float64)
    assert abs(float(loss) + np.log(p).mean()) < 1e-6


def test_mirrored_strategy_trains_with_loss_scaling_as_one_device():
    import contextlib
    rng = np.random.default_rng(7)
    x, y = rng.random((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    runs = []
    for strategy in (None, wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])):
        wt.set_seed(0)
        with wt.device("wasm"), strategy.scope() if strategy is not None else contextlib.nullcontext():
            mp.set_global_policy("mixed_float16")
            model = wt.nn.Sequential([wt.nn.Input((6,)), wt.nn.Dense(8, activation="relu"), wt.nn.Dense(3),
                                      wt.nn.Activation("softmax", dtype="float32")])
            model.compile(wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(0.1), dynamic_growth_steps=2),
                          "sparse_categorical_crossentropy")
            mp.set_global_policy("float32")
        with wt.device("wasm"):
            losses = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False).history["loss"]
        runs.append((losses, float(model.optimizer.dynamic_scale.numpy()), int(model.optimizer.iterations.numpy())))
    (l1, s1, i1), (l2, s2, i2) = runs
    assert (s1, i1) == (s2, i2) == (2.0 ** 15 * 8, 6)          # 6 finite steps, doubling every 2
    np.testing.assert_allclose(l2, l1, rtol=1e-5)               # float32 summation order of the replicas


def test_strategy_run_custom_loop_skips_on_every_replica():
    # a custom loop under MirroredStrategy.run: gradients summed across replicas by the inner optimizer;
    # when one replica's gradients are not finite, every replica skips the step and halves the scale
    D = wt.distribute
    strategy = D.MirroredStrategy(["wasm:0", "wasm:1"])
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32)
    with wt.device("wasm"), strategy.scope():
        w = wt.Variable(rng.normal(size=(3, 1)).astype(np.float32), name="w")
    opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.SGD(0.1), initial_scale=8.0, dynamic_growth_steps=2)

    def step(xs, ys, poison):
        with wt.GradientTape() as tape:
            loss = D.compute_average_loss(wt.reduce_mean((xs @ w - ys) ** 2, axis=1), global_batch_size=8)
            scaled = opt.scale_loss(loss)
        (g,) = tape.gradient(scaled, [w])
        if poison and D.get_replica_context().replica_id_in_sync_group == 1:
            g = g * np.float32(np.inf)
        opt.apply_gradients([(g, w)])
        return loss

    expected_w = w.numpy().copy()
    for poison, scale in ((False, 8.0), (True, 4.0), (False, 4.0), (False, 8.0)):
        before = w.numpy().copy()
        for xs, ys in strategy.experimental_distribute_dataset([(x, y)]):
            strategy.run(step, args=(xs, ys, poison))
        copies = [c.numpy() for c in w.values]
        assert np.array_equal(copies[0], copies[1])
        assert [float(c.numpy()) for c in opt.dynamic_scale.values] == [scale, scale]
        if poison:
            np.testing.assert_array_equal(w.numpy(), before)
        else:       # the one-device SGD step on the whole batch
            grad = 2 * x.T @ (x @ expected_w - y) / 8
            expected_w = expected_w - 0.1 * grad
            np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-5, atol=1e-6)
    assert int(opt.iterations.numpy()) == 3
