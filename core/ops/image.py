"""Image ops: ``image.resize`` (``tf.image.resize``), a composition of ``gather``, arithmetic and
``matmul``, so it needs no kernel or gradient rule of its own.

Coordinate rule (TF2's ``tf.image.resize``, ``half_pixel_centers=True``; tensorflow/core/kernels/
image/resize_bilinear_op.cc and resize_nearest_neighbor_op.cc), per axis, with input size
``n_in``, output size ``n_out`` and ``scale = n_in / n_out``, computed in float32 as TF's
kernels do (float32 rounding decides ties: TF's documented example relies on it):

- ``"bilinear"``: output index ``i`` samples ``c = (i + 0.5) * scale - 0.5``; with ``f = floor(c)``
  it reads ``lo = max(f, 0)`` and ``hi = min(ceil(c), n_in - 1)`` and weights them as
  ``a + (b - a) * (c - f)``, along the width first, then the height. Output float32.
- ``"nearest"``: ``i`` reads ``min(floor((i + 0.5) * scale), n_in - 1)``. Output keeps the dtype.
- ``"bilinear"`` with ``antialias=True``: TF's ``scale_and_translate`` with its triangle kernel
  (scale_and_translate_op.cc ``ComputeSpansCore``): ``i`` samples ``s = (i + 0.5) / k`` with
  ``k = n_out / n_in``; the kernel's width is ``w = max(1 / k, 1)``; input pixel ``j`` (those within
  ``w`` of ``s - 0.5``, clamped to the image) weighs ``max(0, 1 - |j + 0.5 - s| / w)``, weights
  normalised to sum 1. Applied as one matmul per axis. ``antialias`` changes nothing for ``"nearest"`` (TF).
"""
from __future__ import annotations

import math
import struct

from ..dtypes import float32
from ..op import as_tensor
from ..signature import BOOL, _int, _ints, one_of, op_signature
from ..op import known_values
from .namespace import ops as _ops


def _f32(v: float) -> float:
    """``v`` rounded to float32 (TF computes sample coordinates in float32)."""
    return struct.unpack("f", struct.pack("f", v))[0]


def bilinear_taps(n_in: int, n_out: int):
    """``(lo, hi, frac)`` per output index, by the module's bilinear rule."""
    scale = _f32(n_in / n_out)
    lo, hi, frac = [], [], []
    for i in range(n_out):
        c = _f32(_f32(_f32(i + 0.5) * scale) - 0.5)
        f = math.floor(c)
        lo.append(max(f, 0))
        hi.append(min(math.ceil(c), n_in - 1))
        frac.append(_f32(c - f))
    return lo, hi, frac


def nearest_taps(n_in: int, n_out: int):
    scale = _f32(n_in / n_out)
    return [max(min(math.floor(_f32(_f32(i + 0.5) * scale)), n_in - 1), 0) for i in range(n_out)]


def triangle_weights(n_in: int, n_out: int):
    """The ``(n_out, n_in)`` matrix of the antialiased bilinear rule (module docstring)."""
    inv_scale = _f32(1.0 / _f32(n_out / n_in))
    width = max(inv_scale, 1.0)
    rows = []
    for i in range(n_out):
        s = _f32(_f32(i + 0.5) * inv_scale)
        row = [0.0] * n_in
        if 0 <= s <= n_in:
            start = min(max(math.ceil(s - width - 0.5), 0), n_in - 1)
            end = min(max(math.floor(s + width - 0.5), 0), n_in - 1) + 1
            for j in range(start, end):
                row[j] = max(0.0, 1.0 - abs((j + 0.5 - s) / width))
            total = sum(row)
            if abs(total) >= 1000 * 1.1754943508222875e-38:
                row = [w / total for w in row]
        rows.append(row)
    return rows


def _along(axis, values):
    """Per-output-index weights as a nested list that broadcasts along ``axis`` (1 or 2) of NHWC.
    (Lists, not tensors: an op's dispatcher makes them on its tensor inputs' device.)"""
    return [[[v]] if axis == 1 else [v] for v in values]


