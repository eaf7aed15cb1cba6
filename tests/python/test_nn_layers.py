"""webtensor.nn layers against numpy formulas; building, tracking, seeds, input checks."""
import math

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn


def rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# ---- Dense ---------------------------------------------------------------------------------------

def test_dense_matches_numpy_and_builds_lazily():
    d = nn.Dense(4, activation="relu")
    assert not d.built and d.variables == []
    x = rand(3, 5)
    y = d(x)
    assert d.built and y.shape == (3, 4) and y.dtype == wt.float32
    k, b = d.kernel.numpy(), d.bias.numpy()
    assert k.shape == (5, 4) and b.shape == (4,)
    np.testing.assert_allclose(y.numpy(), np.maximum(x @ k + b, 0), rtol=1e-5, atol=1e-6)
    assert [v.name for v in d.variables] == [f"{d.name}/kernel", f"{d.name}/bias"]
    assert d.trainable_variables == d.variables and d.non_trainable_variables == []


def test_dense_rank3_no_bias_and_gradient():
    d = nn.Dense(3, use_bias=False)
    x = rand(2, 4, 5)
    y = d(x)
    np.testing.assert_allclose(y.numpy(), x @ d.kernel.numpy(), rtol=1e-5, atol=1e-6)
    assert len(d.variables) == 1
    with wt.GradientTape() as tape:
        loss = wt.sum(d(x))
    (g,) = tape.gradient(loss, d.trainable_variables)
    np.testing.assert_allclose(g.numpy(), x.reshape(-1, 5).T @ np.ones((8, 3), np.float32), rtol=1e-5)


def test_built_dense_rejects_wrong_input_with_layer_name():
    d = nn.Dense(2, name="classifier")
    d(np.zeros((1, 6), np.float32))
    with pytest.raises(ValueError, match=r"classifier.*axis -1.*value 6.*\(4, 7\)"):
        d(np.zeros((4, 7), np.float32))
    with pytest.raises(ValueError, match="rank >= 2"):
        nn.Dense(2)(np.zeros((6,), np.float32))
    with pytest.raises(ValueError, match="units"):
        nn.Dense(0)


# ---- Conv2D and pooling ----------------------------------------------------------------------------

def conv_reference(x, k, stride, padding, dilation):
    """Direct loop over output positions (NHWC, HWIO, TF 'same' rule)."""
    n, h, w, c = x.shape
    kh, kw, _, o = k.shape
    sh, sw = stride
    dh, dw = dilation
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        ph = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0)
        pw = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, oh, ow, o), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh:i * sh + (kh - 1) * dh + 1:dh, j * sw:j * sw + (kw - 1) * dw + 1:dw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, k)
    return out


@pytest.mark.parametrize("kernel,strides,padding,dilation", [
    (3, 1, "valid", 1), (3, 1, "same", 1), ((2, 3), 2, "same", 1), (3, (2, 1), "valid", 1), (3, 1, "same", 2),
])
def test_conv2d_matches_loop(kernel, strides, padding, dilation):
    c = nn.Conv2D(4, kernel, strides=strides, padding=padding, dilation_rate=dilation, activation="relu")
    x = rand(2, 7, 6, 3, seed=1)
    y = c(x)
    stride = (strides, strides) if isinstance(strides, int) else strides
    ref = conv_reference(x, c.kernel.numpy(), stride, padding, (dilation, dilation)) + c.bias.numpy()
    np.testing.assert_allclose(y.numpy(), np.maximum(ref, 0), rtol=1e-4, atol=1e-5)


def test_conv2d_channels_first_and_bias():
    c = nn.Conv2D(2, 3, padding="same", data_format="channels_first", bias_initializer="ones")
    x = rand(1, 3, 5, 5, seed=2)
    y = c(x)
    assert y.shape == (1, 2, 5, 5)
    ref = conv_reference(x.transpose(0, 2, 3, 1), c.kernel.numpy(), (1, 1), "same", (1, 1)) + 1.0
    np.testing.assert_allclose(y.numpy(), ref.transpose(0, 3, 1, 2), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="channels_last"):
        nn.Conv2D(2, 3, data_format="NHWC")
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match=c.name):
        c(rand(1, 4, 5, 5))  # 4 channels, built for 3


def test_pools_match_numpy():
    x = rand(2, 6, 6, 3, seed=3)
    blocks = x.reshape(2, 3, 2, 3, 2, 3)
    np.testing.assert_allclose(nn.MaxPool2D()(x).numpy(), blocks.max(axis=(2, 4)), rtol=1e-6)
    np.testing.assert_allclose(nn.AvgPool2D(2)(x).numpy(), blocks.mean(axis=(2, 4)), rtol=1e-5, atol=1e-6)
    y = nn.MaxPool2D(pool_size=3, strides=1)(x)
    assert y.shape == (2, 4, 4, 3)
    assert float(y.numpy()[0, 1, 2, 0]) == pytest.approx(x[0, 1:4, 2:5, 0].max())
    assert nn.MaxPool2D(2, padding="same")(rand(1, 5, 5, 1)).shape == (1, 3, 3, 1)
    np.testing.assert_allclose(nn.GlobalAveragePooling2D()(x).numpy(), x.mean(axis=(1, 2)), rtol=1e-5)


