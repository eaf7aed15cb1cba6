"""The ``depthwise_conv2d`` template (``core/ops/nn.py``'s ``depthwise_conv2d_native``): a direct
depthwise convolution. Each invocation keeps ``RM`` output pixels by 4 adjacent output channels in
``vec4<f32>`` sums (one channel when the channel count is not a multiple of 4), no shared memory,
no barriers: per tap ``(kh, kw)`` the 4 channels' filter values are one vector shared by the
pixels, and each pixel's row and column are computed and tested once for its 4 channels. Output
channel ``o`` reads input channel ``o / M`` (``M``: the channel multiplier), so with ``M == 1``
the 4 lanes read 4 adjacent input channels, with ``M`` a multiple of 4 one channel for all lanes.

Each lane sums its taps in ``(kh, kw)`` order and adds ``0 * f`` for padding taps, as the
generic reduction of the same kernel does, so results are bitwise those of the generic form and
of the grouped im2col form's matmul. Float16 storage falls back to the generic reduction.

Measured on Dawn/SwiftShader in Node (the target adapter of issue 19; exported artifacts, batch 8,
'same' padding, best of 3 alternating runs, 2-vCPU machine at load 10-11, 00:14 UTC 2026-12-06),
generic reduction time / this template's: 56x56x32 3x3 2.05x, 28x28x128 3x3 1.79x, 28x28x64 5x5
1.29x, 28x28x16 3x3 multiplier 4 3.32x (the grouped im2col form: 3.5-4x slower than the generic
reduction at multiplier 1). 1, 2 or 8 pixels per invocation, or one channel per invocation, were
slower. Mesa's lavapipe is mixed (0.65-2.4x, noisy): it already runs invocations in SIMD lanes."""
from __future__ import annotations

import math

from ..core import kernel_ir as K
from ..core.simplify import nodes
from .emit import Epilogue, Inputs, Lowered, Pass, epilogue_store, shader_header, workgroup_grid
from .limits import Limits, storage_type
from .ops import literal

RM = 4              # output pixels per invocation (consecutive in N*OH*OW order)
UNROLL_TAPS = 49    # windows of at most this many taps (7x7) are unrolled; larger ones loop
LANES = "xyzw"


