"""Tests of the WebAssembly binary writer: every module is validated and run with wasmtime."""
import struct

import numpy as np
import pytest
import wasmtime

from webtensor.wasm import text
from webtensor.wasm.binary import (F32, F64, I32, I64, OPS, V128, Function, Module, pyname, s32, s64,
                                   sleb, u32, uleb)


# ------------------------------------------------------------------ helpers

def make_engine(**features):
    cfg = wasmtime.Config()
    cfg.wasm_simd = True
    for k, v in features.items():
        setattr(cfg, k, v)
    return wasmtime.Engine(cfg)


ENGINE = make_engine()


def run(m, imports=lambda store: [], engine=ENGINE):
    """Validate, compile and instantiate; return (store, exports)."""
    data = m.emit() if isinstance(m, Module) else m
    wasmtime.Module.validate(engine, data)           # raises on an invalid module
    store = wasmtime.Store(engine)
    inst = wasmtime.Instance(store, wasmtime.Module(engine, data), imports(store))
    return store, inst.exports(store)


def host_memory(store, pages=1):
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(pages, None)))
    return mem, np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),))


def sections(data: bytes) -> dict:
    """{section id: payload} of a module (a test-side reader of §5.5.2)."""
    assert data[:8] == b"\x00asm\x01\x00\x00\x00"
    out, i = {}, 8
    while i < len(data):
        sid = data[i]
        size, shift, i = 0, 0, i + 1
        while True:
            b = data[i]
            size |= (b & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not b & 0x80:
                break
        out.setdefault(sid, data[i:i + size])
        i += size
    return out


# ------------------------------------------------------------------ encodings

def test_leb128_known_vectors():
    assert uleb(0) == b"\x00" and uleb(127) == b"\x7f" and uleb(128) == b"\x80\x01"
    assert uleb(624485) == bytes.fromhex("e58e26")
    assert sleb(-123456) == bytes.fromhex("c0bb78")
    assert s32(-1) == b"\x7f" and s32(63) == b"\x3f" and s32(64) == b"\xc0\x00"
    assert s32(-64) == b"\x40" and s32(-65) == b"\xbf\x7f"
    assert s32(2**31 - 1) == bytes.fromhex("ffffffff07") and s32(-2**31) == bytes.fromhex("8080808078")
    assert u32(2**32 - 1) == bytes.fromhex("ffffffff0f")
    assert s64(-2**63) == bytes.fromhex("8080808080808080807f")
    for bad in (lambda: u32(-1), lambda: u32(2**32), lambda: s32(2**31), lambda: s64(2**63)):
        with pytest.raises(ValueError):
            bad()


def test_opcode_table_matches_wat2wasm():
    """Every table entry encodes exactly as wasmtime's text assembler encodes the same text."""
    samples = {None: [((), {})], "bt": [((), {}), ((I32,), {})], "label": [((0,), {})],
               "labels": [(([0, 0], 0), {})], "func": [((0,), {})], "local": [((0,), {})],
               "global": [((0,), {})], "mem": [((), {"offset": 16}), ((), {"align": 0})],
               "memlane": [((1,), {"offset": 8})], "i32": [((-12345,), {}), ((2**31 - 1,), {})],
               "i64": [((-2**40,), {})], "f32": [((1.5,), {})], "f64": [((-2.25,), {})],
               "v128": [((bytes(range(16)),), {})], "shuffle": [((list(range(0, 32, 2)),), {})],
               "lane": [((1,), {})], "data": [((0,), {})]}
    wrap = {"block": (None, "end"), "loop": (None, "end"), "if": (None, "end"),
            "else": ("if", "end"), "end": ("block", None)}
    mismatches, count = [], 0
    for mn, (_, kind, natural, _) in OPS.items():
        for args, kw in samples[kind]:
            if kw.get("align") == 0 and (natural == 0 or ".atomic" in mn):
                continue
            m = Module()
            m.add_memory(1, export=None)
            m.add_global(I32, 0, mutable=True)
            m.data(None, b"x")
            f = m.function("f", params=[I32])
            f.unreachable()
            before, after = wrap.get(mn, (None, None))
            if before:
                f.op(before)
            f.op(mn, *args, **kw)
            if after:
                f.op(after)
            body = "\n".join(text.format_instr(i, imms) for i, imms, _ in f.instrs)
            wat = f'(module (memory 1) (global (mut i32) (i32.const 0)) (data "x") (func (param i32) {body}))'
            want = sections(wasmtime.wat2wasm(wat))[10]
            got = sections(m.emit())[10]
            count += 1
            if got != want:
                mismatches.append(f"{mn}{args}{kw}: {got.hex()} != {want.hex()}  [{body}]")
    assert not mismatches, "\n".join(mismatches)
    assert count > 500


def test_table_covers_requested_instructions():
    for mn in ["i32.add", "f32.mul", "f64.copysign", "i64.rotr", "f32.convert_i64_u", "i32.reinterpret_f32",
               "i64.load32_u", "i32.store16", "memory.size", "memory.grow", "i32.trunc_sat_f64_u",
               "memory.copy", "memory.fill", "v128.load", "v128.load32_splat", "v128.load16_lane",
               "v128.const", "i8x16.shuffle", "i8x16.swizzle", "f64x2.replace_lane", "i8x16.extract_lane_u",
               "f32x4.add", "f32x4.pmax", "f64x2.sqrt", "f32x4.nearest", "f32x4.convert_i32x4_s",
               "i32x4.trunc_sat_f32x4_s", "v128.bitselect", "v128.andnot", "v128.any_true",
               "i16x8.all_true", "i32x4.shr_u", "i32x4.dot_i16x8_s", "i16x8.extadd_pairwise_i8x16_s",
               "i64x2.extmul_high_i32x4_u", "f32x4.relaxed_madd", "f32x4.relaxed_nmadd",
               "i32.atomic.rmw.add", "memory.atomic.wait32"]:
        assert mn in OPS and hasattr(Function, pyname(mn)), mn
    assert OPS["f32x4.relaxed_madd"][0] == bytes([0xFD]) + uleb(0x105)


# ------------------------------------------------------------------ running modules

def test_add():
    m = Module()
    f = m.function("add", params=[I32, I32], results=[I32], export=True)
    f.local_get(0).local_get(1).i32_add()
    g = m.function("addf", params=[F32, F32], results=[F32], export=True)
    g.local_get(0).local_get(1).f32_add()
    store, ex = run(m)
    assert ex["add"](store, 2, 40) == 42
    assert ex["add"](store, 2**31 - 1, 1) == -2**31
    assert ex["addf"](store, 1.5, 2.25) == 3.75


def test_sum_f32_loop_imported_memory():
    m = Module()
    m.import_memory("env", "memory", 1)
    f = m.function("sum", params=[I32, I32], results=[F32], export=True)   # (ptr, n)
    i, acc = f.local(I32), f.local(F32)
    with f.block():
        with f.loop():
            f.local_get(i).local_get(1).i32_ge_u().br_if(1)
            f.local_get(acc)
            f.local_get(0).local_get(i).i32_const(2).i32_shl().i32_add().f32_load()
            f.f32_add().local_set(acc)
            f.local_get(i).i32_const(1).i32_add().local_set(i)
            f.br(0)
    f.local_get(acc)
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)

    def imports(store):
        mem, view = host_memory(store)
        view[64:64 + x.nbytes] = x.view(np.uint8)
        return [mem]
    store, ex = run(m, imports)
    want = np.float32(0)
    for v in x:                                    # the same sequential f32 rounding
        want = np.float32(want + v)
    assert ex["sum"](store, 64, 1000) == pytest.approx(float(want), rel=0, abs=0)
    assert ex["sum"](store, 64, 1000) == pytest.approx(float(x.astype(np.float64).sum()), abs=1e-3)


