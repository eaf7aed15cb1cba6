"""Model / Sequential: compile, fit (traced step), evaluate, predict, callbacks, summary, errors."""
import numpy as np
import pytest

import webtensor as wt
from webtensor import nn


def blobs(n=96, seed=0):
    """Three well-separated Gaussian clusters in 4-D: an easy classification problem."""
    r = np.random.RandomState(seed)
    y = r.randint(0, 3, n).astype(np.int32)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], np.float32)
    return (centers[y] + 0.3 * r.randn(n, 4)).astype(np.float32), y


def mlp(seed=0, **compile_kwargs):
    wt.set_seed(seed)
    m = nn.Sequential([nn.Input((4,)), nn.Dense(16, activation="relu"), nn.Dense(3)])
    m.compile(compile_kwargs.pop("optimizer", wt.optimizers.Adam(0.05)),
              compile_kwargs.pop("loss", nn.losses.SparseCategoricalCrossentropy(from_logits=True)),
              metrics=compile_kwargs.pop("metrics", ["accuracy"]), **compile_kwargs)
    return m


def test_fit_reduces_loss_and_history():
    x, y = blobs()
    m = mlp()
    before = m.evaluate(x, y, verbose=0)[0]
    h = m.fit(x, y, batch_size=16, epochs=5, verbose=0, seed=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h.epoch == list(range(5)) and all(len(v) == 5 for v in h.history.values())
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["loss"][0] < before
    assert h.history["val_accuracy"][-1] >= 0.95
    assert m.history is h


def test_epoch_loss_is_batch_size_weighted_mean():
    x, y = blobs(40)
    m = mlp(optimizer=wt.optimizers.SGD(0.0))  # lr 0: every batch sees the same weights
    h = m.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    full = float(nn.losses.SparseCategoricalCrossentropy(from_logits=True)(y, m(x)))
    assert h.history["loss"][0] == pytest.approx(full, rel=1e-5)
    acc = float(np.mean(np.argmax(m(x).numpy(), -1) == y))
    assert h.history["accuracy"][0] == pytest.approx(acc)


def test_train_step_traced_once_for_every_batch_size():
    x, y = blobs(100)
    m = mlp()
    m.fit(x, y, batch_size=32, epochs=3, verbose=0)
    assert m.train_function.trace_count == 1  # batches of 32 and the last one of 4: a symbolic batch
    m2 = mlp()
    m2.fit(x[:96], y[:96], batch_size=32, epochs=3, verbose=0)
    assert m2.train_function.trace_count == 1
    m2.evaluate(x, y, batch_size=50, verbose=0)
    m2.evaluate(x, y, batch_size=50, verbose=0)
    assert m2.test_function.trace_count == 1


def test_traced_and_eager_training_agree():
    x, y = blobs(64)
    a, b = mlp(seed=3), mlp(seed=3, run_eagerly=True)
    ha = a.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=1)
    hb = b.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=1)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-5)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_fit_on_dataset_and_shuffle_seed():
    x, y = blobs(64)
    ds = wt.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(16)
    m = mlp()
    h = m.fit(ds, epochs=2, verbose=0, validation_data=ds)
    assert len(h.history["val_loss"]) == 2
    h1 = mlp(seed=1).fit(x, y, epochs=2, batch_size=8, verbose=0, seed=7).history["loss"]
    h2 = mlp(seed=1).fit(x, y, epochs=2, batch_size=8, verbose=0, seed=7).history["loss"]
    assert h1 == h2
    with pytest.raises(ValueError, match="y must be None"):
        m.fit(ds, y, verbose=0)


def test_steps_per_epoch_with_repeated_dataset():
    x, y = blobs(32)
    ds = wt.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    m = mlp()
    m.fit(ds, epochs=3, steps_per_epoch=5, verbose=0)
    assert int(m.optimizer.iterations) == 15


