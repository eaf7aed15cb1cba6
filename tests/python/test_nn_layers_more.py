"""The Keras 3 layers added for issue 14 against Keras' published equations, in float64 numpy.

Each oracle here is written from Keras' source/documentation (the einsum layout of
MultiHeadAttention's weights, keras.layers.Softmax's mask rule, tf.image.resize's half-pixel
bilinear weights, ...), independently of ``webtensor/nn``. Layers run on the "reference" device
with ``float64_reference()`` (float32 tensors computed in float64), so comparisons are tight.
Also: weight names and shapes, ``get_config`` round trips, gradients of a tiny model against
finite differences, ``fit`` lowering the loss, and an exported MultiHeadAttention + Conv1D model
loaded back on "wasm".
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core.numpy_util import float64_reference

TIGHT = dict(rtol=1e-9, atol=1e-10)


@pytest.fixture(autouse=True)
def _float64_reference():
    with wt.device("reference"), float64_reference():
        yield


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def randomize(layer, rng):
    """Random float32 values for every weight (biases nonzero, so they are tested too)."""
    layer.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in layer.get_weights()])
    return [w.astype(np.float64) for w in layer.get_weights()]


def close(got, want, **tol):
    got = got.numpy() if hasattr(got, "numpy") else got
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, **(tol or TIGHT))


def f32(rng, *shape):
    return rng.uniform(-2, 2, shape).astype(np.float32)


def np_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---- MultiHeadAttention ---------------------------------------------------------------------------

def np_mha(q_in, v_in, k_in, weights, key_dim, mask=None):
    """Keras 3 MultiHeadAttention (einsum layout): per-head projections, scaled dot products,
    keras.layers.Softmax with mask (add (1 - mask) * -1e9, then multiply by the mask), output einsum."""
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    q = np.einsum("btd,dhk->bthk", q_in, wq) + bq
    k = np.einsum("bsd,dhk->bshk", k_in, wk) + bk
    v = np.einsum("bsd,dhk->bshk", v_in, wv) + bv
    q = q / np.sqrt(key_dim)
    scores = np.einsum("bshk,bthk->bhts", k, q)
    if mask is not None:
        m = mask[:, None].astype(np.float64)
        probs = np_softmax(scores + (1.0 - m) * -1e9) * m
    else:
        probs = np_softmax(scores)
    out = np.einsum("bhts,bshv->bthv", probs, v)
    return np.einsum("bthv,hvo->bto", out, wo) + bo, probs


def test_mha_weights_follow_keras_layout(rng):
    layer = nn.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, output_shape=7)
    layer(f32(rng, 2, 6, 8), f32(rng, 2, 4, 9), f32(rng, 2, 4, 10))
    assert [(k, tuple(v.shape)) for k, v in layer._weight_items()] == [
        ("query/kernel", (8, 3, 4)), ("query/bias", (3, 4)), ("key/kernel", (10, 3, 4)), ("key/bias", (3, 4)),
        ("value/kernel", (9, 3, 5)), ("value/bias", (3, 5)), ("attention_output/kernel", (3, 5, 7)),
        ("attention_output/bias", (7,))]
    nb = nn.MultiHeadAttention(2, 3, use_bias=False)
    nb(f32(rng, 1, 2, 4), f32(rng, 1, 2, 4))
    assert [k for k, _ in nb._weight_items()] == ["query/kernel", "key/kernel", "value/kernel",
                                                   "attention_output/kernel"]


@pytest.mark.parametrize("kind", ["self", "cross", "mask", "causal", "masks_combined", "fully_masked_row"])
def test_mha_matches_keras_equations(kind, rng):
    b, t, s, d = 2, 5, (4 if kind == "cross" else 5), 6
    layer = nn.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4 if kind == "cross" else None)
    q = f32(rng, b, t, d)
    v = f32(rng, b, s, d + (1 if kind == "cross" else 0))
    k = f32(rng, b, s, d + (2 if kind == "cross" else 0)) if kind == "cross" else v
    layer(q, v, k)
    w = randomize(layer, rng)
    kwargs, mask = {}, None
    if kind == "mask" or kind == "fully_masked_row":
        mask = rng.random((b, t, s)) > 0.4
        if kind == "fully_masked_row":
            mask[0, 1] = False
        kwargs["attention_mask"] = wt.tensor(mask)
    if kind == "causal":
        kwargs["use_causal_mask"] = True
        mask = np.broadcast_to(np.tril(np.ones((t, s), bool)), (b, t, s))
    if kind == "masks_combined":       # Keras: attention_mask & query_mask & value_mask & causal
        am, qm, vm = rng.random((b, t, s)) > 0.3, rng.random((b, t)) > 0.3, rng.random((b, s)) > 0.3
        kwargs.update(attention_mask=wt.tensor(am), query_mask=wt.tensor(qm), value_mask=wt.tensor(vm),
                      use_causal_mask=True)
        mask = am & qm[:, :, None] & vm[:, None, :] & np.tril(np.ones((t, s), bool))
    y, probs = layer(q, v, None if k is v else k, return_attention_scores=True, **kwargs)
    want_y, want_p = np_mha(q.astype(np.float64), v.astype(np.float64), k.astype(np.float64), w, 3, mask)
    close(y, want_y)
    close(probs, want_p)
    if kind == "fully_masked_row":
        assert not probs.numpy()[0, :, 1].any()        # a query that may attend nothing gets zeros


def test_mha_output_shape_dropout_and_config(rng):
    layer = nn.MultiHeadAttention(2, 3, dropout=0.5, output_shape=5, seed=1)
    x = f32(rng, 2, 4, 6)
    assert layer(x, x).shape == (2, 4, 5)
    a, b = layer(x, x, training=True).numpy(), layer(x, x).numpy()
    assert not np.allclose(a, b)                      # dropout on the probabilities while training only
    np.testing.assert_array_equal(b, layer(x, x, training=False).numpy())
    cfg = layer.get_config()
    assert {k: cfg[k] for k in ("num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape")} == \
        dict(num_heads=2, key_dim=3, value_dim=3, dropout=0.5, use_bias=True, output_shape=5)
    clone = nn.MultiHeadAttention.from_config({**cfg, "name": "clone"})
    assert clone.get_config() == {**cfg, "name": "clone"}


def test_mha_errors(rng):
    with pytest.raises(ValueError, match="positive"):
        nn.MultiHeadAttention(0, 3)
    with pytest.raises(ValueError, match="attention_axes"):
        nn.MultiHeadAttention(2, 3, attention_axes=(1, 2))
    layer = nn.MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="rank 3"):
        layer(f32(rng, 2, 4), f32(rng, 2, 4))
    layer(f32(rng, 1, 4, 6), f32(rng, 1, 3, 6))
    with pytest.raises(ValueError, match="built for"):
        layer(f32(rng, 1, 4, 5), f32(rng, 1, 3, 6))


# ---- Attention (Luong) -------------------------------------------------------------------------------

def np_attention(q, v, k, mode, scale, concat_w, v_mask=None, q_mask=None, causal=False):
    """keras.layers.Attention: scores (dot: q k^T * scale; concat: w * sum(tanh(scale * (q_i + k_j)))),
    scores -= 1e9 * (1 - mask), softmax, @ v; rows of masked queries zeroed."""
    if mode == "dot":
        scores = np.einsum("btd,bsd->bts", q, k) * scale
    else:
        scores = concat_w * np.tanh(scale * (q[:, :, None, :] + k[:, None, :, :])).sum(-1)
    mask = np.ones(scores.shape, bool)
    if v_mask is not None:
        mask &= v_mask[:, None, :]
    if causal:
        mask &= np.tril(np.ones(scores.shape[1:], bool))
    probs = np_softmax(scores - 1e9 * (~mask))
    out = probs @ v
    if q_mask is not None:
        out = out * q_mask[:, :, None]
    return out, probs


@pytest.mark.parametrize("mode,use_scale,masks,causal", [
    ("dot", False, False, False), ("dot", True, True, False), ("dot", True, False, True),
    ("concat", False, False, False), ("concat", True, True, True)])
def test_attention_matches_keras_equations(mode, use_scale, masks, causal, rng):
    q, v, k = f32(rng, 2, 4, 3), f32(rng, 2, 5, 3), f32(rng, 2, 5, 3)
    layer = nn.Attention(use_scale=use_scale, score_mode=mode)
    layer([q, v, k])
    ws = [np.float32(0.7), np.float32(-1.3)][:len(layer.get_weights())]
    layer.set_weights(ws)
    assert [name for name, _ in layer._weight_items()] == \
        (["scale"] if use_scale else []) + (["concat_score_weight"] if mode == "concat" else [])
    scale = float(ws[0]) if use_scale else 1.0             # the float32 values the weights hold
    cw = float(ws[-1]) if mode == "concat" else 1.0
    qm, vm = (rng.random((2, 4)) > 0.3, rng.random((2, 5)) > 0.3) if masks else (None, None)
    mask = [wt.tensor(qm), wt.tensor(vm)] if masks else None
    y, p = layer([q, v, k], mask=mask, return_attention_scores=True, use_causal_mask=causal)
    wy, wp = np_attention(*(a.astype(np.float64) for a in (q, v, k)), mode, scale, cw, vm, qm, causal)
    close(y, wy)
    close(p, wp)
    assert layer([q, v]).shape == (2, 4, 3)        # key defaults to value


def test_attention_errors(rng):
    with pytest.raises(ValueError, match="score_mode"):
        nn.Attention(score_mode="general")
    with pytest.raises(ValueError, match="list"):
        nn.Attention()(f32(rng, 2, 3, 4))
    with pytest.raises(ValueError, match="mask"):
        nn.Attention()([f32(rng, 2, 3, 4), f32(rng, 2, 3, 4)], mask=[None])


# ---- convolutions ---------------------------------------------------------------------------------

def np_conv(x, w, stride, pads, dilation=(1, 1), groups=1):
    """Cross-correlation with explicit pads: out[n,y,x,o] = sum w[i,j,c,o] in[n, y*s+i*d, x*s+j*d, g*C/G+c]."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, cg, o = w.shape
    og = o // groups
    oh = (x.shape[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (x.shape[2] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            win = x[:, i * dilation[0]:i * dilation[0] + (oh - 1) * stride[0] + 1:stride[0],
                    j * dilation[1]:j * dilation[1] + (ow - 1) * stride[1] + 1:stride[1]]
            for g in range(groups):
                out[..., g * og:(g + 1) * og] += win[..., g * cg:(g + 1) * cg] @ w[i, j, :, g * og:(g + 1) * og]
    return out


def same(n, k, s, d=1):
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("padding,strides,dilation,groups", [
    ("valid", 1, 1, 1), ("same", 2, 1, 1), ("causal", 1, 2, 1), ("same", 1, 1, 2)])
def test_conv1d_layer(padding, strides, dilation, groups, rng):
    x = f32(rng, 2, 9, 4)
    layer = nn.Conv1D(6, 3, strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                      activation="tanh")
    y = layer(x)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (3, 4 // groups, 6) and bias.shape == (6,)
    pads = {"valid": (0, 0), "same": same(9, 3, strides, dilation), "causal": (2 * dilation, 0)}[padding]
    want = np.tanh(np_conv(x[:, None].astype(np.float64), kernel[None], (1, strides), ((0, 0), pads),
                           (1, dilation), groups)[:, 0] + bias)
    close(layer(x), want)
    if padding == "causal":   # output t depends on inputs <= t only
        x2 = x.copy()
        x2[:, 5:] += 1.0
        np.testing.assert_array_equal(layer(x2).numpy()[:, :5], layer(x).numpy()[:, :5])
    assert y.shape == want.shape
    cfg = layer.get_config()
    assert cfg["kernel_size"] == (3,) and cfg["padding"] == padding and cfg["groups"] == groups


def test_conv1d_channels_first(rng):
    x = f32(rng, 2, 4, 7)
    layer = nn.Conv1D(3, 2, data_format="channels_first")
    layer(x)
    kernel, bias = randomize(layer, rng)
    want = np_conv(x.transpose(0, 2, 1)[:, None].astype(np.float64), kernel[None], (1, 1), ((0, 0), (0, 0)))[:, 0]
    close(layer(x), (want + bias).transpose(0, 2, 1))


@pytest.mark.parametrize("padding,strides,mult", [("valid", 1, 1), ("same", 2, 2)])
def test_depthwise_and_separable(padding, strides, mult, rng):
    x = f32(rng, 2, 7, 6, 3)
    pads = ((0, 0), (0, 0)) if padding == "valid" else (same(7, 3, strides), same(6, 3, strides))
    dw = nn.DepthwiseConv2D(3, strides=strides, padding=padding, depth_multiplier=mult)
    dw(x)
    kernel, bias = randomize(dw, rng)
    assert kernel.shape == (3, 3, 3, mult) and [k for k, _ in dw._weight_items()] == ["kernel", "bias"]
    # depthwise = a grouped conv with one group per input channel, filters (3, 3, 1, C*M), channel c*M+m
    want = np_conv(x.astype(np.float64), kernel.reshape(3, 3, 1, 3 * mult), (strides,) * 2, pads, groups=3) + bias
    close(dw(x), want)

    sep = nn.SeparableConv2D(4, 3, strides=strides, padding=padding, depth_multiplier=mult, activation="relu")
    sep(x)
    dk, pk, b = randomize(sep, rng)
    assert [k for k, _ in sep._weight_items()] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert dk.shape == (3, 3, 3, mult) and pk.shape == (1, 1, 3 * mult, 4)
    mid = np_conv(x.astype(np.float64), dk.reshape(3, 3, 1, 3 * mult), (strides,) * 2, pads, groups=3)
    close(sep(x), np.maximum(np.einsum("nhwc,co->nhwo", mid, pk[0, 0]) + b, 0))


def np_conv_transpose(x, w, stride, out_hw, pad_before):
    """Scatter each input pixel times the kernel (w: (KH, KW, O, C)), cropped by the conv's pads."""
    n, h, wd, c = x.shape
    kh, kw, o, _ = w.shape
    full = np.zeros((n, (h - 1) * stride[0] + kh + out_hw[0], (wd - 1) * stride[1] + kw + out_hw[1], o))
    for y in range(h):
        for xi in range(wd):
            full[:, y * stride[0]:y * stride[0] + kh, xi * stride[1]:xi * stride[1] + kw] += \
                np.einsum("nc,ijoc->nijo", x[:, y, xi], w)
    return full[:, pad_before[0]:pad_before[0] + out_hw[0], pad_before[1]:pad_before[1] + out_hw[1]]


@pytest.mark.parametrize("padding,strides,output_padding,out_hw,pad_before", [
    ("valid", 2, None, (9, 11), (0, 0)),      # H*s + max(K - s, 0)
    ("same", 2, None, (8, 10), (0, 0)),       # H*s; total pad K - s = 1 goes at the end (TF's rule)
    ("same", 1, None, (4, 5), (1, 1)),
    ("valid", 2, 1, (10, 12), (0, 0)),        # (H - 1)*s + K + output_padding
])
def test_conv2d_transpose_layer(padding, strides, output_padding, out_hw, pad_before, rng):
    x = f32(rng, 2, 4, 5, 3)
    layer = nn.Conv2DTranspose(2, 3, strides=strides, padding=padding, output_padding=output_padding)
    layer(x)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (3, 3, 2, 3)
    want = np_conv_transpose(x.astype(np.float64), kernel, (strides, strides), out_hw, pad_before) + bias
    close(layer(x), want)


def test_conv_layers_channels_first(rng):
    x = f32(rng, 1, 3, 6, 5)
    xl = x.transpose(0, 2, 3, 1)
    for cls, args in [(nn.DepthwiseConv2D, (3,)), (nn.SeparableConv2D, (4, 3)), (nn.Conv2DTranspose, (4, 3, 2))]:
        first, last = cls(*args, data_format="channels_first"), cls(*args)
        first(x), last(xl)
        last.set_weights([w + 0.1 for w in randomize(first, rng)])
        first.set_weights(last.get_weights())
        close(first(x), last(xl).numpy().transpose(0, 3, 1, 2))


# ---- reshaping, pooling, merging, activations, preprocessing ----------------------------------------

def np_bilinear_axis(n_in, n_out):
    """tf.image.resize(bilinear, half_pixel_centers): in = (o + 0.5) * n_in / n_out - 0.5,
    lower = max(floor(in), 0), upper = min(ceil(in), n_in - 1), lerp = in - floor(in)."""
    a = np.zeros((n_out, n_in))
    for o in range(n_out):
        f = (o + 0.5) * n_in / n_out - 0.5
        lo, hi, t = max(int(np.floor(f)), 0), min(int(np.ceil(f)), n_in - 1), f - np.floor(f)
        a[o, lo] += 1 - t
        a[o, hi] += t
    return a


def test_upsampling2d(rng):
    x = f32(rng, 2, 3, 4, 2)
    close(nn.UpSampling2D((2, 3))(x), x.astype(np.float64).repeat(2, 1).repeat(3, 2))
    close(nn.UpSampling2D(2, data_format="channels_first")(x), x.astype(np.float64).repeat(2, 2).repeat(2, 3))
    want = np.einsum("oh,nhwc,pw->nopc", np_bilinear_axis(3, 6), x.astype(np.float64), np_bilinear_axis(4, 8))
    close(nn.UpSampling2D(2, interpolation="bilinear")(x), want)
    with pytest.raises(ValueError, match="interpolation"):
        nn.UpSampling2D(interpolation="bicubic")


def test_zero_padding2d(rng):
    x = f32(rng, 2, 3, 4, 2)
    close(nn.ZeroPadding2D()(x), np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64))
    close(nn.ZeroPadding2D((2, 0))(x), np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0))).astype(np.float64))
    close(nn.ZeroPadding2D(((0, 1), (2, 3)), data_format="channels_first")(x),
          np.pad(x, ((0, 0), (0, 0), (0, 1), (2, 3))).astype(np.float64))
    with pytest.raises(ValueError, match="padding"):
        nn.ZeroPadding2D(((1, -1), (0, 0)))


