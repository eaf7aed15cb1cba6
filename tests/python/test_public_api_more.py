"""Public code no other test reached (issue 13), each against numpy or the equation its Keras/TF
counterpart documents, and the errors the docstrings promise (tests/python/test_docstrings.py
checks that they are documented; this file checks that they are true)."""
import inspect
import math

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn, optimizers

R = np.random.RandomState(1313)
X = np.concatenate([R.randn(40).astype(np.float32) * 3,
                    np.array([0, -0, 5, -5, 1e-3, -1e-3, 9, -9, 0.5], np.float32)]).reshape(7, 7)


@pytest.fixture(params=["reference", "wasm"])
def dev(request):
    with wt.device(request.param):
        yield request.param


# ---- activations not covered by test_public_api (Keras' equations) --------------------------------

_erf = np.vectorize(math.erf)


def _np_softmax(x, axis=-1):
    e = np.exp(x.astype(np.float64) - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


ACTIVATIONS = {
    "linear": (nn.activations.linear, lambda x: x),
    "relu": (nn.activations.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (nn.activations.sigmoid, lambda x: 1 / (1 + np.exp(-x.astype(np.float64)))),
    "tanh": (nn.activations.tanh, lambda x: np.tanh(x.astype(np.float64))),
    # keras.activations.gelu: 0.5 x (1 + erf(x / sqrt 2)); approximate: the tanh form
    "gelu": (nn.activations.gelu, lambda x: 0.5 * x * (1 + _erf(x.astype(np.float64) / math.sqrt(2)))),
    "gelu_tanh": (lambda x: nn.activations.gelu(x, approximate=True),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)))),
    "softmax": (nn.activations.softmax, _np_softmax),
    "softmax_axis0": (lambda x: nn.activations.softmax(x, axis=0), lambda x: _np_softmax(x, 0)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_keras_equation(dev, name):
    fn, ref = ACTIVATIONS[name]
    # wasm's tanh and erf are Eigen's float approximations: 6 ulp, 5e-7 absolute (wasm/vmath.py)
    np.testing.assert_allclose(fn(wt.tensor(X)).numpy(), ref(X), rtol=2e-6, atol=2e-6)


def test_activation_errors():
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range"):
        nn.activations.softmax(wt.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match="log_softmax: axis must be an int"):
        nn.activations.log_softmax(wt.ones((2, 3)), axis=1.0)
    with pytest.raises(TypeError, match="gelu: approximate must be a bool"):
        nn.activations.gelu(wt.ones(2), approximate="tanh")
    with pytest.raises(TypeError, match="cannot interpret 3 as an activation"):
        nn.Activation(3)


# ---- initializers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,fans", [((), (1, 1)), ((7,), (7, 7)), ((5, 3), (5, 3)),
                                        ((3, 3, 16, 32), (144, 288)), ((2, 4, 6), (8, 12))])
def test_compute_fans_follows_keras(shape, fans):
    # keras.initializers.VarianceScaling: receptive = prod(shape[:-2]); fan_in = shape[-2] * receptive
    assert nn.initializers.compute_fans(shape) == fans


def test_variance_scaling_defaults_and_conv_fans():
    # default: scale 1, fan_in, truncated normal -> sample std sqrt(1 / fan_in), |x| <= 2 sqrt(1/fan_in)/0.8796
    a = nn.initializers.VarianceScaling()((300, 100), seed=3).numpy().astype(np.float64)
    std = math.sqrt(1 / 300)
    assert abs(a.std() - std) < 10 * std / math.sqrt(2 * a.size)
    assert np.abs(a).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)
    # a conv kernel (3, 3, 16, 32): HeUniform's limit sqrt(6 / fan_in), fan_in = 3 * 3 * 16
    k = nn.initializers.HeUniform()((3, 3, 16, 32), seed=4).numpy()
    limit = math.sqrt(6 / 144)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit


@pytest.mark.parametrize("make", [
    lambda: nn.initializers.RandomUniform(-1.0, 2.0, seed=7), lambda: nn.initializers.RandomNormal(0.5, 2.0, seed=7),
    lambda: nn.initializers.TruncatedNormal(0.0, 0.3, seed=7), lambda: nn.initializers.Constant(3.5),
    lambda: nn.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=7)])