def _resample(x, axis, weights):
    """``out[.., i, ..] = sum_j weights[i][j] x[.., j, ..]`` along ``axis``: one matmul."""
    matmul_op = _ops.matmul_op
    reshape, transpose = _ops.reshape, _ops.transpose
    perm = (axis,) + tuple(d for d in range(4) if d != axis)
    xt = transpose(x, perm)
    rest = tuple(xt.shape[1:])
    y = reshape(matmul_op(weights, reshape(xt, (xt.shape[0], -1)), transpose_a=False, transpose_b=False),
                (len(weights),) + rest)
    inv = [0] * 4
    for o, p in enumerate(perm):
        inv[p] = o
    return transpose(y, tuple(inv))


def _size(v, c):
    if hasattr(v, "_aval") and not v.dtype.is_floating and len(v.shape) == 1:     # a tensor: its values, when known
        known = known_values(v)
        v = [int(a) for a in known] if known is not None else v
    s = _ints(v) if _int(v) is None else None
    if s is None:
        raise c.type_error("a pair of ints (new_height, new_width)", v)
    if len(s) != 2 or min(s) <= 0:
        raise c.value_error("must be two positive ints (new_height, new_width)", v)
    return s


def _aspect(h, w, size):
    """TF's ``preserve_aspect_ratio`` size: the largest that fits ``size`` with the image's aspect
    ratio, ``round(min(new_h / h, new_w / w) * (h, w))`` in float32 (round half to even)."""
    s = min(_f32(_f32(size[0]) / _f32(h)), _f32(_f32(size[1]) / _f32(w)))
    return round(_f32(s * h)), round(_f32(s * w))


@op_signature(size=_size, method=one_of("bilinear", "nearest"), preserve_aspect_ratio=BOOL, antialias=BOOL)
def resize(images, size, method="bilinear", preserve_aspect_ratio=False, antialias=False):
    """``tf.image.resize``: NHWC ``images`` (4-D ``(N, H, W, C)`` or 3-D ``(H, W, C)``) resampled to
    ``size = (new_height, new_width)`` by the module's coordinate rule (TF2's half-pixel centers);
    with ``preserve_aspect_ratio``, to the largest size within ``size`` of the image's aspect ratio.
    ``"bilinear"`` returns float32 (other dtypes are cast first); ``"nearest"`` keeps the dtype.
    Differentiable in ``images`` (bilinear; nearest routes the gradient to the pixel read).

    Raises:
        TypeError: ``size`` not ints. ValueError: images not 3-D or 4-D, an empty image, sizes not
            positive, a method other than "bilinear" or "nearest".
    """
    add, cast, mul, sub = _ops.add, _ops.cast, _ops.mul, _ops.sub
    gather_op, reshape = _ops.gather_op, _ops.reshape
    x = as_tensor(images)
    if len(x.shape) not in (3, 4):
        raise ValueError(f"resize: images must be 4-D (N, H, W, C) or 3-D (H, W, C), got shape {tuple(x.shape)}")
    squeeze = len(x.shape) == 3
    if squeeze:
        x = reshape(x, (1,) + tuple(x.shape))
    n, h, w, c = x.shape
    if h == 0 or w == 0:
        raise ValueError(f"resize: cannot resize an empty image of shape {tuple(x.shape)}")
    oh, ow = _aspect(h, w, size) if preserve_aspect_ratio else size
    if method == "nearest":
        y = gather_op(gather_op(x, nearest_taps(w, ow), axis=2), nearest_taps(h, oh), axis=1)
    else:
        if x.dtype != float32:
            x = cast(x, dtype=float32)
        if antialias:
            y = _resample(_resample(x, 1, triangle_weights(h, oh)), 2, triangle_weights(w, ow))
        else:
            y = x
            for axis, (n_in, n_out) in ((2, (w, ow)), (1, (h, oh))):      # width first, as TF
                lo, hi, frac = bilinear_taps(n_in, n_out)
                a, b = gather_op(y, lo, axis=axis), gather_op(y, hi, axis=axis)
                y = add(a, mul(sub(b, a), _along(axis, frac)))
    return reshape(y, tuple(y.shape[1:])) if squeeze else y