def test_global_max_pooling2d(rng):
    x = f32(rng, 2, 3, 4, 5)
    close(nn.GlobalMaxPooling2D()(x), x.max(axis=(1, 2)).astype(np.float64))
    close(nn.GlobalMaxPooling2D(keepdims=True)(x), x.max(axis=(1, 2), keepdims=True).astype(np.float64))
    close(nn.GlobalMaxPooling2D(data_format="channels_first")(x), x.max(axis=(2, 3)).astype(np.float64))


def test_merge_layers(rng):
    a, b, c = f32(rng, 2, 3), f32(rng, 2, 3), f32(rng, 2, 3)
    a64, b64, c64 = (t.astype(np.float64) for t in (a, b, c))
    close(nn.Add()([a, b, c]), a64 + b64 + c64)
    close(nn.Multiply()([a, b, c]), a64 * b64 * c64)
    close(nn.Average()([a, b, c]), (a64 + b64 + c64) / 3)
    close(nn.Concatenate()([a, b]), np.concatenate([a64, b64], -1))
    close(nn.Concatenate(axis=0)([a, b]), np.concatenate([a64, b64], 0))
    for cls in (nn.Add, nn.Concatenate):
        with pytest.raises(ValueError, match="list"):
            cls()(wt.tensor(a))