def test_initializer_config_round_trip(make):
    init = make()
    again = type(init)(**init.get_config())
    np.testing.assert_array_equal(init((4, 5)).numpy(), again((4, 5)).numpy())
    assert repr(init) == repr(again)


def test_initializer_lookup_and_errors(dev):
    assert isinstance(nn.initializers.get("uniform"), nn.initializers.RandomUniform)
    assert isinstance(nn.initializers.get("normal"), nn.initializers.RandomNormal)
    assert isinstance(nn.initializers.get("variance_scaling"), nn.initializers.VarianceScaling)
    got = nn.initializers.Constant(7)((2, 2), dtype="int32")
    assert got.dtype == wt.int32 and got.device.name == dev
    np.testing.assert_array_equal(got.numpy(), np.full((2, 2), 7, np.int32))
    with pytest.raises(ValueError, match="mode must be 'fan_in', 'fan_out' or 'fan_avg', got 'fan'"):
        nn.initializers.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match="distribution must be .* got 'normal'"):
        nn.initializers.VarianceScaling(distribution="normal")
    with pytest.raises(TypeError, match="unsupported dtype 'nope'"):
        nn.initializers.Zeros()((2,), dtype="nope")


# ---- metrics ---------------------------------------------------------------------------------------

P = R.rand(8, 4).astype(np.float32)
L = np.array([0, 3, 1, 1, 2, 0, 3, 2], np.int32)


def test_sparse_categorical_accuracy_function(dev):
    want = (P.argmax(-1) == L).astype(np.float32)
    np.testing.assert_array_equal(nn.metrics.sparse_categorical_accuracy(wt.tensor(L), wt.tensor(P)).numpy(), want)
    # (N, 1) labels, as Keras accepts them; float labels are truncated to classes
    np.testing.assert_array_equal(
        nn.metrics.sparse_categorical_accuracy(wt.tensor(L[:, None].astype(np.float32)), wt.tensor(P)).numpy(), want)


def test_mean_metric_state(dev):
    m = nn.metrics.Mean(name="m")
    assert float(m.result()) == 0.0                                   # before any update
    assert [v.name for v in m.variables] == ["m/total", "m/count"] and not any(v.trainable for v in m.variables)
    v, w = R.randn(3, 4).astype(np.float32), R.rand(4).astype(np.float32)
    m.update_state(v, sample_weight=w)                                 # weights broadcast to (3, 4)
    m.update_state(v[:1])
    wb = np.broadcast_to(w, v.shape)
    want = ((v * wb).sum() + v[:1].sum()) / (wb.sum() + 4)
    assert float(m.result()) == pytest.approx(want, rel=1e-5)
    m.reset_state()
    assert float(m.result()) == 0.0 and float(m.count) == 0.0
    with pytest.raises(ValueError, match="broadcast"):
        m.update_state(v, sample_weight=np.ones(5, np.float32))


def test_metric_add_variable_and_call(dev):
    class Total(nn.metrics.Metric):
        def __init__(self):
            super().__init__()
            self.total = self.add_variable("total", shape=(2,), dtype=wt.int32)

        def update_state(self, values):
            self.total.assign_add(wt.cast(values, wt.int32))

        def result(self):
            return self.total

    m = Total()
    assert m.name == "total" and m.total.name == "total/total" and m.total.dtype == wt.int32
    np.testing.assert_array_equal(m([1, 2]).numpy(), [1, 2])          # __call__: update, then result
    np.testing.assert_array_equal(m([3, 4]).numpy(), [4, 6])
    m.reset_state()
    np.testing.assert_array_equal(m.result().numpy(), [0, 0])


@pytest.mark.parametrize("cls,name,ref", [
    (nn.metrics.MeanSquaredError, "mean_squared_error", lambda t, p: ((t - p) ** 2).mean(-1)),
    (nn.metrics.MeanAbsoluteError, "mean_absolute_error", lambda t, p: np.abs(t - p).mean(-1))])
def test_regression_metric_classes(dev, cls, name, ref):
    t, p = R.randn(5, 3).astype(np.float32), R.randn(5, 3).astype(np.float32)
    m = cls()
    assert m.name == name
    m.update_state(t, p)
    assert float(m.result()) == pytest.approx(ref(t, p).mean(), rel=1e-5)


