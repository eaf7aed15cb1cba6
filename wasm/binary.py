"""WebAssembly binary writer in pure Python (no toolchain; runs in Pyodide).

Follows the WebAssembly Core Specification 2.0, §5 "Binary Format", plus the
SIMD128 instructions of its 0xFD table (§5.4.8), the threads proposal (0xFE
atomics, shared memory limits) and relaxed SIMD (0xFD 0x100-0x113; needs an
engine with relaxed SIMD, e.g. ``wasmtime.Config().wasm_relaxed_simd = True``).

    m = Module()
    m.import_memory("env", "memory", 1)
    f = m.function("axpy", params=[I32, F32], results=[F32], export=True)
    x = f.local(F32)
    f.local_get(1); f.f32_const(2.0); f.f32_mul()
    data = m.emit()                       # -> bytes

Instruction methods are generated from the opcode table ``OPS`` (mnemonic ->
opcode bytes, immediate kind): the spec mnemonic with dots turned into
underscores, and a trailing ``_`` on Python keywords (``if_``, ``else_``,
``return_``). ``f.op("f32x4.add")`` is the same call by mnemonic. Each call
records ``(mnemonic, immediates, bytes)`` in ``f.instrs``; ``text.py`` dumps
that list. Calls by function name are resolved at ``emit`` time (imported
functions come first in the function index space, §2.5.1).
"""
from __future__ import annotations

import inspect
import keyword
import struct
from enum import IntEnum

__all__ = ["ValType", "I32", "I64", "F32", "F64", "V128", "Module", "Function",
           "OPS", "uleb", "sleb", "u32", "s32", "s64", "f32", "f64", "name", "vec"]


# ---------------------------------------------------------------- values (§5.1, §5.2)