def test_leaky_relu_and_prelu(rng):
    x = f32(rng, 2, 3, 4)
    x64 = x.astype(np.float64)
    assert nn.LeakyReLU().negative_slope == 0.3                   # Keras 3's default
    close(nn.LeakyReLU()(x), np.where(x64 >= 0, x64, 0.3 * x64))
    close(nn.LeakyReLU(negative_slope=0.1)(x), np.where(x64 >= 0, x64, 0.1 * x64))
    with pytest.raises(ValueError, match="negative_slope"):
        nn.LeakyReLU(-1.0)
    p = nn.PReLU(shared_axes=[1])
    p(x)
    assert [(k, tuple(v.shape)) for k, v in p._weight_items()] == [("alpha", (1, 4))]
    (alpha,) = randomize(p, rng)
    close(p(x), np.maximum(x64, 0) - alpha * np.maximum(-x64, 0))      # Keras: relu(x) - alpha * relu(-x)
    q = nn.PReLU()
    q(x)
    assert q.get_weights()[0].shape == (3, 4) and not q.get_weights()[0].any()   # alpha_initializer zeros


def test_rescaling(rng):
    x = rng.integers(0, 256, (2, 3, 3)).astype(np.float32)
    close(nn.Rescaling(1 / 255)(x), x / 255.0, rtol=1e-7)      # 1/255 is rounded once in float32
    close(nn.Rescaling(2.0, offset=-1.0)(x), x * 2.0 - 1.0)
    close(nn.Rescaling([1.0, 2.0, 3.0])(x), x * np.array([1.0, 2.0, 3.0]))
    assert nn.Rescaling(0.5, 1.0).get_config()["offset"] == 1.0


