"""conv1d, grouped conv2d, conv2d_transpose and depthwise_conv2d against float64 numpy direct
loops (written from TensorFlow's definitions, independently of ``core/ops/nn.py``), and their
gradients against finite differences.

These ops are compositions (im2col, matmul, col2im), so ``test_coverage.py`` needs nothing new
from them; the checks here are for the compositions themselves.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import webtensor as wt
from webtensor.core.numpy_util import float64_reference

from test_gradients import check_grad, sample as gsample


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def same_pads(size, k, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pads_of(padding, hw, khw, strides, dilations):
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(same_pads(n, k, s, d) for n, k, s, d in zip(hw, khw, strides, dilations))
    return padding


def np_conv(x, w, strides, padding, dilations):
    """out[n,y,x,o] = sum_{i,j,c} in[n, y*s+i*d-top, x*s+j*d-left, g*C/G + c] * w[i,j,c,o], g = o // (O/G)."""
    n, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    og = o // (c // cg)
    (pt, pb), (pl, pr) = pads_of(padding, (h, wd), (kh, kw), strides, dilations)
    oh = (h + pt + pb - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd + pl + pr - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    out = np.zeros((n, oh, ow, o))
    for y in range(oh):
        for xo in range(ow):
            for oc in range(o):
                g = oc // og
                for i in range(kh):
                    for j in range(kw):
                        r, s = y * strides[0] + i * dilations[0] - pt, xo * strides[1] + j * dilations[1] - pl
                        if 0 <= r < h and 0 <= s < wd:
                            out[:, y, xo, oc] += x[:, r, s, g * cg:(g + 1) * cg] @ w[i, j, :, oc]
    return out


def np_depthwise(x, f, strides, padding, dilations):
    """out[n,y,x,c*M+m] = sum_{i,j} in[n, y*s+i*d-top, x*s+j*d-left, c] * f[i,j,c,m]."""
    n, h, wd, c = x.shape
    kh, kw, _, m = f.shape
    (pt, pb), (pl, pr) = pads_of(padding, (h, wd), (kh, kw), strides, dilations)
    oh = (h + pt + pb - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd + pl + pr - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    out = np.zeros((n, oh, ow, c * m))
    for y in range(oh):
        for xo in range(ow):
            for ch in range(c):
                for k in range(m):
                    for i in range(kh):
                        for j in range(kw):
                            r, s = y * strides[0] + i * dilations[0] - pt, xo * strides[1] + j * dilations[1] - pl
                            if 0 <= r < h and 0 <= s < wd:
                                out[:, y, xo, ch * m + k] += x[:, r, s, ch] * f[i, j, ch, k]
    return out


def np_conv_transpose(x, f, out_hw, strides, padding, dilations):
    """Each input pixel scatters ``f``: out[n, y*s+i*d-top, x*s+j*d-left, :] += in[n,y,x,c] * f[i,j,:,c]."""
    n, h, wd, c = x.shape
    kh, kw, o, _ = f.shape
    (pt, _), (pl, _) = pads_of(padding, out_hw, (kh, kw), strides, dilations)
    out = np.zeros((n,) + tuple(out_hw) + (o,))
    for y in range(h):
        for xi in range(wd):
            for i in range(kh):
                for j in range(kw):
                    r, s = y * strides[0] + i * dilations[0] - pt, xi * strides[1] + j * dilations[1] - pl
                    if 0 <= r < out_hw[0] and 0 <= s < out_hw[1]:
                        out[:, r, s, :] += x[:, y, xi, :] @ f[i, j, :, :].T
    return out


def check(t, expected, rtol=1e-5, atol=1e-5):
    got = t.numpy()
    assert got.shape == expected.shape and got.dtype == np.float32, (got.shape, expected.shape, got.dtype)
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=atol)


def f32(rng, shape):
    return rng.uniform(-2, 2, shape).astype(np.float32)


# ---- values on the reference device -----------------------------------------------------------

CONV1D = [  # (x (N, W, C), (K, C/G, O), stride, padding, dilation)
    ((2, 9, 3), (3, 3, 4), 1, "valid", 1),
    ((1, 10, 2), (3, 2, 3), 2, "same", 1),
    ((2, 11, 2), (2, 2, 2), 1, "same", 3),
    ((1, 8, 4), (3, 2, 4), 2, "valid", 1),            # 2 groups
    ((1, 7, 2), (3, 2, 2), 1, (2, 0), 2),             # explicit (causal) padding
]


@pytest.mark.parametrize("data_format", ["NWC", "NCW"])
@pytest.mark.parametrize("xs,fs,stride,padding,dilation", CONV1D, ids=[str(i) for i in range(len(CONV1D))])
def test_conv1d(xs, fs, stride, padding, dilation, data_format, rng):
    x, f = f32(rng, xs), f32(rng, fs)
    pad2 = padding if isinstance(padding, str) else ((0, 0), padding)
    want = np_conv(x[:, None].astype(np.float64), f[None].astype(np.float64), (1, stride), pad2, (1, dilation))[:, 0]
    tx = x if data_format == "NWC" else x.transpose(0, 2, 1)
    with wt.device("reference"):
        y = wt.conv1d(tx, f, stride, padding, data_format=data_format, dilations=dilation)
    check(y, want if data_format == "NWC" else want.transpose(0, 2, 1))


GROUPED = [  # (x NHWC, (KH, KW, C/G, O), strides, padding, dilations)
    ((1, 6, 5, 4), (3, 3, 2, 6), (1, 1), "valid", (1, 1)),
    ((2, 7, 6, 6), (3, 2, 1, 6), (2, 1), "same", (1, 2)),     # depthwise-like: C/G = 1
    ((1, 5, 5, 6), (2, 2, 3, 4), (1, 2), ((1, 0), (2, 1)), (1, 1)),
]


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("xs,fs,strides,padding,dilations", GROUPED, ids=[str(i) for i in range(len(GROUPED))])
def test_grouped_conv2d(xs, fs, strides, padding, dilations, data_format, rng):
    x, f = f32(rng, xs), f32(rng, fs)
    want = np_conv(x.astype(np.float64), f.astype(np.float64), strides, padding, dilations)
    tx = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2)
    with wt.device("reference"):
        y = wt.conv2d(tx, f, strides=strides, padding=padding, data_format=data_format, dilations=dilations)
    check(y, want if data_format == "NHWC" else want.transpose(0, 3, 1, 2))


