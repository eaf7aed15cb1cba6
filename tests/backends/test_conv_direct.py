"""The direct convolution (``conv2d_direct``, template ``conv2d``: webgpu/conv.py, wasm/matmul.py's
window packing) on each device: bitwise equal to the im2col form (the same products summed in the
same order) and near a float64 numpy loop; its gradients are the im2col form's; ``conv2d`` picks it
by the measured rule; an int8 export puts its filters back into an im2col matmul."""
import dataclasses
import json

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core import kernel_ir as K
from webtensor.core import compile as C
from webtensor.core.compile import compile_graph
from webtensor.core.ops import nn as N
from webtensor.wasm import matmul as wasm_matmul
from webtensor.webgpu.conv import lower_conv
from webtensor.webgpu.limits import Limits

R = np.random.default_rng(19)

# (x NHWC, filters HWIO, strides, dilations, pads): one-channel images (the wasm fast panels, their
# borders and partial panels), several channels, strides, dilations, asymmetric pads, 1x1, a window
# the size of the image, an image narrower than a panel, a long window (looped, not unrolled)
CASES = [((2, 7, 6, 1), (3, 3, 1, 5), (1, 1), (1, 1), ((1, 1), (1, 1))),
         ((2, 9, 8, 1), (3, 3, 1, 4), (1, 1), (2, 2), ((2, 2), (2, 2))),
         ((2, 6, 17, 1), (5, 5, 1, 9), (1, 1), (1, 1), ((2, 2), (2, 2))),
         ((1, 3, 3, 1), (3, 3, 1, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
         ((1, 5, 6, 3), (2, 3, 3, 2), (1, 2), (1, 1), ((1, 2), (0, 3))),
         ((3, 5, 5, 2), (1, 1, 2, 4), (1, 1), (1, 1), ((0, 0), (0, 0))),
         ((2, 9, 9, 20), (3, 3, 20, 7), (2, 2), (1, 1), ((1, 1), (1, 1))),
         ((1, 4, 4, 1), (4, 4, 1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
         ((2, 8, 8, 16), (3, 3, 16, 32), (1, 1), (1, 1), ((1, 1), (1, 1))),
         # channels in fours (wasm's 4 x 4-block panels): dilated with asymmetric pads, taps
         # half outside, an image row that panels straddle (OW = 5), a window over UNROLL_CHANNELS
         ((2, 7, 9, 4), (3, 3, 4, 6), (1, 1), (2, 2), ((2, 1), (3, 2))),
         ((1, 5, 11, 8), (2, 3, 8, 5), (1, 1), (1, 1), ((0, 1), (1, 0))),
         ((2, 6, 5, 12), (3, 3, 12, 4), (1, 1), (1, 1), ((1, 1), (1, 1)))]
# wasm only (WebGPU's im2col matmul over K = 612 sums in another order, split K): a window of
# channels in fours over UNROLL_CHANNELS, packed by the general loop
WASM_CASES = [((1, 6, 7, 68), (3, 3, 68, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))]
RUNS = [(d, *c) for d in ("wasm", "webgpu") for c in CASES] + [("wasm", *c) for c in WASM_CASES]


def _im2col(st, dl, pads):
    def f(x, w):
        kh, kw, c, o = w.shape
        p = N.extract_patches(x, ksize=(kh, kw), strides=st, dilations=dl, pads=pads, pad_value=0.0)
        n, oh, ow = p.shape[:3]
        return wt.reshape(wt.matmul(wt.reshape(p, (n * oh * ow, kh * kw * c)), wt.reshape(w, (kh * kw * c, o))),
                          (n, oh, ow, o))
    return f


def _np_conv(x, w, st, dl, pads):
    x = np.pad(x.astype(np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw = w.shape[:2]
    oh = (x.shape[1] - (kh - 1) * dl[0] - 1) // st[0] + 1
    ow = (x.shape[2] - (kw - 1) * dl[1] - 1) // st[1] + 1
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for a in range(kh):
        for b in range(kw):
            win = x[:, a * dl[0]:a * dl[0] + (oh - 1) * st[0] + 1:st[0], b * dl[1]:b * dl[1] + (ow - 1) * st[1] + 1:st[1]]
            y += win @ w[a, b].astype(np.float64)
    return y


@pytest.mark.parametrize("device,xs,fs,st,dl,pads", RUNS, ids=[f"{r[0]}-{i}" for i, r in enumerate(RUNS)])
def test_direct_equals_im2col_bitwise_and_numpy(device, xs, fs, st, dl, pads):
    x, w = R.standard_normal(xs).astype(np.float32), R.standard_normal(fs).astype(np.float32)
    with wt.device(device):
        tx, tw = wt.tensor(x), wt.tensor(w)
        direct = wt.function(lambda a, b: N.conv2d_direct(a, b, strides=st, dilations=dl, pads=pads))(tx, tw).numpy()
        im2col = wt.function(_im2col(st, dl, pads))(tx, tw).numpy()
        eager = N.conv2d_direct(tx, tw, strides=st, dilations=dl, pads=pads).numpy()
    np.testing.assert_array_equal(direct, im2col)
    np.testing.assert_array_equal(eager, direct)
    # float32 sums of K products against float64: the measured error is below 6e-6 (K <= 180)
    np.testing.assert_allclose(direct, _np_conv(x, w, st, dl, pads), rtol=1e-5, atol=2e-5)


def _kernel(xs, fs, st=(1, 1), dl=(1, 1), pads=((1, 1), (1, 1))):
    x, w = wt.zeros(xs, device="reference"), wt.zeros(fs, device="reference")
    y = N.conv2d_direct(x, w, strides=st, dilations=dl, pads=pads)
    return N.conv2d_direct.kernel([x, w], y, strides=st, dilations=dl, pads=pads)


def test_templates_take_the_kernel_and_the_generic_form_is_the_reference():
    k = _kernel((2, 7, 6, 3), (3, 3, 3, 8))
    assert k.template == "conv2d" and wasm_matmul.supports(k) and lower_conv(k, Limits()) is not None
    x, w = R.standard_normal((2, 7, 6, 3)).astype(np.float32), R.standard_normal((3, 3, 3, 8)).astype(np.float32)
    ref = N.conv2d_direct.reference(x, w, strides=(1, 1), dilations=(1, 1), pads=((1, 1), (1, 1)))
    np.testing.assert_allclose(K.evaluate(k, [x, w]), ref, rtol=1e-5, atol=1e-5)


def _op_names(fn, *args):
    f = wt.function(fn)
    return {s.kernel.template for s in compile_graph(f.get_concrete(*args).graph).steps}


def test_conv2d_picks_direct_by_the_measured_rule():
    x = wt.zeros((2, 8, 8, 16), device="reference")
    small, large = wt.zeros((3, 3, 16, 8), device="reference"), wt.zeros((3, 3, 32, 8), device="reference")
    assert N.direct_conv_wins(3 * 3 * 16) and not N.direct_conv_wins(3 * 3 * 32)
    with wt.device("reference"):
        assert "conv2d" in _op_names(lambda a, b: wt.conv2d(a, b, padding="same"), x, small)
        assert "conv2d" not in _op_names(lambda a, b: wt.conv2d(a, b, padding="same"),
                                         wt.zeros((2, 8, 8, 32), device="reference"), large)
        grouped = wt.zeros((3, 3, 8, 8), device="reference")        # two groups: im2col's batched matmul
        assert "conv2d" not in _op_names(lambda a, b: wt.conv2d(a, b, padding="same"), x, grouped)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_bias_and_activation_ride_in_the_direct_kernel(device, monkeypatch):
    """Conv + bias + ReLU is one ``conv2d`` kernel with an epilogue (core/compile.py), which both
    templates take (not the generic reduction): bitwise the unfused program's, near float64 numpy."""
    x, w = R.standard_normal((2, 9, 8, 3)).astype(np.float32), R.standard_normal((3, 3, 3, 6)).astype(np.float32)
    b = R.standard_normal(6).astype(np.float32)
    pads = ((1, 1), (1, 1))

    def f(a, k, c):
        return wt.relu(N.conv2d_direct(a, k, strides=(1, 1), dilations=(1, 1), pads=pads) + c)

    with wt.device("reference"):
        steps = compile_graph(wt.function(f).get_concrete(*map(wt.tensor, (x, w, b))).graph).steps
    assert len(steps) == 1 and steps[0].kernel.template == "conv2d" and steps[0].kernel.epilogue is not None
    k = steps[0].kernel
    assert wasm_matmul.supports(dataclasses.replace(k, epilogue=None)) and lower_conv(k, Limits()) is not None
    runs = {}
    for fused in (False, True):
        monkeypatch.setattr(C, "EPILOGUES", fused)
        with wt.device(device):
            runs[fused] = wt.function(f)(*map(wt.tensor, (x, w, b))).numpy()
    np.testing.assert_array_equal(runs[True], runs[False])
    # float32 sums of 27 products against float64: measured error below 2e-6
    np.testing.assert_allclose(runs[True], np.maximum(_np_conv(x, w, (1, 1), (1, 1), pads) + b, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
def test_training_gradients_are_the_im2col_forms(device):
    x, w = R.standard_normal((2, 7, 6, 3)).astype(np.float32), R.standard_normal((3, 3, 3, 4)).astype(np.float32)
    st, dl, pads = (2, 1), (1, 1), ((1, 1), (1, 1))

    def loss(conv):
        return lambda a, b: wt.reduce_sum(wt.tanh(conv(a, b)))
    with wt.device(device):
        direct = wt.function(wt.grad(loss(lambda a, b: N.conv2d_direct(a, b, strides=st, dilations=dl, pads=pads)),
                                     argnums=(0, 1)))(wt.tensor(x), wt.tensor(w))
        im2col = wt.function(wt.grad(loss(_im2col(st, dl, pads)), argnums=(0, 1)))(wt.tensor(x), wt.tensor(w))
        for a, b in zip(direct, im2col):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_int8_export_quantizes_direct_convolution_filters(tmp_path):
    model = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"), nn.Flatten(),
                           nn.Dense(3)])
    x = R.standard_normal((2, 8, 8, 1)).astype(np.float32)
    want = model(wt.tensor(x)).numpy()
    model.export(str(tmp_path / "m"), batch_size=2, signatures=["predict"], weights_dtype="int8", backends=("wasm",))
    stored = {v["name"]: v.get("storage", {}).get("dtype") for v in
              json.loads((tmp_path / "m" / "manifest.json").read_text())["variables"]}
    assert stored["conv2d/kernel"] == "int8" and stored["dense/kernel"] == "int8"
    got = wt.load(str(tmp_path / "m")).predict(x)
    got = np.asarray(got.numpy() if hasattr(got, "numpy") else got)
    # int8 weights: a step of max|w| / 127 per output channel; the error stays within a few steps
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())
