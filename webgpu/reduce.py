"""``reduce`` kernels: a tree reduction in ``var<workgroup>`` memory (one or several rows per
workgroup), two passes when few rows are very long; argmax/argmin keep the first index on ties
and, like numpy, treat NaN as the extreme value."""
from __future__ import annotations

import math
import re

from ..core import kernel_ir as K
from .emit import BYTES, Emitter, Epilogue, Inputs, Lowered, Pass, epilogue_store, rows_bound, shader_header, \
    store_code, workgroup_grid
from .flatten import Space, flatten, simplifier, topo as flatten_topo
from .limits import Limits, compute_type, storage_type
from .ops import cast_code, literal

_IDENTITY = {"sum": 0, "prod": 1, "max": -math.inf, "min": math.inf}
_INT_IDENTITY = {"sum": 0, "prod": 1, "max": -2 ** 31, "min": 2 ** 31 - 1}
_COMBINE = {"sum": "{0} + {1}", "prod": "{0} * {1}", "max": "wt_max_{t}({0}, {1})", "min": "wt_min_{t}({0}, {1})"}
_COMBINE_INT = {**_COMBINE, "max": "max({0}, {1})", "min": "min({0}, {1})"}
SPLIT_MIN_LENGTH = 1 << 14   # reductions this long over few rows use two passes
SPLIT_CHUNK = 4096           # elements per workgroup in the first of two passes
SERIAL_MAX_LENGTH = 256      # rows this short, when there are at least ...
SERIAL_MIN_ROWS = 64         # ... this many, are summed by one invocation each: no barriers (a bias
#                              gradient's 256 columns of 128 took 104 ms in 8 barrier-synchronised
#                              workgroups on Dawn/SwiftShader, 5 ms serially)


def _threads_per_row(length: int, wgs: int, rows: int) -> int:
    """Invocations cooperating on one row: one for many short rows, else a power of two, about a
    quarter of the row length."""
    if rows >= SERIAL_MIN_ROWS and length <= SERIAL_MAX_LENGTH:
        return 1
    t = 1
    while t < wgs and t * 4 < length:
        t *= 2
    return t


def _better(combiner: str, t: str) -> str:
    """``wt_better(a, ia, b, ib)``: is candidate (a, ia) preferred to (b, ib) for argmax/argmin?
    Index -1 means empty; NaN beats numbers (numpy); ties go to the smaller index."""
    cmp = ">" if combiner == "argmax" else "<"
    # NaN is tested on the bits: shader compilers may fold x != x to false (lavapipe does).
    nan = "" if t == "i32" else """
  let an = (bitcast<u32>(f32(a)) & 0x7fffffffu) > 0x7f800000u;
  let bn = (bitcast<u32>(f32(b)) & 0x7fffffffu) > 0x7f800000u;
  if (an || bn) { return an && (!bn || ia < ib); }"""
    return f"""fn wt_better(a: {t}, ia: i32, b: {t}, ib: i32) -> bool {{
  if (ia < 0) {{ return false; }}
  if (ib < 0) {{ return true; }}{nan}
  if (a {cmp} b) {{ return true; }}
  if (a != b) {{ return false; }}
  return ia < ib;
}}"""


