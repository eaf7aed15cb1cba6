"""The ``conv2d`` template (``core/ops/nn.py``'s ``conv2d_direct``): a direct convolution, no
im2col buffer. It is the matmul template's ``direct`` plan (``matmul.py``: each invocation keeps
an rm x rn block of sums in registers, rm output pixels by rn output channels, no shared memory,
no barriers) with the A operand read from the image through each pixel's window instead of from
an im2col matrix: per tap ``(kh, kw)`` a pixel's row and column are computed and tested once,
then its ``C`` channels are read contiguously. The sums run over ``(kh, kw, c)`` in im2col's
order and add ``0 * f`` for padding taps as the im2col matmul does, so results are bitwise those
of the im2col path through the matmul template's direct plan.

Measured on Dawn/SwiftShader and lavapipe (``bench/bench_conv.py``, ``bench/bench_webgpu_peers.mjs``):
see ``core/ops/nn.py``'s ``direct_conv_wins`` for the shapes where it beats im2col + matmul.
Shapes whose matmul would not take the direct plan (tiny outputs, very large products) and
float16 storage fall back to the generic reduction."""
from __future__ import annotations

import math

from ..core import kernel_ir as K
from ..core.simplify import nodes
from .emit import Epilogue, Inputs, Lowered, Pass, epilogue_store, rows_bound, shader_header, workgroup_grid
from .limits import Limits, compute_type, storage_type
from .matmul import choose_plan
from .ops import literal


def lower_conv(kernel: K.Kernel, limits: Limits, chunk: int | None = None) -> Lowered | None:
    """The direct convolution's pass, or None (the generic reduction lowers the kernel). ``chunk``:
    run-time rows (``emit.py``) of a batch of ``chunk`` images: the first row tiles, enough for the
    ``wt_rows`` images' pixels, run; pixels past them are not stored."""
    if kernel.kind != "reduce" or kernel.n_reduce != 3 or len(kernel.inputs) < 2 or \
            {e.arg for e in nodes(kernel.expr) if e.op == "load"} != {0, 1}:
        return None
    xb, fb = kernel.inputs[:2]      # any others are the epilogue's (core/compile.py)
    if any(storage_type(b.dtype, limits) != "f32" for b in (xb, fb, kernel.out)):
        return None
    n, h, w, c = xb.shape
    kh, kw, _, o = fb.shape
    _, oh, ow, _ = kernel.out.shape
    (sh, sw), (dh, dw), ((ph, _), (pw, _)) = (kernel.param(k) for k in ("strides", "dilations", "pads"))
    m = n * oh * ow
    plan = choose_plan(1, m, o, kh * kw * c, limits, direct_only=True)
    if plan is None or plan.kind != "direct":
        return None
    rm, rn, wx, wy = plan.rm, plan.rn, plan.wx, plan.wy
    ins = Inputs(kernel, limits, 1)
    epi = Epilogue.of(kernel, ins, limits)       # bias, activation: applied where the result is stored
    t = compute_type(kernel.out.dtype, limits)
    zero = literal(0, t)
    blocks_m, blocks_n = -(-m // rm), -(-o // rn)
    tiles_n = -(-blocks_n // wx)
    total = -(-blocks_m // wy) * tiles_n
    grid, wg_line = workgroup_grid(total, limits)
    m_rt = rows_bound(m // chunk) if chunk else None       # the run-time pixel rows (images first)
    wg_end = total if m_rt is None else f"(({m_rt} + {rm * wy - 1}) / {rm * wy}) * {tiles_n}"
    bm = blocks_m if m_rt is None else f"({m_rt} + {rm - 1}) / {rm}"
    nl = "\n  "
    rows = []
    for i in range(rm):      # rows past the edge read the last pixel and are not stored
        mi = f"min(m0 + {i}, {m - 1})" if m % rm and i else (f"m0 + {i}" if i else "m0")
        rows += [f"let p{i} = {mi};",
                 f"let hb{i} = ((p{i} / {ow}) % {oh}) * {sh} - {ph};",
                 f"let wb{i} = (p{i} % {ow}) * {sw} - {pw};",
                 f"let xb{i} = (p{i} / {oh * ow}) * {h * w * c};"]
    cols = [f"let cb{j} = {f'min(n0 + {j}, {o - 1})' if o % rn and j else (f'n0 + {j}' if j else 'n0')};"
            for j in range(rn)]
    # taps unrolled, each in its own block: a row's bounds test and address are its bases plus constants
    body = []
    ci = "ci" if c > 1 else "0"
    for u in range(kh):
        for v in range(kw):
            tap = []
            for i in range(rm):
                hh, ww = f"hb{i} + {u * dh}", f"wb{i} + {v * dw}"
                tap += [f"let ok{i} = {hh} >= 0 && {hh} < {h} && {ww} >= 0 && {ww} < {w};",
                        f"let x{i} = xb{i} + (clamp({hh}, 0, {h - 1}) * {w} + clamp({ww}, 0, {w - 1})) * {c};"]
            inner = [f"let a{i} = select({zero}, {ins.load(0, f'x{i} + {ci}', xb.dtype)}, ok{i});" for i in range(rm)]
            inner += [f"let b{j} = {ins.load(1, f'{(u * kw + v) * c * o} + {ci} * {o} + cb{j}', fb.dtype)};"
                      for j in range(rn)]
            inner += [f"acc{i}{j} = acc{i}{j} + a{i} * b{j};" for i in range(rm) for j in range(rn)]
            if c > 1:
                inner = [f"for (var ci = 0; ci < {c}; ci = ci + 1) {{"] + ["  " + x for x in inner] + ["}"]
            body += ["{"] + ["  " + x for x in tap + inner] + ["}"]
    stores = []
    for i in range(rm):
        for j in range(rn):
            conds = ([f"m0 + {i} < {m_rt or m}"] if (m % rm or m_rt) and i else []) + \
                ([f"n0 + {j} < {o}"] if o % rn and j else [])
            st = f"{{ let o = (m0 + {i}) * {o} + n0 + {j}; result[o] = {epilogue_store(epi, f'acc{i}{j}', 'o')}; }}"
            stores.append(f"if ({' && '.join(conds)}) {{ {st} }}" if conds else st)
    decls = ins.decls() + [("result", storage_type(kernel.out.dtype, limits), True)]
    lengths = None if chunk else {**ins.lengths(), "result": math.prod(kernel.out.shape)}   # see shader_header
    src = shader_header(decls, limits, epi.helpers if epi else (), epi.source if epi else "", rows=bool(chunk),
                        lengths=lengths) + f"""
@compute @workgroup_size({wx}, {wy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {{
  {wg_line}
  if (wg >= {wg_end}) {{ return; }}
  let bi = (wg / {tiles_n}) * {wy} + i32(lid3.y);
  let bj = (wg % {tiles_n}) * {wx} + i32(lid3.x);
  if (bi >= {bm} || bj >= {blocks_n}) {{ return; }}
  let m0 = bi * {rm};
  let n0 = bj * {rn};
  {nl.join(rows + cols)}
  {"; ".join(f"var acc{i}{j} = {zero}" for i in range(rm) for j in range(rn))};
  {nl.join(body)}
  {nl.join(stores)}
}}
"""
    binds = tuple((name, wr) for name, _, wr in ins.decls()) + (("result", True),)
    formula = None if m_rt is None else (m // chunk, rm * wy, tiles_n)
    return ins.lowered([Pass(src, binds, grid, (wx, wy, 1), rows=formula)])

