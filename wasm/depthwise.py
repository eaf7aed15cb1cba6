"""The ``depthwise_conv2d`` template (``core/ops/nn.py``'s ``depthwise_conv2d_native``) on wasm: the
generic reduction of the kernel, but without its bounds tests. Each image is first copied into
``scratch`` with its padding (zeros) around it; the reduction then reads it at plain affine
offsets, vectorised over the output channels as before. Both parts are kernels of the IR, built
here and lowered generically by ``lower.py`` (which calls them once per image,
``_lower_depthwise``).

Same products in the same order (a padding tap still adds ``0 * f``), so results are bitwise the
generic reduction's. Measured: see ``lower.py``'s ``_lower_depthwise``."""
from __future__ import annotations

from dataclasses import dataclass

from ..core import kernel_ir as K
from ..core.dtypes import int32
from ..core.simplify import nodes


@dataclass(frozen=True)
class Split:
    """``pad``: map kernel over ``(N, Hn, Wn * C)``, the images with their padding (the rows and
    columns the windows read); ``conv``: the reduction over ``(N, OH, OW, O)`` x ``(KH, KW)``
    reading them (input 0, an ``(N, Hn, Wn, C)`` buffer) and the filters (input 1); ``rows``: N;
    ``block``: bytes of one padded image."""
    pad: K.Kernel
    conv: K.Kernel
    rows: int
    block: int


def split(kernel: K.Kernel) -> Split | None:
    """The two kernels for a float32 ``depthwise_conv2d`` kernel without an epilogue, or None."""
    if kernel.template != "depthwise_conv2d" or kernel.kind != "reduce" or kernel.n_reduce != 2 or \
            kernel.epilogue is not None or len(kernel.inputs) < 2 or \
            {e.arg for e in nodes(kernel.expr) if e.op == "load"} != {0, 1} or \
            any(b.dtype.name != "float32" for b in (*kernel.inputs[:2], kernel.out)):
        return None
    xb, fb = kernel.inputs[:2]
    n, h, w, c = xb.shape
    kh, kw, _, mult = fb.shape
    _, oh, ow, o = kernel.out.shape
    (sh, sw), (dh, dw), ((ph, _), (pw, _)) = (kernel.param(k) for k in ("strides", "dilations", "pads"))
    hn, wn = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    dt = xb.dtype
    # image n padded: padded[n, i, j, ch] = x[n, i - ph, j - pw, ch] (0 outside), with (j, ch) as one
    # index t = j*C + ch, so that the map's innermost dim holds the left and right padding and the
    # lowering runs its interior without tests (lower.py, "borders")
    i, t = K.idx(1), K.idx(2)
    hh, tt = i - ph, t - pw * c
    ok = K.binary("and", K.binary("and", hh >= 0, hh < h), K.binary("and", tt >= 0, tt < w * c))
    val = K.where(ok, K.load(0, (K.idx(0), K.clamp(hh, 0, h - 1), K.clamp(tt, 0, w * c - 1)), dt), K.const(0.0, dt))
    pad = K.map_kernel([K.Buffer((n, h, w * c), dt)], K.Buffer((n, hn, wn * c), dt), val)
    # the convolution of the padded image: the kernel's own products at affine offsets
    b, y, q, oc, u, v = (K.idx(d) for d in range(6))
    cc, m = (oc, K.const(0, int32)) if mult == 1 else (oc // mult, oc % mult)
    prod = K.load(0, (b, y * sh + u * dh, q * sw + v * dw, cc), dt) * K.load(1, (u, v, cc, m), dt)
    conv = K.reduce_kernel([K.Buffer((n, hn, wn, c), dt), fb], kernel.out, (kh, kw), prod, "sum")
    return Split(pad, conv, n, 4 * hn * wn * c)
