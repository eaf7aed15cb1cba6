"""The public surface (issue 13): the namespace (``__all__``, ``dir``), the one registry behind every
``get``, and the public functions no other test reached, each against numpy or the equation its
Keras/TF counterpart documents, on the reference device and on wasm."""
import math
import types

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn, optimizers

DEVICES = ["reference", "wasm"]
R = np.random.RandomState(13)
X = np.concatenate([R.randn(40).astype(np.float32) * 4,
                    np.array([0, -0, 6, 6.5, -6, 1e-3, -1e-3, 30, -30], np.float32)]).reshape(7, 7)


@pytest.fixture(params=DEVICES)
def dev(request):
    with wt.device(request.param):
        yield request.param


# ---- namespace -------------------------------------------------------------------------------------

INTERNAL = {"annotations", "creation", "hostdata", "tape", "tree", "artifact", "OPS", "extract_patches_grad",
            "core", "schema", "progress", "safetensors_io", "schedules"}


def test_dir_lists_only_the_public_api():
    names = set(dir(wt))
    assert not names & INTERNAL
    assert not {n for n in names if n.startswith("_") and not n.startswith("__")}
    assert set(wt.__all__) <= names


@pytest.mark.parametrize("mod", [wt, nn, nn.losses, nn.metrics, nn.initializers, nn.activations, nn.callbacks],
                         ids=lambda m: m.__name__)
def test_every_exported_name_exists(mod):
    assert len(set(mod.__all__)) == len(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), name
    assert not {"annotations", "F", "Registry", "exports"} & set(dir(mod))
    if mod is not wt:
        assert "Tensor" not in dir(mod)


@pytest.mark.parametrize("mod", [wt, nn], ids=lambda m: m.__name__)
def test_every_exported_name_has_a_docstring(mod):
    for name in mod.__all__:
        v = getattr(mod, name)
        doc = (getattr(v, "__doc__", None) or "").strip()
        assert doc, f"{mod.__name__}.{name} has no docstring"


def test_internal_modules_stay_importable():
    import webtensor.artifact
    import webtensor.hostdata
    from webtensor import tape, tree  # noqa: F401
    assert callable(webtensor.artifact.load) and callable(wt.extract_patches_grad)


def test_names_used_in_the_readme_are_public():
    import pathlib
    import re
    text = pathlib.Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    used = set(re.findall(r"\b(?:wt|webtensor)\.([A-Za-z_]\w*)", text))
    # the layout table names the subpackages; isSoftwareAdapter is the JS API
    assert used - set(wt.__all__) <= {"__version__", "core", "wasm", "webgpu", "isSoftwareAdapter"}, \
        used - set(wt.__all__)


# ---- the registry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("get,kind,known", [
    (nn.losses.get, "loss", "'mse'"), (nn.metrics.get, "metric", "'accuracy'"),
    (nn.initializers.get, "initializer", "'glorot_uniform'"), (nn.activations.get, "activation", "'relu'"),
    (optimizers.get, "optimizer", "'adam'")])
def test_unknown_names_list_the_known_ones(get, kind, known):
    with pytest.raises(ValueError, match=rf"unknown {kind} 'nope'; known: \[.*{known}.*\]"):
        get("nope")
    with pytest.raises(TypeError, match=rf"cannot interpret 3 as an? {kind}: expected a name"):
        get(3)


def test_registry_semantics():
    assert isinstance(nn.losses.get("MeanSquaredError"), nn.losses.MeanSquaredError)   # class name
    assert isinstance(nn.losses.get(nn.losses.MeanSquaredError), nn.losses.MeanSquaredError)
    loss = nn.losses.MeanAbsoluteError()
    assert nn.losses.get(loss) is loss
    assert isinstance(nn.initializers.get("HeUniform"), nn.initializers.HeUniform)
    assert isinstance(nn.initializers.get(nn.initializers.HeUniform), nn.initializers.HeUniform)  # Keras: a class is instantiated
    assert nn.metrics.get("mae").name == "mae" and nn.metrics.get("acc").name == "acc"
    fn = lambda t, p: p  # noqa: E731
    assert nn.metrics.get(fn)._fn is fn and nn.initializers.get(fn) is fn and nn.activations.get(fn) is fn
    assert nn.activations.get(None) is nn.activations.linear and nn.activations.get("swish") is nn.activations.silu
    assert isinstance(optimizers.get("Adam"), optimizers.Adam) and isinstance(optimizers.get(optimizers.SGD), optimizers.SGD)
    with pytest.raises(TypeError, match="optimizer"):
        optimizers.get(fn)


