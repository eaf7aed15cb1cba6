"""float16 on WebAssembly, which has no half-precision arithmetic: computed in f32, rounded on output.

A kernel whose output is float16 computes in f32 as any other (``dtype.wasm == 'f32'``; float16
<-> float32 casts inside a kernel are no-ops, ``analysis.py``), then its output rows are rounded
in place to the nearest float16 value (IEEE 754 binary16: round to nearest, ties to even;
magnitudes from 65520 up become infinity; subnormals down to 2**-24 are kept; NaN and infinities
pass through). So every float16 tensor holds float16 values, and an eager elementwise op gives
numpy's float16 result for the correctly rounded operations (+ - * / sqrt: f32 has 24 >= 2*11 + 2
bits, so rounding twice equals rounding once, Figueroa 1995), while reductions and matmuls
accumulate in f32 as GPUs' float16 matmuls do. Inside a fused kernel the intermediate values stay
f32 (more precise than float16, never less).

The rounding works on the f32 bits ``u`` (magnitude ``a = u & 0x7fffffff``):

- normal float16 range (``a >= 2**-14``): drop the 13 low mantissa bits with round-to-nearest-even,
  ``(a + 0xfff + ((a >> 13) & 1)) & ~0x1fff``; a result above 65504 is infinity;
- below it: ``(|x| + 0.5) - 0.5`` in f32 rounds |x| to a multiple of 2**-24 (f32's spacing in
  [0.5, 1)), float16's subnormal step, to nearest even;
- the sign is put back; inf and NaN (``a >= 0x7f800000``) are left as they are.
"""
from __future__ import annotations

import struct

from ..core.dtypes import float16
from .binary import I32, V128, Function, Module
from .ir import Lowered, params

_MAG, _SIGN, _KEEP = 0x7FFFFFFF, -0x80000000, -0x2000           # masks as i32 immediates
_MIN_NORMAL, _MAX_F16, _INF = 0x38800000, 0x477FE000, 0x7F800000  # 2**-14, 65504, inf (f32 bits)


def rounded(module: Module, kernel, name: str, export: bool, lower_body) -> Lowered:
    """``kernel``'s function ``name`` for a float16 output: ``lower_body(body_name)`` lowers the
    kernel (computing in f32) as an unexported function, which ``name`` calls before rounding the
    output rows it wrote (``[start, end)``) to float16."""
    low = lower_body(f"{name}_f32")
    n = low.n_inputs
    size = 1
    for s in kernel.out.shape:
        size *= s
    f = module.function(name, params=params(n), export=export)
    for i in range(n + 4):
        f.local_get(i)
    f.call(f"{name}_f32")
    if size:
        _round_rows(f, n, size, low.rows)
    f.finish()
    # an alias of input 0 is exact only when that input is float16 already
    copy = low.copy and kernel.inputs[0].dtype == float16
    return Lowered(name, n, low.rows, low.scratch, copy)


def _round_rows(f: Function, n: int, size: int, rows: int) -> None:
    """Round the output elements of rows ``[start, end)`` (all of them when rows do not split the
    output evenly) in place: 4 lanes at a time, then the scalar tail."""
    per_row = size // rows if rows and size % rows == 0 else None
    p, stop = f.local(I32), f.local(I32)
    for bound, local, whole in ((n + 1, p, 0), (n + 2, stop, size)):
        f.local_get(0)
        if per_row is None:
            f.i32_const(4 * whole)
        else:
            f.local_get(bound)
            f.i32_const(4 * per_row)
            f.i32_mul()
        f.i32_add()
        f.local_set(local)
    for vec in (True, False):
        step = 16 if vec else 4
        with f.block():
            with f.loop():
                f.local_get(p)
                f.i32_const(step)
                f.i32_add()
                f.local_get(stop)
                f.i32_gt_u()
                f.br_if(1)
                f.local_get(p)
                f.local_get(p)
                f.v128_load(0, 0) if vec else f.i32_load()
                _round(f, vec)
                f.v128_store(0, 0) if vec else f.i32_store()
                f.local_get(p)
                f.i32_const(step)
                f.i32_add()
                f.local_set(p)
                f.br(0)


def _round(f: Function, vec: bool) -> None:
    """The f32 bits on the stack (4 lanes, or one i32) -> the bits of the nearest float16 value."""
    loc = (lambda: f.local(V128)) if vec else (lambda: f.local(I32))
    i = "i32x4." if vec else "i32."

    def const(v):
        if vec:
            f.v128_const(struct.pack("<i", v) * 4)
        else:
            f.i32_const(v)

    def op(name):
        f.op(i + name) if not (vec and name in ("and", "or")) else f.op("v128." + name)

    def select():       # stack: a b cond -> cond ? a : b
        f.v128_bitselect() if vec else f.select()

    u, a, r = loc(), loc(), loc()
    f.local_set(u)
    f.local_get(u)
    const(_MAG)
    op("and")
    f.local_set(a)
    # normal range: round the 13 low bits away, ties to even; past 65504 -> inf
    f.local_get(a)
    const(0xFFF)
    op("add")
    f.local_get(a)
    f.i32_const(13)     # a SIMD shift's count is a scalar
    op("shr_u")
    const(1)
    op("and")
    op("add")
    const(_KEEP)
    op("and")
    f.local_set(r)
    const(_INF)
    f.local_get(r)
    f.local_get(r)
    const(_MAX_F16)
    op("gt_u")
    select()
    f.local_set(r)
    # below 2**-14: (|x| + 0.5) - 0.5 rounds to float16's subnormal step 2**-24
    fpre = "f32x4." if vec else "f32."
    f.local_get(a)
    if not vec:
        f.f32_reinterpret_i32()
        f.f32_const(0.5)
    else:
        f.v128_const(struct.pack("<f", 0.5) * 4)
    f.op(fpre + "add")
    if not vec:
        f.f32_const(0.5)
    else:
        f.v128_const(struct.pack("<f", 0.5) * 4)
    f.op(fpre + "sub")
    if not vec:
        f.i32_reinterpret_f32()
    f.local_get(r)
    f.local_get(a)
    const(_MIN_NORMAL)
    op("lt_u")
    select()
    f.local_set(r)
    # inf and NaN unchanged; then the sign
    f.local_get(a)
    f.local_get(r)
    f.local_get(a)
    const(_INF)
    op("ge_u")
    select()
    f.local_get(u)
    const(_SIGN)
    op("and")
    op("or")