def uleb(n: int) -> bytes:
    """Unsigned LEB128 (§5.2.2)."""
    if n < 0:
        raise ValueError(f"unsigned LEB128 of negative {n}")
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sleb(n: int) -> bytes:
    """Signed LEB128 (§5.2.2); ``>>`` on Python ints is arithmetic."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _int(n, bits: int, signed: bool, what: str) -> int:
    n = int(n)
    lo, hi = (-(1 << bits - 1), 1 << bits - 1) if signed else (0, 1 << bits)
    if not lo <= n < hi:
        raise ValueError(f"{what} {n} out of range [{lo}, {hi})")
    return n


def u32(n: int) -> bytes:
    """u32 as unsigned LEB128 (§5.2.2)."""
    return uleb(_int(n, 32, False, "u32"))


def s32(n: int) -> bytes:
    """s32 as signed LEB128 (§5.2.2)."""
    return sleb(_int(n, 32, True, "s32"))


def s64(n: int) -> bytes:
    """s64 as signed LEB128 (§5.2.2)."""
    return sleb(_int(n, 64, True, "s64"))


def _wrap(n, bits: int) -> int:
    """Accept signed or unsigned ``bits``-wide ints (as ``iNN.const`` does); return signed."""
    n = int(n)
    if not -(1 << bits - 1) <= n < (1 << bits):
        raise ValueError(f"i{bits} constant {n} out of range")
    return n - (1 << bits) if n >= 1 << bits - 1 else n


def f32(x: float) -> bytes:
    """f32, IEEE 754 binary32 little-endian (§5.2.3)."""
    return struct.pack("<f", x)


def f64(x: float) -> bytes:
    """f64, IEEE 754 binary64 little-endian (§5.2.3)."""
    return struct.pack("<d", x)


def vec(items) -> bytes:
    """vec(B): u32 length then the elements (§5.1.3)."""
    items = list(items)
    return u32(len(items)) + b"".join(items)


def name(s: str) -> bytes:
    """name: vec of UTF-8 bytes (§5.2.4)."""
    b = s.encode("utf-8")
    return u32(len(b)) + b


def section(sid: int, payload: bytes) -> bytes:
    """A section: id byte, u32 size, contents (§5.5.2)."""
    return bytes([sid]) + u32(len(payload)) + payload


class ValType(IntEnum):
    """Value types (§5.3.1 numtype, §5.3.2 vectype)."""
    I32 = 0x7F
    I64 = 0x7E
    F32 = 0x7D
    F64 = 0x7C
    V128 = 0x7B

    def __str__(self):
        return self.name.lower()


I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128


def valtype(t) -> ValType:
    """A ValType from a ValType, its byte, or its text name ("f32")."""
    return ValType[t.upper()] if isinstance(t, str) else ValType(t)


def limits(lo: int, hi: int | None = None, shared: bool = False) -> bytes:
    """Memory limits (§5.3.7); flag 0x03 = shared with max (threads proposal)."""
    if shared and hi is None:
        raise ValueError("a shared memory needs max_pages")
    if hi is not None and hi < lo:
        raise ValueError(f"max_pages {hi} < min_pages {lo}")
    return (bytes([0x03 if shared else 0x01]) + u32(lo) + u32(hi)) if hi is not None else b"\x00" + u32(lo)


# ---------------------------------------------------------------- opcode table (§5.4)

OPS: dict[str, tuple[bytes, str | None, int, bytes]] = {}
"""mnemonic -> (opcode bytes, immediate kind or None, natural alignment log2, fixed trailing bytes)."""


def _seq(prefix, start, names, kind=None, tail=b""):
    """Consecutive opcodes from ``start``; "_" skips a reserved code; "name:a" gives alignment a."""
    for i, n in enumerate(names.split()):
        if n == "_":
            continue
        n, _, a = n.partition(":")
        code = bytes([start + i]) if prefix is None else bytes([prefix]) + uleb(start + i)
        assert n not in OPS, n
        OPS[n] = (code, kind, int(a or 0), tail)


def _p(shape, ops):
    return " ".join(f"{shape}.{o}" for o in ops.split()) + " "


_ICMP = "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u"
_FCMP = "eq ne lt gt le ge"
_IOPS = "clz ctz popcnt add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr"
_FOPS = "abs neg ceil floor trunc nearest sqrt add sub mul div min max copysign"

# §5.4.1 control, §5.4.3 parametric, §5.4.4 variable, §5.4.6 memory, §5.4.7 numeric
_seq(None, 0x00, "unreachable nop")
_seq(None, 0x02, "block loop if", "bt")
_seq(None, 0x05, "else")
_seq(None, 0x0B, "end")
_seq(None, 0x0C, "br br_if", "label")
_seq(None, 0x0E, "br_table", "labels")
_seq(None, 0x0F, "return")
_seq(None, 0x10, "call", "func")
_seq(None, 0x1A, "drop select")
_seq(None, 0x20, "local.get local.set local.tee", "local")
_seq(None, 0x23, "global.get global.set", "global")
_seq(None, 0x28, """i32.load:2 i64.load:3 f32.load:2 f64.load:3 i32.load8_s i32.load8_u i32.load16_s:1
 i32.load16_u:1 i64.load8_s i64.load8_u i64.load16_s:1 i64.load16_u:1 i64.load32_s:2 i64.load32_u:2
 i32.store:2 i64.store:3 f32.store:2 f64.store:3 i32.store8 i32.store16:1 i64.store8 i64.store16:1
 i64.store32:2""", "mem")
_seq(None, 0x3F, "memory.size memory.grow", tail=b"\x00")
for _i, _t in enumerate(("i32", "i64", "f32", "f64")):
    _seq(None, 0x41 + _i, f"{_t}.const", _t)
_seq(None, 0x45, "i32.eqz " + _p("i32", _ICMP) + "i64.eqz " + _p("i64", _ICMP)
     + _p("f32", _FCMP) + _p("f64", _FCMP) + _p("i32", _IOPS) + _p("i64", _IOPS)
     + _p("f32", _FOPS) + _p("f64", _FOPS) + """i32.wrap_i64 i32.trunc_f32_s i32.trunc_f32_u
 i32.trunc_f64_s i32.trunc_f64_u i64.extend_i32_s i64.extend_i32_u i64.trunc_f32_s i64.trunc_f32_u
 i64.trunc_f64_s i64.trunc_f64_u f32.convert_i32_s f32.convert_i32_u f32.convert_i64_s
 f32.convert_i64_u f32.demote_f64 f64.convert_i32_s f64.convert_i32_u f64.convert_i64_s
 f64.convert_i64_u f64.promote_f32 i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32
 f64.reinterpret_i64 i32.extend8_s i32.extend16_s i64.extend8_s i64.extend16_s i64.extend32_s""")
# 0xFC: saturating truncation and bulk memory
_seq(0xFC, 0, _p("i32", "trunc_sat_f32_s trunc_sat_f32_u trunc_sat_f64_s trunc_sat_f64_u")
     + _p("i64", "trunc_sat_f32_s trunc_sat_f32_u trunc_sat_f64_s trunc_sat_f64_u"))
_seq(0xFC, 8, "memory.init", "data", tail=b"\x00")
_seq(0xFC, 9, "data.drop", "data")
_seq(0xFC, 10, "memory.copy", tail=b"\x00\x00")
_seq(0xFC, 11, "memory.fill", tail=b"\x00")
# 0xFD: SIMD128 (§5.4.8)
_seq(0xFD, 0x00, """v128.load:4 v128.load8x8_s:3 v128.load8x8_u:3 v128.load16x4_s:3 v128.load16x4_u:3
 v128.load32x2_s:3 v128.load32x2_u:3 v128.load8_splat v128.load16_splat:1 v128.load32_splat:2
 v128.load64_splat:3 v128.store:4""", "mem")
_seq(0xFD, 0x0C, "v128.const", "v128")
_seq(0xFD, 0x0D, "i8x16.shuffle", "shuffle")
_seq(0xFD, 0x0E, "i8x16.swizzle i8x16.splat i16x8.splat i32x4.splat i64x2.splat f32x4.splat f64x2.splat")
_seq(0xFD, 0x15, _p("i8x16", "extract_lane_s extract_lane_u replace_lane")
     + _p("i16x8", "extract_lane_s extract_lane_u replace_lane")
     + " ".join(_p(s, "extract_lane replace_lane") for s in ("i32x4", "i64x2", "f32x4", "f64x2")), "lane")
_seq(0xFD, 0x23, _p("i8x16", _ICMP) + _p("i16x8", _ICMP) + _p("i32x4", _ICMP) + _p("f32x4", _FCMP)
     + _p("f64x2", _FCMP) + _p("v128", "not and andnot or xor bitselect any_true"))
_seq(0xFD, 0x54, """v128.load8_lane v128.load16_lane:1 v128.load32_lane:2 v128.load64_lane:3
 v128.store8_lane v128.store16_lane:1 v128.store32_lane:2 v128.store64_lane:3""", "memlane")
_seq(0xFD, 0x5C, "v128.load32_zero:2 v128.load64_zero:3", "mem")
_seq(0xFD, 0x5E, "f32x4.demote_f64x2_zero f64x2.promote_low_f32x4 "
     + _p("i8x16", "abs neg popcnt all_true bitmask narrow_i16x8_s narrow_i16x8_u")
     + _p("f32x4", "ceil floor trunc nearest")
     + _p("i8x16", "shl shr_s shr_u add add_sat_s add_sat_u sub sub_sat_s sub_sat_u")
     + "f64x2.ceil f64x2.floor " + _p("i8x16", "min_s min_u max_s max_u") + "f64x2.trunc i8x16.avgr_u "
     + _p("i16x8", "extadd_pairwise_i8x16_s extadd_pairwise_i8x16_u")
     + _p("i32x4", "extadd_pairwise_i16x8_s extadd_pairwise_i16x8_u"))
_seq(0xFD, 0x80, _p("i16x8", """abs neg q15mulr_sat_s all_true bitmask narrow_i32x4_s narrow_i32x4_u
 extend_low_i8x16_s extend_high_i8x16_s extend_low_i8x16_u extend_high_i8x16_u shl shr_s shr_u
 add add_sat_s add_sat_u sub sub_sat_s sub_sat_u""") + "f64x2.nearest " + _p("i16x8", """mul min_s
 min_u max_s max_u""") + "_ " + _p("i16x8", """avgr_u extmul_low_i8x16_s extmul_high_i8x16_s
 extmul_low_i8x16_u extmul_high_i8x16_u"""))
_seq(0xFD, 0xA0, _p("i32x4", """abs neg""") + "_ " + _p("i32x4", "all_true bitmask") + "_ _ "
     + _p("i32x4", "extend_low_i16x8_s extend_high_i16x8_s extend_low_i16x8_u extend_high_i16x8_u "
          "shl shr_s shr_u add") + "_ _ i32x4.sub _ _ _ "
     + _p("i32x4", "mul min_s min_u max_s max_u dot_i16x8_s") + "_ "
     + _p("i32x4", "extmul_low_i16x8_s extmul_high_i16x8_s extmul_low_i16x8_u extmul_high_i16x8_u"))
_seq(0xFD, 0xC0, _p("i64x2", "abs neg") + "_ " + _p("i64x2", "all_true bitmask") + "_ _ "
     + _p("i64x2", "extend_low_i32x4_s extend_high_i32x4_s extend_low_i32x4_u extend_high_i32x4_u "
          "shl shr_s shr_u add") + "_ _ i64x2.sub _ _ _ "
     + _p("i64x2", "mul eq ne lt_s gt_s le_s ge_s extmul_low_i32x4_s extmul_high_i32x4_s "
          "extmul_low_i32x4_u extmul_high_i32x4_u"))
_seq(0xFD, 0xE0, _p("f32x4", "abs neg") + "_ " + _p("f32x4", "sqrt add sub mul div min max pmin pmax")
     + _p("f64x2", "abs neg") + "_ " + _p("f64x2", "sqrt add sub mul div min max pmin pmax")
     + _p("i32x4", "trunc_sat_f32x4_s trunc_sat_f32x4_u") + _p("f32x4", "convert_i32x4_s convert_i32x4_u")
     + _p("i32x4", "trunc_sat_f64x2_s_zero trunc_sat_f64x2_u_zero")
     + _p("f64x2", "convert_low_i32x4_s convert_low_i32x4_u"))
# relaxed SIMD (optional; engine support required)
_seq(0xFD, 0x100, "i8x16.relaxed_swizzle " + _p("i32x4", """relaxed_trunc_f32x4_s relaxed_trunc_f32x4_u
 relaxed_trunc_f64x2_s_zero relaxed_trunc_f64x2_u_zero""") + _p("f32x4", "relaxed_madd relaxed_nmadd")
     + _p("f64x2", "relaxed_madd relaxed_nmadd") + " ".join(
         f"{s}.relaxed_laneselect" for s in ("i8x16", "i16x8", "i32x4", "i64x2")) + " "
     + _p("f32x4", "relaxed_min relaxed_max") + _p("f64x2", "relaxed_min relaxed_max")
     + "i16x8.relaxed_q15mulr_s i16x8.relaxed_dot_i8x16_i7x16_s i32x4.relaxed_dot_i8x16_i7x16_add_s")
# 0xFE: atomics (threads proposal); alignment must be exactly natural
_seq(0xFE, 0x00, "memory.atomic.notify:2 memory.atomic.wait32:2 memory.atomic.wait64:3", "mem")
_seq(0xFE, 0x03, "atomic.fence", tail=b"\x00")
_seq(0xFE, 0x10, """i32.atomic.load:2 i64.atomic.load:3 i32.atomic.load8_u i32.atomic.load16_u:1
 i64.atomic.load8_u i64.atomic.load16_u:1 i64.atomic.load32_u:2 i32.atomic.store:2 i64.atomic.store:3
 i32.atomic.store8 i32.atomic.store16:1 i64.atomic.store8 i64.atomic.store16:1 i64.atomic.store32:2 """
     + " ".join(f"i32.atomic.rmw.{o}:2 i64.atomic.rmw.{o}:3 i32.atomic.rmw8.{o}_u i32.atomic.rmw16.{o}_u:1 "
                f"i64.atomic.rmw8.{o}_u i64.atomic.rmw16.{o}_u:1 i64.atomic.rmw32.{o}_u:2"
                for o in "add sub and or xor xchg cmpxchg".split()), "mem")

_LANES = {"i8x16": 16, "i16x8": 8, "i32x4": 4, "i64x2": 2, "f32x4": 4, "f64x2": 2}
_OPENERS = ("block", "loop", "if")


def pyname(mnemonic: str) -> str:
    """Method name of a mnemonic: dots to underscores, ``_`` after Python keywords."""
    n = mnemonic.replace(".", "_")
    return n + "_" if keyword.iskeyword(n) else n


# ---------------------------------------------------------------- immediates (§5.4)
# Each kind: (function, mnemonic, user args...) -> (immediates for text, bytes or None = resolve at emit)

def _imm_none(f, op):
    return (), b""


def _imm_bt(f, op, result_type=None):
    """blocktype (§5.4.1): empty 0x40, a valtype, or (params, results) as an s33 type index."""
    if result_type is None:
        return (None,), b"\x40"
    if isinstance(result_type, tuple):
        return (result_type,), sleb(f.module._type(*result_type))
    t = valtype(result_type)
    return (t,), bytes([t])


def _imm_label(f, op, depth):
    if not 0 <= depth <= len(f._blocks):
        raise ValueError(f"function {f.name!r}: {op} {depth}: only {len(f._blocks)} enclosing blocks")
    return (depth,), u32(depth)


def _imm_labels(f, op, depths, default):
    depths = tuple(depths)
    for d in depths + (default,):
        _imm_label(f, op, d)
    return (depths, default), vec(u32(d) for d in depths) + u32(default)


def _imm_func(f, op, func):
    return (func,), None


def _imm_local(f, op, index):
    n = len(f.params) + len(f.locals)
    if not 0 <= index < n:
        raise ValueError(f"function {f.name!r}: {op} {index}: only {n} locals")
    return (index,), u32(index)


def _imm_global(f, op, index):
    index = f.module.global_index(index)
    return (index,), u32(index)


def _imm_mem(f, op, offset=0, align=None):
    """memarg (§5.4.6): alignment as log2 exponent (default natural), then offset."""
    natural = OPS[op][2]
    align = natural if align is None else align
    if ".atomic" in op and align != natural or not 0 <= align <= natural:
        raise ValueError(f"{op}: align 2**{align} exceeds natural alignment 2**{natural}"
                         if ".atomic" not in op else f"{op}: atomic align must be 2**{natural}")
    return (offset, align), u32(align) + u32(offset)


def _imm_memlane(f, op, lane, offset=0, align=None):
    (offset, align), b = _imm_mem(f, op, offset, align)
    (lane,), lb = _lane(op, lane, 16 >> OPS[op][2])
    return (offset, align, lane), b + lb


def _lane(op, lane, n):
    if not 0 <= lane < n:
        raise ValueError(f"{op}: lane {lane} out of range [0, {n})")
    return (lane,), bytes([lane])


def _imm_lane(f, op, lane):
    return _lane(op, lane, _LANES[op.split(".")[0]])


def _imm_shuffle(f, op, lanes):
    lanes = tuple(int(x) for x in lanes)
    if len(lanes) != 16 or not all(0 <= x < 32 for x in lanes):
        raise ValueError(f"{op}: needs 16 lane indices in [0, 32), got {lanes}")
    return (lanes,), bytes(lanes)


def _imm_v128(f, op, value):
    value = bytes(value)
    if len(value) != 16:
        raise ValueError(f"{op}: needs 16 bytes, got {len(value)}")
    return (value,), value


def _imm_i32(f, op, value):
    v = _wrap(value, 32)
    return (v,), sleb(v)


def _imm_i64(f, op, value):
    v = _wrap(value, 64)
    return (v,), sleb(v)


def _imm_f32(f, op, value):
    try:
        b = f32(value)
    except OverflowError:
        raise ValueError(f"{op}: {value} is out of f32 range") from None
    return (struct.unpack("<f", b)[0],), b


def _imm_f64(f, op, value):
    return (float(value),), f64(value)


def _imm_data(f, op, index):
    if not 0 <= index < len(f.module.datas):
        raise ValueError(f"{op}: no data segment {index}")
    return (index,), u32(index)


_IMM = {k[5:]: v for k, v in globals().items() if k.startswith("_imm_")}
_SIG = {k: inspect.Signature(list(inspect.signature(v).parameters.values())[2:]) for k, v in _IMM.items()}


# ---------------------------------------------------------------- builders

class _Block:
    """Returned by block/loop/if_: ``with f.loop(): ...`` emits the matching ``end``."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, et, ev, tb):
        if et is None:
            self.f.end()