def lower_depthwise(kernel: K.Kernel, limits: Limits) -> Lowered | None:
    """The direct depthwise convolution's pass, or None (the generic reduction lowers the kernel)."""
    if kernel.kind != "reduce" or kernel.n_reduce != 2 or len(kernel.inputs) < 2 or \
            {e.arg for e in nodes(kernel.expr) if e.op == "load"} != {0, 1}:
        return None
    xb, fb = kernel.inputs[:2]      # any others are the epilogue's (core/compile.py)
    if any(storage_type(b.dtype, limits) != "f32" for b in (xb, fb, kernel.out)):
        return None
    n, h, w, c = xb.shape
    kh, kw, _, mult = fb.shape
    _, oh, ow, o = kernel.out.shape
    (sh, sw), (dh, dw), pads = (kernel.param(k) for k in ("strides", "dilations", "pads"))
    (ph, _), (pw, _) = pads
    inside = all(p == 0 for pair in pads for p in pair)
    m = n * oh * ow
    lanes = 4 if o % 4 == 0 else 1
    rm = RM if m >= RM else 1
    groups, blocks = o // lanes, -(-m // rm)
    total = blocks * groups
    wgs = limits.workgroup_size
    grid, wg_line = workgroup_grid(-(-total // wgs), limits)
    ins = Inputs(kernel, limits, 1)
    epi = Epilogue.of(kernel, ins, limits)       # bias, activation: applied where the result is stored
    vt = "vec4<f32>" if lanes == 4 else "f32"
    zero = f"{vt}({literal(0, 'f32')})"

    def vec(offsets):
        vals = [ins.load(k, off, dt) for k, off, dt in offsets]
        return vals[0] if lanes == 1 else f"vec4<f32>({', '.join(vals)})"

    # the input channel of each lane, relative to a pixel's first channel
    splat = lanes == 4 and mult % 4 == 0
    if mult == 1:
        chan = [f"o0 + {lane}" if lane else "o0" for lane in range(lanes)]
        setup = []
    elif splat:
        chan, setup = ["c0"] * 4, [f"let c0 = o0 / {mult};"]
    else:
        chan = [f"c{lane}" for lane in range(lanes)]
        setup = [f"let c{lane} = (o0 + {lane}) / {mult};" for lane in range(lanes)]
    rows = []
    for i in range(rm):      # pixels past the edge read the last pixel and are not stored
        pi = f"min(m0 + {i}, {m - 1})" if m % rm and i else (f"m0 + {i}" if i else "m0")
        rows += [f"let p{i} = {pi};",
                 f"let hb{i} = ((p{i} / {ow}) % {oh}) * {sh} - {ph};",
                 f"let wb{i} = (p{i} % {ow}) * {sw} - {pw};",
                 f"let xb{i} = (p{i} / {oh * ow}) * {h * w * c};"]

    def tap(u, v, t):
        lines = [f"let f = {vec([(1, f'{t} * {o} + o0 + {lane}', fb.dtype) for lane in range(lanes)])};"]
        for i in range(rm):
            hh, ww = f"hb{i} + {u} * {dh}", f"wb{i} + {v} * {dw}"
            if splat:       # one input channel for the 4 lanes
                xv = f"vec4<f32>({ins.load(0, f'x{i} + c0', xb.dtype)})"
            else:
                xv = vec([(0, f"x{i} + {ch}", xb.dtype) for ch in chan])
            if inside:      # no padding: every tap is in the image
                lines += [f"let x{i} = xb{i} + (({hh}) * {w} + {ww}) * {c};", f"acc{i} = acc{i} + {xv} * f;"]
            else:
                lines += [f"let ok{i} = {hh} >= 0 && {hh} < {h} && {ww} >= 0 && {ww} < {w};",
                          f"let x{i} = xb{i} + (clamp({hh}, 0, {h - 1}) * {w} + clamp({ww}, 0, {w - 1})) * {c};",
                          f"acc{i} = acc{i} + select({zero}, {xv}, ok{i}) * f;"]
        return ["{"] + ["  " + x for x in lines] + ["}"]

    if kh * kw <= UNROLL_TAPS:      # taps unrolled: each row's test and address are its bases plus constants
        body = [x for u in range(kh) for v in range(kw) for x in tap(u, v, u * kw + v)]
    else:
        body = [f"for (var u = 0; u < {kh}; u = u + 1) {{", f"  for (var v = 0; v < {kw}; v = v + 1) {{"] + \
            ["    " + x for x in tap("u", "v", f"(u * {kw} + v)")] + ["  }", "}"]
    stores = []
    for i in range(rm):
        for lane in range(lanes):
            acc = f"acc{i}.{LANES[lane]}" if lanes == 4 else f"acc{i}"
            st = f"{{ let o = (m0 + {i}) * {o} + o0 + {lane}; result[o] = {epilogue_store(epi, acc, 'o')}; }}"
            stores.append(f"if (m0 + {i} < {m}) {st}" if m % rm and i else st)
    decls = ins.decls() + [("result", storage_type(kernel.out.dtype, limits), True)]
    nl = "\n  "
    lengths = {**ins.lengths(), "result": math.prod(kernel.out.shape)}     # see shader_header
    src = shader_header(decls, limits, epi.helpers if epi else (), epi.source if epi else "", lengths=lengths) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let g = wg * {wgs} + i32(lid);
  if (g >= {total}) {{ return; }}
  let o0 = (g % {groups}) * {lanes};
  let m0 = (g / {groups}) * {rm};
  {nl.join(setup + rows)}
  {"; ".join(f"var acc{i} = {zero}" for i in range(rm))};
  {nl.join(body)}
  {nl.join(stores)}
}}
"""
    binds = tuple((name, wr) for name, _, wr in ins.decls()) + (("result", True),)
    return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1))])