def test_accuracy_by_name_picks_the_keras_rule(dev):
    m = nn.metrics.get("acc")                                    # integer labels, (N, C) scores: sparse
    m.update_state(L, P)
    assert m.name == "acc" and float(m.result()) == pytest.approx((P.argmax(-1) == L).mean())
    m = nn.metrics.get("accuracy")                               # one score per example: binary
    m.update_state(np.array([[1], [0], [1]], np.float32), np.array([[0.7], [0.6], [0.2]], np.float32))
    assert float(m.result()) == pytest.approx(1 / 3)


# ---- callbacks ---------------------------------------------------------------------------------------

def _data():
    x = R.randn(32, 4).astype(np.float32)
    return x, (x @ R.randn(4, 1)).astype(np.float32)


def test_lambda_callback_keras_arguments():
    sig = inspect.signature(nn.LambdaCallback)
    assert list(sig.parameters)[:6] == ["on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
                                        "on_train_batch_begin", "on_train_batch_end"]
    calls = []
    cb = nn.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: calls.append(("begin", epoch)),
                           on_train_batch_end=lambda batch, logs=None: calls.append(("batch", batch)),
                           on_test_end=lambda logs=None: calls.append("test_end"))
    assert "on_epoch_end" not in vars(cb)             # a hook left None stays the base class' no-op
    x, y = _data()
    m = nn.Sequential([nn.Input((4,)), nn.Dense(1)])
    m.compile("sgd", "mse")
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb], validation_split=0.25)
    # 24 training samples in batches of 16: 2 batches per epoch; validation ends each epoch
    assert calls == [("begin", 0), ("batch", 0), ("batch", 1), "test_end",
                     ("begin", 1), ("batch", 0), ("batch", 1), "test_end"]
    assert not nn.callbacks.CallbackList([nn.LambdaCallback(on_epoch_end=print)], m, {}).wants_batch_logs
    assert nn.callbacks.CallbackList([cb], m, {}).wants_batch_logs