def _reduce_source(*, limits, decls, helpers, combiner, t, rows, length, pre, body, value, index,
                   store, row_split=None, prelude="", per_row=None, lengths=None):
    """One reduction pass: ``(source, grid, workgroup bytes, run-time rows formula or None)``. ``rows`` rows of ``length`` elements; ``pre``/``body`` are the lines before/in
    the loop over ``j`` (``r`` is the row, ``j`` the element); ``value``/``index`` what is combined;
    ``store(acc, acc_i)`` the lines writing row ``row``'s result. ``row_split``: (splits, chunk) when
    this is the first of two passes: row ``row`` covers chunk ``row % splits`` of row ``row / splits``.
    ``per_row``: run-time rows (``emit.py``): rows below ``wt_rows * per_row`` are computed."""
    wgs = limits.workgroup_size
    arg = combiner in ("argmax", "argmin")
    tpr = _threads_per_row(length if row_split is None else row_split[1], wgs, rows)
    rpw = wgs // tpr
    grid, wg_line = workgroup_grid(-(-rows // rpw), limits)
    bound = rows if per_row is None else rows_bound(per_row)
    if arg:
        ident = literal(-math.inf if combiner == "argmax" else math.inf, t) if t != "i32" else \
            literal(-2 ** 31 if combiner == "argmax" else 2 ** 31 - 1, t)
    else:
        ident = literal((_IDENTITY if t != "i32" else _INT_IDENTITY)[combiner], t)
    if row_split is None:
        rowdef, lo, hi = "let r = row;", "0", str(length)
    else:
        s, ch = row_split
        rowdef = f"let r = row / {s};\n    let j0 = (row % {s}) * {ch};"
        lo, hi = "j0", f"min(j0 + {ch}, {length})"
    if arg:
        update = f"if (wt_better({value}, {index}, acc, acc_i)) {{ acc = {value}; acc_i = {index}; }}"
        merge = ("if (wt_better(red_v[lid + {s}], red_i[lid + {s}], red_v[lid], red_i[lid])) "
                 "{{ red_v[lid] = red_v[lid + {s}]; red_i[lid] = red_i[lid + {s}]; }}")
        acc_decl = f"var acc = {ident};\n  var acc_i = -1;"
    else:
        comb = (_COMBINE_INT if t == "i32" else _COMBINE)[combiner]
        update = f"acc = {comb.format('acc', value, t=t)};"
        merge = "red_v[lid] = " + comb.format("red_v[lid]", "red_v[lid + {s}]", t=t) + ";"
        acc_decl = f"var acc = {ident};"
        helpers = set(helpers) | set(re.findall(r"\b(wt_\w+)\(", update))
    pre_s = "\n    ".join(pre)
    body_s = "\n      ".join(body + [update])
    lane = f"i32(lid) % {tpr}" if tpr < wgs else "i32(lid)"
    row = f"wg * {rpw} + i32(lid) / {tpr}" if rpw > 1 else "wg"
    src = f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let row = {row};
  let lane = {lane};
  {acc_decl}
  if (row < {bound}) {{
    {rowdef}
    {pre_s}
    for (var j = {lo} + lane; j < {hi}; j = j + {tpr}) {{
      {body_s}
    }}
  }}
"""
    shared, need = "", 0
    if tpr > 1:
        shared = f"var<workgroup> red_v: array<{t}, {wgs}>;" + (f"\nvar<workgroup> red_i: array<i32, {wgs}>;"
                                                                  if arg else "")
        need = wgs * (BYTES.get(t, 4) + (4 if arg else 0))
        if need > limits.max_compute_workgroup_storage_size:
            raise ValueError(f"a reduction needs {need} bytes of workgroup memory, above this device's "
                             f"maxComputeWorkgroupStorageSize of {limits.max_compute_workgroup_storage_size}")
        src += "  red_v[lid] = acc;\n" + ("  red_i[lid] = acc_i;\n" if arg else "") + "  workgroupBarrier();\n"
        s = tpr // 2
        while s >= 1:
            src += f"  if (lane < {s}) {{ {merge.format(s=s)} }}\n  workgroupBarrier();\n"
            s //= 2
        final, final_i = "red_v[lid]", "red_i[lid]"
        cond = f"lane == 0 && row < {bound}"
    else:
        final, final_i, cond = "acc", "acc_i", f"row < {bound}"
    src += f"  if ({cond}) {{\n    {store(final, final_i)}\n  }}\n}}\n"
    if arg:
        helpers = set(helpers)
        prelude += _better(combiner, t) + "\n"
    formula = None if per_row is None else (per_row, rpw, 1)
    return shader_header(decls, limits, helpers, shared, rows=per_row is not None, lengths=lengths) + prelude + src, \
        grid, need, formula


def lower_reduce(kernel: K.Kernel, limits: Limits, chunk: int | None = None) -> Lowered:
    """``chunk``: run-time rows (``emit.py``) of a kernel whose output's axis 0 holds ``chunk``
    batch rows: its first ``wt_rows * rows / chunk`` output rows (each summed exactly as in the
    chunk: the same invocations per row, the same order) are computed."""
    n_out = len(kernel.out.shape)
    rows = math.prod(kernel.out.shape)
    per = rows // chunk if chunk else None
    length = math.prod(kernel.space[n_out:])
    combiner = kernel.combiner
    arg = combiner in ("argmax", "argmin")
    wgs = limits.workgroup_size
    split = None
    if length >= SPLIT_MIN_LENGTH and rows * 4 < wgs:      # few long rows: most of the device idles
        s = min(1024, -(-length // SPLIT_CHUNK))
        split = (s, -(-length // s))
    ins = Inputs(kernel, limits, 1)
    sp = Space(kernel.space, [range(n_out), range(n_out, len(kernel.space))])
    simp = simplifier((rows, length))
    em = Emitter(limits, simp, {0: "r", 1: "j"}, {0: 1, 1: 2}, ins.load)
    value = em.value(simp(flatten(kernel, sp)))
    vdt = kernel.expr.dtype
    t = compute_type(vdt, limits)
    if t == "bool":                                          # argmax over bools compares 0/1
        value, t = cast_code(value, "bool", "i32"), "i32"
    if t == "f16" and combiner in ("sum", "prod"):          # float16 sums (matmuls) accumulate in f32,
        value, t = cast_code(value, "f16", "f32"), "f32"     # as GPUs' float16 matmuls do; stored as f16
    out_t = compute_type(kernel.out.dtype, limits)
    decls = ins.decls()
    epi = Epilogue.of(kernel, ins, limits)       # applied in the final store
    epi_kw = dict(prelude=epi.source) if epi else {}
    # fixed-size bindings (shader_header), except under run-time rows (the buffers bound hold fewer rows)
    total = rows * (split[0] if split else 1)
    lengths = None if per is not None else {**ins.lengths(), "result": rows, "partials": total * (2 if arg else 1)}
    common = dict(limits=limits, helpers=em.helpers | (epi.helpers if epi else set()), combiner=combiner, t=t,
                  length=length, pre=em.lines[1], body=em.lines[2], value=value, index="j", lengths=lengths)
    if split is None:
        src, grid, shared, formula = _reduce_source(
            decls=decls + [("result", storage_type(kernel.out.dtype, limits), True)], rows=rows,
            store=_final_store(arg, out_t, t, epi), per_row=per, **common, **epi_kw)
        binds = tuple((n, w) for n, _, w in decls) + (("result", True),)
        return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1), shared, formula)])
    s, chunk = split
    carrier = "i32" if t == "i32" else "f32"

    def store_partial(acc, acc_i):
        line = f"partials[row] = bitcast<u32>({carrier}({acc}));"
        return line + (f"\n    partials[{total} + row] = bitcast<u32>({acc_i});" if arg else "")

    common["helpers"] = em.helpers
    decls = ins.decls(_main_inputs(kernel)) if epi else decls   # pass 1: the reduction alone
    src1, grid1, shared1, rows1 = _reduce_source(decls=decls + [("partials", "u32", True)], rows=total,
                                                 store=store_partial, row_split=split,
                                                 per_row=None if per is None else per * s, **common)
    val2 = f"{t}(bitcast<{carrier}>(partials[r * {s} + j]))"
    idx2 = f"bitcast<i32>(partials[{total} + r * {s} + j])"
    decls2 = (ins.decls(epi.inputs) if epi else []) + [("partials", "u32", False),
                                                        ("result", storage_type(kernel.out.dtype, limits), True)]
    src2, grid2, shared2, rows2 = _reduce_source(limits=limits, decls=decls2, helpers=epi.helpers if epi else (),
                                                 combiner=combiner, t=t, rows=rows, length=s, pre=[], body=[],
                                                 value=val2, index=idx2 if arg else "j",
                                                 store=_final_store(arg, out_t, t, epi), per_row=per,
                                                 lengths=lengths, **epi_kw)
    p1 = Pass(src1, tuple((n, w) for n, _, w in decls) + (("partials", True),), grid1, (wgs, 1, 1), shared1, rows1)
    p2 = Pass(src2, tuple((n, w) for n, _, w in decls2), grid2, (wgs, 1, 1), shared2, rows2)
    return ins.lowered([p1, p2], scratch=[("partials", total * (8 if arg else 4))])


def _main_inputs(kernel: K.Kernel) -> set[int]:
    return {e.arg for e in flatten_topo(kernel.expr) if e.op == "load"}


def _final_store(arg: bool, out_t: str, t: str, epi: Epilogue | None = None):
    if epi is not None:                     # float32 reductions only (core/compile.py)
        return lambda acc, acc_i: f"result[row] = {epilogue_store(epi, acc, 'row')};"
    if arg:
        return lambda acc, acc_i: f"result[row] = {acc_i};"
    if t == "f32" and out_t == "f16":       # an f32 accumulator of a float16 sum
        return lambda acc, acc_i: f"result[row] = {cast_code(acc, t, out_t)};"
    return lambda acc, acc_i: f"result[row] = {store_code(acc, out_t)};"
