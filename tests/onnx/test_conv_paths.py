"""The ONNX importer's fast convolution paths, checked against onnxruntime on "reference", "wasm"
and (a few cases) "webgpu", with gradients checked against numpy:

- depthwise convolutions with short outputs (``_depthwise_rows``: only the width padded,
  padding-row taps skipped, rows concatenated), odd sizes, strides, dilations, asymmetric pads;
- convolutions with few input channels in NCHW (``_conv_chw``).
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import webtensor as wt  # noqa: E402
import webtensor.onnx as wo  # noqa: E402
from onnx import TensorProto as T, helper, numpy_helper  # noqa: E402
from webtensor.onnx import ops as onnx_ops  # noqa: E402

CASES = [  # (H, W, kernel, strides, dilations, pads [top, left, bottom, right])
    (2, 13, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),       # PP-OCR's last layers: 2 rows, 5x5
    (6, 11, (5, 5), (2, 1), (1, 1), (2, 2, 2, 2)),       # 3 output rows, stride 2 in H
    (3, 9, (3, 3), (1, 2), (1, 1), (1, 0, 1, 1)),        # stride 2 in W, asymmetric pads
    (4, 10, (3, 3), (1, 1), (2, 1), (2, 1, 2, 1)),       # dilated rows
    (1, 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),        # one row: one term of the concat
    (2, 6, (3, 1), (1, 1), (1, 1), (3, 0, 0, 0)),        # an output row with only padding taps
]


def model(c, case):
    h, w, k, s, d, p = case
    wts = np.random.default_rng(1).standard_normal((c, 1) + k).astype(np.float32)
    b = np.random.default_rng(2).standard_normal(c).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=c, kernel_shape=list(k), strides=list(s),
                            dilations=list(d), pads=list(p))
    oh = (h + p[0] + p[2] - (k[0] - 1) * d[0] - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - (k[1] - 1) * d[1] - 1) // s[1] + 1
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", T.FLOAT, [2, c, h, w])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2, c, oh, ow])],
                          [numpy_helper.from_array(wts, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


# every case on the CPU devices, two on webgpu (lavapipe is slow)
@pytest.mark.parametrize("device,case", [(d, c) for d in ("reference", "wasm") for c in CASES] +
                         [("webgpu", CASES[0]), ("webgpu", CASES[2])])
def test_matches_onnxruntime(case, device):
    if device == "webgpu":
        try:
            wt.get_device("webgpu")
        except (ImportError, RuntimeError) as e:
            pytest.skip(f"no webgpu device: {e}")
    c = 5
    m = model(c, case)
    x = np.random.default_rng(0).standard_normal((2, c, case[0], case[1])).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert want.shape[2] <= onnx_ops._DW_ROWS      # the row-by-row path, not the general one
    with wt.device(device):
        net = wo.load(m)
        got = wt.function(lambda a: net(a))(wt.tensor(x)).numpy()
        eager = net(x).numpy()
    for y in (got, eager):
        assert y.shape == want.shape
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def wasm_gradients(m, x, g):
    """The imported model's gradients of ``sum(model(x) * g)`` for ``x`` and the weight ``w``, on wasm."""
    with wt.device("wasm"):
        net = wo.load(m)
        xt, gt = wt.tensor(x), wt.tensor(g.astype(np.float32))
        wv = next(v for v in net.trainable_variables if v.name == "w")
        with wt.GradientTape() as tape:
            tape.watch(xt)
            loss = wt.reduce_sum(net(xt) * gt)
        return tape.gradient(loss, [xt, wv])


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]])
def test_gradient_matches_numpy(case):
    """d sum(y * g) / d x and / d w on "wasm", against the same sums written in numpy over the
    zero-padded input (the gradient of the skipped taps is zero, as it must be)."""
    c = 3
    h, w, k, s, d, p = case
    m = model(c, case)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wts = numpy_helper.to_array(m.graph.initializer[0])
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])])
    oh = (h + p[0] + p[2] - (k[0] - 1) * d[0] - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - (k[1] - 1) * d[1] - 1) // s[1] + 1
    g = rng.standard_normal((2, c, oh, ow))
    gx, gw = np.zeros_like(xp), np.zeros((c, 1) + k)
    for i in range(k[0]):
        for j in range(k[1]):
            rs, cs = slice(i * d[0], i * d[0] + (oh - 1) * s[0] + 1, s[0]), slice(j * d[1], j * d[1] + (ow - 1) * s[1] + 1, s[1])
            gx[:, :, rs, cs] += g * wts[None, :, 0, i, j, None, None]
            gw[:, 0, i, j] = (g * xp[:, :, rs, cs]).sum(axis=(0, 2, 3))
    gx = gx[:, :, p[0]:p[0] + h, p[1]:p[1] + w]
    dx, dw = wasm_gradients(m, x, g)
    np.testing.assert_allclose(dx.numpy(), gx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dw.numpy(), gw, rtol=1e-4, atol=1e-5)