def test_simd_axpb_with_scalar_tail():
    n = 1027
    m = Module()
    m.import_memory("env", "memory", 1)
    f = m.function("axpb", params=[I32, I32, I32, F32, F32], export=True)   # (x, y, n, a, b)
    X, Y, N, A, B = range(5)
    i, n4, va, vb = f.local(I32), f.local(I32), f.local(V128), f.local(V128)
    f.local_get(A).f32x4_splat().local_set(va)
    f.local_get(B).f32x4_splat().local_set(vb)
    f.local_get(N).i32_const(-4).i32_and().local_set(n4)

    def addr(base):
        f.local_get(base).local_get(i).i32_const(2).i32_shl().i32_add()
    with f.block():
        with f.loop():
            f.local_get(i).local_get(n4).i32_ge_u().br_if(1)
            addr(Y)
            addr(X)
            f.v128_load(0, 2).local_get(va).f32x4_mul().local_get(vb).f32x4_add()
            f.v128_store(offset=0, align=2)
            f.local_get(i).i32_const(4).i32_add().local_set(i)
            f.br(0)
    with f.block():
        with f.loop():
            f.local_get(i).local_get(N).i32_ge_u().br_if(1)
            addr(Y)
            addr(X)
            f.f32_load().local_get(A).f32_mul().local_get(B).f32_add().f32_store()
            f.local_get(i).i32_const(1).i32_add().local_set(i)
            f.br(0)
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    views = {}

    def imports(store):
        mem, view = host_memory(store)
        view[:x.nbytes] = x.view(np.uint8)
        view[8192:8192 + 4 * (n + 4)] = np.full(n + 4, -7.0, np.float32).view(np.uint8)
        views["v"] = view
        return [mem]
    store, ex = run(m, imports)
    ex["axpb"](store, 0, 8192, n, 1.5, -0.25)
    y = views["v"][8192:8192 + 4 * (n + 4)].view(np.float32)
    np.testing.assert_array_equal(y[:n], np.float32(1.5) * x + np.float32(-0.25))
    np.testing.assert_array_equal(y[n:], -7.0)                # nothing written past the end


