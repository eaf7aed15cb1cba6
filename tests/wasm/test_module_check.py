"""Tests of wasm/module_check.py, the structure check of an artifact's module.wasm.

Modules come from ``webtensor.wasm.binary.Module`` (written like
js/test/fixtures/make_fixtures.py), from WebAssembly text (wasmtime.wat2wasm)
and from hand-assembled bytes. Where wasmtime accepts a module, its own
reflection of the driver exports' types must agree with the checker.

``python3 tests/wasm/test_module_check.py`` prints every case (and seeded bit
flips) with the checker's message as JSON: js/test/wasm_module.test.js checks
that the JavaScript checker gives the same messages.
"""
import json
import random
import sys
from pathlib import Path

import pytest
import wasmtime

from webtensor.wasm.binary import F32, I32, Module, name, section, u32, vec
from webtensor.wasm.module_check import check_module

DRIVERS = ["predict", "train_step"]
HDR = b"\0asm\x01\0\0\0"
ENV_MEMORY = name("env") + name("memory") + b"\x02\x00\x01"        # env.memory (memory 1)
BODY = b"\x02\x00\x0b"                                                # size 2: no locals, end


def valid_module(names: bool = True) -> bytes:
    """A module like the artifacts' (imported memory, active data, () -> () drivers) plus a helper and a global."""
    m = Module()
    m.import_memory("env", "memory", 1)
    m.data(64, b"\x01\x02\x03\x04")
    h = m.function("scale", params=[I32, F32], results=[F32])
    h.local_get(1).f32_const(2.0).f32_mul()
    for d in DRIVERS:
        f = m.function(d, export=True)
        f.i32_const(0).i32_const(1).i32_const(64).f32_load().call("scale").f32_store(4 * len(d))
    m.add_global(I32, 7, export="version")
    return m.emit(names=names)


def functype(params=b"", results=b"") -> bytes:
    return b"\x60" + vec(bytes([t]) for t in params) + vec(bytes([t]) for t in results)


def mod(*sections) -> bytes:
    return HDR + b"".join(sections)


def one_driver(*extra_after_import, types=(functype(),), imports=(ENV_MEMORY,), exports=None, body=BODY) -> bytes:
    """Hand-made: types, imports, one function of type 0 exported as 'predict', ``extra`` after the imports."""
    exports = [name("predict") + b"\x00\x00"] if exports is None else exports
    return mod(section(1, vec(types)), section(2, vec(imports)), *extra_after_import,
               section(3, vec([u32(0)])), section(7, vec(exports)), section(10, vec([body])))


def wat(text: str) -> bytes:
    return wasmtime.wat2wasm(text)


def wat_driver(func: str, extra: str = "", memory: str = '(import "env" "memory" (memory 1))') -> bytes:
    return wat(f'(module {memory} {extra} (func (export "predict") {func}))')