def test_evaluate_and_predict_agree_with_call():
    x, y = blobs(50)
    m = mlp()
    m.fit(x, y, epochs=2, verbose=0)
    p = m.predict(x, batch_size=16, verbose=0)
    np.testing.assert_allclose(p.numpy(), m(x).numpy(), rtol=1e-5, atol=1e-6)
    loss, acc = m.evaluate(x, y, batch_size=16, verbose=0)
    logits = m(x).numpy()
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    assert loss == pytest.approx(float(np.mean(lse - logits[np.arange(50), y])), rel=1e-4)
    assert acc == pytest.approx(float(np.mean(logits.argmax(1) == y)))
    assert m.evaluate(x, y, verbose=0, return_dict=True) == {"loss": pytest.approx(loss),
                                                              "accuracy": pytest.approx(acc)}


def test_compile_strings():
    x, y = blobs(32)
    m = nn.Sequential([nn.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(m.optimizer, wt.optimizers.SGD)
    assert isinstance(m.loss, nn.losses.SparseCategoricalCrossentropy) and not m.loss.from_logits
    h = m.fit(x, y, epochs=1, verbose=0)
    assert "accuracy" in h.history
    with pytest.raises(ValueError, match="unknown loss"):
        m.compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="unknown metric"):
        m.compile("adam", "mse", metrics=["precision@k"])


class TwoLayer(nn.Model):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Dense(8, activation="relu")
        self.drop = nn.Dropout(0.1, seed=0)
        self.out = nn.Dense(3)
        self.temperature = wt.Variable(1.0, name="temperature", trainable=False)

    def call(self, x, training=False):
        return self.out(self.drop(self.hidden(x), training=training)) / self.temperature


def test_subclassed_model_tracks_and_trains():
    x, y = blobs(64)
    wt.set_seed(0)
    m = TwoLayer()
    m.compile(wt.optimizers.Adam(0.05), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = m.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert [layer.name for layer in m.layers] == [m.hidden.name, m.drop.name, m.out.name]
    assert len(m.trainable_variables) == 4 and m.non_trainable_variables == [m.temperature]
    assert float(m.temperature) == 1.0


def test_summary_lists_layers_and_counts():
    m = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", name="c1"), nn.MaxPool2D(),
                       nn.Flatten(), nn.Dense(10, name="head")])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "c1 (Conv2D)" in text and "(None, 8, 8, 4)" in text and "head (Dense)" in text
    assert f"Total params: {40 + 16 * 4 * 10 + 10:,}" in text
    with pytest.raises(ValueError, match="not been built"):
        nn.Sequential([nn.Dense(2)]).summary()


def test_model_build_from_shape():
    m = nn.Sequential([nn.Dense(4), nn.Dense(2)])
    m.build((None, 3))
    assert m.built and [tuple(v.shape) for v in m.variables] == [(3, 4), (4,), (4, 2), (2,)]


def test_errors():
    x, y = blobs(8)
    m = nn.Sequential([nn.Dense(3)])
    with pytest.raises(RuntimeError, match="compiled"):
        m.fit(x, y, verbose=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="different numbers of samples"):
        m.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(TypeError, match="expected KerasTensors"):
        nn.Model(inputs=1, outputs=2)
    with pytest.raises(ValueError, match="Input"):
        nn.Sequential([nn.Dense(2), nn.Input((3,))])
    with pytest.raises(TypeError, match="Layer"):
        nn.Sequential([lambda t: t])
    mi = nn.Sequential([nn.Input((4,)), nn.Dense(2)])
    with pytest.raises(ValueError, match="input_layer|incompatible"):
        mi(np.zeros((2, 5), np.float32))


# ---- callbacks ------------------------------------------------------------------------------------

class Recorder(nn.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None): self.events.append("train_begin")
    def on_epoch_begin(self, epoch, logs=None): self.events.append(f"epoch_begin {epoch}")
    def on_train_batch_end(self, batch, logs=None): self.events.append(f"batch {batch} {sorted(logs)}")
    def on_epoch_end(self, epoch, logs=None): self.events.append(f"epoch_end {epoch} {sorted(logs)}")
    def on_train_end(self, logs=None): self.events.append("train_end")