def test_shuffle_and_lanes():
    m = Module()
    f = m.function("rev", params=[F32, F32, F32, F32], results=[F32] * 4, export=True)
    v = f.local(V128)
    f.v128_const(bytes(16))
    for k in range(4):
        f.local_get(k).f32x4_replace_lane(k)
    f.local_set(v)
    f.local_get(v).local_get(v)
    f.i8x16_shuffle([12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]).local_set(v)
    for k in range(4):
        f.local_get(v).f32x4_extract_lane(k)
    i = m.function("interleave", params=[F32, F32], results=[F32] * 4, export=True)
    i.local_get(0).f32x4_splat().local_get(1).f32x4_splat()
    i.i8x16_shuffle([0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]).local_set(i.local(V128))
    for k in range(4):
        i.local_get(2).f32x4_extract_lane(k)
    h = m.function("ext", results=[I32, I32, I32, I64], export=True)
    c = bytes([0x80, 1, 2, 3, 0xFE, 0xFF, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
    h.v128_const(c).i8x16_extract_lane_s(0)
    h.v128_const(c).i8x16_extract_lane_u(0)
    h.v128_const(c).i16x8_extract_lane_s(2)
    h.v128_const(c).i64x2_extract_lane(1)
    k = m.function("lanes", params=[I32], results=[I32], export=True)
    k.v128_const(bytes(16))
    k.local_get(0).i8x16_replace_lane(15)
    k.i8x16_extract_lane_u(0)           # reversed by nothing: lane 0 still 0
    store, ex = run(m)
    vals = [1.0, 2.0, 3.0, 4.0]
    assert ex["rev"](store, *vals) == [4.0, 3.0, 2.0, 1.0]
    assert ex["interleave"](store, 1.0, 2.0) == [1.0, 2.0, 1.0, 2.0]
    assert ex["ext"](store) == [-128, 128, -2, int.from_bytes(c[8:], "little")]
    assert ex["lanes"](store, 9) == 0
    # swizzle with indices 15..0 reverses the bytes
    g2 = Module()
    gg = g2.function("b", results=[I32, I32], export=True)
    gg.v128_const(bytes([0xF0 + k for k in range(16)]))
    gg.v128_const(bytes([15 - k for k in range(16)])).i8x16_swizzle().local_tee(gg.local(V128))
    gg.i8x16_extract_lane_u(0).local_get(0).i8x16_extract_lane_u(15)
    store2, ex2 = run(g2)
    assert ex2["b"](store2) == [0xFF, 0xF0]


@pytest.mark.parametrize("v", [-1, -64, -65, 2**31 - 1, -2**31, 63, 64, 127, 128, 0, -128, 8192, -8193])
def test_i32_const_edges(v):
    m = Module()
    m.function("c", results=[I32], export=True).i32_const(v)
    m.function("c64", results=[I64], export=True).i64_const(v * 2**31)
    store, ex = run(m)
    assert ex["c"](store) == v
    assert ex["c64"](store) == v * 2**31


def test_i64_and_float_const_edges():
    m = Module()
    vals = [-2**63, 2**63 - 1, -1, 2**40, -(2**40) - 1]
    for j, v in enumerate(vals):
        m.function(f"i{j}", results=[I64], export=True).i64_const(v)
    m.function("u", results=[I32], export=True).i32_const(0xFFFFFFFF)   # unsigned spelling wraps
    fs = [0.1, -3.4e38, float("inf"), -0.0, 1e-45]
    for j, v in enumerate(fs):
        m.function(f"f{j}", results=[F32], export=True).f32_const(v)
        m.function(f"d{j}", results=[F64], export=True).f64_const(v)
    store, ex = run(m)
    assert [ex[f"i{j}"](store) for j in range(len(vals))] == vals
    assert ex["u"](store) == -1
    for j, v in enumerate(fs):
        assert ex[f"f{j}"](store) == struct.unpack("<f", struct.pack("<f", v))[0]
        assert ex[f"d{j}"](store) == v


def test_calls_between_functions_and_host_import():
    m = Module()
    even = m.function("is_even", params=[I32], results=[I32], export=True)
    odd = m.function("is_odd", params=[I32], results=[I32], export=True)
    for f, base, other in ((even, 1, "is_odd"), (odd, 0, even)):   # by name (forward) and by object
        f.local_get(0).i32_eqz()
        with f.if_(I32):
            f.i32_const(base)
            f.else_()
            f.local_get(0).i32_const(1).i32_sub().call(other)
    # imported after the functions: the function index space shifts, calls by name still resolve
    m.import_function("env", "times10", params=[I32], results=[I32])
    m.import_function("env", "log", params=[I32], local_name="host_log")
    main = m.function("main", params=[I32], results=[I32], export=True)
    main.local_get(0).call("host_log")
    main.local_get(0).call("times10").call("is_even")
    assert m.func_index("times10") == 0 and even.index == 2
    logged = []

    def imports(store):
        t10 = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]),
                            lambda x: x * 10 + 1)
        log = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), logged.append)
        return [t10, log]
    store, ex = run(m, imports)
    assert [ex["is_even"](store, k) for k in range(6)] == [1, 0, 1, 0, 1, 0]
    assert ex["is_odd"](store, 7) == 1
    assert ex["main"](store, 3) == 0 and ex["main"](store, 4) == 0   # 31, 41 are odd
    assert logged == [3, 4]
    names = sections(m.emit())[0]
    assert b"is_even" in names and b"host_log" in names