def cases():
    """(label, module bytes, drivers, memory_pages, expected message or None)."""
    m = "module.wasm: "
    drv = f"{m}export 'predict' has type "
    return [
        ("valid", valid_module(), DRIVERS, 1, None),
        ("valid, more pages provided", valid_module(names=False), DRIVERS, 16, None),
        ("valid, no drivers asked", valid_module(), [], 1, None),
        ("hand-made valid", one_driver(), ["predict"], 1, None),
        ("padded 5-byte LEB128 count", mod(section(1, b"\x81\x80\x80\x80\x00" + functype()), section(2, vec([ENV_MEMORY])),
                                           section(3, vec([u32(0)])), section(7, vec([name("predict") + b"\x00\x00"])),
                                           section(10, vec([BODY]))), ["predict"], 1, None),
        ("custom sections anywhere", mod(section(0, name("a")), section(1, vec([functype()])), section(0, name("b") + b"xyz"),
                                         section(2, vec([ENV_MEMORY]))), [], 1, None),
        # the WebAssembly text examples
        ("predict (param i32)", wat('(module (import "env" "memory" (memory 1)) (func (export "predict") (param i32)) '
                                    '(func (export "train_step")))'), DRIVERS, 1, drv + "(i32) -> (), a driver must be () -> ()"),
        ("externref param", wat_driver("(param externref)"), ["predict"], 1, drv + "(externref) -> (), a driver must be () -> ()"),
        ("v128 result", wat_driver("(result v128) v128.const i64x2 0 0"), ["predict"], 1,
         drv + "() -> (v128), a driver must be () -> ()"),
        ("64 i64 results", wat_driver("(result" + " i64" * 64 + ") unreachable"), ["predict"], 1,
         drv + "() -> (i64, i64, i64, i64, ... 64 values), a driver must be () -> ()"),
        ("mixed type", wat_driver("(param f64 funcref) (result f32) f32.const 0"), ["predict"], 1,
         drv + "(f64, funcref) -> (f32), a driver must be () -> ()"),
        ("start function", wat_driver("", "(func $s) (start $s)"), ["predict"], 1,
         m + "has a start function; start functions are not allowed"),
        ("own memory", wat_driver("", memory="(memory 1)"), ["predict"], 1,
         m + "defines its own memory; the memory must be imported as env.memory"),
        ("function import", wat_driver("", '(import "env" "log" (func (param i32)))'), ["predict"], 1,
         m + "imports 'env'.'log' (function); the only import allowed is the memory env.memory"),
        ("global import", wat_driver("", memory='(import "env" "g" (global i32))'), ["predict"], 1,
         m + "imports 'env'.'g' (global); the only import allowed is the memory env.memory"),
        ("table import", wat_driver("", memory='(import "env" "memory" (table 1 funcref))'), ["predict"], 1,
         m + "imports 'env'.'memory' (table); the only import allowed is the memory env.memory"),
        ("memory under another name", wat_driver("", memory='(import "js" "mem" (memory 1))'), ["predict"], 1,
         m + "imports 'js'.'mem' (memory); the only import allowed is the memory env.memory"),
        ("shared memory import", wat_driver("", memory='(import "env" "memory" (memory 1 1 shared))'), ["predict"], 1,
         m + "import section: env.memory has limits flag 0x03; only 0x00 and 0x01 are allowed (no shared or 64-bit memories)"),
        ("memory64 import", one_driver(imports=[name("env") + name("memory") + b"\x02\x04\x01"]), ["predict"], 1,
         m + "import section: env.memory has limits flag 0x04; only 0x00 and 0x01 are allowed (no shared or 64-bit memories)"),
        ("memory max < min", one_driver(imports=[name("env") + name("memory") + b"\x02\x01\x02\x01"]), ["predict"], 2,
         m + "import section: env.memory maximum 1 is below its minimum 2"),
        ("memory max < memory_pages is fine", one_driver(imports=[name("env") + name("memory") + b"\x02\x01\x01\x01"]),
         ["predict"], 4, None),
        ("memory too small", wat_driver("", memory='(import "env" "memory" (memory 3))'), ["predict"], 2,
         m + "env.memory needs at least 3 pages, more than the 2 pages the artifact provides"),
        ("env.memory twice", one_driver(imports=[ENV_MEMORY, ENV_MEMORY]), ["predict"], 1, m + "imports env.memory twice"),
        ("no imports", wat('(module (func (export "predict")))'), ["predict"], 1, m + "does not import env.memory"),
        ("huge table", wat_driver("", "(table 1000000 funcref)"), ["predict"], 1,
         m + "table section: table 0 minimum 1000000 exceeds 100000 entries"),
        ("huge table maximum", wat_driver("", "(table 1 4294967295 externref)"), ["predict"], 1,
         m + "table section: table 0 maximum 4294967295 exceeds 100000 entries"),
        ("table of the maximum size", wat_driver("", "(table 100000 100000 funcref)"), ["predict"], 1, None),
        ("table with an initializer", one_driver(section(4, vec([b"\x40\x00\x70\x00\x01"]))), ["predict"], 1,
         m + "table section: table 0 has unsupported element type 0x40"),
        ("missing driver", valid_module(), ["predict", "classify"], 1, m + "does not export the driver function 'classify'"),
        ("driver is a global", valid_module(), ["version"], 1, m + "export 'version' is a global, a driver must be a function () -> ()"),
        ("driver is the memory", wat_driver("", '(export "run" (memory 0))'), ["run"], 1,
         m + "export 'run' is a memory, a driver must be a function () -> ()"),
        ("export of an undefined function", one_driver(exports=[name("predict") + b"\x00\x05"]), ["predict"], 1,
         m + "export 'predict' is function 5, but the module defines 1 functions"),
        ("duplicate export", one_driver(exports=[name("predict") + b"\x00\x00"] * 2), ["predict"], 1,
         m + "export section: duplicate export name 'predict'"),
        ("BOM is part of a name", one_driver(exports=[name("\ufeffpredict") + b"\x00\x00"]), ["predict"], 1,
         m + "does not export the driver function 'predict'"),
        ("long odd driver name", valid_module(), ["p\nredict" + "x" * 40], 1,
         m + "does not export the driver function 'p?redict" + "x" * 24 + "...'"),
        ("invalid UTF-8 export name", one_driver(exports=[b"\x02\xc0\xaf\x00\x00"]), ["predict"], 1,
         m + "export section: name at byte 38 is not valid UTF-8"),
        ("encoded surrogate in a name", one_driver(exports=[b"\x03\xed\xa0\x80\x00\x00"]), ["predict"], 1,
         m + "export section: name at byte 38 is not valid UTF-8"),
        ("unknown export kind", one_driver(exports=[name("predict") + b"\x07\x00"]), ["predict"], 1,
         m + "export section: unknown export kind 0x07"),
        ("unknown import kind", one_driver(imports=[name("env") + name("memory") + b"\x09"]), ["predict"], 1,
         m + "import section: unknown import kind 0x09"),
        *[(f"GC type form 0x{f:02x}", one_driver(types=[bytes([f, 0, 0])]), ["predict"], 1,
           m + f"type section: unsupported type form 0x{f:02x} (only function types, 0x60)") for f in (0x5E, 0x5F, 0x4E, 0x50)],
        ("typed reference param", one_driver(types=[b"\x60\x01\x64\x00\x00"]), ["predict"], 1,
         m + "type section: unsupported value type 0x64"),
        ("type index out of range", mod(section(1, vec([functype()])), section(2, vec([ENV_MEMORY])), section(3, vec([u32(3)]))),
         [], 1, m + "function section: function 0 has type index 3, but there are 1 types"),
        ("code count mismatch", mod(section(1, vec([functype()])), section(2, vec([ENV_MEMORY])), section(3, vec([u32(0)]))),
         [], 1, m + "the function section declares 1 functions but the code section has 0 bodies"),
        ("data count mismatch", mod(section(2, vec([ENV_MEMORY])), section(12, u32(2)), section(11, vec([b"\x01\x00"]))),
         [], 1, m + "the data count section declares 2 segments but the data section has 1"),
        ("unknown section id 13", mod(section(2, vec([ENV_MEMORY])), section(13, b"\x00")), [], 1, m + "unknown section id 13 at byte 25"),
        ("sections out of order", mod(section(2, vec([ENV_MEMORY])), section(1, vec([]))), [], 1,
         m + "type section at byte 25 is out of order or repeated"),
        ("repeated section", mod(section(2, vec([ENV_MEMORY])), section(2, vec([]))), [], 1,
         m + "import section at byte 25 is out of order or repeated"),
        ("data count after code", mod(section(2, vec([ENV_MEMORY])), section(10, vec([])), section(12, u32(0))), [], 1,
         m + "data count section at byte 28 is out of order or repeated"),
        ("section longer than its contents", mod(section(1, vec([functype()]) + b"\x00"), section(2, vec([ENV_MEMORY]))), [], 1,
         m + "type section: contents end at byte 14, before the section's end at byte 15"),
        ("section shorter than its contents", mod(section(1, b"\x01\x60\x00"), section(2, vec([ENV_MEMORY]))), [], 1,
         m + "type section: unexpected end at byte 13"),
        # lying lengths and LEB128
        ("section size 2^32-1", HDR + b"\x01\xff\xff\xff\xff\x0f", [], 1,
         m + "type section at byte 8 has size 4294967295, past the end of the module"),
        ("type count 2^32-1", mod(section(1, u32(2**32 - 1) + functype())), [], 1,
         m + "type section: type count 4294967295 at byte 10 exceeds the 3 bytes left"),
        ("param count 2^32-1", mod(section(1, b"\x01\x60" + u32(2**32 - 1))), [], 1,
         m + "type section: parameter count 4294967295 at byte 12 exceeds the 0 bytes left"),
        ("name length 2^32-1", mod(section(2, b"\x01" + u32(2**32 - 1) + b"env")), [], 1,
         m + "import section: name byte count 4294967295 at byte 11 exceeds the 3 bytes left"),
        ("code body size 2^32-1", mod(section(10, b"\x01" + u32(2**32 - 1) + b"\x00\x0b")), [], 1,
         m + "code section: size 4294967295 at byte 16 exceeds the 2 bytes left"),
        ("6-byte LEB128", HDR + b"\x01\x80\x80\x80\x80\x80\x00", [], 1, m + "LEB128 integer at byte 9 is longer than 5 bytes"),
        ("LEB128 past 2^32-1", HDR + b"\x01\xff\xff\xff\xff\x1f", [], 1, m + "LEB128 integer at byte 9 exceeds 2^32-1"),
        ("overlong LEB128 in a section", mod(section(1, b"\x80\x80\x80\x80\x80\x00")), [], 1,
         m + "type section: LEB128 integer at byte 10 is longer than 5 bytes"),
        ("truncated LEB128", HDR + b"\x01\x80", [], 1, m + "unexpected end at byte 10"),
        ("empty", b"", [], 1, m + "unexpected end at byte 0"),
        ("header only", HDR[:6], [], 1, m + "unexpected end at byte 6"),
        ("bad magic", b"\0asn\x01\0\0\0", [], 1, m + "not a WebAssembly module (bad magic bytes)"),
        ("not wasm at all", b"<html>", [], 1, m + "not a WebAssembly module (bad magic bytes)"),
        ("version 2", b"\0asm\x02\0\0\0", [], 1, m + "unsupported WebAssembly version (expected 1)"),
        ("component model layer", b"\0asm\x0d\0\x01\0", [], 1, m + "unsupported WebAssembly version (expected 1)"),
        ("custom section without a name", HDR + b"\x00\x00", [], 1, m + "custom section: unexpected end at byte 10"),
    ]