DEPTHWISE = [  # (x NHWC, (KH, KW, M), strides, padding, dilations)
    ((2, 6, 5, 3), (3, 3, 1), (1, 1), "valid", (1, 1)),
    ((1, 7, 6, 2), (3, 2, 3), (2, 2), "same", (1, 1)),
    ((1, 8, 7, 2), (2, 3, 2), (1, 1), "same", (2, 2)),
    ((1, 5, 4, 3), (2, 2, 2), (1, 2), ((0, 1), (1, 1)), (1, 1)),
]


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("xs,fs,strides,padding,dilations", DEPTHWISE, ids=[str(i) for i in range(len(DEPTHWISE))])
def test_depthwise_conv2d(xs, fs, strides, padding, dilations, data_format, rng):
    x, f = f32(rng, xs), f32(rng, (fs[0], fs[1], xs[3], fs[2]))
    want = np_depthwise(x.astype(np.float64), f.astype(np.float64), strides, padding, dilations)
    tx = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2)
    with wt.device("reference"):
        y = wt.depthwise_conv2d(tx, f, strides, padding, data_format=data_format, dilations=dilations)
    check(y, want if data_format == "NHWC" else want.transpose(0, 3, 1, 2))


TRANSPOSE = [  # (x NHWC, (KH, KW, O), output (H, W), strides, padding, dilations)
    ((1, 4, 5, 3), (3, 3, 2), (8, 10), (2, 2), "same", (1, 1)),
    ((2, 3, 3, 2), (3, 3, 4), (7, 7), (2, 2), "valid", (1, 1)),
    ((1, 3, 4, 2), (2, 2, 3), (6, 8), (2, 2), "valid", (1, 1)),
    ((1, 4, 4, 2), (3, 3, 2), (10, 9), (2, 2), "valid", (1, 1)),    # output_padding-like: one extra row
    ((1, 5, 4, 1), (3, 2, 2), (5, 4), (1, 1), "same", (2, 2)),
    ((1, 3, 3, 2), (3, 3, 2), (6, 5), (2, 2), ((1, 1), (1, 1)), (1, 1)),
]


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("xs,fs,out_hw,strides,padding,dilations", TRANSPOSE,
                         ids=[str(i) for i in range(len(TRANSPOSE))])
def test_conv2d_transpose(xs, fs, out_hw, strides, padding, dilations, data_format, rng):
    x, f = f32(rng, xs), f32(rng, (fs[0], fs[1], fs[2], xs[3]))
    want = np_conv_transpose(x.astype(np.float64), f.astype(np.float64), out_hw, strides, padding, dilations)
    out_shape = (xs[0],) + out_hw + (fs[2],)
    tx = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2)
    if data_format == "NCHW":
        out_shape = (out_shape[0], out_shape[3]) + out_hw
    with wt.device("reference"):
        y = wt.conv2d_transpose(tx, f, out_shape, strides, padding=padding, data_format=data_format,
                                dilations=dilations)
    check(y, want if data_format == "NHWC" else want.transpose(0, 3, 1, 2))