# ---- small-channel convolutions in NCHW (``_conv_chw``: C * KH * KW <= 32) ----------------------

CHW_CASES = [  # (C, O, H, W, kernel, strides, dilations, pads, bias)
    (3, 8, 11, 17, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), True),     # PP-OCR's stem, odd sizes
    (1, 5, 9, 13, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2), False),
    (2, 4, 10, 9, (3, 2), (1, 2), (2, 1), (0, 1, 2, 0), True),      # dilated, asymmetric pads
    (3, 6, 7, 8, (1, 3), (3, 1), (1, 1), (0, 0, 0, 0), True),       # no padding, stride 3 in H
]


def chw_model(case):
    c, o, h, w, k, s, d, p, bias = case
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(rng.standard_normal((o, c) + k).astype(np.float32), "w")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), "b"))
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], kernel_shape=list(k),
                            strides=list(s), dilations=list(d), pads=list(p))
    oh = (h + p[0] + p[2] - (k[0] - 1) * d[0] - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - (k[1] - 1) * d[1] - 1) // s[1] + 1
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", T.FLOAT, [2, c, h, w])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2, o, oh, ow])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


# every case on the CPU devices, one on webgpu (lavapipe is slow)
@pytest.mark.parametrize("device,case", [(d, c) for d in ("reference", "wasm") for c in CHW_CASES] +
                         [("webgpu", CHW_CASES[0])])
def test_small_channel_conv_matches_onnxruntime(case, device, monkeypatch):
    if device == "webgpu":
        try:
            wt.get_device("webgpu")
        except (ImportError, RuntimeError) as e:
            pytest.skip(f"no webgpu device: {e}")
    assert case[0] * case[4][0] * case[4][1] <= onnx_ops._CHW_PATCHES_K     # the NCHW path
    used = []
    real = onnx_ops._conv_chw
    monkeypatch.setattr(onnx_ops, "_conv_chw", lambda *a: used.append(1) or real(*a))
    m = chw_model(case)
    x = np.random.default_rng(5).standard_normal((2, case[0], case[2], case[3])).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with wt.device(device):
        net = wo.load(m)
        got = wt.function(lambda a: net(a))(wt.tensor(x)).numpy()
    assert used and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_small_channel_conv_gradient_matches_numpy():
    """d sum(y * g) / d x and / d w of the stem case on "wasm", against numpy's sums over the padded
    input."""
    c, o, h, w, k, s, d, p, _ = CHW_CASES[0]
    m = chw_model(CHW_CASES[0])
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wts = numpy_helper.to_array(m.graph.initializer[0]).astype(np.float64)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])])
    oh = (h + p[0] + p[2] - (k[0] - 1) * d[0] - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - (k[1] - 1) * d[1] - 1) // s[1] + 1
    g = rng.standard_normal((2, o, oh, ow))
    gx, gw = np.zeros_like(xp), np.zeros_like(wts)
    for i in range(k[0]):
        for j in range(k[1]):
            rs = slice(i * d[0], i * d[0] + (oh - 1) * s[0] + 1, s[0])
            cs = slice(j * d[1], j * d[1] + (ow - 1) * s[1] + 1, s[1])
            gx[:, :, rs, cs] += np.einsum("nohw,oc->nchw", g, wts[:, :, i, j])
            gw[:, :, i, j] = np.einsum("nohw,nchw->oc", g, xp[:, :, rs, cs])
    gx = gx[:, :, p[0]:p[0] + h, p[1]:p[1] + w]
    dx, dw = wasm_gradients(m, x, g)
    np.testing.assert_allclose(dx.numpy(), gx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dw.numpy(), gw, rtol=1e-4, atol=1e-4)