def test_normalization(rng):
    data = rng.normal(3.0, 2.0, (40, 5, 3)).astype(np.float32)
    layer = nn.Normalization()
    layer.adapt([data[:13], data[13:]])          # batches combine exactly
    d64 = data.astype(np.float64)
    mean, var = d64.mean(axis=(0, 1)), d64.var(axis=(0, 1))
    close(layer.mean, mean, rtol=1e-6)            # float32 storage of the statistics
    close(layer.variance, var, rtol=1e-6)
    assert [k for k, _ in layer._weight_items()] == ["mean", "variance"] and not layer.trainable_variables
    m32, v32 = layer.mean.numpy(), layer.variance.numpy()          # the statistics as stored
    close(layer(data), (d64 - m32) / np.maximum(np.sqrt(v32), 1e-7))
    whole = nn.Normalization(axis=(-2, -1))
    whole.adapt(data)
    close(whole.mean, d64.mean(axis=0), rtol=1e-6)
    fixed = nn.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, 1.0])
    close(fixed(data), (d64 - [1, 2, 3]) / np.maximum(np.sqrt([4.0, 0.0, 1.0]), 1e-7))
    inv = nn.Normalization(mean=2.0, variance=9.0, invert=True)
    close(inv(data), 2.0 + d64 * 3.0)
    with pytest.raises(ValueError, match="adapt"):
        fixed.adapt(data)
    with pytest.raises(ValueError, match="both"):
        nn.Normalization(mean=1.0)