def test_unknown_call_target():
    m = Module()
    m.function("f", export=True).call("nowhere")
    with pytest.raises(ValueError, match="'f'.*nowhere"):
        m.emit()


def test_exported_globals():
    m = Module()
    m.add_global(I32, 5, mutable=True, export="counter", name="counter")
    m.add_global(F32, 2.5, export="half")
    m.add_global(I64, -2**40, mutable=True, export="big")
    m.add_global(F64, 0.125, export="eighth")
    m.add_global(V128, bytes(range(16)), name="vec")
    f = m.function("bump", results=[I32], export=True)
    f.global_get("counter").i32_const(1).i32_add().global_set("counter").global_get(0)
    g = m.function("vlane", results=[I32], export=True)
    g.global_get("vec").i32x4_extract_lane(1)
    store, ex = run(m)
    assert ex["counter"].value(store) == 5
    assert ex["bump"](store) == 6 and ex["counter"].value(store) == 6
    ex["counter"].set_value(store, wasmtime.Val.i32(100))
    assert ex["bump"](store) == 101
    assert ex["half"].value(store) == 2.5 and ex["big"].value(store) == -2**40
    assert ex["eighth"].value(store) == 0.125
    assert ex["vlane"](store) == int.from_bytes(bytes([4, 5, 6, 7]), "little")
    assert ex["counter"].type(store).mutable and not ex["half"].type(store).mutable


