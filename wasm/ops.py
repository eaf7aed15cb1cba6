"""WebAssembly for one kernel-IR op: the op-to-instruction tables plus the few ops that need more
than one instruction (integer floor division, modulo and power, casts, per-lane fallbacks).
Operands are locals; the result is left on the stack, as a scalar or 4 lanes (``vec``). Bools are
i32 0/1 as scalars and lane masks (-1/0) in vectors."""
from __future__ import annotations

import struct

from ..core.dtypes import bool_, int32
from ..core.simplify import I32MIN
from . import vmath
from .binary import F32, I32, V128, Function


def is_float(dt) -> bool:
    return dt.kind == "f"


# one instruction per op: f32/f32x4 and i32/i32x4 mnemonics without their prefix
_FBIN = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "max", "min": "min",
         "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq", "ne": "ne"}
_IBIN = {"add": "add", "sub": "sub", "mul": "mul", "lt": "lt_s", "le": "le_s", "gt": "gt_s", "ge": "ge_s",
         "eq": "eq", "ne": "ne"}
_SWAP = {"lt": "gt_s", "le": "ge_s", "gt": "lt_s", "ge": "le_s"}   # order of bool masks is reversed


def new_local(f: Function, vec: bool, dt) -> int:
    """A new local of ``dt`` (a v128 for ``vec``), set from the stack."""
    loc = f.local(V128 if vec else (F32 if is_float(dt) else I32))
    f.local_set(loc)
    return loc


def fused_multiplies(order, uses, vector=lambda e: True) -> set:
    """With ``fma``: the float multiplies computed inside the add they feed, as one relaxed-SIMD
    multiply-add (:func:`emit_fused`): of each vector add (or sub: its subtrahend only), the first
    operand that is a vector multiply with one use. ``order``: the nodes; ``uses(x)``: how many
    times ``x`` is an operand; ``vector(x)``: whether ``x`` is computed on vectors. The one rule for
    the generic lowering and the matmul template's epilogue, whose results must be the same bits."""
    fused: set = set()
    for e in order:
        if e.op in ("add", "sub") and is_float(e.dtype) and vector(e):
            for x in (e.args if e.op == "add" else e.args[1:]):
                if x.op == "mul" and uses(x) == 1 and vector(x) and x not in fused:
                    fused.add(x)
                    break
    return fused


def emit_fused(f: Function, e, fused: set, val) -> bool:
    """Push add/sub node ``e`` as ``relaxed_madd``/``relaxed_nmadd`` of its fused multiply
    (:func:`fused_multiplies`) and other operand, or return False where none of its operands is
    fused. ``val(x)``: the local holding 4 lanes of ``x``."""
    if e.op not in ("add", "sub") or not any(x in fused for x in e.args):
        return False
    m = next(x for x in (e.args if e.op == "add" else e.args[1:]) if x in fused)
    other = e.args[1] if e.args[0] is m else e.args[0]
    p, q, c = (val(y) for y in (m.args[0], m.args[1], other))
    f.local_get(p)
    f.local_get(q)
    f.local_get(c)
    f.f32x4_relaxed_madd() if e.op == "add" else f.f32x4_relaxed_nmadd()
    return True