def test_get_config_round_trips():
    layers = [nn.Conv1D(4, 3, padding="causal"), nn.DepthwiseConv2D(3, depth_multiplier=2),
              nn.SeparableConv2D(8, (3, 2), strides=2), nn.Conv2DTranspose(4, 3, strides=2, output_padding=1),
              nn.UpSampling2D(3, interpolation="bilinear"), nn.ZeroPadding2D(2), nn.GlobalMaxPooling2D(keepdims=True),
              nn.Concatenate(axis=1), nn.Add(), nn.LeakyReLU(0.2), nn.PReLU(shared_axes=[1, 2]),
              nn.Rescaling(0.5, 0.25), nn.Normalization(axis=1, invert=True), nn.Attention(True, "concat"),
              nn.MultiHeadAttention(2, 4, value_dim=3)]
    for layer in layers:
        cfg = layer.get_config()
        assert cfg["name"] == layer.name and cfg["trainable"] is True and cfg["dtype"] == "float32"
        assert type(layer).from_config(cfg).get_config() == cfg, type(layer).__name__


# ---- gradients, training and export ---------------------------------------------------------------

def attention_model(seq=6, features=4):
    """Conv1D (causal) -> MultiHeadAttention (causal self-attention) -> Add -> LeakyReLU -> Dense."""
    x = nn.Input((seq, features))
    h = nn.Conv1D(6, 3, padding="causal")(x)
    a = nn.MultiHeadAttention(num_heads=2, key_dim=3)(h, h, use_causal_mask=True)
    h = nn.LeakyReLU()(nn.Add()([h, a]))
    return nn.Model(x, nn.Dense(2)(nn.Flatten()(h)))


