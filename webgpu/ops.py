"""WGSL text for the kernel IR's values: literals, casts and the op table (tinygrad's renderer
style: one format string per IR op; ``wt_*`` names are functions of the helper library,
``helpers.py``). The numerics they implement are described in ``wgsl.py``."""
from __future__ import annotations

import math
import struct

_BITS = {"f32": {"inf": "0x7f800000u", "-inf": "0xff800000u", "nan": "0x7fc00000u"}}


def literal(value, wtype: str) -> str:
    """A WGSL literal of ``wtype`` (f32 f16 i32 u32 bool). WGSL has no inf/nan literals: those are
    ``wt_bits_f32`` (every shader's bitcast helper, see :func:`shader_header`) of their bit patterns."""
    if wtype == "bool":
        return "true" if value else "false"
    if wtype == "u32":
        return f"{int(value)}u"
    if wtype == "i32":
        v = int(value)
        return "i32(-2147483647 - 1)" if v == -2 ** 31 else f"{v}i" if v >= 0 else f"({v}i)"
    v = float(value)
    limit = 3.4028234663852886e38 if wtype == "f32" else 65504.0
    if math.isnan(v) or abs(v) > limit:
        text = "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        if abs(v) < math.inf and wtype == "f32":   # finite doubles past the f32 range may round to max
            try:
                v32 = struct.unpack("<f", struct.pack("<f", v))[0]
                if abs(v32) < math.inf:
                    return _float_text(v32, "f")
            except OverflowError:
                pass
        bits = f"wt_bits_f32({_BITS['f32'][text]})"
        return bits if wtype == "f32" else f"{wtype}({bits})"
    return _float_text(v, "f" if wtype == "f32" else "h")


def _float_text(v: float, suffix: str) -> str:
    """The shortest decimal that reads back as the same f32 (f16 values are exact in f32 too)."""
    r = struct.unpack("<f", struct.pack("<f", v))[0]
    for p in range(6, 18):
        s = f"{r:.{p}g}"
        if struct.unpack("<f", struct.pack("<f", float(s)))[0] == r:
            break
    if "." not in s and "e" not in s:
        s += ".0"
    return f"({s}{suffix})" if s.startswith("-") else f"{s}{suffix}"


def cast_code(x: str, src: str, dst: str) -> str:
    """WGSL conversion of value ``x`` from type ``src`` to ``dst`` (IR cast semantics: float->int
    truncates toward zero, saturates and maps NaN to 0 (``wt_f2i``: WGSL's own conversion clamps to
    2**31 - 128 and leaves NaN undefined), x->bool is x != 0 (NaN is true), bool->number is 0/1)."""
    if src == dst:
        return x
    if dst == "bool":
        return f"(!({x} == {literal(0, src)}))"   # not `!=`: lavapipe compiles it ordered (NaN != 0 false)
    if src == "bool":
        return f"select({literal(0, dst)}, {literal(1, dst)}, {x})"
    if dst == "i32" and src in ("f32", "f16"):
        return f"wt_f2i_{src}({x})"
    return f"{dst}({x})"


# ---- the expression table ----------------------------------------------------------------------
# ``{0}``, ``{1}`` are operand values, ``{t}`` the operands' WGSL type; ``wt_*`` names are helper
# functions (``HELPERS``), emitted once per shader that uses them.

CODE = {
    "neg": "(-{0})", "abs": "abs({0})", "exp": "exp({0})", "log": "log({0})", "sqrt": "sqrt({0})",
    "sin": "sin({0})", "cos": "cos({0})", "tanh": "wt_tanh_{t}({0})", "erf": "wt_erf_{t}({0})",
    "floor": "floor({0})", "ceil": "ceil({0})", "round": "round({0})", "not": "(!{0})",
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "idiv": "floor({0} / {1})", "mod": "wt_mod_{t}({0}, {1})", "max": "wt_max_{t}({0}, {1})",
    "min": "wt_min_{t}({0}, {1})", "pow": "wt_pow_{t}({0}, {1})", "lt": "({0} < {1})", "le": "({0} <= {1})",
    "eq": "({0} == {1})", "ne": "(!({0} == {1}))", "gt": "({0} > {1})", "ge": "({0} >= {1})",
    "and": "({0} & {1})", "or": "({0} | {1})",
}
CODE_INT = {"floor": "{0}", "ceil": "{0}", "round": "{0}", "div": "wt_floordiv_{t}({0}, {1})",
             "idiv": "wt_floordiv_{t}({0}, {1})", "mod": "wt_floormod_{t}({0}, {1})", "pow": "wt_ipow_{t}({0}, {1})",
             "max": "max({0}, {1})", "min": "min({0}, {1})", "ne": "({0} != {1})"}
# Both operands >= 0: unsigned division, which needs none of the i32 guards WGSL compilers add
# (Tint: i32 division by -1 of INT_MIN); on Dawn/SwiftShader an im2col kernel's index arithmetic
# ran 1.4x faster. ``{i}``/``{u}``: the operands' i32/u32 type (``vec4<i32>`` ... in vec4 maps).
CODE_NONNEG = {"div": "{i}({u}({0}) / {u}({1}))", "idiv": "{i}({u}({0}) / {u}({1}))",
               "mod": "{i}({u}({0}) % {u}({1}))"}