class Function:
    """A function being built (§2.5.3). Instruction methods come from ``OPS``.

    Parameters are locals ``0..len(params)-1``; ``local(t)`` adds more. Each
    instruction method returns the builder, except block/loop/if_ which return
    a context manager that emits ``end`` on exit (or call ``end()`` yourself).
    """

    def __init__(self, module, fname, params, results, export):
        self.module, self.name = module, fname
        self.params = [valtype(t) for t in params]
        self.results = [valtype(t) for t in results]
        self.locals: list[ValType] = []
        self.instrs: list[tuple[str, tuple, bytes | None]] = []
        self.export = fname if export is True else (export or None)
        self.type_index = module._type(self.params, self.results)
        self._blocks: list[str] = []

    @property
    def index(self) -> int:
        """Index in the function index space (imports first)."""
        return self.module.func_index(self)

    def local(self, t) -> int:
        """Declare a local of type ``t``; return its index."""
        self.locals.append(valtype(t))
        return len(self.params) + len(self.locals) - 1

    def op(self, mnemonic: str, *args, **kw):
        """Append instruction ``mnemonic`` with its immediates."""
        if mnemonic not in OPS:
            raise ValueError(f"unknown WebAssembly mnemonic {mnemonic!r}")
        kind = OPS[mnemonic][1] or "none"
        try:
            _SIG[kind].bind(*args, **kw)
        except TypeError as e:
            raise TypeError(f"{mnemonic}: wrong immediates {args or ''}{kw or ''} "
                            f"(expected {_SIG[kind]}): {e}") from None
        if mnemonic == "else" and (not self._blocks or self._blocks[-1] != "if"):
            raise ValueError(f"function {self.name!r}: else without an open if")
        if mnemonic == "end" and not self._blocks:
            raise ValueError(f"function {self.name!r}: end without an open block "
                             "(the function's own end is implicit)")
        imms, b = _IMM[kind](self, mnemonic, *args, **kw)
        code, _, _, tail = OPS[mnemonic]
        self.instrs.append((mnemonic, imms, None if b is None else code + b + tail))
        if mnemonic in _OPENERS:
            self._blocks.append(mnemonic)
            return _Block(self)
        if mnemonic == "else":
            self._blocks[-1] = "else"
        elif mnemonic == "end":
            self._blocks.pop()
        return self

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name', '?')!r}: unknown WebAssembly "
                             f"instruction method {attr!r} (not in the opcode table OPS)")

    def finish(self) -> "Function":
        """Check that every block is closed; raise ValueError naming the function."""
        if self._blocks:
            raise ValueError(f"function {self.name!r}: {len(self._blocks)} unclosed block(s) "
                             f"({', '.join(self._blocks)}); missing end()")
        return self

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.finish()

    def encode(self) -> bytes:
        """The code entry (§5.5.13): size, run-length locals, body, end."""
        self.finish()
        runs: list[list] = []
        for t in self.locals:
            if runs and runs[-1][1] == t:
                runs[-1][0] += 1
            else:
                runs.append([1, t])
        body = [b if b is not None else OPS[m][0] + u32(self.module.func_index(imms[0], self))
                for m, imms, b in self.instrs]
        code = vec(u32(n) + bytes([t]) for n, t in runs) + b"".join(body) + b"\x0b"
        return u32(len(code)) + code