def message(data, drivers, pages):
    try:
        check_module(data, drivers, pages)
    except ValueError as e:
        return str(e)
    return None


def mutants(base: bytes, n: int, seed: int):
    """``n`` copies of ``base`` with 1 to 4 random bits flipped (seeded)."""
    rng = random.Random(seed)
    for _ in range(n):
        b = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        yield bytes(b)


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("label, data, drivers, pages, expected", cases(), ids=[c[0] for c in cases()])
def test_case(label, data, drivers, pages, expected):
    assert message(data, drivers, pages) == expected


def test_accepts_bytearray_and_memoryview():
    data = valid_module()
    assert check_module(bytearray(data), DRIVERS, 1) is None
    assert check_module(memoryview(data), DRIVERS, 1) is None


def test_every_truncation_fails():
    """Each cut of a valid module raises ValueError; only the cut before the trailing "name" section is complete."""
    unnamed, named = valid_module(names=False), valid_module()
    assert named.startswith(unnamed) and named[len(unnamed)] == 0   # emit appends the custom section last
    for data in (unnamed, named):
        complete = []
        for n in range(len(data)):
            msg = message(data[:n], DRIVERS, 1)
            if msg is None:
                complete.append(n)
            else:
                assert msg.startswith("module.wasm: "), (n, msg)
        assert complete == ([len(unnamed)] if data is named else [])