def test_data_segments():
    m = Module()
    m.add_memory(1)
    m.data(100, b"hello, wasm")
    passive = m.data(None, bytes([9, 8, 7, 6]))
    f = m.function("byte", params=[I32], results=[I32], export=True)
    f.local_get(0).i32_load8_u(offset=100)
    g = m.function("init", export=True)
    g.i32_const(200).i32_const(1).i32_const(3).memory_init(passive).data_drop(passive)
    store, ex = run(m)
    assert [ex["byte"](store, k) for k in range(5)] == list(b"hello")
    mem = ex["memory"]
    view = np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),))
    assert bytes(view[100:111]) == b"hello, wasm"
    ex["init"](store)
    assert bytes(view[200:204]) == bytes([8, 7, 6, 0])
    with pytest.raises(wasmtime.Trap):      # the segment was dropped
        ex["init"](store)


def test_memory_grow_size_fill_copy():
    m = Module()
    m.add_memory(1, 4, export="mem")
    m.function("size", results=[I32], export=True).memory_size()
    m.function("grow", params=[I32], results=[I32], export=True).local_get(0).memory_grow()
    f = m.function("fillcopy", export=True)
    f.i32_const(10).i32_const(0xAB).i32_const(6).memory_fill()       # [10, 16) = 0xAB
    f.i32_const(13).i32_const(8).i32_const(6).memory_copy()          # overlapping copy [8,14) -> [13,19)
    store, ex = run(m)
    assert ex["size"](store) == 1
    assert ex["grow"](store, 2) == 1 and ex["size"](store) == 3
    assert ex["grow"](store, 2) == -1 and ex["size"](store) == 3    # beyond max
    ex["fillcopy"](store)
    mem = ex["mem"]
    assert mem.data_len(store) == 3 * 65536
    view = np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),))
    want = np.zeros(32, np.uint8)
    want[10:16] = 0xAB
    want[13:19] = want[8:14].copy()
    np.testing.assert_array_equal(view[:32], want)


def test_saturating_and_conversions():
    m = Module()
    for mn in ("i32.trunc_sat_f32_s", "i32.trunc_sat_f32_u"):
        m.function(mn, params=[F32], results=[I32], export=True).local_get(0).op(mn)
    m.function("i64.trunc_sat_f64_s", params=[F64], results=[I64], export=True).local_get(0).i64_trunc_sat_f64_s()
    m.function("bits", params=[F32], results=[I32], export=True).local_get(0).i32_reinterpret_f32()
    m.function("cvt", params=[I64], results=[F64], export=True).local_get(0).f64_convert_i64_u()
    m.function("ext", params=[I32], results=[I64], export=True).local_get(0).i32_extend8_s().i64_extend_i32_u()
    store, ex = run(m)
    s, u = ex["i32.trunc_sat_f32_s"], ex["i32.trunc_sat_f32_u"]
    assert [s(store, v) for v in (float("nan"), 1e10, -1e10, -2.7)] == [0, 2**31 - 1, -2**31, -2]
    assert [u(store, v) for v in (-1.0, 1e10, 3.9)] == [0, -1, 3]      # u32 max reads back as -1
    assert ex["i64.trunc_sat_f64_s"](store, -1e300) == -2**63
    assert ex["bits"](store, 1.0) == 0x3F800000
    assert ex["cvt"](store, -1) == 2.0**64
    assert ex["ext"](store, 0x80) == 2**32 - 128


def test_multivalue_block_and_start():
    m = Module()
    g = m.add_global(I32, 0, mutable=True, export="g")
    s = m.function("init")
    s.i32_const(42).global_set(g)
    m.start("init")
    f = m.function("f", params=[I32], results=[I32, I32], export=True)
    f.local_get(0)
    with f.block(((I32,), (I32, I32))):
        f.i32_const(1).i32_add().i32_const(7)
    store, ex = run(m)
    assert ex["g"].value(store) == 42
    assert ex["f"](store, 9) == [10, 7]