def test_history_and_early_stopping_arguments():
    x, y = _data()
    m = nn.Sequential([nn.Input((4,)), nn.Dense(1)])
    m.compile("sgd", "mse", metrics=["mae"])
    h = m.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert isinstance(h, nn.History) and h.epoch == [0, 1, 2] and sorted(h.history) == ["loss", "mae"]
    assert len(h.history["loss"]) == 3 and h.history["loss"][2] < h.history["loss"][0]
    with pytest.raises(ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', got 'up'"):
        nn.EarlyStopping(mode="up")
    assert nn.EarlyStopping(monitor="val_accuracy").mode == "max" and nn.EarlyStopping().mode == "min"


# ---- models and layers: signatures and the errors their docstrings name ------------------------------

def test_model_signature_shows_the_functional_form_and_subclasses_keep_theirs():
    assert list(inspect.signature(nn.Model).parameters)[:2] == ["inputs", "outputs"]

    class Three(nn.Model):
        def __init__(self, a, b, c, **kwargs):
            super().__init__(**kwargs)
            self.dense = nn.Dense(a + b + c)

        def call(self, x):
            return self.dense(x)

    assert list(inspect.signature(Three).parameters) == ["a", "b", "c", "kwargs"]
    m = Three(1, 2, 3, name="three")                   # three positional arguments reach __init__
    assert m.name == "three" and m(np.ones((2, 4), np.float32)).shape == (2, 6)
    with pytest.raises(TypeError, match=r"Model\(inputs=...\): expected KerasTensors"):
        nn.Model(inputs=3, outputs=4)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        nn.Model(bogus=1)


def test_count_params_and_input_spec():
    m = nn.Sequential([nn.Input((4,)), nn.Dense(3), nn.BatchNormalization()])
    # Dense: 4 * 3 + 3; BatchNormalization: gamma, beta, moving mean and variance of 3
    assert m.count_params() == 15 + 12 == sum(w.size for w in m.get_weights())
    spec = nn.InputSpec(ndim=2, axes={-1: 4})
    assert spec.problem((5, 4)) is None
    assert spec.problem((5, 4, 1)) == "expected ndim=2, found ndim=3"
    assert spec.problem((5, 3)) == "expected axis -1 of the input shape to have value 4"
    assert nn.InputSpec(min_ndim=3).problem((2, 2)) == "expected min_ndim=3, found ndim=2"
    with pytest.raises(ValueError, match=r"'input_layer.*' \(InputLayer\) is incompatible with the layer: "
                                         r"expected axis 1 of the input shape to have value 4"):
        m(np.ones((2, 5), np.float32))


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.Dense(0), ValueError, "units must be a positive integer"),
    (lambda: nn.Dropout(1.5), ValueError, r"rate must be in \[0, 1\]"),
    (lambda: nn.ReLU(max_value=-1), ValueError, "max_value must be >= 0"),
    (lambda: nn.Lambda(3), TypeError, "function must be callable"),
    (lambda: nn.Layer(foo=1), TypeError, r"unexpected keyword arguments \['foo'\]"),
    (lambda: nn.Flatten(bogus=1), TypeError, "unexpected keyword arguments"),
    (lambda: nn.Conv2D(2, 3, padding="full"), ValueError, "padding must be 'valid' or 'same'"),
    (lambda: nn.MaxPool2D(data_format="nhwc"), ValueError, "data_format must be 'channels_last'"),
    (lambda: nn.GlobalAveragePooling2D(data_format="x"), ValueError, "data_format must be"),
    (lambda: nn.Sequential([3]), TypeError, "expected a Layer, got int"),
    (lambda: nn.Sequential([nn.Dense(2), nn.Input((3,))]), ValueError, "can only be the first layer"),
    (lambda: nn.losses.Loss(reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: optimizers.SGD(momentum=2), ValueError, "momentum"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, "weight_decay"),
    (lambda: optimizers.SGD(None), TypeError, "float"),
    (lambda: optimizers.Adam("fast"), ValueError, "could not convert"),
])
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_call_time_errors():
    with pytest.raises(ValueError, match="input needs a batch dimension"):
        nn.Flatten()(wt.tensor(1.0))
    with pytest.raises(ValueError, match="pool_size must be positive"):
        nn.MaxPool2D(pool_size=0)(np.ones((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="input must have rank >= 2"):
        nn.Dense(2)(np.ones(3, np.float32))


# ---- creation and conversion errors ------------------------------------------------------------------

def test_creation_errors(dev):
    with pytest.raises(ValueError, match="non-negative"):
        wt.zeros((2, -1))
    with pytest.raises(ValueError, match="non-negative"):
        wt.full((-1,), 1.0)
    with pytest.raises(ZeroDivisionError):
        wt.arange(0, 5, 0)
    with pytest.raises(TypeError):
        wt.eye(2.5)
    with pytest.raises(TypeError, match="unsupported dtype 'nope'"):
        wt.zeros_like(wt.ones(2), dtype="nope")
    with pytest.raises(ValueError, match="ragged"):
        wt.convert_to_tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="unsupported dtype 'float128'"):
        wt.convert_to_tensor([1.0], dtype="float128")
    np.testing.assert_array_equal(wt.full((2, 3), 4).numpy(), np.full((2, 3), 4, np.int32))    # dtype from the value
    np.testing.assert_array_equal(wt.linspace(0, 10, 6, dtype=wt.int32).numpy(), np.linspace(0, 10, 6).astype(np.int32))


# ---- schedules ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,ref", [
    (lambda: optimizers.schedules.ExponentialDecay(0.1, 10, 0.5), lambda s: 0.1 * 0.5 ** (s / 10)),
    (lambda: optimizers.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 * 0.5 ** (s // 10)),
    (lambda: optimizers.schedules.InverseTimeDecay(0.1, 10, 2.0), lambda s: 0.1 / (1 + 2.0 * s / 10)),
    (lambda: optimizers.schedules.PiecewiseConstantDecay([5, 15], [1.0, 0.5, 0.1]),
     lambda s: 1.0 if s <= 5 else 0.5 if s <= 15 else 0.1),
    (lambda: optimizers.schedules.CosineDecay(0.1, 20, alpha=0.1),
     lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 20) / 20)) + 0.1))])
def test_schedule_config_round_trip_and_keras_formula(make, ref):
    s = make()
    again = type(s).from_config(s.get_config())
    for step in (0, 3, 5, 10, 16, 40):
        assert float(s(step)) == pytest.approx(ref(step), rel=2e-6)
        assert float(again(step)) == float(s(step))
    with pytest.raises(ValueError, match="step must be a scalar"):
        s(wt.ones(2))
