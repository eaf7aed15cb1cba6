"""Neural-network ops: convolution and pooling (built on ``extract_patches``), the
numerically stable softmax family, and losses. Only ``extract_patches`` and its
transpose are primitives; everything else here is a composition, so it reaches
every backend and differentiates with no rule of its own.
"""
from __future__ import annotations

from math import prod

from .. import kernel_ir as K
from ..dtypes import float32, int32
from ..op import Aval, Op, as_tensor, first_out_of_range
from ..shapes import normalize_axis, normalize_pair
from ..signature import (BOOL, NUMBER, PADDING, PADS, POSITIVE_PAIR, SHAPE, axes_of, axis_of, one_of,
                         op_signature, optional)
from .elementwise import (cast, exp, greater_equal, less, log, logical_and, stop_gradient, sub, mul, neg,
                          where)
from .linalg import matmul
from .movement import expand_dims, reshape, transpose, one_hot
from .reduction import reduce_max, reduce_sum, mean
from ..signature import _int, _ints
from .namespace import ops as _ops


# ---- patches (im2col) -------------------------------------------------------------------------

def _out_size(n, k, stride, dilation, lo, hi):
    return (n + lo + hi - (k - 1) * dilation - 1) // stride + 1


def _patches_infer(x: Aval, *, ksize, strides, dilations, pads, pad_value) -> Aval:
    if len(x.shape) != 4:
        raise ValueError(f"extract_patches: input must be NHWC (rank 4), got shape {x.shape}")
    n, h, w, c = x.shape
    oh = _out_size(h, ksize[0], strides[0], dilations[0], *pads[0])
    ow = _out_size(w, ksize[1], strides[1], dilations[1], *pads[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"extract_patches: window {ksize} (dilation {dilations}) is larger than the padded "
                         f"input {h}x{w}")
    return Aval((n, oh, ow, ksize[0], ksize[1], c), x.dtype)


def _patches_kernel(ins, out, *, ksize, strides, dilations, pads, pad_value):
    x = ins[0]
    n, oh, ow, kh, kw, c = (K.idx(d) for d in range(6))
    h = oh * strides[0] + kh * dilations[0] - pads[0][0]
    w = ow * strides[1] + kw * dilations[1] - pads[1][0]
    ok = K.binary("and", K.binary("and", h >= 0, h < x.shape[1]), K.binary("and", w >= 0, w < x.shape[2]))
    val = K.load(0, (n, K.clamp(h, 0, x.shape[1] - 1), K.clamp(w, 0, x.shape[2] - 1), c), x.dtype)
    return K.map_kernel([K.Buffer(x.shape, x.dtype)], K.Buffer(out.shape, out.dtype),
                        K.where(ok, val, K.const(pad_value, x.dtype)))


def _patches_ref(x, *, ksize, strides, dilations, pads, pad_value):
    import numpy as np
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=pad_value)
    n, _, _, c = x.shape
    oh = _out_size(x.shape[1], ksize[0], strides[0], dilations[0], *pads[0])
    ow = _out_size(x.shape[2], ksize[1], strides[1], dilations[1], *pads[1])
    out = np.empty((n, oh, ow, ksize[0], ksize[1], c), x.dtype)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            hs, ws = i * dilations[0], j * dilations[1]
            out[:, :, :, i, j, :] = xp[:, hs:hs + (oh - 1) * strides[0] + 1:strides[0],
                                       ws:ws + (ow - 1) * strides[1] + 1:strides[1], :]
    return out


def _patches_grad_infer(g: Aval, *, shape, ksize, strides, dilations, pads) -> Aval:
    return Aval(tuple(shape), g.dtype)


def _patches_grad_kernel(ins, out, *, shape, ksize, strides, dilations, pads):
    # dx[n,h,w,c] = sum over (kh, kw) of g[n, oh, ow, kh, kw, c] where h = oh*s + kh*d - pad.
    g = ins[0]
    _, goh, gow = g.shape[:3]
    n, h, w, c, kh, kw = (K.idx(d) for d in range(6))
    th = h + pads[0][0] - kh * dilations[0]
    tw = w + pads[1][0] - kw * dilations[1]
    oh, ow = th // strides[0], tw // strides[1]
    ok = K.binary("and", th >= 0, tw >= 0)
    if strides[0] > 1:
        ok = K.binary("and", ok, K.binary("eq", th % strides[0], K.const(0, int32)))
    if strides[1] > 1:
        ok = K.binary("and", ok, K.binary("eq", tw % strides[1], K.const(0, int32)))
    ok = K.binary("and", ok, K.binary("and", oh < goh, ow < gow))
    val = K.load(0, (n, K.clamp(oh, 0, goh - 1), K.clamp(ow, 0, gow - 1), kh, kw, c), g.dtype)
    return K.reduce_kernel([K.Buffer(g.shape, g.dtype)], K.Buffer(out.shape, out.dtype), tuple(ksize),
                           K.where(ok, val, K.const(0, g.dtype)), "sum")


def _patches_grad_ref(g, *, shape, ksize, strides, dilations, pads):
    import numpy as np
    n, h, w, c = shape
    xp = np.zeros((n, h + sum(pads[0]), w + sum(pads[1]), c), g.dtype)
    oh, ow = g.shape[1:3]
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            hs, ws = i * dilations[0], j * dilations[1]
            xp[:, hs:hs + (oh - 1) * strides[0] + 1:strides[0], ws:ws + (ow - 1) * strides[1] + 1:strides[1], :] \
                += g[:, :, :, i, j, :]
    return xp[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w, :].copy()