def test_types_deduplicated():
    m = Module()
    m.import_function("env", "h", params=[I32], results=[I32])
    for k in range(3):
        m.function(f"f{k}", params=["i32"], results=[I32])
    m.function("g", params=[F32])
    assert len(m.types) == 2
    assert sections(m.emit())[1][0] == 2           # vec length of the type section


SIMD_CASES = [
    # (mnemonic, operand dtypes, result dtype, numpy reference)
    ("f32x4.add", [np.float32] * 2, np.float32, lambda a, b: a + b),
    ("f32x4.sub", [np.float32] * 2, np.float32, lambda a, b: a - b),
    ("f32x4.div", [np.float32] * 2, np.float32, lambda a, b: a / b),
    ("f32x4.min", [np.float32] * 2, np.float32, np.minimum),
    ("f32x4.max", [np.float32] * 2, np.float32, np.maximum),
    ("f32x4.abs", [np.float32], np.float32, np.abs),
    ("f32x4.neg", [np.float32], np.float32, np.negative),
    ("f32x4.sqrt", [np.float32], np.float32, np.sqrt),
    ("f32x4.ceil", [np.float32], np.float32, np.ceil),
    ("f32x4.floor", [np.float32], np.float32, np.floor),
    ("f32x4.trunc", [np.float32], np.float32, np.trunc),
    ("f32x4.nearest", [np.float32], np.float32, np.rint),
    ("f32x4.lt", [np.float32] * 2, np.int32, lambda a, b: -(a < b).astype(np.int32)),
    ("f64x2.mul", [np.float64] * 2, np.float64, lambda a, b: a * b),
    ("f64x2.sqrt", [np.float64], np.float64, np.sqrt),
    ("i32x4.add", [np.int32] * 2, np.int32, lambda a, b: a + b),
    ("i32x4.mul", [np.int32] * 2, np.int32, lambda a, b: a * b),
    ("i32x4.min_s", [np.int32] * 2, np.int32, np.minimum),
    ("i32x4.max_u", [np.uint32] * 2, np.uint32, np.maximum),
    ("i32x4.abs", [np.int32], np.int32, np.abs),
    ("i16x8.add_sat_s", [np.int16] * 2, np.int16,
     lambda a, b: np.clip(a.astype(np.int32) + b, -32768, 32767).astype(np.int16)),
    ("i8x16.sub", [np.int8] * 2, np.int8, lambda a, b: a - b),
    ("i32x4.dot_i16x8_s", [np.int16] * 2, np.int32,
     lambda a, b: (a.astype(np.int32) * b).reshape(4, 2).sum(1).astype(np.int32)),
    ("i32x4.extmul_low_i16x8_s", [np.int16] * 2, np.int32, lambda a, b: a[:4].astype(np.int32) * b[:4]),
    ("i16x8.extadd_pairwise_i8x16_u", [np.uint8], np.uint16, lambda a: a.astype(np.uint16).reshape(8, 2).sum(1)),
    ("f32x4.convert_i32x4_s", [np.int32], np.float32, lambda a: a.astype(np.float32)),
    ("i32x4.trunc_sat_f32x4_s", [np.float32], np.int32, lambda a: np.trunc(a).astype(np.int32)),
    ("f64x2.promote_low_f32x4", [np.float32], np.float64, lambda a: a[:2].astype(np.float64)),
    ("v128.and", [np.uint8] * 2, np.uint8, np.bitwise_and),
    ("v128.andnot", [np.uint8] * 2, np.uint8, lambda a, b: a & ~b),
    ("v128.xor", [np.uint8] * 2, np.uint8, np.bitwise_xor),
    ("v128.not", [np.uint8], np.uint8, np.invert),
    ("v128.bitselect", [np.uint8] * 3, np.uint8, lambda a, b, c: (a & c) | (b & ~c)),
]