def test_callback_hooks_in_order():
    x, y = blobs(20)
    r = Recorder()
    mlp().fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[r], validation_data=(x, y))
    assert r.events == [
        "train_begin",
        "epoch_begin 0", "batch 0 ['accuracy', 'loss']", "batch 1 ['accuracy', 'loss']",
        "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']",
        "epoch_begin 1", "batch 0 ['accuracy', 'loss']", "batch 1 ['accuracy', 'loss']",
        "epoch_end 1 ['accuracy', 'loss', 'val_accuracy', 'val_loss']",
        "train_end"]


def test_early_stopping_stops_and_restores_best_weights():
    x, y = blobs(64)
    m = mlp()
    snapshots, losses = [], iter([1.0, 0.5, 0.7, 0.6, 0.4, 0.3])

    class FakeMonitor(nn.Callback):
        # Replaces the monitored value with a scripted sequence, and records the weights at
        # each epoch end, so the test knows exactly which epoch is best.
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(losses)
            snapshots.append(self.model.get_weights())

    es = nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[FakeMonitor(), es])
    assert h.epoch == [0, 1, 2, 3]               # best at epoch 1, no improvement for 2 epochs
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.5
    for w, best in zip(m.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(w, best)
    assert not np.array_equal(snapshots[3][0], snapshots[1][0])


def test_early_stopping_min_delta_mode_and_no_restore():
    x, y = blobs(32)
    vals = iter([0.5, 0.6, 0.63, 0.64, 0.9])

    class Acc(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_accuracy"] = next(vals)

    es = nn.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=2)
    assert es.mode == "max"
    m = mlp()
    h = m.fit(x, y, epochs=5, verbose=0, callbacks=[Acc(), es])
    assert h.epoch == [0, 1, 2, 3]  # 0.63 and 0.64 are not better than 0.6 by more than 0.05
    assert es.stopped_epoch == 3


def test_progress_lines_with_verbose_2(capsys):
    x, y = blobs(20)
    mlp().fit(x, y, batch_size=10, epochs=2, verbose=2, validation_data=(x, y))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("Epoch 1/2") and "2/2 steps" in out[0] and "val_accuracy" in out[0]


def test_infinite_dataset_needs_steps_per_epoch_and_lists_are_inputs():
    x, y = blobs(16)
    m = mlp()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        m.fit(wt.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(), epochs=1, verbose=0)
    out = m([[1.0, 0.0, 0.0, 0.0]])  # a nested list is one input, converted like webtensor.tensor
    assert out.shape == (1, 3)


def test_adding_a_layer_drops_the_stale_traced_step():
    x, y = blobs(16)
    m = nn.Sequential([nn.Dense(3)])
    m.compile("sgd", nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=1, verbose=0)
    m.add(nn.Dense(3))
    assert m.train_function is None
    m.fit(x, y, epochs=1, verbose=0)
    assert len(m.trainable_variables) == 4 and m.predict(x, verbose=0).shape == (16, 3)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_training_on_compiled_devices_matches_reference(device, monkeypatch):
    """The whole traced step (conv, batch norm, in-graph dropout masks, layer norm, Adam, metrics)
    compiled for a backend trains exactly like the numpy reference."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp")
    try:
        wt.get_device(device)
    except (RuntimeError, ImportError) as e:
        pytest.skip(f"{device} unavailable: {e}")

    def run(dev):
        with wt.device(dev):
            r = np.random.RandomState(0)
            x, y = r.rand(48, 8, 8, 1).astype(np.float32), r.randint(0, 10, 48).astype(np.int32)
            wt.set_seed(0)
            m = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"),
                               nn.BatchNormalization(), nn.MaxPool2D(), nn.Flatten(), nn.Dropout(0.3),
                               nn.Dense(16, activation="gelu"), nn.LayerNormalization(), nn.Dense(10)])
            m.compile("adam", nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
            return h.history, m.predict(x, verbose=0).numpy(), m.get_weights()

    ref, got = run("reference"), run(device)
    np.testing.assert_allclose(got[0]["loss"], ref[0]["loss"], rtol=1e-5)
    assert got[0]["accuracy"] == ref[0]["accuracy"]
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-4)
    for u, v in zip(got[2], ref[2]):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
