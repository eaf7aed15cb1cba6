"""The ``matmul`` template: a workgroup-tiled kernel with shared-memory tiles and 4x4 outputs per
invocation, batched; operand layouts (transposes, broadcast batch dims) come from the loads'
index expressions, so nothing is materialised. Few output tiles over a long K split K (partial
tiles, then a summing pass); an output that fills under a fifth of its tiles (e.g. 9x16) and
operands that are not affine loads use the generic reduction instead.

``template == 'matmul_q8'`` (``quantized_matmul``: B is an int8 K x N matrix packed four bytes to
an i32 word, times one scale per column): the same kernel, whose B tile loads read the int8 byte
(``extractBits``, sign-extending) and multiply it by its column's scale, so the shared-memory tile
holds the dequantized float32 weights and no float32 copy of B exists outside it."""
from __future__ import annotations

import math

from ..core import kernel_ir as K
from ..core.simplify import Simplifier
from .emit import BYTES, Emitter, Inputs, Lowered, Pass, shader_header, workgroup_grid
from .flatten import Space, add_all, int_const, load_offset, simplifier
from .limits import Limits, compute_type, storage_type
from .ops import cast_code, literal

MATMUL_TK = 16               # k-depth of the matmul template's shared-memory tiles
MATMUL_MIN_WORKGROUPS = 16   # matmuls with fewer output tiles split K ...
MATMUL_SPLIT_K_MIN = 256     # ... into chunks of at least this many
MATMUL_MIN_USE = 0.2         # below this share of useful tile work, the generic reduction is faster


def _operand(e: K.Expr):
    """(load, its cast target or None) for an operand ``load`` or ``cast(load)``."""
    if e.op == "load":
        return e, None
    if e.op == "cast" and e.args[0].op == "load":
        return e.args[0], e.dtype
    return None