def emit_op(f: Function, e, vec: bool, a: list, fma: bool = False):
    """Push the value of node ``e`` (not a load, const or idx) from its operands' locals ``a``:
    4 lanes (``vec``) or a scalar; ``fma`` lets vmath use relaxed-SIMD multiply-adds."""
    op, dt = e.op, e.dtype
    adt = e.args[0].dtype if e.args else dt
    fl = is_float(adt)
    pre = ("f32x4." if vec else "f32.") if fl else ("i32x4." if vec else "i32.")
    get = lambda *xs: [f.local_get(x) for x in xs]
    if op == "cast":
        return emit_cast(f, adt, dt, vec, a[0])
    if op == "where":
        get(a[1], a[2], a[0])
        return f.v128_bitselect() if vec else f.select()
    if op in vmath.FUNCTIONS:
        f.local_get(vmath.FUNCTIONS[op](vmath.Lanes(f, 4 if vec else 1, fma), a[0]))
        return
    if op == "pow" and fl:
        f.local_get(vmath.pow(vmath.Lanes(f, 4 if vec else 1, fma), a[0], a[1]))
        return
    if op in ("sqrt", "floor", "ceil", "round", "abs", "neg") and fl:
        get(a[0])
        return f.op(pre + {"round": "nearest"}.get(op, op))
    if op in ("floor", "ceil", "round"):
        return get(a[0])                        # integers are already integral
    if op in ("neg", "abs"):
        if vec:
            get(a[0])
            return f.op("i32x4." + op)
        f.i32_const(0)
        get(a[0])
        f.i32_sub()
        if op == "abs":                         # a < 0 ? -a : a
            get(a[0], a[0])
            f.i32_const(0)
            f.i32_lt_s()
            f.select()
        return
    if op == "not":
        get(a[0])
        return f.v128_not() if vec else f.i32_eqz()
    if op in ("and", "or"):
        get(a[0], a[1])
        return f.op(("v128." if vec else "i32.") + op)
    if fl and vec and op in ("max", "min"):
        # f32x4.pmax(x, c) = x < c ? c : x is numpy's maximum when c is a constant (a nan x stays
        # nan) and one instruction, where f32x4.max costs ~8 on x86: relu, clamps
        for var, c in ((0, 1), (1, 0)):
            if e.args[c].op == "const" and e.args[c].arg == e.args[c].arg:
                get(a[var], a[c])
                return f.op(pre + ("pmax" if op == "max" else "pmin"))
    if fl and op in _FBIN:
        get(a[0], a[1])
        return f.op(pre + _FBIN[op])
    if fl and op in ("idiv", "mod"):
        get(a[0], a[1])
        f.op(pre + "div")
        f.op(pre + "floor")
        if op == "mod":                         # a - floor(a / b) * b
            t = new_local(f, vec, adt)
            get(a[0], t, a[1])
            f.op(pre + "mul")
            f.op(pre + "sub")
        return
    if op in ("max", "min"):
        get(a[0], a[1])
        if vec:
            return f.op(f"i32x4.{op}_s")
        get(a[0], a[1])
        f.op("i32.gt_s" if op == "max" else "i32.lt_s")
        return f.select()
    if op in _IBIN:
        get(a[0], a[1])
        if vec and adt == bool_ and op in _SWAP:
            return f.op("i32x4." + _SWAP[op])
        return f.op(pre + _IBIN[op])
    if op in ("idiv", "mod", "div", "pow"):
        if not vec:
            return int_scalar(f, op, a[0], a[1])
        return per_lane(f, op, a)
    raise NotImplementedError(f"wasm lowering: op {op!r} on {adt}")

def emit_cast(f: Function, src, dst, vec: bool, x: int):
    """Push local ``x`` converted from dtype ``src`` to ``dst`` (the IR's cast semantics)."""
    f.local_get(x)
    if src == dst or (is_float(src) and is_float(dst)):
        return
    if is_float(src) and dst == int32:
        return f.i32x4_trunc_sat_f32x4_s() if vec else f.i32_trunc_sat_f32_s()
    if src == int32 and is_float(dst):
        return f.f32x4_convert_i32x4_s() if vec else f.f32_convert_i32_s()
    if src == bool_ and is_float(dst):
        if vec:
            f.v128_const(struct.pack("<f", 1.0) * 4)
            return f.v128_and()
        return f.f32_convert_i32_u()
    if src == bool_ and dst == int32:
        return f.i32x4_neg() if vec else None
    if dst == bool_:
        if is_float(src):
            f.v128_const(bytes(16)) if vec else f.f32_const(0.0)
            return f.f32x4_ne() if vec else f.f32_ne()
        f.v128_const(bytes(16)) if vec else f.i32_const(0)
        return f.i32x4_ne() if vec else f.i32_ne()
    raise NotImplementedError(f"wasm lowering: cast {src} -> {dst}")