def test_the_fixtures_module_passes():
    pytest.importorskip("numpy")                         # the fixture builder needs numpy
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "js" / "test" / "fixtures"))
    try:
        import make_fixtures
    finally:
        sys.path.pop(0)
    check_module(make_fixtures.build_wasm(), ["predict", "classify", "train_step"], 1)


def _wasmtime_view(engine, data, drivers):
    """wasmtime's reading of a module it accepts: (imports, {driver: type text or kind}); None if it rejects it."""
    try:
        module = wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError:
        return None
    imports = [(i.module, i.name, type(i.type).__name__) for i in module.imports]

    def side(ts):   # wasmtime-py spells externref "anyref" (str(wasmtime.ValType.externref()) == "anyref")
        return "(" + ", ".join("externref" if t == wasmtime.ValType.externref() else str(t) for t in ts) + ")"
    types = {}
    for e in module.exports:
        if e.name in drivers:
            t = e.type
            types[e.name] = f"{side(t.params)} -> {side(t.results)}" if isinstance(t, wasmtime.FuncType) else type(t).__name__
    return imports, types


def test_bit_flips_agree_with_wasmtime():
    """10,000 seeded mutations: only ValueError or success; where wasmtime accepts, the driver types agree."""
    engine = wasmtime.Engine()
    base = valid_module()
    seen: dict[bytes, str | None] = {}
    accepted = both = typed = 0
    for data in mutants(base, 10_000, seed=1234):
        try:
            check_module(data, DRIVERS, 1)
            msg = None
        except ValueError as e:
            msg = str(e)
            assert msg.startswith("module.wasm: ") and len(msg) < 200, msg
        accepted += msg is None
        if data in seen:
            continue
        seen[data] = msg
        if msg is not None and " has type " not in msg or msg and "v128" in msg:   # (v128 aborts wasmtime-py)
            continue
        view = _wasmtime_view(engine, data, DRIVERS)
        if view is None:
            continue
        imports, types = view
        both += msg is None
        if msg is None:
            assert imports == [("env", "memory", "MemoryType")], imports
            assert types == {d: "() -> ()" for d in DRIVERS}, types
        else:
            driver = msg.split("'")[1]
            t = msg.split(" has type ", 1)[1].split(", a driver")[0]
            if "..." not in t:
                assert types[driver] == t, (msg, types)
                typed += 1
    assert accepted > 100 and both > 50 and typed >= 3, (accepted, both, typed)  # the mutations reach the cross-checks