# ---- creation and TF-named aliases -----------------------------------------------------------------

def test_zeros_like_ones_like(dev):
    for dtype in (wt.float32, wt.int32, wt.bool):
        x = wt.tensor(np.arange(6).reshape(2, 3) % 2, dtype=dtype)
        for fn, want in ((wt.zeros_like, np.zeros_like), (wt.ones_like, np.ones_like)):
            y = fn(x)
            assert y.dtype == dtype and y.device.name == dev and y.shape == (2, 3)
            np.testing.assert_array_equal(y.numpy(), want(x.numpy()))
    y = wt.ones_like(wt.zeros((4,)), dtype=wt.int32)
    assert y.dtype == wt.int32
    np.testing.assert_array_equal(y.numpy(), np.ones(4, np.int32))


@pytest.mark.parametrize("args", [(0.0, 1.0, 5, True), (0.0, 1.0, 5, False), (-3.0, 7.5, 50, True), (2.0, 2.0, 1, True),
                                  (1.0, -1.0, 4, True), (0.0, 1.0, 0, True)])
def test_linspace_matches_numpy(dev, args):
    start, stop, num, endpoint = args
    got = wt.linspace(start, stop, num, endpoint=endpoint)
    assert got.shape == (num,) and got.dtype == wt.float32
    np.testing.assert_allclose(got.numpy(), np.linspace(start, stop, num, endpoint=endpoint, dtype=np.float32),
                               rtol=1e-6, atol=1e-6)


def test_negative_sizes_are_value_errors(dev):
    # numpy: "Number of samples, -1, must be non-negative"; the device's host-data error before the fix
    with pytest.raises(ValueError, match="linspace: num must be non-negative, got -1"):
        wt.linspace(0, 1, -1)
    with pytest.raises(ValueError, match="eye: n must be non-negative, got -1"):
        wt.eye(-1)
    with pytest.raises(ValueError, match="eye: m must be non-negative, got -3"):
        wt.eye(2, -3)
    with pytest.raises(TypeError):
        wt.linspace(0, 1, 2.5)


@pytest.mark.parametrize("n,m", [(1, None), (3, None), (2, 5), (4, 2), (0, 3)])
def test_eye_matches_numpy(dev, n, m):
    np.testing.assert_array_equal(wt.eye(n, m).numpy(), np.eye(n, m, dtype=np.float32))
    np.testing.assert_array_equal(wt.eye(n, m, dtype=wt.int32).numpy(), np.eye(n, m, dtype=np.int32))


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 1), False), (-1, False)])
def test_reduce_max_min_match_numpy(dev, axis, keepdims):
    for fn, ref in ((wt.reduce_max, np.max), (wt.reduce_min, np.min)):
        got = fn(wt.tensor(X), axis=axis, keepdims=keepdims)
        np.testing.assert_array_equal(got.numpy(), ref(X, axis=axis, keepdims=keepdims))
    for fn, name in ((wt.reduce_max, "reduce_max"), (wt.reduce_min, "reduce_min")):   # errors use the TF name
        with pytest.raises(ValueError, match=f"{name}: cannot reduce an empty axis"):
            fn(wt.zeros((2, 0)), axis=1)


def test_convert_to_tensor(dev):
    t = wt.tensor([1.0, 2.0])
    assert wt.convert_to_tensor(t) is t                       # as tf.convert_to_tensor
    assert wt.convert_to_tensor(t, dtype=wt.float32) is t
    got = wt.convert_to_tensor([[1, 2], [3, 4]])
    assert got.dtype == wt.int32 and got.device.name == dev
    np.testing.assert_array_equal(got.numpy(), [[1, 2], [3, 4]])
    got = wt.convert_to_tensor(np.float32(2.5), dtype=wt.float32)
    assert got.shape == () and float(got) == 2.5
    np.testing.assert_array_equal(wt.convert_to_tensor([1.7, -1.7], dtype=wt.int32).numpy(), [1, -1])


# ---- activations (Keras' documented equations) ------------------------------------------------------

def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _np_log_softmax(x, axis=-1):
    x = x.astype(np.float64)
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


