"""Whole models in .keras files (Model.save / nn.load_model): round trips of Sequential, Functional and
subclassed models, training that continues bit-identically, and the file as hostile input."""
import json
import sys
import zipfile

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.nn import saving

R = np.random.RandomState(3)
X = R.rand(24, 6).astype(np.float32)
Y = np.arange(24) % 3


def mlp():
    return nn.Sequential([nn.Input((6,)), nn.Dense(8, activation="relu", kernel_initializer="he_normal"),
                          nn.Dropout(0.25), nn.BatchNormalization(), nn.Dense(3)])


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(wa, wb))


def test_sequential_round_trip_then_training_continues_bit_identically(tmp_path):
    wt.set_seed(0)
    a = mlp()
    a.compile(wt.optimizers.Adam(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    a.fit(X, Y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    a.save(tmp_path / "m.keras")
    b = nn.load_model(tmp_path / "m.keras")
    assert type(b) is nn.Sequential and same_weights(a, b)
    assert isinstance(b.optimizer, wt.optimizers.Adam) and int(b.optimizer.iterations) == 6
    assert isinstance(b.loss, nn.losses.SparseCategoricalCrossentropy) and b.loss.from_logits
    assert b.metrics_names == ["loss", "accuracy"]
    np.testing.assert_array_equal(a.predict(X, verbose=0).numpy(), b.predict(X, verbose=0).numpy())
    # Adam's moments, the step counter and Dropout's counter and seed travel: the next updates agree
    ha = a.fit(X, Y, epochs=2, batch_size=8, verbose=0, shuffle=False).history
    hb = b.fit(X, Y, epochs=2, batch_size=8, verbose=0, shuffle=False).history
    assert ha == hb and same_weights(a, b)


def test_zip_layout_follows_keras3(tmp_path):
    wt.set_seed(0)
    a = mlp()
    a.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.safetensors"]
        config = json.loads(zf.read("config.json"))
        weights = zf.read("model.weights.safetensors")
    assert config["class_name"] == "Sequential" and config["module"] == "webtensor.nn.model"
    dense = config["config"]["layers"][1]
    assert dense["class_name"] == "Dense" and dense["config"]["units"] == 8
    assert dense["config"]["kernel_initializer"] == "he_normal" and dense["config"]["activation"] == "relu"
    assert "compile_config" not in config              # not compiled
    from safetensors.numpy import load
    stored = load(weights)
    assert set(stored) == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias",
                           "batch_normalization/gamma", "batch_normalization/beta",
                           "batch_normalization/moving_mean", "batch_normalization/moving_variance",
                           "state/dropout/counter"}
    # the weights file inside is also what load_weights reads
    c = mlp()
    c.load_weights(weights)
    assert same_weights(a, c)


def test_functional_model_with_dict_inputs_operators_and_slices(tmp_path):
    wt.set_seed(1)
    a_in, b_in = nn.Input((6,), name="a"), nn.Input((2,), name="b")
    h = nn.Dense(4, activation="tanh")(a_in)
    shared = nn.Dense(4)
    y = shared(h) + shared(nn.Dense(4)(b_in)) * 2.0
    out = nn.Softmax()(y[:, 1:])
    m = nn.Model({"a": a_in, "b": b_in}, [out, h], name="two_heads")
    m.save(tmp_path / "f.keras")
    m2 = nn.load_model(tmp_path / "f.keras")
    assert type(m2) is nn.Functional and m2.name == "two_heads" and m2.input_names == ["a", "b"]
    inputs = {"a": X[:5], "b": X[:5, :2]}
    for u, v in zip(m.predict(inputs, verbose=0), m2.predict(inputs, verbose=0)):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert same_weights(m, m2)


class Residual(nn.Model):
    """A subclassed model whose constructor arguments are its auto-config."""

    def __init__(self, units=5, **kwargs):
        super().__init__(**kwargs)
        self.inner = nn.Dense(units, activation="relu")
        self.out = nn.Dense(3)

    def call(self, x, training=False):
        return self.out(self.inner(x))


@nn.register_keras_serializable(package="tests")
class Scaled(nn.Layer):
    """A registered custom layer with explicit get_config/from_config."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "ones")

    def call(self, x):
        return x * self.w * self.factor["value"]

    def get_config(self):
        return {**super().get_config(), "factor": {"value": self.factor["value"]}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def test_subclassed_model_needs_custom_objects(tmp_path):
    wt.set_seed(2)
    m = Residual(units=7)
    m.compile("sgd", "mse")
    m.fit(X, np.eye(3, dtype=np.float32)[Y], epochs=1, verbose=0)
    m.save(tmp_path / "r.keras")
    with pytest.raises(TypeError, match="Could not locate class 'Residual'"):
        nn.load_model(tmp_path / "r.keras")
    m2 = nn.load_model(tmp_path / "r.keras", custom_objects={"Residual": Residual})
    assert type(m2) is Residual and m2.inner.units == 7 and same_weights(m, m2)
    assert m2._compile_args["loss"] == "mse" and isinstance(m2.optimizer, wt.optimizers.SGD)
    np.testing.assert_array_equal(m.predict(X, verbose=0).numpy(), m2.predict(X, verbose=0).numpy())


def test_registered_layer_loads_without_custom_objects(tmp_path):
    wt.set_seed(3)
    m = nn.Sequential([nn.Input((6,)), Scaled({"value": 3.0}), nn.Dense(2)])
    m.layers[0].w.assign(np.arange(6, dtype=np.float32))
    m.save(tmp_path / "s.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "s.keras").read("config.json"))
    assert config["config"]["layers"][1]["registered_name"] == "tests>Scaled"
    m2 = nn.load_model(tmp_path / "s.keras")
    assert type(m2.layers[0]) is Scaled and m2.layers[0].factor == {"value": 3.0}
    np.testing.assert_array_equal(m.predict(X, verbose=0).numpy(), m2.predict(X, verbose=0).numpy())


def test_compile_false_and_optimizer_config(tmp_path):
    sched = wt.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    m = mlp()
    m.compile(wt.optimizers.RMSprop(sched, rho=0.8, centered=True), "sparse_categorical_crossentropy")
    m.fit(X, Y, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    assert nn.load_model(tmp_path / "m.keras", compile=False).optimizer is None
    m2 = nn.load_model(tmp_path / "m.keras")
    opt = m2.optimizer
    assert (opt.rho, opt.centered) == (0.8, True) and isinstance(opt._learning_rate, type(sched))
    assert opt._learning_rate.get_config() == sched.get_config()
    assert int(opt.iterations) == 1 and opt.learning_rate == m.optimizer.learning_rate


def test_what_cannot_be_saved_is_a_clear_error(tmp_path):
    m = nn.Sequential([nn.Input((6,)), nn.Lambda(lambda t: t * 2)])
    with pytest.raises(TypeError, match="lambda"):
        m.save(tmp_path / "l.keras")
    with pytest.raises(ValueError, match=r"\.keras"):
        mlp().save(tmp_path / "m.h5")
    with pytest.raises(FileExistsError):
        (tmp_path / "x.keras").write_bytes(b"")
        mlp().save(tmp_path / "x.keras", overwrite=False)


# ---- the file as hostile input ---------------------------------------------------------------------

def rewrite(src, dst, edit):
    """Copy the zip ``src`` to ``dst`` with ``edit(members: dict) -> members`` applied."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in edit(members).items():
            zf.writestr(name, data)
    return dst


@pytest.fixture
def saved(tmp_path):
    wt.set_seed(0)
    m = mlp()
    m.save(tmp_path / "ok.keras")
    return tmp_path / "ok.keras"


def edit_config(fn):
    def edit(members):
        config = json.loads(members["config.json"])
        fn(config)
        return {**members, "config.json": json.dumps(config)}
    return edit


@pytest.mark.parametrize("edit,error,match", [
    (lambda m: {**m, "../evil.py": b"x"}, ValueError, "unexpected"),
    (lambda m: {**m, "assets/x.bin": b"x"}, ValueError, "assets"),
    (lambda m: {k: v for k, v in m.items() if k != "config.json"}, ValueError, "lacks 'config.json'"),
    (lambda m: {**m, "config.json": b"{not json"}, ValueError, "not valid JSON"),
    (lambda m: {**m, "config.json": b"[1, 2]"}, ValueError, "JSON object"),
    (lambda m: {**m, "config.json": b"[" * 100000 + b"]" * 100000}, ValueError, "JSON"),
    (lambda m: {**m, "model.weights.safetensors": b"\x00" * 16}, ValueError, "model.weights.safetensors: safetensors"),
    (edit_config(lambda c: c.update(module="os", class_name="system")), TypeError, "Could not locate"),
    (edit_config(lambda c: c["config"]["layers"][1].update(module="subprocess", class_name="Popen")), TypeError,
     "Could not locate"),
    (edit_config(lambda c: c["config"]["layers"][1].update(class_name="_Pool2D")), TypeError, "Could not locate"),
    (edit_config(lambda c: c["config"]["layers"][1]["config"].update(units=-3)), ValueError, "rebuilt"),
    (edit_config(lambda c: c["config"]["layers"][1]["config"].update(bogus=1)), ValueError, "rebuilt"),
    (edit_config(lambda c: c["config"]["layers"][1]["config"].update(units=9)), ValueError, "does not match"),
    (edit_config(lambda c: c["config"]["layers"].pop(2)), ValueError, "do(es)? not"),
    (edit_config(lambda c: c.update(class_name="Dense", module="webtensor.nn.layers", config={"units": 2})),
     ValueError, "not a model"),
    # sizes a config asks for are bounded before anything is allocated
    (edit_config(lambda c: c["config"]["layers"][1]["config"].update(units=10**12)), ValueError,
     "more than the weights file holds"),
    (edit_config(lambda c: c["config"]["layers"][0]["config"].update(shape=[10**6, 10**6])), ValueError,
     "more than"),
    (edit_config(lambda c: c["config"]["layers"][0]["config"].update(shape="x")), ValueError, "malformed shape"),
    (edit_config(lambda c: c["config"]["layers"].pop(0) and c.update(build_config={"input_shape": [1, -5]})),
     ValueError, "malformed shape"),
    (edit_config(lambda c: c["config"]["layers"][1]["config"].update(kernel_initializer={
        "module": "builtins", "class_name": "eval", "config": {}, "registered_name": "eval"})), TypeError,
     "Could not locate"),
])
def test_hostile_files_raise_typed_errors(saved, tmp_path, edit, error, match):
    bad = rewrite(saved, tmp_path / "bad.keras", edit)
    before = set(sys.modules)
    with pytest.raises(error, match=match):
        nn.load_model(bad)
    assert not {"subprocess", "os.system"} & (set(sys.modules) - before)


def test_not_a_zip_and_size_limits(saved, tmp_path, monkeypatch):
    (tmp_path / "plain.keras").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="not a .keras"):
        nn.load_model(tmp_path / "plain.keras")
    monkeypatch.setitem(saving.LIMITS, "config.json", 100)
    with pytest.raises(ValueError, match="limit"):
        nn.load_model(saved)


def test_a_zip_that_lies_about_sizes_is_read_only_to_the_limit(saved, tmp_path, monkeypatch):
    # a deflated member that expands far beyond what its header claims (a zip bomb's trick)
    big = b'{"class_name": "x", "config": {}, "pad": "' + b" " * (1 << 20) + b'"}'
    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", big)
        zf.writestr("model.weights.safetensors", b"")
    raw = bytearray((tmp_path / "bomb.keras").read_bytes())
    # patch the uncompressed sizes (local header and central directory) to claim 10 bytes
    import struct
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        raw[i + off:i + off + 4] = struct.pack("<I", 10)
    (tmp_path / "bomb.keras").write_bytes(bytes(raw))
    monkeypatch.setitem(saving.LIMITS, "config.json", 1000)
    with pytest.raises(ValueError, match="limit|cannot read"):
        nn.load_model(tmp_path / "bomb.keras")


def test_functional_input_shapes_are_bounded(tmp_path):
    x = nn.Input((6,), name="x")
    nn.Model(x, nn.Dense(2)(x)).save(tmp_path / "f.keras")
    bad = rewrite(tmp_path / "f.keras", tmp_path / "bad.keras",
                  edit_config(lambda c: c["config"]["inputs"][0].update(shape=[1 << 20, 1 << 20])))
    with pytest.raises(ValueError, match="more than"):
        nn.load_model(bad)
    bad = rewrite(tmp_path / "f.keras", tmp_path / "bad2.keras",
                  edit_config(lambda c: c["config"]["nodes"][0].update(layer=5)))
    with pytest.raises(ValueError, match="malformed graph"):
        nn.load_model(bad)
    bad = rewrite(tmp_path / "f.keras", tmp_path / "bad3.keras",
                  edit_config(lambda c: (c["config"]["nodes"][0].pop("layer"), c["config"]["nodes"][0].update(op="system"))))
    with pytest.raises(ValueError, match="malformed graph"):
        nn.load_model(bad)


class Wrapper(nn.Model):
    """Keras' guide pattern: a subclass whose get_config holds a nested layer's config and whose
    from_config deserializes it (here it arrives rebuilt already; deserializing again is a no-op)."""

    def __init__(self, head, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.head, self.scale = head, scale

    def call(self, x, training=False):
        return self.head(x) * self.scale

    def get_config(self):
        return {"head": nn.saving.serialize_keras_object(self.head), "scale": self.scale}

    @classmethod
    def from_config(cls, config):
        head = nn.saving.deserialize_keras_object(config.pop("head"))
        return cls(head, **config)


def test_subclassed_model_with_explicit_config_and_nested_layer(tmp_path):
    wt.set_seed(4)
    m = Wrapper(nn.Dense(2, activation="sigmoid", trainable=False), scale=3.0)
    m.build((None, 6))
    m.save(tmp_path / "w.keras")
    m2 = nn.load_model(tmp_path / "w.keras", custom_objects={"Wrapper": Wrapper})
    assert isinstance(m2.head, nn.Dense) and m2.scale == 3.0 and m2.head.trainable is False
    assert m2.trainable_variables == [] and same_weights(m, m2)
    np.testing.assert_array_equal(m.predict(X, verbose=0).numpy(), m2.predict(X, verbose=0).numpy())


def test_every_layer_round_trips_through_a_keras_file(tmp_path):
    """All of webtensor's layers, with non-default arguments, in one functional model: rebuilt from the
    file they give bit-identical outputs (so every argument that matters was kept)."""
    wt.set_seed(6)
    img = nn.Input((8, 8, 2), name="img")
    seq = nn.Input((6, 4), name="seq")
    h = nn.Conv2D(4, 3, padding="same", strides=1, dilation_rate=1, activation="relu",
                  kernel_initializer=nn.initializers.HeNormal(seed=3))(img)
    h = nn.BatchNormalization(momentum=0.9, epsilon=1e-2)(h)
    h = nn.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(h)
    h = nn.SeparableConv2D(4, (3, 2), padding="same")(h)
    h = nn.Conv2DTranspose(3, 3, strides=2, output_padding=1)(h)
    h = nn.MaxPool2D(2)(nn.ZeroPadding2D(1)(h))
    h = nn.UpSampling2D(2, interpolation="bilinear")(nn.AvgPool2D(2)(h))
    h = nn.LeakyReLU(0.3)(nn.PReLU(shared_axes=[1, 2])(nn.Rescaling(0.5, 0.1)(h)))
    a = nn.GlobalAveragePooling2D()(h)
    b = nn.GlobalMaxPooling2D()(h)
    s = nn.Conv1D(4, 3, padding="causal", activation="tanh")(seq)
    s = nn.LayerNormalization(epsilon=1e-4)(s)
    s = nn.MultiHeadAttention(2, 3, value_dim=2, output_shape=4)(s, s)
    s = nn.Attention(use_scale=True)([s, s])
    s = nn.Dropout(0.4)(nn.Flatten()(nn.Normalization(axis=-1, mean=0.5, variance=2.0)(s)))
    merged = nn.Concatenate()([nn.Add()([a, b]), nn.Multiply()([a, b]), nn.Average()([a, b]), s])
    out = nn.Dense(5, activation="softmax", use_bias=False)(nn.Reshape((2, -1))(nn.Dense(8)(merged)))
    tokens = nn.Input((3,), dtype="int32", name="tokens")
    e = nn.Flatten()(nn.Embedding(10, 2)(tokens))
    m = nn.Model({"img": img, "seq": seq, "tokens": tokens}, [nn.Softmax()(out), nn.ReLU(max_value=0.5)(e),
                                                            nn.Activation("gelu")(e)])
    m.save(tmp_path / "all.keras")
    m2 = nn.load_model(tmp_path / "all.keras")
    r = np.random.RandomState(0)
    x = {"img": r.rand(3, 8, 8, 2).astype(np.float32), "seq": r.rand(3, 6, 4).astype(np.float32),
         "tokens": r.randint(0, 10, (3, 3)).astype(np.int32)}
    for u, v in zip(m.predict(x, verbose=0), m2.predict(x, verbose=0)):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert [layer.name for layer in m2.functional_layers] == [layer.name for layer in m.functional_layers]
    assert same_weights(m, m2)