@pytest.mark.parametrize("mn,ins,out,ref", SIMD_CASES, ids=[c[0] for c in SIMD_CASES])
def test_simd_ops_against_numpy(mn, ins, out, ref):
    m = Module()
    m.import_memory("env", "memory", 1)
    f = m.function("k", export=True)
    f.i32_const(64)
    for j in range(len(ins)):
        f.i32_const(16 * j).v128_load()
    f.op(mn).v128_store()
    rng = np.random.default_rng(len(mn))
    args = []
    for t in ins:
        if np.dtype(t).kind == "f":
            a = (rng.standard_normal(16 // np.dtype(t).itemsize) * 100).astype(t)
        else:
            a = rng.integers(np.iinfo(t).min, np.iinfo(t).max, 16 // np.dtype(t).itemsize, dtype=t)
        args.append(a)
    views = {}

    def imports(store):
        mem, view = host_memory(store)
        for j, a in enumerate(args):
            view[16 * j:16 * j + 16] = a.view(np.uint8)
        views["v"] = view
        return [mem]
    store, ex = run(m, imports)
    ex["k"](store)
    got = views["v"][64:80].view(out)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, ref(*args).astype(out))


def test_simd_shifts_splat_lane_loads_and_reductions():
    m = Module()
    m.import_memory("env", "memory", 1)
    f = m.function("shift", params=[I32, I32], results=[I32], export=True)
    f.local_get(0).i32x4_splat().local_get(1).i32x4_shr_s().i32x4_extract_lane(3)
    g = m.function("tf", params=[I32], results=[I32, I32], export=True)
    g.local_get(0).i32x4_splat().v128_any_true()
    g.v128_const(struct.pack("<4i", 1, 2, 3, 0)).local_get(0).i32x4_replace_lane(3).i32x4_all_true()
    h = m.function("lanes", results=[F32, F32], export=True)
    h.i32_const(4).i32_const(0).v128_load32_splat().v128_load32_lane(2, align=2).f32x4_extract_lane(2)
    h.i32_const(0).v128_load64_zero(offset=0).f32x4_extract_lane(1)
    views = {}

    def imports(store):
        mem, view = host_memory(store)
        view[:8] = np.array([1.25, -3.0], np.float32).view(np.uint8)
        views["v"] = view
        return [mem]
    store, ex = run(m, imports)
    assert ex["shift"](store, -256, 4) == -16
    assert ex["tf"](store, 0) == [0, 0] and ex["tf"](store, 5) == [1, 1]
    assert ex["lanes"](store) == [-3.0, -3.0]


def test_relaxed_simd_madd():
    eng = make_engine(wasm_relaxed_simd=True)
    m = Module()
    f = m.function("fma", params=[F32, F32, F32], results=[F32, F32], export=True)
    for mn in ("f32x4.relaxed_madd", "f32x4.relaxed_nmadd"):
        for k in range(3):
            f.local_get(k).f32x4_splat()
        f.op(mn).f32x4_extract_lane(3)
    store, ex = run(m, engine=eng)
    assert ex["fma"](store, 1.5, 4.0, 0.5) == [6.5, -5.5]


class _SharedMemory(wasmtime.SharedMemory):
    def _as_extern(self):
        from wasmtime import _ffi as ffi
        return ffi.wasmtime_extern_t(ffi.WASMTIME_EXTERN_SHAREDMEMORY,
                                     ffi.wasmtime_extern_union(sharedmemory=self.ptr()))


def test_shared_memory_import_with_threads():
    eng = make_engine(wasm_threads=True, shared_memory=True)
    m = Module()
    m.import_memory("env", "memory", 1, 2, shared=True)
    f = m.function("add", params=[I32, I32], results=[I32], export=True)
    f.local_get(0).local_get(1).i32_atomic_rmw_add()            # returns the old value
    m.function("fence", export=True).atomic_fence()
    data = m.emit()
    assert bytes([0x02, 0x03, 0x01, 0x02]) in sections(data)[2]   # memory import, shared limits 1..2
    wasmtime.Module.validate(eng, data)
    mem = wasmtime.SharedMemory(eng, wasmtime.MemoryType(wasmtime.Limits(1, 2), shared=True))
    store = wasmtime.Store(eng)
    try:
        inst = wasmtime.Instance(store, wasmtime.Module(eng, data), [mem])
    except TypeError:   # wasmtime-py 50 wraps the pointer twice in SharedMemory._as_extern
        mem = _SharedMemory(eng, wasmtime.MemoryType(wasmtime.Limits(1, 2), shared=True))
        inst = wasmtime.Instance(store, wasmtime.Module(eng, data), [mem])
    add = inst.exports(store)["add"]
    assert add(store, 8, 5) == 0 and add(store, 8, 7) == 5
    view = np.ctypeslib.as_array(mem.data_ptr(), shape=(mem.data_len(),))
    assert view[8:12].view(np.int32)[0] == 12
    inst.exports(store)["fence"](store)
    with pytest.raises(ValueError, match="max_pages"):
        Module().import_memory("env", "memory", 1, shared=True)


# ------------------------------------------------------------------ errors and text

def test_unbalanced_blocks_raise():
    m = Module()
    f = m.function("leaky", export=True)
    f.block()
    f.loop()
    f.end()
    with pytest.raises(ValueError, match="'leaky'.*unclosed"):
        m.emit()
    with pytest.raises(ValueError, match="'leaky'"):
        f.finish()
    g = Module().function("extra_end")
    with pytest.raises(ValueError, match="'extra_end'.*end without"):
        g.end()
    with pytest.raises(ValueError, match="else without"):
        g.block()
        g.else_()
    with pytest.raises(ValueError, match="enclosing"):
        g.br(2)
    with pytest.raises(ValueError, match="'ctx'"):
        with Module().function("ctx") as h:
            h.if_()


def test_bad_instructions_raise():
    f = Module().function("f", params=[I32])
    with pytest.raises(AttributeError, match="f32_fma"):
        f.f32_fma()
    with pytest.raises(ValueError, match="unknown WebAssembly mnemonic"):
        f.op("f32.fma")
    with pytest.raises(TypeError, match="i32.add"):
        f.i32_add(3)
    with pytest.raises(TypeError, match="local.get"):
        f.local_get()
    with pytest.raises(ValueError, match="locals"):
        f.local_get(5)
    with pytest.raises(ValueError, match="lane"):
        f.f32x4_extract_lane(4)
    with pytest.raises(ValueError, match="16"):
        f.i8x16_shuffle([0] * 15)
    with pytest.raises(ValueError, match="align"):
        f.f32_load(align=3)
    with pytest.raises(ValueError, match="align"):
        f.i32_atomic_load(align=0)
    with pytest.raises(ValueError, match="range"):
        f.i32_const(2**32)
    with pytest.raises(ValueError, match="f32 range"):
        f.f32_const(1e39)
    with pytest.raises(ValueError, match="duplicate"):
        m = Module()
        m.function("a", export=True)
        m.function("a")


def test_text_dump():
    m = Module()
    m.import_memory("env", "memory", 1, 4, shared=True)
    m.import_function("env", "log", params=[F32])
    m.add_global(I32, 3, mutable=True, name="g")
    f = m.function("k", params=[I32], results=[F32], export=True)
    acc = f.local(F32)
    f.local(V128)
    with f.loop():
        f.local_get(0).f32_load(offset=8)
        with f.if_(F32):
            f.f32_const(1.0)
            f.else_()
            f.f32_const(-2.5)
        f.local_set(acc)
    f.i32_const(0).v128_load(16, 2).f32x4_extract_lane(1).call("log")
    f.local_get(acc)
    out = text.dump(m)
    for s in ('(import "env" "log" (func $log (param f32)))', '(func $k (export "k") (param i32) (result f32)',
              "(local f32 v128)", "  loop\n", "      if (result f32)\n", "        f32.const 0x1.0000000000000p+0",
              "      else\n", "      end\n", "    end\n", "f32.load offset=8", "v128.load offset=16 align=4",
              "f32x4.extract_lane 1", "call $log", "(global $g (mut i32)",
              '(import "env" "memory" (memory 1 4 shared))'):
        assert s in out, (s, out)
    assert text.dump_function(f).startswith("(func $k")
