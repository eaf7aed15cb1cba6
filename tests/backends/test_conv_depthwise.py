"""The direct depthwise convolution (``depthwise_conv2d_native``, core/ops/nn.py: one reduction of
KH*KW taps per output, lowered by the generic reductions) on each device: bitwise equal to the
grouped im2col form (``extract_patches`` + one batched matmul over the C groups) where both sum in
order without fused multiply-adds, near a float64 numpy loop; bias and activation ride in it as
an epilogue; its gradients are the grouped form's; ``conv2d`` with ``groups == C``,
``depthwise_conv2d`` and Keras' ``DepthwiseConv2D`` use it."""
import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core import compile as C
from webtensor.core.compile import compile_graph
from webtensor.core.ops import nn as N
from webtensor.wasm.lower import kernel_module
from webtensor.wasm.runtime import WasmDevice
from webtensor.webgpu.depthwise import lower_depthwise
from webtensor.webgpu.limits import Limits
from webtensor.webgpu.reduce import SERIAL_MIN_ROWS

R = np.random.default_rng(26)

# The wasm device fuses a matmul's multiply-adds where the engine has relaxed SIMD (the grouped
# form's batched matmul); the generic reduction does not, so bitwise equality holds without them.
wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))

# (x NHWC, filters (KH, KW, C, M), strides, dilations, pads): multiplier 1 (C a multiple of 4 and
# not), multipliers 2, 3 and 4, strides, dilations, asymmetric pads, a 1x1 window, a window the size
# of the image, a MobileNet-like layer, pixels not a multiple of WebGPU's 4 per invocation, a window
# of 64 taps (looped in WGSL, not unrolled)
CASES = [((2, 7, 6, 8), (3, 3, 8, 1), (1, 1), (1, 1), ((1, 1), (1, 1))),
         ((2, 9, 8, 5), (3, 3, 5, 1), (2, 2), (1, 1), ((1, 1), (1, 1))),
         ((1, 9, 8, 4), (3, 3, 4, 2), (1, 1), (2, 2), ((2, 2), (2, 2))),
         ((2, 6, 11, 3), (5, 3, 3, 3), (1, 2), (1, 1), ((1, 2), (0, 3))),
         ((3, 5, 5, 6), (1, 1, 6, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
         ((1, 4, 4, 2), (4, 4, 2, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
         ((2, 14, 14, 32), (3, 3, 32, 1), (2, 2), (1, 1), ((0, 1), (0, 1))),
         ((2, 6, 6, 3), (3, 3, 3, 4), (1, 1), (1, 1), ((1, 1), (1, 1))),
         ((1, 5, 5, 8), (3, 3, 8, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
         ((4, 10, 10, 4), (8, 8, 4, 1), (1, 1), (1, 1), ((0, 1), (1, 0)))]


def _grouped(st, dl, pads):
    """The grouped im2col form (conv2d's path for groups > 1): C groups of one input channel."""
    def f(x, w):
        kh, kw, c, m = w.shape
        p = N.extract_patches(x, ksize=(kh, kw), strides=st, dilations=dl, pads=pads, pad_value=0.0)
        n, oh, ow = p.shape[:3]
        rows = n * oh * ow
        pg = wt.transpose(wt.reshape(p, (rows, kh * kw, c)), (2, 0, 1))
        fg = wt.transpose(wt.reshape(w, (kh * kw, c, m)), (1, 0, 2))
        return wt.reshape(wt.transpose(wt.matmul(pg, fg), (1, 0, 2)), (n, oh, ow, c * m))
    return f


def _direct(st, dl, pads):
    return lambda x, w: N.depthwise_conv2d_native(x, w, strides=st, dilations=dl, pads=pads)


def _np_depthwise(x, w, st, dl, pads):
    x = np.pad(x.astype(np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, c, m = w.shape
    oh = (x.shape[1] - (kh - 1) * dl[0] - 1) // st[0] + 1
    ow = (x.shape[2] - (kw - 1) * dl[1] - 1) // st[1] + 1
    y = np.zeros((x.shape[0], oh, ow, c, m))
    for a in range(kh):
        for b in range(kw):
            win = x[:, a * dl[0]:a * dl[0] + (oh - 1) * st[0] + 1:st[0], b * dl[1]:b * dl[1] + (ow - 1) * st[1] + 1:st[1]]
            y += win[..., None] * w[a, b].astype(np.float64)
    return y.reshape(y.shape[:3] + (c * m,))


@pytest.mark.parametrize("device", ["reference", "wasm_exact", "wasm", "webgpu"])
@pytest.mark.parametrize("xs,fs,st,dl,pads", CASES, ids=[str(i) for i in range(len(CASES))])
def test_direct_equals_grouped_im2col_and_numpy(device, xs, fs, st, dl, pads):
    x, w = R.standard_normal(xs).astype(np.float32), R.standard_normal(fs).astype(np.float32)
    with wt.device(device):
        tx, tw = wt.tensor(x), wt.tensor(w)
        direct = wt.function(_direct(st, dl, pads))(tx, tw).numpy()
        grouped = wt.function(_grouped(st, dl, pads))(tx, tw).numpy()
        eager = _direct(st, dl, pads)(tx, tw).numpy()
    np.testing.assert_array_equal(eager, direct)
    # both forms sum the products in (kh, kw) order: on WebGPU where the grouped form's reduction
    # sums serially (at least SERIAL_MIN_ROWS outputs; fewer are summed by a tree), on wasm where
    # the generic reduction vectorises over the output channels (at least 4 of them; with fewer it
    # takes the window's taps as lanes and adds the lanes at the end)
    if (device == "webgpu" and direct.size >= SERIAL_MIN_ROWS) or (device == "wasm_exact" and fs[2] * fs[3] >= 4):
        np.testing.assert_array_equal(direct, grouped)
    else:   # numpy's matmul and the fused multiply-adds of wasm's matmul: sums of <= 25 products
        np.testing.assert_allclose(direct, grouped, rtol=1e-5, atol=4e-6)
    # float32 sums of KH*KW products against float64: the measured error is below 2e-6
    np.testing.assert_allclose(direct, _np_depthwise(x, w, st, dl, pads), rtol=1e-5, atol=4e-6)


def test_templates_take_the_kernel():
    """WGSL's depthwise template and wasm's padded-image form (rows: the images, scratch: one
    padded image) both lower the kernel (the device tests above then check their results)."""
    x, w = wt.zeros((3, 9, 8, 8), device="reference"), wt.zeros((3, 3, 8, 2), device="reference")
    a = dict(strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)))
    k = N.depthwise_conv2d_native.kernel([x, w], N.depthwise_conv2d_native(x, w, **a), **a)
    assert k.template == "depthwise_conv2d" and lower_depthwise(k, Limits()) is not None
    low = kernel_module(k)[1]
    assert low.rows == 3 and low.scratch == 4 * 11 * 10 * 8


def _ops(fn, *args, device="reference"):
    with wt.device(device):
        g = wt.function(fn).get_concrete(*args).graph
    return [n.op.name for n in g.nodes], compile_graph(g).steps


def test_conv2d_depthwise_and_the_layer_use_the_direct_op():
    x = wt.zeros((2, 8, 8, 6), device="reference")
    assert "depthwise_conv2d_native" in _ops(lambda a, b: wt.conv2d(a, b, padding="same"), x,
                                             wt.zeros((3, 3, 1, 12), device="reference"))[0]
    assert "depthwise_conv2d_native" in _ops(lambda a, b: wt.depthwise_conv2d(a, b, 1, "same"), x,
                                             wt.zeros((3, 3, 6, 2), device="reference"))[0]
    # two input channels per group: the batched matmul
    names = _ops(lambda a, b: wt.conv2d(a, b, padding="same"), x, wt.zeros((3, 3, 2, 6), device="reference"))[0]
    assert "depthwise_conv2d_native" not in names and "matmul" in names
    # not float32: the composition
    names = _ops(lambda a, b: wt.depthwise_conv2d(a, b, 1, "same"), wt.zeros((1, 5, 5, 2), "float16", device="reference"),
                 wt.zeros((3, 3, 2, 1), "float16", device="reference"))[0]
    assert "depthwise_conv2d_native" not in names


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_conv2d_groups_equal_channels_matches_tf_layout(device):
    """conv2d's grouped filters (KH, KW, 1, C*M) are depthwise filters (KH, KW, C, M) reshaped:
    output channel g*M + m sees input channel g (TF's grouped convolution)."""
    x, w = R.standard_normal((2, 9, 7, 4)).astype(np.float32), R.standard_normal((3, 3, 1, 8)).astype(np.float32)
    with wt.device(device):
        got = wt.conv2d(wt.tensor(x), wt.tensor(w), strides=2, padding="same").numpy()
    # 'same', stride 2 on 9x7 with a 3x3 window: pads (1, 1) and (1, 1)
    want = _np_depthwise(x, w.reshape(3, 3, 4, 2), (2, 2), (1, 1), ((1, 1), (1, 1)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=4e-6)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_bias_and_activation_ride_in_the_depthwise_kernel(device, monkeypatch):
    """Depthwise conv + bias + ReLU6 compiles to one kernel with an epilogue (core/compile.py):
    bitwise the unfused program's, near float64 numpy."""
    x, w = R.standard_normal((2, 9, 8, 8)).astype(np.float32), R.standard_normal((3, 3, 8, 1)).astype(np.float32)
    b = R.standard_normal(8).astype(np.float32)
    pads = ((1, 1), (1, 1))

    def f(a, k, c):
        return wt.relu6(_direct((1, 1), (1, 1), pads)(a, k) + c)

    names, steps = _ops(f, *map(wt.tensor, (x, w, b)))
    assert len(steps) == 1 and steps[0].kernel.template == "depthwise_conv2d" and steps[0].kernel.epilogue is not None
    assert lower_depthwise(steps[0].kernel, Limits()) is not None
    runs = {}
    for fused in (False, True):
        monkeypatch.setattr(C, "EPILOGUES", fused)
        with wt.device(device):
            runs[fused] = wt.function(f)(*map(wt.tensor, (x, w, b))).numpy()
    np.testing.assert_array_equal(runs[True], runs[False])
    want = np.clip(_np_depthwise(x, w, (1, 1), (1, 1), pads) + b, 0, 6)
    np.testing.assert_allclose(runs[True], want, rtol=1e-5, atol=4e-6)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_gradients_are_the_grouped_forms_and_match_finite_differences(device):
    x, w = R.standard_normal((2, 7, 6, 3)).astype(np.float32), R.standard_normal((3, 3, 3, 2)).astype(np.float32)
    st, dl, pads = (2, 1), (1, 1), ((1, 1), (1, 1))

    def loss(conv):
        return lambda a, b: wt.reduce_sum(wt.tanh(conv(a, b)))
    with wt.device(device):
        direct = wt.function(wt.grad(loss(_direct(st, dl, pads)), argnums=(0, 1)))(wt.tensor(x), wt.tensor(w))
        grouped = wt.function(wt.grad(loss(_grouped(st, dl, pads)), argnums=(0, 1)))(wt.tensor(x), wt.tensor(w))
        direct = [d.numpy() for d in direct]
        # the forward values differ in the last bit at most (fused multiply-adds in the grouped
        # form's matmul on wasm), so the gradients agree to float32 rounding of tanh' and the sums
        for a, b in zip(direct, grouped):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)

    def f64(xv, wv):
        return np.tanh(_np_depthwise(xv, wv, st, dl, pads)).sum()
    # central differences in float64 (step 1e-4: truncation ~1e-8, far below float32's error)
    eps = 1e-4
    for arr, i, other, take in ((x, 0, w, lambda v, o: f64(v, o)), (w, 1, x, lambda v, o: f64(o, v))):
        for idx in [tuple(R.integers(0, s) for s in arr.shape) for _ in range(6)]:
            hi, lo = arr.astype(np.float64), arr.astype(np.float64)
            hi[idx] += eps
            lo[idx] -= eps
            fd = (take(hi, other) - take(lo, other)) / (2 * eps)
            assert abs(direct[i][idx] - fd) <= 1e-4 * max(1.0, abs(fd)), (i, idx, direct[i][idx], fd)


def test_depthwise_layer_trains_on_the_direct_op():
    """Keras' DepthwiseConv2D (depth_multiplier, depthwise_initializer) calls the direct op, with its
    bias and activation as the kernel's epilogue; its output is the float64 loop's."""
    layer = nn.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu",
                               depthwise_initializer="glorot_uniform", bias_initializer="random_normal")
    x = R.standard_normal((2, 8, 8, 4)).astype(np.float32)
    with wt.device("wasm"):
        y = layer(wt.tensor(x)).numpy()
        names, steps = _ops(lambda a: layer(a), wt.tensor(x), device="wasm")
    assert "depthwise_conv2d_native" in names
    assert len(steps) == 1 and steps[0].kernel.epilogue is not None
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    want = np.maximum(_np_depthwise(x, k, (1, 1), (1, 1), ((1, 1), (1, 1))) + b, 0)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=4e-6)