def test_flatten_reshape_activation_relu_softmax():
    x = rand(2, 3, 4)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.reshape(2, 12))
    assert nn.Reshape((4, 3))(x).shape == (2, 4, 3)
    np.testing.assert_allclose(nn.Activation("tanh")(x).numpy(), np.tanh(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nn.Activation("sigmoid")(x).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(x, 0))
    ref = np.where(x >= 0.5, x, 0.1 * (x - 0.5))
    np.testing.assert_allclose(nn.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.5)(x).numpy(),
                               np.minimum(ref, 1.0), rtol=1e-6, atol=1e-7)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(nn.Softmax()(x).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(nn.activations.get("softplus")(wt.tensor(x)).numpy(), np.log1p(np.exp(x)),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.Activation("relu7")


# ---- Embedding -------------------------------------------------------------------------------------

def test_embedding_lookup_and_gradient():
    e = nn.Embedding(10, 4)
    idx = np.array([[1, 2, 1], [9, 0, 1]], np.int32)
    y = e(idx)
    table = e.embeddings.numpy()
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y.numpy(), table[idx])
    assert np.all(np.abs(table) <= 0.05)  # Keras default: uniform(-0.05, 0.05)
    with wt.GradientTape() as tape:
        loss = wt.sum(e(idx))
    (g,) = tape.gradient(loss, [e.embeddings])
    counts = np.bincount(idx.ravel(), minlength=10).astype(np.float32)
    np.testing.assert_allclose(g.numpy(), np.repeat(counts[:, None], 4, axis=1))


# ---- normalisation ------------------------------------------------------------------------------------

def test_layer_normalization_matches_formula():
    ln = nn.LayerNormalization(gamma_initializer="random_normal", beta_initializer="random_normal")
    x = rand(4, 6, seed=4) * 3 + 1
    y = ln(x)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-3) * ln.gamma.numpy() + ln.beta.numpy()
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-5)
    # several axes
    ln2 = nn.LayerNormalization(axis=(1, 2), epsilon=1e-5)
    x2 = rand(2, 3, 4, seed=5)
    mu2, var2 = x2.mean((1, 2), keepdims=True), x2.var((1, 2), keepdims=True)
    np.testing.assert_allclose(ln2(x2).numpy(), (x2 - mu2) / np.sqrt(var2 + 1e-5), rtol=1e-4, atol=1e-5)
    assert ln2.gamma.shape == (3, 4)


def test_batch_normalization_train_and_inference():
    bn = nn.BatchNormalization(momentum=0.9)
    x = rand(8, 3, seed=6) * 2 + 5
    y = bn(x, training=True)
    mu, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y.numpy(), (x - mu) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mu, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    # inference uses the moving statistics and leaves them alone
    y_inf = bn(x, training=False)
    ref = (x - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var + 1e-3)
    np.testing.assert_allclose(y_inf.numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mu, rtol=1e-5)
    assert [v.trainable for v in bn.variables] == [True, True, False, False]
    assert len(bn.trainable_variables) == 2 and len(bn.non_trainable_variables) == 2


def test_batch_normalization_updates_inside_traced_step_and_frozen():
    bn = nn.BatchNormalization(momentum=0.5)
    x = rand(4, 2, 2, 3, seed=7)
    step = wt.function(lambda t: bn(t, training=True))
    step(x)
    step(x)
    mu = x.mean((0, 1, 2))
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.75 * mu, rtol=1e-5)  # 0.5 * (0.5 * mu) + 0.5 * mu
    assert step.trace_count == 1
    bn.trainable = False  # a frozen BatchNormalization runs in inference mode, as in Keras
    before = bn.moving_mean.numpy()
    bn(x, training=True)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    assert bn.trainable_variables == []


# ---- Dropout -------------------------------------------------------------------------------------------

def test_dropout_inference_is_identity_and_training_scales():
    d = nn.Dropout(0.3, seed=1)
    x = np.ones((100, 100), np.float32)
    np.testing.assert_array_equal(d(x).numpy(), x)
    y = d(x, training=True).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    frac = 1 - kept.mean()
    assert abs(frac - 0.3) < 3 * math.sqrt(0.3 * 0.7 / x.size), frac
    assert nn.Dropout(0.0)(x, training=True).numpy().sum() == x.sum()
    assert nn.Dropout(1.0)(x, training=True).numpy().sum() == 0
    with pytest.raises(ValueError, match="rate"):
        nn.Dropout(1.5)