_WINDOW = dict(ksize=POSITIVE_PAIR, strides=POSITIVE_PAIR, dilations=POSITIVE_PAIR, pads=PADS)
extract_patches = Op(
    "extract_patches", infer=_patches_infer, reference=_patches_ref, kernel=_patches_kernel,
    attrs=dict(_WINDOW, pad_value=NUMBER),
    grad=lambda g, y, x, *, ksize, strides, dilations, pads, pad_value: (
        extract_patches_grad(g, shape=tuple(x.shape), ksize=ksize, strides=strides, dilations=dilations,
                             pads=pads),),
    doc="""im2col: every ``(KH, KW)`` window of an NHWC image, the primitive under conv2d and pooling.
    Output size per spatial axis: ``(n + before + after - (k - 1) * dilation - 1) // stride + 1``.

    Args:
        x: ``(N, H, W, C)``, any dtype.
        ksize: window size, a positive int or pair ``(KH, KW)``.
        strides: window step, a positive int or pair.
        dilations: spacing of a window's taps, a positive int or pair.
        pads: explicit padding ``((top, bottom), (left, right))``, non-negative ints.
        pad_value: the number padding positions read.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, KH, KW, C)``, ``x``'s dtype.
    Raises:
        TypeError: non-int window arguments, a non-number ``pad_value``, a missing attribute.
        ValueError: non-positive sizes, negative pads, rank other than 4, a window larger than the
            padded input.""")
extract_patches_grad = Op(
    "extract_patches_grad", infer=_patches_grad_infer, reference=_patches_grad_ref, kernel=_patches_grad_kernel,
    attrs=dict(_WINDOW, shape=SHAPE),
    grad=lambda g, y, x, *, shape, ksize, strides, dilations, pads: (
        extract_patches(g, ksize=ksize, strides=strides, dilations=dilations, pads=pads, pad_value=0.0),),
    doc="col2im, the transpose of extract_patches: sums each window back into the NHWC input.")


# ---- direct convolution ----------------------------------------------------------------------
# conv2d's kernel without the im2col buffer: one reduction over each output's window,
# ``y[n, oh, ow, o] = sum over (kh, kw, c) of x[n, oh*s + kh*d - pad, ow*s + kw*d - pad, c] *
# f[kh, kw, c, o]`` (0 where the window reads padding), summed in im2col's order (kh, kw, c), so
# each output's sum is the im2col matmul's. A ``reduce`` kernel with the ``conv2d`` template hint
# (its window in ``params``): webgpu/conv.py and wasm/matmul.py (the matmul micro-kernel packing
# its A panels straight from the window) lower it; the generic form is the plain reduction.