def test_conv2d_transpose_is_the_adjoint_of_conv2d(rng):
    """<conv2d(a, f), b> == <a, conv2d_transpose(b, f)> (the definition of a transpose)."""
    a, f, b = f32(rng, (2, 7, 6, 3)), f32(rng, (3, 2, 3, 4)), f32(rng, (2, 4, 3, 4))
    with wt.device("reference"), float64_reference():
        lhs = float(wt.sum(wt.conv2d(a, f, strides=2, padding="same") * b).numpy())
        rhs = float(wt.sum(wt.conv2d_transpose(b, f, a.shape, 2, padding="same") * a).numpy())
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call,err,match", [
    (lambda x: wt.conv1d(x, np.ones((3, 5, 2), np.float32), 1, "same"), ValueError, "filters must be"),
    (lambda x: wt.conv1d(x, np.ones((3, 4, 2), np.float32), 0, "same"), ValueError, "stride must be a positive"),
    (lambda x: wt.conv1d(x, np.ones((3, 4, 2), np.float32), 1.5, "same"), TypeError, "stride must be an int"),
    (lambda x: wt.conv1d(x, np.ones((3, 4, 2), np.float32), 1, "full"), ValueError, "padding must be"),
    (lambda x: wt.conv1d(x[0], np.ones((3, 4, 2), np.float32), 1, "same"), ValueError, "rank 3"),
    (lambda x: wt.conv2d_transpose(wt.reshape(x, (1, 2, 5, 4)), np.ones((3, 3, 2, 4), np.float32), (1, 5, 9, 2), 2),
     ValueError, "does not fit"),
    (lambda x: wt.conv2d_transpose(wt.reshape(x, (1, 2, 5, 4)), np.ones((3, 3, 4, 2), np.float32), (1, 4, 10, 4), 2),
     ValueError, r"C_in=4"),
    (lambda x: wt.conv2d_transpose(wt.reshape(x, (1, 2, 5, 4)), np.ones((3, 3, 2, 4), np.float32), (1, 4, 10), 2),
     ValueError, "4 entries"),
    (lambda x: wt.depthwise_conv2d(wt.reshape(x, (1, 2, 5, 4)), np.ones((3, 3, 3, 1), np.float32), 1, "same"),
     ValueError, r"C=4"),
])
def test_errors(call, err, match):
    with wt.device("reference"):
        x = wt.ones((2, 5, 4))
        with pytest.raises(err, match=match):
            call(x)


# ---- gradients: finite differences in float64 ---------------------------------------------------

GRADS = [  # (id, fn, [(shape, domain), ...])
    ("conv1d_same_stride2", lambda x, w: wt.conv1d(x, w, 2, "same"), [((1, 7, 2), "any"), ((3, 2, 2), "any")]),
    ("conv1d_causal_dilated_ncw", lambda x, w: wt.conv1d(x, w, 1, (2, 0), data_format="NCW", dilations=2),
     [((1, 2, 5), "any"), ((2, 2, 2), "any")]),
    ("conv2d_grouped", lambda x, w: wt.conv2d(x, w, strides=(2, 1), padding="same"),
     [((1, 5, 4, 4), "any"), ((2, 2, 2, 4), "any")]),
    ("depthwise_same_stride2", lambda x, w: wt.depthwise_conv2d(x, w, 2, "same"),
     [((1, 5, 4, 2), "any"), ((3, 2, 2, 2), "any")]),
    ("depthwise_dilated_nchw", lambda x, w: wt.depthwise_conv2d(x, w, 1, "valid", data_format="NCHW", dilations=2),
     [((1, 2, 5, 5), "any"), ((2, 2, 2, 1), "any")]),
    ("conv2d_transpose_same", lambda x, w: wt.conv2d_transpose(x, w, (1, 6, 5, 2), 2),
     [((1, 3, 3, 2), "any"), ((3, 3, 2, 2), "any")]),
    ("conv2d_transpose_valid_nchw", lambda x, w: wt.conv2d_transpose(x, w, (1, 2, 7, 5), 2, padding="valid",
                                                                     data_format="NCHW"),
     [((1, 3, 3, 2), "any"), ((3, 2, 2, 3), "any")]),
]


@pytest.mark.parametrize("fn,specs", [g[1:] for g in GRADS], ids=[g[0] for g in GRADS])
def test_gradient(fn, specs, request):
    rng = np.random.default_rng(zlib.crc32(request.node.name.encode()))
    with wt.device("reference"), float64_reference():
        check_grad(fn, [gsample(rng, s, d) for s, d in specs], request.node.name, rtol=1e-6, atol=1e-7)


def test_second_order_conv2d_transpose(request):
    """d/dw of d<u, conv2d_transpose(x, w)>/dx runs extract_patches' rule inside the transpose."""
    rng = np.random.default_rng(1)
    u = rng.normal(size=(1, 6, 5, 2))

    def g(x, w):
        with wt.GradientTape() as tape:
            tape.watch(x)
            s = wt.sum(wt.conv2d_transpose(wt.square(x), w, (1, 6, 5, 2), 2) * wt.tensor(u))
        return tape.gradient(s, x)

    with wt.device("reference"), float64_reference():
        check_grad(g, [gsample(rng, (1, 3, 3, 2)), gsample(rng, (3, 3, 2, 2))], "second", rtol=1e-6, atol=1e-7)