def image_model():
    """Every new 2-D layer in one small network."""
    x = nn.Input((6, 6, 2))
    h = nn.Rescaling(0.5)(x)
    h = nn.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(h)
    h = nn.PReLU(alpha_initializer="ones")(h)
    s = nn.SeparableConv2D(3, 3, strides=2, padding="same")(h)                       # (3, 3, 3)
    u = nn.UpSampling2D(interpolation="bilinear")(nn.Conv2DTranspose(3, 3, strides=1, padding="same")(s))
    h = nn.Concatenate()([nn.ZeroPadding2D(((0, 0), (0, 0)))(u), nn.Multiply()([u, u])])
    h = nn.Average()([nn.GlobalMaxPooling2D()(h), nn.GlobalAveragePooling2D()(h)])
    return nn.Model(x, nn.Dense(1)(h))


@pytest.mark.parametrize("make,shape", [(attention_model, (2, 6, 4)), (image_model, (2, 6, 6, 2))])
def test_model_gradients_match_finite_differences(make, shape, rng):
    wt.set_seed(3)
    model = make()
    x = wt.tensor(f32(rng, *shape))
    u = wt.tensor(rng.normal(size=(shape[0], model(x).shape[1])))

    def loss():
        return wt.sum(model(x) * u)

    with wt.GradientTape() as tape:
        value = loss()
    variables = model.trainable_variables
    grads = tape.gradient(value, variables)
    assert len(variables) == len(grads) and all(g is not None for g in grads)
    eps = 1e-5
    for var, g in zip(variables, grads):
        base = var.numpy().astype(np.float64)
        for _ in range(2):
            d = rng.normal(size=base.shape)
            var.assign(base + eps * d)
            plus = float(loss().numpy())
            var.assign(base - eps * d)
            minus = float(loss().numpy())
            var.assign(base)
            numeric = (plus - minus) / (2 * eps)
            analytic = float(np.sum(g.numpy() * d))
            assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (var.name, analytic, numeric)