ACTIVATIONS = {
    # keras.activations.relu6: min(max(x, 0), 6)
    "relu6": (lambda x: nn.activations.relu6(x), lambda x: np.minimum(np.maximum(x, 0), 6)),
    # keras.activations.leaky_relu: x if x >= 0 else negative_slope * x, negative_slope=0.2 by default
    "leaky_relu": (lambda x: nn.activations.leaky_relu(x), lambda x: np.where(x >= 0, x, 0.2 * x)),
    "leaky_relu_0.01": (lambda x: nn.activations.leaky_relu(x, 0.01), lambda x: np.where(x >= 0, x, 0.01 * x)),
    # keras.activations.elu: x if x > 0 else alpha * (exp(x) - 1)
    "elu": (lambda x: nn.activations.elu(x), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "elu_0.5": (lambda x: nn.activations.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    # keras.activations.silu: x * sigmoid(x)
    "silu": (lambda x: nn.activations.silu(x), lambda x: x * _np_sigmoid(x)),
    # keras.activations.log_softmax: x - log(sum(exp(x))) over axis
    "log_softmax": (lambda x: nn.activations.log_softmax(x), lambda x: _np_log_softmax(x)),
    "log_softmax_axis0": (lambda x: nn.activations.log_softmax(x, axis=0), lambda x: _np_log_softmax(x, 0)),
    "softplus": (lambda x: nn.activations.softplus(x), lambda x: np.logaddexp(0, x.astype(np.float64))),
    # keras.activations.selu: scale * elu(x, alpha), alpha = 1.67326324, scale = 1.05070098
    "selu": (lambda x: nn.activations.selu(x),
             lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))),
    # keras.activations.softsign: x / (abs(x) + 1)
    "softsign": (lambda x: nn.activations.softsign(x), lambda x: x / (np.abs(x) + 1)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_keras_equation(dev, name):
    fn, ref = ACTIVATIONS[name]
    np.testing.assert_allclose(fn(wt.tensor(X)).numpy(), ref(X), rtol=2e-6, atol=2e-6)
    traced = wt.function(fn)(wt.tensor(X)).numpy()
    np.testing.assert_allclose(traced, ref(X), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", ["relu6", "leaky_relu", "elu", "selu", "softsign", "silu", "log_softmax"])
def test_activation_by_name_and_in_a_layer(dev, name):
    fn, ref = ACTIVATIONS[name]
    assert nn.activations.get(name) is getattr(nn.activations, name)
    np.testing.assert_allclose(nn.Activation(name)(wt.tensor(X)).numpy(), ref(X), rtol=2e-6, atol=2e-6)


# ---- initializers ----------------------------------------------------------------------------------

SHAPE = (200, 150)          # fan_in 200, fan_out 150; n = 30000 samples
N = math.prod(SHAPE)
FAN_IN, FAN_OUT = SHAPE
TRUNC = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def _check_stats(a, mean, std, lo=None, hi=None):
    """Sample mean within 5 standard errors (std / sqrt(n)); sample std within 5 of its standard
    errors (about std / sqrt(2n) for these near-normal/uniform shapes; 2x margin for uniform)."""
    a = a.astype(np.float64).ravel()
    assert abs(a.mean() - mean) < 5 * std / math.sqrt(a.size), (a.mean(), mean)
    assert abs(a.std() - std) < 10 * std / math.sqrt(2 * a.size), (a.std(), std)
    if lo is not None:
        assert a.min() >= lo and a.max() <= hi, (a.min(), a.max(), lo, hi)
        # the samples reach close to the limits (95% of the way for n = 30000)
        assert a.min() < lo + 0.05 * (hi - lo) and a.max() > hi - 0.05 * (hi - lo)


# (initializer, mean, std, limits): Keras' documented distributions
INITS = {
    "RandomUniform": (lambda: nn.initializers.RandomUniform(-0.3, 0.5), 0.1, 0.8 / math.sqrt(12), (-0.3, 0.5)),
    "RandomNormal": (lambda: nn.initializers.RandomNormal(1.0, 0.2), 1.0, 0.2, None),
    # truncated at two standard deviations: std = stddev * 0.8796, |x - mean| <= 2 stddev
    "TruncatedNormal": (lambda: nn.initializers.TruncatedNormal(0.5, 0.1), 0.5, 0.1 * TRUNC, (0.3, 0.7)),
    # GlorotUniform: limit = sqrt(6 / (fan_in + fan_out))
    "GlorotUniform": (nn.initializers.GlorotUniform, 0.0, math.sqrt(6 / (FAN_IN + FAN_OUT)) / math.sqrt(3),
                      (-math.sqrt(6 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    # GlorotNormal: truncated normal, stddev = sqrt(2 / (fan_in + fan_out)) (the variance after truncation)
    "GlorotNormal": (nn.initializers.GlorotNormal, 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)),
                     (-2 * math.sqrt(2 / (FAN_IN + FAN_OUT)) / TRUNC, 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)) / TRUNC)),
    "HeNormal": (nn.initializers.HeNormal, 0.0, math.sqrt(2 / FAN_IN),
                 (-2 * math.sqrt(2 / FAN_IN) / TRUNC, 2 * math.sqrt(2 / FAN_IN) / TRUNC)),
    # HeUniform: limit = sqrt(6 / fan_in)
    "HeUniform": (nn.initializers.HeUniform, 0.0, math.sqrt(2 / FAN_IN), (-math.sqrt(6 / FAN_IN), math.sqrt(6 / FAN_IN))),
    # LecunNormal: truncated normal, stddev = sqrt(1 / fan_in)
    "LecunNormal": (nn.initializers.LecunNormal, 0.0, math.sqrt(1 / FAN_IN),
                    (-2 * math.sqrt(1 / FAN_IN) / TRUNC, 2 * math.sqrt(1 / FAN_IN) / TRUNC)),
    "VarianceScaling_fan_out_untruncated": (
        lambda: nn.initializers.VarianceScaling(3.0, "fan_out", "untruncated_normal"), 0.0, math.sqrt(3 / FAN_OUT), None),
    "VarianceScaling_fan_avg_uniform": (
        lambda: nn.initializers.VarianceScaling(0.5, "fan_avg", "uniform"), 0.0, math.sqrt(0.5 / 175),
        (-math.sqrt(1.5 / 175), math.sqrt(1.5 / 175))),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_initializer_statistics(name):
    make, mean, std, limits = INITS[name]
    a = make()(SHAPE, seed=1).numpy()
    assert a.shape == SHAPE and a.dtype == np.float32
    _check_stats(a, mean, std, *(limits or (None, None)))


@pytest.mark.parametrize("name", sorted(INITS))
def test_initializer_seeds_are_deterministic_and_device_independent(name):
    make = INITS[name][0]
    with wt.device("reference"):
        a = make()((8, 6), seed=5).numpy()
    with wt.device("wasm"):
        b = make()((8, 6), seed=5).numpy()
        c = make()((8, 6), seed=6).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    init = make()
    init.seed = 11                                  # the initializer's own seed wins over the argument
    np.testing.assert_array_equal(init((8, 6), seed=1).numpy(), init((8, 6), seed=2).numpy())


def test_constant_zeros_ones(dev):
    for init, want in ((nn.initializers.Constant(2.5), 2.5), (nn.initializers.Zeros(), 0), (nn.initializers.Ones(), 1)):
        got = init((3, 2))
        assert got.dtype == wt.float32 and got.device.name == dev
        np.testing.assert_array_equal(got.numpy(), np.full((3, 2), want, np.float32))
    np.testing.assert_array_equal(nn.initializers.get("constant")((2,), dtype=wt.int32).numpy(), [0, 0])


# ---- metrics (numpy formulas) ----------------------------------------------------------------------

YT = R.randn(6, 3).astype(np.float32)
YP = R.randn(6, 3).astype(np.float32)


@pytest.mark.parametrize("name,ref", [
    ("mean_squared_error", lambda t, p: ((t - p) ** 2).mean(-1)),
    ("mse", lambda t, p: ((t - p) ** 2).mean(-1)),
    ("mean_absolute_error", lambda t, p: np.abs(t - p).mean(-1)),
    ("mae", lambda t, p: np.abs(t - p).mean(-1))])
def test_regression_metrics_running_mean(dev, name, ref):
    m = nn.metrics.get(name)
    assert m.name == name
    m.update_state(YT[:4], YP[:4])
    m.update_state(YT[4:], YP[4:])
    assert float(m.result()) == pytest.approx(ref(YT, YP).mean(), rel=1e-5)
    w = np.array([1, 0, 2, 1, 0, 3], np.float32)
    m.reset_state()
    m.update_state(YT, YP, sample_weight=w)
    assert float(m.result()) == pytest.approx((ref(YT, YP) * w).sum() / w.sum(), rel=1e-5)


def test_binary_and_categorical_accuracy_functions(dev):
    t = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    p = np.array([[0.9, 0.6, 0.2], [0.1, 0.4, 0.51]], np.float32)
    np.testing.assert_array_equal(nn.metrics.binary_accuracy(wt.tensor(t), wt.tensor(p)).numpy(),
                                  ((p > 0.5) == (t > 0.5)).astype(np.float32))
    np.testing.assert_array_equal(nn.metrics.binary_accuracy(wt.tensor(t), wt.tensor(p), threshold=0.15).numpy(),
                                  ((p > 0.15) == (t > 0.5)).astype(np.float32))
    np.testing.assert_array_equal(nn.metrics.categorical_accuracy(wt.tensor(YT), wt.tensor(YP)).numpy(),
                                  (YT.argmax(-1) == YP.argmax(-1)).astype(np.float32))
    np.testing.assert_array_equal(nn.metrics.accuracy(wt.tensor([1, 2, 3]), wt.tensor([1.0, 2.0, 4.0])).numpy(),
                                  [1, 1, 0])
    m = nn.metrics.BinaryAccuracy(threshold=0.55)
    m.update_state(t, p)
    assert float(m.result()) == pytest.approx(((p > 0.55) == (t > 0.5)).mean())


def test_mean_metric_wrapper_with_options(dev):
    m = nn.metrics.MeanMetricWrapper(lambda t, p, k: wt.abs(t - p) * k, name="scaled", k=3.0)
    m.update_state(YT, YP)
    assert m.name == "scaled" and float(m.result()) == pytest.approx(3 * np.abs(YT - YP).mean(), rel=1e-5)


# ---- callbacks and Sequential.pop -------------------------------------------------------------------

def _data():
    x = R.randn(32, 4).astype(np.float32)
    return x, (x @ R.randn(4, 1)).astype(np.float32)


def test_lambda_callback_calls_its_hooks():
    calls = []
    cb = nn.LambdaCallback(on_train_begin=lambda logs=None: calls.append("train_begin"),
                           on_epoch_end=lambda epoch, logs=None: calls.append(("epoch", epoch, sorted(logs))),
                           on_train_end=lambda logs=None: calls.append("train_end"))
    x, y = _data()
    m = nn.Sequential([nn.Input((4,)), nn.Dense(1)])
    m.compile("sgd", "mse", metrics=["mae"])
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    assert calls[0] == "train_begin" and calls[-1] == "train_end"
    assert [c[1] for c in calls[1:-1]] == [0, 1]
    assert all("loss" in c[2] and "mae" in c[2] for c in calls[1:-1])
    with pytest.raises(ValueError, match="unknown hook 'on_nothing'"):
        nn.LambdaCallback(on_nothing=lambda: None)
    with pytest.raises(ValueError, match="unknown hook 'model'"):
        nn.LambdaCallback(model=lambda: None)


def test_sequential_pop():
    m = nn.Sequential([nn.Input((4,)), nn.Dense(3, name="a"), nn.Dense(2, name="b")])
    x = R.randn(5, 4).astype(np.float32)
    assert m(x).shape == (5, 2)
    last = m.pop()
    assert last.name == "b" and [layer.name for layer in m.layers] == ["a"]
    a = m.layers[0]
    np.testing.assert_allclose(m(x).numpy(), x @ a.kernel.numpy() + a.bias.numpy(), rtol=1e-5, atol=1e-6)
    m.compile("sgd", "mse")
    m.fit(x, np.zeros((5, 3), np.float32), epochs=1, verbose=0)     # the model still trains after a pop
    m.pop()
    with pytest.raises(ValueError, match="no layers"):
        m.pop()


# ---- LoadedModel.set_weights -------------------------------------------------------------------------

def test_loaded_model_set_weights(tmp_path):
    with wt.device("reference"):
        v = wt.Variable(np.ones((2, 3), np.float32), name="w")
        b = wt.Variable(np.zeros(3, np.float32), name="b")

        def f(x):
            return wt.matmul(x, v) + b
        wt.export(None, path=tmp_path, signatures={"f": (f, (np.ones((1, 2), np.float32),))})
    m = wt.load(tmp_path, backend="wasm")
    names = sorted(m.get_weights())
    assert names == ["state/b", "state/w"]
    w_new = R.randn(2, 3).astype(np.float32)
    b_new = R.randn(3).astype(np.float32)
    x = R.randn(1, 2).astype(np.float32)
    m.set_weights({"state/w": w_new})                         # a subset: the rest keep their values
    np.testing.assert_allclose(m.run("f", x)["output_0"], x @ w_new, rtol=1e-5, atol=1e-6)
    m.set_weights({"state/b": b_new.tolist(), "state/w": w_new * 2})
    np.testing.assert_allclose(m.run("f", x)["output_0"], x @ (w_new * 2) + b_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(m.get_weights()["state/b"], b_new)
    # all or nothing: a bad entry leaves every variable as it was
    with pytest.raises(ValueError, match="state/w"):
        m.set_weights({"state/b": np.zeros(3, np.float32), "state/w": np.zeros((3, 2), np.float32)})
    np.testing.assert_array_equal(m.get_weights()["state/b"], b_new)
    with pytest.raises(ValueError, match="no variable 'w'"):
        m.set_weights({"w": w_new})