for _mn in OPS:
    _pn = pyname(_mn)
    assert not hasattr(Function, _pn), _pn

    def _method(self, *args, _mn=_mn, **kw):
        return self.op(_mn, *args, **kw)

    _method.__name__ = _pn
    _method.__doc__ = f"``{_mn}`` (opcode {OPS[_mn][0].hex(' ')}; immediates {_SIG[OPS[_mn][1] or 'none']})"
    setattr(Function, _pn, _method)


class Module:
    """A module (§2.5, binary §5.5): types, imports, functions, memory, globals, exports, data."""

    def __init__(self):
        self.types: list[tuple[tuple, tuple]] = []
        self.imports: list[tuple] = []      # ("func", module, field, typeidx, local name) | ("memory", module, field, limits)
        self.functions: list[Function] = []
        self.memory: dict | None = None
        self.globals: list[tuple] = []      # (valtype, mutable, init, name)
        self.exports: list[tuple] = []      # (export name, kind byte, ref)
        self.datas: list[tuple] = []        # (offset or None for passive, bytes)
        self.start_func = None
        self._funcs: dict[str, object] = {}

    def _type(self, params, results) -> int:
        """Index of the function type (dedupes identical types, §5.5.4)."""
        key = (tuple(valtype(t) for t in params), tuple(valtype(t) for t in results))
        if key not in self.types:
            self.types.append(key)
        return self.types.index(key)

    def _add_export(self, ename, kind, ref):
        if any(e[0] == ename for e in self.exports):
            raise ValueError(f"duplicate export name {ename!r}")
        self.exports.append((ename, kind, ref))

    def _add_name(self, fname, ref):
        if fname in self._funcs:
            raise ValueError(f"duplicate function name {fname!r}")
        self._funcs[fname] = ref

    def import_function(self, module: str, field: str, params=(), results=(), local_name: str | None = None) -> int:
        """Import a host function; it is callable as ``local_name`` (default ``field``). Returns its index."""
        entry = ("func", module, field, self._type(params, results), local_name or field)
        self._add_name(entry[4], entry)
        self.imports.append(entry)
        return self.func_index(entry)

    def import_memory(self, module: str, field: str, min_pages: int, max_pages: int | None = None,
                      shared: bool = False):
        """Import the module's memory (index 0); shared needs max_pages and the threads feature."""
        self._one_memory()
        self.memory = {"import": (module, field), "limits": limits(min_pages, max_pages, shared),
                       "pages": (min_pages, max_pages, shared)}
        self.imports.append(("memory", module, field, self.memory["limits"]))

    def add_memory(self, min_pages: int, max_pages: int | None = None, shared: bool = False,
                   export: str | None = "memory"):
        """Define the module's memory (§5.5.8) and export it (unless export=None)."""
        self._one_memory()
        self.memory = {"limits": limits(min_pages, max_pages, shared), "pages": (min_pages, max_pages, shared)}
        if export:
            self._add_export(export, 0x02, 0)

    def _one_memory(self):
        if self.memory is not None:
            raise ValueError("this writer supports one memory per module")

    def add_global(self, t, init=0, mutable: bool = False, export: str | None = None, name: str | None = None) -> int:
        """Define a global with a constant initializer (§5.5.9); return its index."""
        t = valtype(t)
        if name is not None and any(g[3] == name for g in self.globals):
            raise ValueError(f"duplicate global name {name!r}")
        self.globals.append((t, bool(mutable), init, name))
        if export:
            self._add_export(export, 0x03, len(self.globals) - 1)
        return len(self.globals) - 1

    def global_index(self, ref) -> int:
        for i, g in enumerate(self.globals):
            if ref == g[3] or ref == i:
                return i
        raise ValueError(f"unknown global {ref!r}")

    def function(self, fname: str, params=(), results=(), export: bool | str = False) -> Function:
        """Start a new function; ``export=True`` exports it under its name, a str under that name."""
        f = Function(self, fname, params, results, export)
        self._add_name(fname, f)
        self.functions.append(f)
        if f.export:
            self._add_export(f.export, 0x00, f)
        return f

    def export_function(self, ename: str, func):
        """Export a function (by index, name or Function) under ``ename``."""
        self._add_export(ename, 0x00, func)

    def data(self, offset: int | None, data: bytes) -> int:
        """A data segment: active at constant ``offset`` in memory 0, or passive if None (§5.5.12)."""
        self.datas.append((offset, bytes(data)))
        return len(self.datas) - 1

    def start(self, func):
        """Set the start function (§5.5.11)."""
        self.start_func = func

    def func_index(self, ref, caller=None) -> int:
        """Resolve a function index, name, Function or import entry."""
        fimports = [i for i in self.imports if i[0] == "func"]
        if isinstance(ref, str):
            if ref not in self._funcs:
                who = f"function {caller.name!r}: " if caller is not None else ""
                raise ValueError(f"{who}call to unknown function {ref!r}")
            ref = self._funcs[ref]
        if isinstance(ref, Function):
            return len(fimports) + self.functions.index(ref)
        if isinstance(ref, tuple):
            return fimports.index(ref)
        if not 0 <= ref < len(fimports) + len(self.functions):
            raise ValueError(f"function index {ref} out of range")
        return ref

    def _const(self, t, v) -> bytes:
        """A constant expression (§5.4.9) of type ``t``."""
        imm = {I32: _imm_i32, I64: _imm_i64, F32: _imm_f32, F64: _imm_f64, V128: _imm_v128}[t]
        return OPS[f"{t}.const"][0] + imm(None, f"{t}.const", v)[1] + b"\x0b"

    def emit(self, names: bool = True) -> bytes:
        """Encode the module (§5.5.15): sections in spec order, plus a "name" custom section (§7.4)."""
        out = [b"\x00asm", b"\x01\x00\x00\x00"]

        def sec(sid, items):
            if items:
                out.append(section(sid, vec(items)))
        sec(1, [b"\x60" + vec(bytes([t]) for t in p) + vec(bytes([t]) for t in r) for p, r in self.types])
        sec(2, [name(i[1]) + name(i[2]) + (b"\x00" + u32(i[3]) if i[0] == "func" else b"\x02" + i[3])
                for i in self.imports])
        sec(3, [u32(f.type_index) for f in self.functions])
        if self.memory is not None and "import" not in self.memory:
            sec(5, [self.memory["limits"]])
        sec(6, [bytes([t, mut]) + self._const(t, init) for t, mut, init, _ in self.globals])
        exports = []
        for ename, kind, ref in self.exports:
            idx = self.func_index(ref) if kind == 0x00 else ref
            exports.append(name(ename) + bytes([kind]) + u32(idx))
        sec(7, exports)
        if self.start_func is not None:
            out.append(section(8, u32(self.func_index(self.start_func))))
        if self.datas:
            if self.memory is None and any(o is not None for o, _ in self.datas):
                raise ValueError("active data segments need a memory")
            out.append(section(12, u32(len(self.datas))))
        sec(10, [f.encode() for f in self.functions])
        sec(11, [(b"\x00" + self._const(I32, o) if o is not None else b"\x01") + u32(len(d)) + d
                 for o, d in self.datas])
        if names:
            fnames = [i[4] for i in self.imports if i[0] == "func"] + [f.name for f in self.functions]
            sub = vec(u32(i) + name(n) for i, n in enumerate(fnames))
            out.append(section(0, name("name") + b"\x01" + u32(len(sub)) + sub))
        return b"".join(out)
