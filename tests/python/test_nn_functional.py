"""Keras' functional API: Input as a KerasTensor, layers and operators recorded, Model(inputs, outputs)."""
import numpy as np
import pytest

import webtensor as wt
from webtensor import nn

rng = np.random.default_rng(0)


def residual_mlp():
    wt.set_seed(0)
    x = nn.Input((4,), name="features")
    h = nn.Dense(16, activation="relu", name="hidden")(x)
    skip = nn.Dense(16, name="skip")(x)
    y = nn.Dense(3, name="logits")(h + skip * 0.5)
    return nn.Model(x, y, name="residual")


def test_forward_is_the_recorded_composition_and_trains():
    m = residual_mlp()
    assert isinstance(m, nn.Functional) and m.built
    assert [layer.name for layer in m.functional_layers] == ["hidden", "skip", "logits"]
    assert len(m.trainable_variables) == 6
    x = rng.standard_normal((10, 4)).astype(np.float32)
    (wh, bh), (ws, bs), (wl, bl) = [[v.numpy() for v in layer.variables] for layer in m.functional_layers]
    want = (np.maximum(x @ wh + bh, 0) + 0.5 * (x @ ws + bs)) @ wl + bl
    np.testing.assert_allclose(m(x).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(x, verbose=0).numpy(), want, rtol=1e-5, atol=1e-6)
    # trains: loss falls, accuracy on an easy problem
    centers = np.eye(3, 4, dtype=np.float32) * 2
    y = rng.integers(0, 3, 96).astype(np.int32)
    xs = (centers[y] + 0.3 * rng.standard_normal((96, 4))).astype(np.float32)
    m.compile(wt.optimizers.Adam(0.05), nn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    h = m.fit(xs, y, batch_size=16, epochs=5, verbose=0, seed=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert m.evaluate(xs, y, verbose=0)[1] > 0.9


def test_gradients_match_the_same_model_written_by_hand():
    m = residual_mlp()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    hidden, skip, logits = m.functional_layers
    with wt.GradientTape(persistent=True) as tape:
        a = wt.reduce_sum(m(x) ** 2)
        b = wt.reduce_sum(logits(hidden(x) + skip(x) * 0.5) ** 2)
    for ga, gb in zip(tape.gradient(a, m.trainable_variables), tape.gradient(b, m.trainable_variables)):
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=1e-6)


def test_several_inputs_and_outputs_lambda_and_operators():
    a, b = nn.Input((3,), name="a"), nn.Input((2,), name="b")
    joined = nn.Lambda(lambda t: wt.concat(t, axis=-1))([a, b])
    out1 = nn.Dense(4, name="d")(joined)
    out2 = 1.0 - joined[:, :2] / 2.0
    xa, xb = rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((6, 2)).astype(np.float32)
    m = nn.Model([a, b], [out1, out2])
    y1, y2 = m([xa, xb])
    xj = np.concatenate([xa, xb], axis=-1)
    d = m.functional_layers[1]
    np.testing.assert_allclose(y1.numpy(), xj @ d.kernel.numpy() + d.bias.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2.numpy(), 1.0 - xj[:, :2] / 2.0, rtol=1e-6)
    md = nn.Model({"a": a, "b": b}, out2)
    np.testing.assert_allclose(md({"b": xb, "a": xa}).numpy(), y2.numpy())
    assert (out1.shape, out2.shape, joined.dtype) == ((None, 4), (None, 2), wt.float32)


def test_training_flag_reaches_layers_unless_fixed_when_recorded():
    x = nn.Input((200,))
    free = nn.Dropout(0.5, seed=1)(x)
    fixed = nn.Dropout(0.5, seed=2)(x, training=False)
    m = nn.Model(x, [free, fixed])
    ones = np.ones((2, 200), np.float32)
    f_train, x_train = m(ones, training=True)
    f_test, x_test = m(ones, training=False)
    assert (f_train.numpy() == 0).mean() > 0.3            # dropout active
    np.testing.assert_array_equal(f_test.numpy(), ones)
    np.testing.assert_array_equal(x_train.numpy(), ones)  # training=False was recorded
    np.testing.assert_array_equal(x_test.numpy(), ones)


def test_weights_save_and_load_round_trip(tmp_path):
    m1 = residual_mlp()
    path = tmp_path / "w.safetensors"
    m1.save_weights(str(path))
    wt.set_seed(5)
    m2 = residual_mlp()
    for v in m2.trainable_variables:
        v.assign(wt.zeros(v.shape))
    m2.load_weights(str(path))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(m2(x).numpy(), m1(x).numpy())


def test_sequential_still_starts_with_input():
    s = nn.Sequential([nn.Input((4,)), nn.Dense(2)])
    assert s.built and s.layers[0].kernel.shape == (4, 2)
    with pytest.raises(ValueError, match="first layer"):
        nn.Sequential([nn.Dense(2), nn.Input((3,))])


def test_errors_are_clear():
    x, other = nn.Input((4,), name="x"), nn.Input((4,), name="other")
    y = nn.Dense(2)(x + other)
    with pytest.raises(ValueError, match="'other'.*not among the model's inputs"):
        nn.Model(x, y)
    with pytest.raises(TypeError, match="is not an Input"):
        nn.Model(y, y)
    with pytest.raises(TypeError, match="expected KerasTensors"):
        nn.Model(x, np.zeros(3))
    m = nn.Model([x, other], y)
    with pytest.raises(ValueError, match=r"input 'x' expects shape \(None, 4\), got \(2, 5\)"):
        m([np.zeros((2, 5), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match="takes 2 input"):
        m(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="symbolic.*Lambda"):
        wt.exp(x)
    with pytest.raises(TypeError, match="symbolic"):
        x.numpy()


def test_export_and_load_run_the_functional_model(tmp_path):
    m = residual_mlp()
    m.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.standard_normal((8, 4)).astype(np.float32)
    m.export(str(tmp_path / "art"), batch_size=8)
    loaded = wt.load(str(tmp_path / "art"), backend="wasm")
    np.testing.assert_allclose(loaded.predict(x), m(x).numpy(), rtol=1e-5, atol=1e-6)
    loss = loaded.train_step(x, np.arange(8, dtype=np.int32) % 3)
    np.testing.assert_allclose(loss, m.evaluate(x, np.arange(8, dtype=np.int32) % 3, verbose=0), rtol=1e-5)