def int_scalar(f: Function, op: str, a: int, b: int):
    """Integer floor division / modulo (x // 0 = x % 0 = 0, INT_MIN // -1 wraps) and power."""
    get = lambda *xs: [f.local_get(x) for x in xs]
    if op == "pow":
        return int_pow(f, a, b)
    bb, q, r = f.local(I32), f.local(I32), f.local(I32)
    f.i32_const(1)
    get(b, b)
    f.i32_eqz()
    get(a)
    f.i32_const(I32MIN)
    f.i32_eq()
    get(b)
    f.i32_const(-1)
    f.i32_eq()
    f.i32_and()
    f.i32_or()
    f.select()
    f.local_set(bb)
    get(a, bb)
    f.i32_rem_s()
    f.local_set(r)
    # adjust when the remainder is nonzero and its sign differs from the divisor's
    adj = f.local(I32)
    get(r)
    f.i32_const(0)
    f.i32_ne()
    get(r, bb)
    f.i32_xor()
    f.i32_const(0)
    f.i32_lt_s()
    f.i32_and()
    f.local_set(adj)
    if op == "mod":
        get(r, bb)
        f.i32_const(0)
        get(adj)
        f.select()
        return f.i32_add()
    get(a, bb)
    f.i32_div_s()
    get(adj)
    f.i32_sub()
    f.local_set(q)
    get(q)
    f.i32_const(0)
    get(b)
    f.i32_const(0)
    f.i32_ne()
    return f.select()

def int_pow(f: Function, a: int, b: int):
    """Square-and-multiply; negative exponents give 1 for base 1, +-1 for base -1, else 0."""
    r, base, ex = f.local(I32), f.local(I32), f.local(I32)
    get = lambda *xs: [f.local_get(x) for x in xs]
    f.i32_const(1)
    f.local_set(r)
    get(a)
    f.local_set(base)
    get(b)
    f.local_set(ex)
    get(b)
    f.i32_const(0)
    f.i32_lt_s()
    with f.if_():
        # 1 ** -n = 1; (-1) ** -n = +-1; others truncate to 0
        get(a)
        f.i32_const(1)
        f.i32_eq()
        get(a)
        f.i32_const(-1)
        f.i32_eq()
        f.i32_or()
        with f.if_():
            get(a)
            f.local_set(base)
            f.i32_const(0)
            get(ex)
            f.i32_sub()
            f.local_set(ex)
            f.else_()
            f.i32_const(0)
            f.local_set(r)
            f.i32_const(0)
            f.local_set(ex)
    with f.block():
        with f.loop():
            get(ex)
            f.i32_eqz()
            f.br_if(1)
            get(ex)
            f.i32_const(1)
            f.i32_and()
            with f.if_():
                get(r, base)
                f.i32_mul()
                f.local_set(r)
            get(base, base)
            f.i32_mul()
            f.local_set(base)
            get(ex)
            f.i32_const(1)
            f.i32_shr_u()
            f.local_set(ex)
            f.br(0)
    get(r)

def per_lane(f: Function, op: str, a: list):
    """An integer op without a SIMD instruction, lane by lane."""
    res = f.local(V128)
    f.v128_const(bytes(16))
    f.local_set(res)
    lanes = [f.local(I32) for _ in a]
    for lane in range(4):
        for src, dst in zip(a, lanes):
            f.local_get(src)
            f.i32x4_extract_lane(lane)
            f.local_set(dst)
        int_scalar(f, op, *lanes)
        t = f.local(I32)
        f.local_set(t)
        f.local_get(res)
        f.local_get(t)
        f.i32x4_replace_lane(lane)
        f.local_set(res)
    f.local_get(res)