def lower_matmul(kernel: K.Kernel, limits: Limits) -> Lowered | None:
    """The tiled matmul, or None (the generic reduction lowers it) when the kernel is not
    ``sum_k A[.., m, k] * B[.., k, n]`` with affine operand indices, or when M x N fills too little
    of the output tiles."""
    q8 = kernel.template == "matmul_q8"
    e = kernel.expr.args[0] if kernel.expr.op == "cast" else kernel.expr
    if kernel.combiner != "sum" or kernel.n_reduce != 1 or e.op != "mul" or len(kernel.space) < 3:
        return None
    ops = [_operand(x) for x in (e.args[:1] if q8 else e.args)]
    if None in ops:
        return None
    space = kernel.space
    nb = len(space) - 3
    M, N, Kd = space[nb], space[nb + 1], space[nb + 2]
    if q8 and (kernel.param("n") != N or ops[0][0].arg != 0):
        return None
    forms = Simplifier(space)
    info = []
    for load, cast_to in ops:
        c0, coefs, rest = load_offset(load, kernel.inputs[load.arg].shape, forms)
        if rest:
            return None
        info.append((load, cast_to, c0, {d: c for d, c in coefs.items() if space[d] > 1 and c}))
    if q8:        # B: element (k, n) of the row-major int8 matrix, in input 1's bytes; scales: input 2
        info.append((None, None, 0, {d: c for d, c in ((nb + 2, N), (nb + 1, 1)) if space[d] > 1}))
    a, b = (info[0], info[1]) if nb + 1 not in info[0][3] else (info[1], info[0])
    if nb + 1 in a[3] or nb in b[3]:
        return None
    if any(x[0] is not None and storage_type(x[0].dtype, limits) == "f16" for x in (a, b)):
        return None   # keep f16 on the generic path until the template has an f16 variant
    ins = Inputs(kernel, limits, 1)
    t = compute_type(kernel.out.dtype, limits)
    ts = 16 if min(limits.max_compute_invocations_per_workgroup, limits.max_compute_workgroup_size_x,
                   limits.max_compute_workgroup_size_y) >= 256 else 8
    rr = 4
    tm = tn = ts * rr
    tk = MATMUL_TK
    while 2 * tk * tm * 4 > limits.max_compute_workgroup_storage_size and tk > 1:
        tk //= 2
    batch = math.prod(space[:nb])
    tiles_n, tiles_m = -(-N // tn), -(-M // tm)
    tiles = batch * tiles_m * tiles_n
    if M * N < MATMUL_MIN_USE * tiles_m * tiles_n * tm * tn:
        return None
    # split-K: few output tiles over a long K leave the device idle; chunks of K (multiples of tk)
    # write partial tiles, a second pass sums them.
    ksplit = 1
    if tiles < MATMUL_MIN_WORKGROUPS and Kd >= 2 * MATMUL_SPLIT_K_MIN:
        ksplit = min(-(-MATMUL_MIN_WORKGROUPS // tiles), Kd // MATMUL_SPLIT_K_MIN)
        while ksplit > 1 and batch * ksplit * M * N * 4 > limits.max_storage_buffer_binding_size:
            ksplit //= 2
    kchunk = -(-(-(-Kd // ksplit)) // tk) * tk
    ksplit = -(-Kd // kchunk)
    total = tiles * ksplit
    grid, wg_line = workgroup_grid(total, limits)
    sp = Space(space, [range(nb)])
    simp = simplifier((batch,))
    em = Emitter(limits, simp, {0: "z"}, {0: 1}, ins.load)

    def base(op_info):
        c0, co = op_info[2], op_info[3]
        if op_info[0] is None:               # q8's B: no batch dims
            return "0"
        return em.value(simp(add_all([int_const(c0)] + sp.runs({d: c for d, c in co.items() if d < nb}))))

    a_base, b_base = base(a), base(b)
    am, ak = a[3].get(nb, 0), a[3].get(nb + 2, 0)
    bk, bn = b[3].get(nb + 2, 0), b[3].get(nb + 1, 0)

    def read(op_info, off):
        load, cast_to = op_info[0], op_info[1]
        if load is None:                     # q8's B at element offset ``off``, column ``gm``
            word = ins.load(1, f"({off}) / 4", kernel.inputs[1].dtype)
            byte = f"extractBits({word}, u32(({off}) % 4) * 8u, 8u)"
            return f"{cast_code(byte, 'i32', t)} * {ins.load(2, 'gm', kernel.inputs[2].dtype)}"
        v = ins.load(load.arg, off, load.dtype)
        return cast_code(v, compute_type(load.dtype, limits), t) if cast_to is not None or \
            compute_type(load.dtype, limits) != t else v

    nthreads = ts * ts
    zero = literal(0, t)

    def tile_load(name, op_info, rows_name, rows_ext, rows_coef, k_coef, tile_rows, base_v):
        # tile[kk * tile_rows + mm]; consecutive invocations read consecutive addresses where possible
        if k_coef == 1 or rows_coef != 1:
            split = f"let mm = e / {tk}; let kk = e % {tk};"
        else:
            split = f"let kk = e / {tile_rows}; let mm = e % {tile_rows};"
        off = f"{base_v} + gm * {rows_coef} + gk * {k_coef}"
        return f"""    for (var e = li; e < {tile_rows * tk}; e = e + {nthreads}) {{
      {split}
      let gm = {rows_name}0 + mm;
      let gk = k0 + kk;
      var v = {zero};
      if (gm < {rows_ext} && gk < {Kd}) {{ v = {read(op_info, off)}; }}
      {name}[kk * {tile_rows} + mm] = v;
    }}"""

    accs = [f"acc{i}{j}" for i in range(rr) for j in range(rr)]
    inner = [f"let a{i} = tile_a[kk * {tm} + ty + {ts * i}];" for i in range(rr)]
    inner += [f"let b{j} = tile_b[kk * {tn} + tx + {ts * j}];" for j in range(rr)]
    inner += [f"acc{i}{j} = acc{i}{j} + a{i} * b{j};" for i in range(rr) for j in range(rr)]
    out_t = storage_type(kernel.out.dtype, limits)
    dest, obase = ("result", f"z * {M * N}") if ksplit == 1 else ("partials", f"(z * {ksplit} + ks) * {M * N}")
    stores = [f"if (m0 + ty + {ts * i} < {M} && n0 + tx + {ts * j} < {N}) {{ "
              f"{dest}[obase + (m0 + ty + {ts * i}) * {N} + n0 + tx + {ts * j}] = acc{i}{j}; }}"
              for i in range(rr) for j in range(rr)]
    pre = "\n  ".join(em.lines[1])
    shared = f"var<workgroup> tile_a: array<{t}, {tk * tm}>;\nvar<workgroup> tile_b: array<{t}, {tk * tn}>;"
    src = shader_header(ins.decls() + [(dest, out_t if ksplit == 1 else t, True)], limits, em.helpers, shared) + f"""
@compute @workgroup_size({ts}, {ts})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {{
  {wg_line}
  if (wg >= {total}) {{ return; }}
  let zk = wg / {tiles_m * tiles_n};
  let z = zk / {ksplit};
  let ks = zk % {ksplit};
  let tile = wg % {tiles_m * tiles_n};
  let m0 = (tile / {tiles_n}) * {tm};
  let n0 = (tile % {tiles_n}) * {tn};
  let tx = i32(lid3.x);
  let ty = i32(lid3.y);
  let li = i32(lidx);
  let obase = {obase};
  {pre}
  {"; ".join(f"var {x} = {zero}" for x in accs)};
  for (var k0 = ks * {kchunk}; k0 < min(ks * {kchunk} + {kchunk}, {Kd}); k0 = k0 + {tk}) {{
{tile_load("tile_a", a, "m", M, am, ak, tm, a_base)}
{tile_load("tile_b", b, "n", N, bn, bk, tn, b_base)}
    workgroupBarrier();
    for (var kk = 0; kk < {tk}; kk = kk + 1) {{
      {(chr(10) + "      ").join(inner)}
    }}
    workgroupBarrier();
  }}
  {(chr(10) + "  ").join(stores)}
}}
"""
    binds = tuple((name, w) for name, _, w in ins.decls()) + ((dest, True),)
    tiled = Pass(src, binds, grid, (ts, ts, 1), BYTES.get(t, 4) * tk * (tm + tn))
    if ksplit == 1:
        return ins.lowered([tiled])
    # second pass: result[b, e] = sum over chunks s of partials[(b * ksplit + s) * M * N + e]
    n_out, wgs = batch * M * N, limits.workgroup_size
    grid2, wg_line2 = workgroup_grid(-(-n_out // wgs), limits)
    src2 = shader_header([("partials", t, False), ("result", out_t, True)], limits) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line2}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n_out}) {{ return; }}
  let first = (gid / {M * N}) * {ksplit * M * N} + gid % {M * N};
  var acc = {zero};
  for (var s = 0; s < {ksplit}; s = s + 1) {{ acc = acc + partials[first + s * {M * N}]; }}
  result[gid] = acc;
}}
"""
    p2 = Pass(src2, (("partials", False), ("result", True)), grid2, (wgs, 1, 1))
    return ins.lowered([tiled, p2], scratch=[("partials", batch * ksplit * M * N * 4)])