def test_driver_types_agree_with_wasmtime():
    """A driver of each type with up to two parameters and results (body ``unreachable``): the checker
    accepts exactly () -> () and otherwise names the type as wasmtime's reflection reports it. (v128 is
    left out: wasmtime-py's C API aborts the process reflecting it, "support for v128 is not implemented".)"""
    engine, vals = wasmtime.Engine(), [0x7F, 0x7E, 0x7D, 0x7C, 0x70, 0x6F]
    short = [()] + [(v,) for v in vals]
    sigs = [(p, r) for p in short + [(v, w) for v in vals for w in vals] for r in short]
    sigs += [((), (v, w)) for v in vals for w in vals]
    for params, results in sigs:
        data = one_driver(types=[functype(params, results)], body=b"\x03\x00\x00\x0b")   # unreachable
        imports, types = _wasmtime_view(engine, data, ["predict"])
        want = None if types["predict"] == "() -> ()" else \
            f"module.wasm: export 'predict' has type {types['predict']}, a driver must be () -> ()"
        assert message(data, ["predict"], 1) == want


def test_engine_accepts_the_valid_modules():
    engine = wasmtime.Engine()
    for label, data, drivers, pages, expected in cases():
        if expected is None:
            view = _wasmtime_view(engine, data, drivers)
            assert view is not None, label
            assert view[1] == {d: "() -> ()" for d in drivers}, label


def dump(n_mutants: int = 2000) -> list:
    """Every case and ``n_mutants`` bit flips, with the Python checker's message, for the JavaScript test."""
    out = [{"label": c[0], "hex": c[1].hex(), "drivers": c[2], "pages": c[3], "message": message(*c[1:4])} for c in cases()]
    for i, data in enumerate(mutants(valid_module(), n_mutants, seed=99)):
        out.append({"label": f"mutant {i}", "hex": data.hex(), "drivers": DRIVERS, "pages": 1,
                    "message": message(data, DRIVERS, 1)})
    return out


if __name__ == "__main__":
    json.dump(dump(), sys.stdout)