def _direct_infer(x: Aval, filters: Aval, *, strides, dilations, pads) -> Aval:
    if len(x.shape) != 4 or len(filters.shape) != 4 or filters.shape[2] != x.shape[3]:
        raise ValueError(f"conv2d_direct: x must be (N, H, W, C) and filters (KH, KW, C, O), got shapes "
                         f"{x.shape} and {filters.shape}")
    if x.dtype != filters.dtype or x.dtype.kind != "f":
        raise TypeError(f"conv2d_direct: x and filters must have one float dtype, got {x.dtype} and {filters.dtype}")
    p = _patches_infer(x, ksize=filters.shape[:2], strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    return Aval(p.shape[:3] + (filters.shape[3],), x.dtype)


def _direct_kernel(ins, out, *, strides, dilations, pads):
    x, f = ins
    n, oh, ow, o, kh, kw, c = (K.idx(d) for d in range(7))
    h = oh * strides[0] + kh * dilations[0] - pads[0][0]
    w = ow * strides[1] + kw * dilations[1] - pads[1][0]
    ok = K.binary("and", K.binary("and", h >= 0, h < x.shape[1]), K.binary("and", w >= 0, w < x.shape[2]))
    val = K.where(ok, K.load(0, (n, K.clamp(h, 0, x.shape[1] - 1), K.clamp(w, 0, x.shape[2] - 1), c), x.dtype),
                  K.const(0.0, x.dtype))
    return K.reduce_kernel([K.Buffer(x.shape, x.dtype), K.Buffer(f.shape, f.dtype)], K.Buffer(out.shape, out.dtype),
                           tuple(f.shape[:3]), val * K.load(1, (kh, kw, c, o), f.dtype), "sum", template="conv2d",
                           params=dict(strides=tuple(strides), dilations=tuple(dilations),
                                       pads=tuple(tuple(p) for p in pads)))


def _direct_ref(x, f, *, strides, dilations, pads):
    p = _patches_ref(x, ksize=f.shape[:2], strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    return (p.reshape(-1, f.shape[0] * f.shape[1] * f.shape[2]) @ f.reshape(-1, f.shape[3])).reshape(
        p.shape[:3] + (f.shape[3],))


def _direct_grad(g, y, x, f, *, strides, dilations, pads):
    """The im2col form's gradients (the matmul's two products, then col2im for ``x``): the same
    kernels as that form's backward, so training results do not depend on which form ran forward
    (a direct backward was not built nor measured)."""
    kh, kw, c, o = f.shape
    n, oh, ow = g.shape[:3]
    m, k = n * oh * ow, kh * kw * c
    g2 = reshape(g, (m, o))
    p = extract_patches(x, ksize=(kh, kw), strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    df = reshape(matmul(reshape(p, (m, k)), g2, transpose_a=True), tuple(f.shape))
    cols = matmul(g2, reshape(f, (k, o)), transpose_b=True)
    dx = extract_patches_grad(reshape(cols, (n, oh, ow, kh, kw, c)), shape=tuple(x.shape), ksize=(kh, kw),
                              strides=strides, dilations=dilations, pads=pads)
    return dx, df


conv2d_direct = Op(
    "conv2d_direct", infer=_direct_infer, reference=_direct_ref, kernel=_direct_kernel, grad=_direct_grad,
    attrs=dict(strides=POSITIVE_PAIR, dilations=POSITIVE_PAIR, pads=PADS),
    doc="""conv2d (one group, NHWC, HWIO filters) as one direct reduction: no im2col buffer.
    :func:`conv2d` picks it by :func:`direct_conv_wins`; results equal the im2col path's where a
    backend sums both in order (the same ``(kh, kw, c)`` order).

    Args:
        x: ``(N, H, W, C)``, float.
        filters: ``(KH, KW, C, O)``, ``x``'s dtype.
        strides: a positive int or pair.
        dilations: a positive int or pair.
        pads: explicit padding ``((top, bottom), (left, right))``, non-negative ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, O)``, ``x``'s dtype (sizes as :func:`extract_patches` gives them).
    Raises:
        ValueError: wrong ranks or channels, a window larger than the padded input.
        TypeError: dtypes that differ or are not float; non-int window arguments.""")

# ---- depthwise convolution --------------------------------------------------------------------
# groups == C (TF's DepthwiseConv2dNative): ``y[n, oh, ow, c*M + m] = sum over (kh, kw) of
# x[n, oh*s + kh*d - pad, ow*s + kw*d - pad, c] * f[kh, kw, c, m]``, one reduction of KH*KW taps per
# output, summed in (kh, kw) order: the order of the grouped im2col form's batched matmul (one
# input channel per group, K = KH*KW), so each output's sum is that form's. A ``reduce`` kernel
# with the ``depthwise_conv2d`` template hint (its window in ``params``): webgpu/depthwise.py
# lowers it (4 channels per vec4); wasm's generic reduction already vectorises it over the output
# channels, which both operands walk contiguously (bench/bench_conv.py).

def _dw_infer(x: Aval, filters: Aval, *, strides, dilations, pads) -> Aval:
    if len(x.shape) != 4 or len(filters.shape) != 4 or filters.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d_native: x must be (N, H, W, C) and filters (KH, KW, C, M), got shapes "
                         f"{x.shape} and {filters.shape}")
    if x.dtype != filters.dtype or x.dtype.kind != "f":
        raise TypeError(f"depthwise_conv2d_native: x and filters must have one float dtype, got {x.dtype} and "
                        f"{filters.dtype}")
    p = _patches_infer(x, ksize=filters.shape[:2], strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    return Aval(p.shape[:3] + (filters.shape[2] * filters.shape[3],), x.dtype)


def _dw_kernel(ins, out, *, strides, dilations, pads):
    x, f = ins
    mult = f.shape[3]
    n, oh, ow, o, kh, kw = (K.idx(d) for d in range(6))
    c, m = (o, K.const(0, int32)) if mult == 1 else (o // mult, o % mult)
    h = oh * strides[0] + kh * dilations[0] - pads[0][0]
    w = ow * strides[1] + kw * dilations[1] - pads[1][0]
    ok = K.binary("and", K.binary("and", h >= 0, h < x.shape[1]), K.binary("and", w >= 0, w < x.shape[2]))
    val = K.where(ok, K.load(0, (n, K.clamp(h, 0, x.shape[1] - 1), K.clamp(w, 0, x.shape[2] - 1), c), x.dtype),
                  K.const(0.0, x.dtype))
    return K.reduce_kernel([K.Buffer(x.shape, x.dtype), K.Buffer(f.shape, f.dtype)], K.Buffer(out.shape, out.dtype),
                           tuple(f.shape[:2]), val * K.load(1, (kh, kw, c, m), f.dtype), "sum",
                           template="depthwise_conv2d", params=dict(strides=tuple(strides), dilations=tuple(dilations),
                                                                     pads=tuple(tuple(p) for p in pads)))


def _dw_ref(x, f, *, strides, dilations, pads):
    p = _patches_ref(x, ksize=f.shape[:2], strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    y = 0
    for i in range(f.shape[0]):         # the kernel's (kh, kw) order
        for j in range(f.shape[1]):
            y = y + p[:, :, :, i, j, :, None] * f[i, j]
    return y.reshape(p.shape[:3] + (-1,)).astype(x.dtype)


def _dw_grad(g, y, x, f, *, strides, dilations, pads):
    """The grouped im2col form's gradients (its batched matmul's two products over the C groups,
    then col2im for ``x``), so training does not depend on which form ran forward."""
    kh, kw, c, mult = f.shape
    n, oh, ow = g.shape[:3]
    m, k = n * oh * ow, kh * kw
    gg = transpose(reshape(g, (m, c, mult)), (1, 0, 2))                            # (C, M', mult)
    p = extract_patches(x, ksize=(kh, kw), strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    pg = transpose(reshape(p, (m, k, c)), (2, 0, 1))                              # (C, M', KH*KW)
    fg = transpose(reshape(f, (k, c, mult)), (1, 0, 2))                           # (C, KH*KW, mult)
    df = reshape(transpose(matmul(pg, gg, transpose_a=True), (1, 0, 2)), tuple(f.shape))
    cols = transpose(matmul(gg, fg, transpose_b=True), (1, 2, 0))                 # (M', KH*KW, C)
    dx = extract_patches_grad(reshape(cols, (n, oh, ow, kh, kw, c)), shape=tuple(x.shape), ksize=(kh, kw),
                              strides=strides, dilations=dilations, pads=pads)
    return dx, df


depthwise_conv2d_native = Op(
    "depthwise_conv2d_native", infer=_dw_infer, reference=_dw_ref, kernel=_dw_kernel, grad=_dw_grad,
    attrs=dict(strides=POSITIVE_PAIR, dilations=POSITIVE_PAIR, pads=PADS),
    doc="""Depthwise convolution (TF's DepthwiseConv2dNative; NHWC, filters ``(KH, KW, C, M)``) as one
    direct reduction of ``KH * KW`` taps per output: no im2col buffer. :func:`conv2d` with
    ``groups == C`` and :func:`depthwise_conv2d` use it (float32); results equal the grouped im2col
    form's where a backend sums both in order (the same ``(kh, kw)`` order).

    Args:
        x: ``(N, H, W, C)``, float.
        filters: ``(KH, KW, C, M)`` (M: the channel multiplier), ``x``'s dtype.
        strides: a positive int or pair.
        dilations: a positive int or pair.
        pads: explicit padding ``((top, bottom), (left, right))``, non-negative ints.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, C * M)``, ``x``'s dtype; output channel ``c * M + m`` is input channel ``c``
        convolved with ``filters[:, :, c, m]`` (sizes as :func:`extract_patches` gives them).
    Raises:
        ValueError: wrong ranks or channels, a window larger than the padded input.
        TypeError: dtypes that differ or are not float; non-int window arguments.""")

# The cost rule: direct where the im2col buffer costs more than the window's address arithmetic.
# Measured (bench/bench_conv.py, 2-vCPU Xeon shared with other jobs, 18:55-19:00 UTC 2026-12-05;
# im2col time / direct time, best of 3 alternating rounds): wasm (wasmtime) 1.46x at K = 9
# (28x28x1 -> 16), 1.25-2.4x at K = 27, 1.12x at K = 72, 1.02x at K = 144 (14x14x16 -> 32),
# 0.86x at K = 256-288, 1.08x above (noise); Dawn/SwiftShader in Node (bench_webgpu_peers.mjs,
# the digits CNN, both layers direct: K = 9 and 144): CNN / jax-js x1.15-1.54 -> x1.35-1.97. Mesa's lavapipe
# favours im2col at K <= 72 (0.65-0.9x), a software adapter's artefact that is not the target.
# The output channels O did not decide it on either backend (1x1 convolutions, O = 16 .. 256).
DIRECT_MAX_K = 160


def direct_conv_wins(k: int) -> bool:
    """Whether a one-group convolution with ``k = KH * KW * C`` taps per output runs faster as
    :data:`conv2d_direct` than as im2col + matmul (the measured rule above).

    Args:
        k: window taps per output (``KH * KW * C``).
    """
    return k <= DIRECT_MAX_K


def _pads(padding, size, ksize, strides, dilations):
    """TF padding rules: 'valid' = none; 'same' = output ceil(in/stride), extra pad at the end;
    explicit pairs as given (``padding`` as the PADDING kind normalised it)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        out = []
        for n, k, s, d in zip(size, ksize, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    return padding


_FORMAT = one_of("NHWC", "NCHW")


def _to_nhwc(x, data_format, op):
    if len(x.shape) != 4:
        raise ValueError(f"{op}: input must have rank 4 ({data_format}), got shape {tuple(x.shape)}")
    return transpose(x, (0, 2, 3, 1)) if data_format == "NCHW" else x


def _from_nhwc(y, data_format):
    return transpose(y, (0, 3, 1, 2)) if data_format == "NCHW" else y


def _patches(x, ksize, strides, padding, dilations, pad_value, op):
    ksize, strides, dilations = normalize_pair(ksize, "ksize"), normalize_pair(strides, "strides"), normalize_pair(dilations, "dilations")
    pads = _pads(padding, x.shape[1:3], ksize, strides, dilations)
    return extract_patches(x, ksize=ksize, strides=strides, dilations=dilations, pads=pads,
                           pad_value=pad_value)


_DILATIONS = optional(POSITIVE_PAIR)


def _grouped(c, c_per_group, c_out):
    """Do filters of ``c_per_group`` input and ``c_out`` output channels split ``c`` input
    channels into groups (``c / c_per_group`` of them, dividing ``c_out`` too)?"""
    return c_per_group > 0 and c % c_per_group == 0 and c_out % (c // c_per_group) == 0


@op_signature(strides=POSITIVE_PAIR, padding=PADDING, data_format=_FORMAT, dilations=_DILATIONS)
def conv2d(x, filters, strides=1, padding="valid", data_format="NHWC", dilations=None):
    """2-D convolution (cross-correlation, as tf.nn.conv2d), computed directly (``conv2d_direct``:
    one reduction per output, no im2col buffer) for one group and a small window
    (``direct_conv_wins``), depthwise ones (one input channel per group, float32) as
    ``depthwise_conv2d_native`` (one reduction of ``KH * KW`` taps per output), else as im2col +
    matmul (one batched matmul over the groups); grouped when ``filters`` has fewer input channels than ``x``:
    ``G = C / filters.shape[2]`` groups, output channels ``[g*O/G, (g+1)*O/G)`` see input channels
    ``[g*C/G, (g+1)*C/G)``, as TF's grouped convolution.
    ``OH = ceil(H / stride)`` for 'same', ``(H - (KH - 1) * dilation - 1) // stride + 1`` for 'valid'.

    Args:
        x: ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)`` (NCHW); float.
        filters: ``(KH, KW, C / G, O)`` (TF's HWIO), ``x``'s dtype.
        strides: a positive int or a pair ``(sh, sw)``.
        padding: 'valid', 'same' (TF's rule, extra padding at the end; any case) or explicit
            ``((top, bottom), (left, right))``.
        data_format: 'NHWC' or 'NCHW'.
        dilations: a positive int or a pair; None: 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, O)`` (NHWC) or ``(N, O, OH, OW)`` (NCHW), ``x``'s dtype.
    Raises:
        ValueError: wrong ranks, channels not divisible into groups, non-positive strides or
            dilations, unknown padding or data_format. TypeError: strides or dilations not ints.
    """
    x, filters = as_tensor(x), as_tensor(filters)
    x = _to_nhwc(x, data_format, "conv2d")
    c = x.shape[3]
    if len(filters.shape) != 4 or not _grouped(c, *filters.shape[2:]):
        raise ValueError(f"conv2d: filters must be (KH, KW, C_in/groups, C_out) with C_in={c} and C_out divisible "
                         f"by groups, got {tuple(filters.shape)}")
    kh, kw, cg, o = filters.shape
    g = c // cg
    dilations = normalize_pair(dilations or 1, "dilations")
    pads = _pads(padding, x.shape[1:3], (kh, kw), strides, dilations)
    if g == 1 and x.dtype == float32 and direct_conv_wins(kh * kw * c):     # the templates are float32
        return _from_nhwc(conv2d_direct(x, filters, strides=strides, dilations=dilations, pads=pads), data_format)
    if g > 1 and cg == 1 and x.dtype == float32:       # depthwise: one input channel per group
        y = depthwise_conv2d_native(x, reshape(filters, (kh, kw, c, o // c)), strides=strides, dilations=dilations,
                                    pads=pads)
        return _from_nhwc(y, data_format)
    p = extract_patches(x, ksize=(kh, kw), strides=strides, dilations=dilations, pads=pads, pad_value=0.0)
    n, oh, ow = p.shape[:3]
    m = n * oh * ow
    if g == 1:
        y = matmul(reshape(p, (m, kh * kw * c)), reshape(filters, (kh * kw * c, o)))
    else:   # (G, M, KH*KW*C/G) @ (G, KH*KW*C/G, O/G) -> (G, M, O/G)
        pg = reshape(transpose(reshape(p, (m, kh * kw, g, cg)), (2, 0, 1, 3)), (g, m, kh * kw * cg))
        fg = reshape(transpose(reshape(filters, (kh, kw, cg, g, o // g)), (3, 0, 1, 2, 4)), (g, kh * kw * cg, o // g))
        y = reshape(transpose(matmul(pg, fg), (1, 0, 2)), (m, o))
    return _from_nhwc(reshape(y, (n, oh, ow, o)), data_format)


def _width(v, c):
    """conv1d's stride or dilation: a positive int or a sequence of one."""
    i = _int(v)
    s = (i,) if i is not None else _ints(v)
    if s is None or len(s) != 1:
        raise c.type_error("an int or a sequence of one int", v)
    if s[0] <= 0:
        raise c.value_error("must be a positive integer", v)
    return s[0]


def _padding_1d(v, c):
    """'valid', 'same' (any case) or explicit ``(left, right)`` -> the 2-D form conv2d takes."""
    if isinstance(v, str):
        if v.lower() not in ("valid", "same"):
            raise c.value_error("must be 'valid', 'same' or (left, right)", v)
        return v.lower()
    return PADS(((0, 0), v), c)


@op_signature(stride=_width, padding=_padding_1d, data_format=one_of("NWC", "NCW"), dilations=optional(_width))
def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None):
    """1-D convolution (cross-correlation, as tf.nn.conv1d), grouped as :func:`conv2d`.
    Computed as :func:`conv2d` on a height-1 image; ``OW`` as :func:`conv2d`'s ``OW``.

    Args:
        input: ``(N, W, C)`` (NWC) or ``(N, C, W)`` (NCW); float.
        filters: ``(K, C / G, O)``, ``input``'s dtype (``G`` groups, as :func:`conv2d`).
        stride: a positive int (or a sequence of one).
        padding: 'valid', 'same' (TF's rule; any case) or explicit ``(left, right)``.
        data_format: 'NWC' or 'NCW'.
        dilations: a positive int (or a sequence of one); None: 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OW, O)`` (NWC) or ``(N, O, OW)`` (NCW), ``input``'s dtype.
    Raises:
        ValueError: wrong ranks or channels, non-positive stride or dilations, unknown padding or
            data_format.
        TypeError: stride or dilations not ints.
    """
    x, filters = as_tensor(input), as_tensor(filters)
    if len(x.shape) != 3:
        raise ValueError(f"conv1d: input must have rank 3 ({data_format}), got shape {tuple(x.shape)}")
    if data_format == "NCW":
        x = transpose(x, (0, 2, 1))
    c = x.shape[2]
    if len(filters.shape) != 3 or not _grouped(c, *filters.shape[1:]):
        raise ValueError(f"conv1d: filters must be (K, C_in/groups, C_out) with C_in={c} and C_out divisible by "
                         f"groups, got {tuple(filters.shape)}")
    y = conv2d(expand_dims(x, 1), expand_dims(filters, 0), strides=(1, stride), padding=padding,
               dilations=(1, dilations or 1))
    y = reshape(y, (y.shape[0], y.shape[2], y.shape[3]))
    return transpose(y, (0, 2, 1)) if data_format == "NCW" else y


@op_signature(output_shape=SHAPE, strides=POSITIVE_PAIR, padding=PADDING, data_format=_FORMAT,
              dilations=_DILATIONS)
def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC", dilations=None):
    """The transpose (gradient with respect to its input) of :func:`conv2d`, as
    tf.nn.conv2d_transpose: each input pixel scatters ``filters`` into the output. The conv2d of
    an ``output_shape`` tensor with the same ``strides``, ``padding``, ``dilations`` must give the
    input's height and width. Computed as a matmul followed by col2im (``extract_patches_grad``).

    Args:
        input: ``(N, H, W, C_in)`` (NHWC) or ``(N, C_in, H, W)`` (NCHW); float.
        filters: ``(KH, KW, C_out, C_in)`` (TF's layout: output channels before input channels),
            ``input``'s dtype.
        output_shape: the result's 4 sizes in ``data_format`` order (ints).
        strides: a positive int or a pair ``(sh, sw)``.
        padding: 'valid', 'same' (any case) or explicit ``((top, bottom), (left, right))``: the
            padding of the conv2d this op transposes.
        data_format: 'NHWC' or 'NCHW'.
        dilations: a positive int or a pair; None: 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of shape ``output_shape`` and ``input``'s dtype.
    Raises:
        ValueError: wrong ranks, channels or batch that do not match, an ``output_shape`` whose
            conv2d does not give the input's size; bad strides, dilations, padding, data_format.
        TypeError: ``output_shape``, strides or dilations not ints.
    """
    x, filters = as_tensor(input), as_tensor(filters)
    x = _to_nhwc(x, data_format, "conv2d_transpose")
    n, h, w, cin = x.shape
    if len(filters.shape) != 4 or filters.shape[3] != cin:
        raise ValueError(f"conv2d_transpose: filters must be (KH, KW, C_out, C_in={cin}), got {tuple(filters.shape)}")
    kh, kw, o, _ = filters.shape
    if len(output_shape) != 4:
        raise ValueError(f"conv2d_transpose: output_shape must have 4 entries ({data_format}), got {output_shape}")
    on, oh, ow, oc = (output_shape[0], output_shape[2], output_shape[3], output_shape[1]) \
        if data_format == "NCHW" else output_shape
    dilations = dilations or (1, 1)
    padding = padding.lower() if isinstance(padding, str) else padding   # the default 'SAME' skips the check
    pads = _pads(padding, (oh, ow), (kh, kw), strides, dilations)
    got = (_out_size(oh, kh, strides[0], dilations[0], *pads[0]), _out_size(ow, kw, strides[1], dilations[1], *pads[1]))
    if on != n or oc != o or got != (h, w):
        raise ValueError(f"conv2d_transpose: output_shape {tuple(output_shape)} does not fit: its batch and channels "
                         f"must be ({n}, {o}) and its conv2d ({padding!r} padding, strides {strides}) must give the "
                         f"input's {h}x{w}, but gives {got[0]}x{got[1]}")
    cols = matmul(reshape(x, (n * h * w, cin)), reshape(filters, (kh * kw * o, cin)), transpose_b=True)
    y = extract_patches_grad(reshape(cols, (n, h, w, kh, kw, o)), shape=(n, oh, ow, o), ksize=(kh, kw),
                             strides=strides, dilations=dilations, pads=pads)
    return _from_nhwc(y, data_format)


@op_signature(strides=POSITIVE_PAIR, padding=PADDING, data_format=_FORMAT, dilations=_DILATIONS)
def depthwise_conv2d(input, filter, strides, padding, data_format="NHWC", dilations=None):
    """Depthwise 2-D convolution, as tf.nn.depthwise_conv2d: input channel ``c`` is convolved with
    ``filter[:, :, c, :]`` alone, giving output channels ``c*M .. c*M + M - 1``.

    Computed directly for float32 (:data:`depthwise_conv2d_native`: one reduction of ``KH * KW``
    taps per output), else as im2col, a broadcast product and a sum over the window; ``OH``, ``OW``
    as :func:`conv2d`'s.

    Args:
        input: ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)`` (NCHW); float.
        filter: ``(KH, KW, C, M)`` (M: the channel multiplier), ``input``'s dtype.
        strides: a positive int or a pair ``(sh, sw)``.
        padding: 'valid', 'same' (TF's rule; any case) or explicit ``((top, bottom), (left, right))``.
        data_format: 'NHWC' or 'NCHW'.
        dilations: a positive int or a pair; None: 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, C*M)`` (NHWC) or ``(N, C*M, OH, OW)`` (NCHW), ``input``'s dtype.
    Raises:
        ValueError: wrong ranks or channels, bad strides, dilations, padding or data_format.
        TypeError: strides or dilations not ints.
    """
    x, filt = as_tensor(input), as_tensor(filter)
    x = _to_nhwc(x, data_format, "depthwise_conv2d")
    c = x.shape[3]
    if len(filt.shape) != 4 or filt.shape[2] != c:
        raise ValueError(f"depthwise_conv2d: filter must be (KH, KW, C={c}, M), got {tuple(filt.shape)}")
    kh, kw, _, mult = filt.shape
    if x.dtype == float32 and filt.dtype == float32:
        dilations = normalize_pair(dilations or 1, "dilations")
        pads = _pads(padding, x.shape[1:3], (kh, kw), strides, dilations)
        return _from_nhwc(depthwise_conv2d_native(x, filt, strides=strides, dilations=dilations, pads=pads),
                          data_format)
    p = _patches(x, (kh, kw), strides, padding, dilations or 1, 0.0, "depthwise_conv2d")
    y = reduce_sum(expand_dims(p, -1) * filt, axes=(3, 4), keepdims=False)     # (N, OH, OW, C, M)
    n, oh, ow = p.shape[:3]
    return _from_nhwc(reshape(y, (n, oh, ow, c * mult)), data_format)


_POOL = dict(pool_size=POSITIVE_PAIR, strides=optional(POSITIVE_PAIR), padding=PADDING, data_format=_FORMAT)


@op_signature(**_POOL)
def max_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="NHWC"):
    """Max pooling (tf.nn.max_pool2d): the maximum of each window; 'same' padding never wins the max
    (it reads -inf).

    Args:
        x: ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)`` (NCHW).
        pool_size: window size, a positive int or pair.
        strides: window step, a positive int or pair; None: ``pool_size``.
        padding: 'valid', 'same' or explicit ``((top, bottom), (left, right))``.
        data_format: 'NHWC' or 'NCHW'.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, C)`` (or NCHW), ``x``'s dtype; sizes as :func:`conv2d` gives them.
    Raises:
        TypeError: window arguments that are not ints.
        ValueError: rank other than 4, non-positive sizes, unknown padding or data_format.
    """
    x = _to_nhwc(as_tensor(x), data_format, "max_pool2d")
    pool_size = normalize_pair(pool_size, "pool_size")
    p = _patches(x, pool_size, pool_size if strides is None else strides, padding, 1, float("-inf"), "max_pool2d")
    return _from_nhwc(reduce_max(p, axes=(3, 4), keepdims=False), data_format)


@op_signature(**_POOL)
def avg_pool2d(x, pool_size=2, strides=None, padding="valid", data_format="NHWC"):
    """Average pooling (tf.nn.avg_pool2d): the mean of each window; with 'same' padding the mean
    counts only real elements (as TF).

    Args:
        x: ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)`` (NCHW), float.
        pool_size: window size, a positive int or pair.
        strides: window step, a positive int or pair; None: ``pool_size``.
        padding: 'valid', 'same' or explicit ``((top, bottom), (left, right))``.
        data_format: 'NHWC' or 'NCHW'.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(N, OH, OW, C)`` (or NCHW), ``x``'s dtype.
    Raises:
        TypeError: window arguments that are not ints.
        ValueError: rank other than 4, non-positive sizes, unknown padding or data_format.
    """
    x = _to_nhwc(as_tensor(x), data_format, "avg_pool2d")
    pool_size = normalize_pair(pool_size, "pool_size")
    strides = pool_size if strides is None else strides
    p = _patches(x, pool_size, strides, padding, 1, 0.0, "avg_pool2d")
    total = reduce_sum(p, axes=(3, 4), keepdims=False)
    ones = _patches(as_tensor([[[[1.0]] * x.shape[2]] * x.shape[1]]).to(x.device), pool_size, strides, padding, 1,
                    0.0, "avg_pool2d")
    count = reduce_sum(ones, axes=(3, 4), keepdims=False)  # (1, OH, OW, 1); constant-folds
    return _from_nhwc(total / count, data_format)


# ---- softmax family (max-subtracted: no overflow for large logits) -----------------------------

@op_signature(axis=axes_of("x"), keepdims=BOOL)
def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` along ``axis`` (tf.reduce_logsumexp), computed as
    ``m + log(sum(exp(x - m)))`` with ``m = max(x)``, so large inputs do not overflow.

    Args:
        x: float tensor of any shape.
        axis: an int, a tuple of ints, or None (all axes).
        keepdims: keep reduced axes with size 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        The reduced tensor, ``x``'s dtype.
    Raises:
        TypeError: ``axis`` not None, an int or ints; ``keepdims`` not a bool.
        ValueError: an axis out of range or repeated.
    """
    x = as_tensor(x)
    axes = tuple(range(len(x.shape))) if axis is None else \
        (normalize_axis(axis, len(x.shape), "logsumexp"),) if isinstance(axis, int) else \
        tuple(normalize_axis(a, len(x.shape), "logsumexp") for a in axis)
    m = stop_gradient(reduce_max(x, axes=axes, keepdims=True))
    r = log(reduce_sum(exp(x - m), axes=axes, keepdims=True)) + m
    return r if keepdims else reshape(r, [d for i, d in enumerate(r.shape) if i not in axes])


@op_signature(axis=axis_of("x"))
def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis)`` (tf.nn.log_softmax), stable for large inputs.

    Args:
        x: float tensor of any shape.
        axis: the axis to normalise (an int; negative counts from the end).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape and dtype.
    Raises:
        TypeError: ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    x = as_tensor(x)
    return x - logsumexp(x, axis, keepdims=True)


@op_signature(axis=axis_of("x"))
def softmax(x, axis=-1):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (tf.nn.softmax), stable for large inputs.

    Args:
        x: float tensor of any shape.
        axis: the axis to normalise (an int; negative counts from the end).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape and dtype whose slices along ``axis`` sum to 1.
    Raises:
        TypeError: ``axis`` not an int. ValueError: ``axis`` out of range.
    """
    x = as_tensor(x)
    axes = (normalize_axis(axis, len(x.shape), "softmax"),)
    e = exp(x - stop_gradient(reduce_max(x, axes=axes, keepdims=True)))
    return e / reduce_sum(e, axes=axes, keepdims=True)


# ---- losses (per example; reduce with mean as Keras does) --------------------------------------

@op_signature(axis=axis_of("logits"), from_logits=BOOL)
def softmax_cross_entropy(labels, logits, axis=-1, from_logits=True):
    """Cross-entropy per example (tf.nn.softmax_cross_entropy_with_logits):
    ``-sum(labels * log_softmax(logits), axis)``; with ``from_logits=False`` the scores are
    probabilities, clipped to ``[1e-7, 1 - 1e-7]`` before the log (as Keras).

    Args:
        labels: probabilities (one-hot or soft), ``(..., C)``, float.
        logits: scores of ``labels``' shape and dtype.
        axis: the class axis.
        from_logits: whether ``logits`` are unnormalised scores (True) or probabilities.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``logits``' shape without ``axis``, ``logits``' dtype.
    Raises:
        ValueError: shapes differ; ``axis`` out of range. TypeError: ``axis`` not an int,
            ``from_logits`` not a bool.
    """
    labels, logits = as_tensor(labels), as_tensor(logits)
    if tuple(labels.shape) != tuple(logits.shape):
        raise ValueError(f"softmax_cross_entropy: labels shape {tuple(labels.shape)} != logits shape "
                         f"{tuple(logits.shape)}")
    logp = log_softmax(logits, axis) if from_logits else log(_clip_probs(logits))
    return neg(reduce_sum(mul(labels, logp), axes=(normalize_axis(axis, len(logits.shape), "softmax_cross_entropy"),),
                          keepdims=False))


@op_signature(from_logits=BOOL)
def sparse_softmax_cross_entropy(labels, logits, from_logits=True):
    """Cross-entropy per example with integer class labels
    (tf.nn.sparse_softmax_cross_entropy_with_logits): ``-log_softmax(logits)[label]``.

    A label outside ``[0, C)`` raises ValueError when its value is known (eager). Inside
    ``webtensor.function`` it is not known: that row's loss and its gradient are NaN (as
    TensorFlow's GPU kernels give), so the training run shows it instead of looking healthy.

    Args:
        labels: class indices ``(...)``, int32 (others are cast, floats truncating).
        logits: float scores ``(..., C)`` (probabilities with ``from_logits=False``).
        from_logits: whether ``logits`` are unnormalised scores (True) or probabilities.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(...)``, ``logits``' dtype.
    Raises:
        ValueError: labels shape is not logits shape without its last axis; a known label out of range.
        TypeError: ``from_logits`` not a bool.
    """
    labels, logits = as_tensor(labels), as_tensor(logits)
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"sparse_softmax_cross_entropy: labels shape {tuple(labels.shape)} must equal logits "
                         f"shape without its last axis {tuple(logits.shape[:-1])}")
    if labels.dtype != int32:
        labels = cast(labels, dtype=int32)
    c = logits.shape[-1]
    bad = first_out_of_range(labels, 0, c)
    if bad is not None:
        raise ValueError(f"sparse_softmax_cross_entropy: label {bad[1]} is out of range for {c} classes "
                         f"(labels must be in [0, {c}))")
    # A row whose label is out of range gets a one-hot row of NaN: its loss -sum(row * log p) and
    # the gradient (which multiplies by the row) are NaN through arithmetic alone, on every device.
    valid = expand_dims(logical_and(greater_equal(labels, 0), less(labels, c)), -1)
    oh = where(valid, one_hot(labels, c, dtype=logits.dtype), float("nan"))
    return softmax_cross_entropy(oh, logits, from_logits=from_logits)


def _clip_probs(p, eps=1e-7):
    maximum, minimum = _ops.maximum, _ops.minimum
    return minimum(maximum(p, eps), 1.0 - eps)


@op_signature()
def mse(y_true, y_pred):
    """Mean squared error over the last axis: ``mean((y_pred - y_true)**2, axis=-1)`` (Keras' mse).

    Args:
        y_true: targets ``(..., K)``.
        y_pred: predictions whose shape broadcasts with ``y_true``'s.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        The broadcast shape without its last axis; float32 for int inputs, else the promoted dtype.
    Raises:
        ValueError: shapes that do not broadcast.
    """
    y_true, y_pred = as_tensor(y_true), as_tensor(y_pred)
    d = sub(y_pred, y_true)
    return mean(d * d, axis=-1)