@pytest.mark.parametrize("make,shape", [(attention_model, (6, 4)), (image_model, (6, 6, 2))])
def test_fit_lowers_the_loss(make, shape):
    rng = np.random.default_rng(0)
    wt.set_seed(0)
    x = rng.normal(size=(32,) + shape).astype(np.float32)
    w = rng.normal(size=(int(np.prod(shape)), 2 if make is attention_model else 1))
    y = np.tanh(x.reshape(32, -1) @ w / 4).astype(np.float32)
    with wt.device("wasm"):
        model = make()
        model.compile(wt.optimizers.Adam(learning_rate=0.01), "mse")
        hist = model.fit(x, y, epochs=8, batch_size=8, verbose=0).history["loss"]
    assert hist[-1] < 0.7 * hist[0], hist


def test_exported_attention_model_loads_on_wasm(tmp_path):
    rng = np.random.default_rng(1)
    with wt.device("wasm"):
        wt.set_seed(5)
        model = attention_model()
        x = rng.normal(size=(4, 6, 4)).astype(np.float32)
        want = model.predict_on_batch(x).numpy()
        model.compile("sgd", "mse")
        model.export(tmp_path, batch_size=4)
        loaded = wt.load(tmp_path, backend="wasm")
        got = loaded.predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_conv2d_groups(rng):
    x = f32(rng, 2, 5, 6, 4)
    layer = nn.Conv2D(6, 3, padding="same", groups=2)
    layer(x)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (3, 3, 2, 6)
    close(layer(x), np_conv(x.astype(np.float64), kernel, (1, 1), (same(5, 3, 1), same(6, 3, 1)), groups=2) + bias)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2D(5, 3, groups=2)


def test_base_get_config_refuses_a_layer_it_cannot_rebuild():
    assert nn.Add(name="a").get_config() == {"name": "a", "trainable": True, "dtype": "float32"}
    # a class that does not override get_config gets its recorded arguments (Keras 3's auto-config) ...
    assert nn.Dense(3, name="d").get_config() == {"units": 3, "name": "d", "trainable": True, "dtype": "float32"}

    class Sizes(nn.Layer):
        def __init__(self, *sizes):
            super().__init__()
            self.sizes = sizes
    # ... unless they cannot be named (positional *args)
    with pytest.raises(NotImplementedError, match="sizes"):
        Sizes(1, 2).get_config()


def test_new_layers_in_a_sequential_model(rng):
    layers = [nn.Conv1D(4, 3, padding="causal"), nn.PReLU(alpha_initializer="ones"), nn.LeakyReLU(),
              nn.Rescaling(2.0), nn.Reshape((8, 4, 1)), nn.DepthwiseConv2D(3, padding="same"),
              nn.UpSampling2D((1, 2)), nn.ZeroPadding2D(1), nn.Conv2DTranspose(2, 3, strides=2),
              nn.GlobalMaxPooling2D(), nn.Dense(1)]
    model = nn.Sequential([nn.Input((8, 3))] + layers)
    x = f32(rng, 2, 8, 3)
    h = wt.tensor(x)
    for layer in layers:
        h = layer(h)
    close(model(x), h.numpy())
    assert model(x).shape == (2, 1)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv1D(0, 3), "filters"), (lambda: nn.Conv1D(4, (2, 2)), "kernel_size"),
    (lambda: nn.Conv1D(4, 3, padding="full"), "padding"), (lambda: nn.Conv1D(4, 3, groups=3), "groups"),
    (lambda: nn.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: nn.SeparableConv2D(2.5, 3), "filters"),
    (lambda: nn.Conv2DTranspose(2, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: nn.Conv2DTranspose(2, 3, padding="causal"), "padding"),
])
def test_layer_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