def test_dropout_deterministic_with_seed_and_fresh_masks():
    x = np.ones((8, 16), np.float32)
    a, b = nn.Dropout(0.5, seed=42), nn.Dropout(0.5, seed=42)
    a1, a2 = a(x, training=True).numpy(), a(x, training=True).numpy()
    np.testing.assert_array_equal(a1, b(x, training=True).numpy())     # same seed, same sequence
    assert not np.array_equal(a1, a2)                                   # each call a new mask
    assert not np.array_equal(a1, nn.Dropout(0.5, seed=43)(x, training=True).numpy())
    # traced: still a new mask on every run of the same compiled step
    c = nn.Dropout(0.5, seed=42)
    step = wt.function(lambda t: c(t, training=True))
    m1, m2 = step(x).numpy(), step(x).numpy()
    np.testing.assert_array_equal(m1, a1)
    np.testing.assert_array_equal(m2, a2)
    assert step.trace_count == 1


def test_dropout_noise_shape_broadcasts():
    d = nn.Dropout(0.5, noise_shape=(None, 1), seed=0)
    y = d(np.ones((64, 5), np.float32), training=True).numpy()
    assert all(len(set(row)) == 1 for row in y)  # whole rows kept or dropped
    assert 0 < (y[:, 0] == 0).sum() < 64


def test_in_graph_uniform_statistics():
    from webtensor.nn import _random
    u = _random.uniform((256, 256), wt.tensor(3, dtype=wt.int32), seed=9).numpy().ravel()
    assert u.min() >= 0 and u.max() <= 1
    assert abs(u.mean() - 0.5) < 0.005
    hist = np.histogram(u, bins=16, range=(0, 1))[0] / u.size
    assert np.all(np.abs(hist - 1 / 16) < 0.004), hist
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02
    v = _random.uniform((256, 256), wt.tensor(4, dtype=wt.int32), seed=9).numpy().ravel()
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.02


# ---- initializers and seeds ------------------------------------------------------------------------------

def test_initializer_distributions():
    g = nn.initializers.GlorotUniform(seed=1)((100, 200)).numpy()
    limit = math.sqrt(6 / 300)
    assert np.abs(g).max() <= limit and g.std() == pytest.approx(limit / math.sqrt(3), rel=0.05)
    h = nn.initializers.HeNormal(seed=2)((400, 100)).numpy()
    assert h.std() == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    assert np.abs(h).max() <= 2 * math.sqrt(2 / 400) / 0.87962566103423978 + 1e-6
    r = nn.initializers.RandomNormal(stddev=0.5, seed=3)((200, 50)).numpy()
    assert r.std() == pytest.approx(0.5, rel=0.05)
    assert np.all(nn.initializers.Zeros()((3, 2)).numpy() == 0)
    assert np.all(nn.initializers.Ones()((3,)).numpy() == 1)
    assert nn.initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    np.testing.assert_array_equal(nn.initializers.GlorotUniform(seed=5)((4, 4)).numpy(),
                                  nn.initializers.GlorotUniform(seed=5)((4, 4)).numpy())
    with pytest.raises(ValueError, match="unknown initializer"):
        nn.initializers.get("glorot")


def test_models_reproducible_under_set_seed_and_layers_distinct():
    def make():
        m = nn.Sequential([nn.Input((5,)), nn.Dense(5), nn.Dense(5)])
        return [v.numpy() for v in m.variables]
    wt.set_seed(11)
    a = make()
    wt.set_seed(11)
    b = make()
    wt.set_seed(12)
    c = make()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[2])  # two same-shaped layers get different kernels


# ---- tracking -------------------------------------------------------------------------------------------

class Block(nn.Layer):
    def __init__(self):
        super().__init__()
        self.inner = [nn.Dense(3), nn.Dense(3)]
        self.scale = wt.Variable(2.0, name="scale")

    def call(self, x):
        for layer in self.inner:
            x = layer(x)
        return x * self.scale


def test_nested_tracking_and_weight_paths():
    b = Block()
    b(np.ones((1, 4), np.float32))
    paths = [p for p, _ in b._weight_items()]
    assert paths == ["scale", "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert len(b.trainable_variables) == 5 and b.count_params() == 1 + 15 + 12
    b.trainable = False
    assert b.trainable_variables == [] and len(b.non_trainable_variables) == 5


def test_setattr_before_super_init_is_a_clear_error():
    class Bad(nn.Layer):
        def __init__(self):
            self.d = nn.Dense(2)
            super().__init__()
    with pytest.raises(RuntimeError, match="super"):
        Bad()


def test_list_of_variables_is_tracked():
    class Poly(nn.Layer):
        def __init__(self):
            super().__init__()
            self.coefs = [wt.Variable(1.0), wt.Variable(2.0)]

        def call(self, x):
            return self.coefs[0] + self.coefs[1] * x

    p = Poly()
    assert [k for k, _ in p._weight_items()] == ["coefs/0", "coefs/1"]
    with wt.GradientTape() as tape:
        y = wt.sum(p(np.array([1.0, 2.0], np.float32)))
    g = tape.gradient(y, p.trainable_variables)
    assert [float(t) for t in g] == [2.0, 3.0]
