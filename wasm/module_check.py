"""Structure check of an artifact's ``module.wasm`` before any engine sees it.

``check_module(data, drivers, memory_pages)`` reads the module's sections with
strict bounds and enforces the artifact contract (docs/artifact.md,
"WebAssembly section"); it raises ``ValueError("module.wasm: ...")`` on the
first defect and returns None otherwise. js/backends/wasm_module.js is the
same checker in JavaScript, with the same messages.

Binary format, WebAssembly Core Specification 2.0:

- §5.2.2 integers: u32 is unsigned LEB128 of at most 5 bytes whose value fits in 32 bits;
- §5.2.4 names: a byte vector holding valid UTF-8;
- §5.3.4 value types, §5.3.6 function types (0x60 params results),
  §5.3.7 limits (0x00 min | 0x01 min max), §5.3.9 table types;
- §5.5.2 sections (id, u32 size, contents), §5.5.3 custom .. §5.5.15 data count,
  §5.5.16 modules (magic, version 1, non-custom sections in order, each at most once).

Contract: the only import is ``env.memory`` (a memory, neither shared nor
64-bit, minimum <= ``memory_pages``); no memory or start section; tables hold
at most 100000 entries; each driver is an exported function of type () -> ().
Code bodies are skipped by size (the engine validates them).
"""
from __future__ import annotations

__all__ = ["check_module", "MAX_TABLE_ENTRIES"]

MAX_TABLE_ENTRIES = 100000
THREAD_EXPORTS = {"worker": ((0x7F,), ()), "stop": ((), ()), "threads_setup": ((0x7F, 0x7F), ())}
THREAD_OPTIONAL = {"wake": ((), ())}     # older artifacts lack it; a host calls it where exported
HEADER = b"\0asm\x01\0\0\0"                               # §5.5.16: magic, version 1
SECTIONS = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count"}
ORDER = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11]  # §5.5.16: data count sits between element and code
VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}
KINDS = ["function", "table", "memory", "global", "tag"]


def _fail(msg: str):
    raise ValueError(f"module.wasm: {msg}")


def _show(s: str) -> str:
    """A name for a message: printable ASCII only, at most 32 characters."""
    s = "".join(c if " " <= c <= "~" else "?" for c in s)
    return s if len(s) <= 32 else s[:32] + "..."


def _fmt_type(t) -> str:
    def side(ts):
        shown = [VALTYPES[v] for v in ts[:4]] + ([f"... {len(ts)} values"] if len(ts) > 4 else [])
        return "(" + ", ".join(shown) + ")"
    return f"{side(t[0])} -> {side(t[1])}"


class _Reader:
    """Bounded reads of ``data[pos:end]``; errors name ``where`` (a section) and the byte offset."""

    def __init__(self, data, pos: int, end: int, where: str = ""):
        self.data, self.pos, self.end, self.where = data, pos, end, where

    def fail(self, msg: str):
        _fail(f"{self.where}: {msg}" if self.where else msg)

    def byte(self) -> int:
        if self.pos >= self.end:
            self.fail(f"unexpected end at byte {self.pos}")
        self.pos += 1
        return self.data[self.pos - 1]

    def u32(self) -> int:
        start, value = self.pos, 0
        for i in range(5):
            b = self.byte()
            if i == 4 and b & 0x80:
                self.fail(f"LEB128 integer at byte {start} is longer than 5 bytes")
            if i == 4 and b > 0x0F:
                self.fail(f"LEB128 integer at byte {start} exceeds 2^32-1")
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return value

    def count(self, what: str) -> int:
        """A vector length (§5.1.3), checked against the bytes left before anything is read or allocated."""
        at, n = self.pos, self.u32()
        if n > self.end - self.pos:             # every element takes at least one byte
            self.fail(f"{what} count {n} at byte {at} exceeds the {self.end - self.pos} bytes left")
        return n

    def skip(self, n: int):
        if n > self.end - self.pos:
            self.fail(f"size {n} at byte {self.pos} exceeds the {self.end - self.pos} bytes left")
        self.pos += n

    def name(self) -> str:
        at = self.pos
        n = self.count("name byte")
        self.pos += n
        try:
            return bytes(self.data[self.pos - n:self.pos]).decode("utf-8")
        except UnicodeDecodeError:
            pass
        self.fail(f"name at byte {at} is not valid UTF-8")

    def limits(self, what: str, shared: bool = False) -> tuple[int, int | None]:
        flag = self.byte()
        if shared:                          # §5.3.7 with the threads proposal: 0x03 shared, min and max
            if flag != 3:
                self.fail(f"{what} must be shared (limits flag 0x03) in a threaded module, not 0x{flag:02x}")
            lo, hi = self.u32(), self.u32()
            if hi < lo:
                self.fail(f"{what} maximum {hi} is below its minimum {lo}")
            return lo, hi
        if flag not in (0, 1):
            self.fail(f"{what} has limits flag 0x{flag:02x}; only 0x00 and 0x01 are allowed "
                      "(no shared or 64-bit memories)")
        lo = self.u32()
        hi = self.u32() if flag else None
        if hi is not None and hi < lo:
            self.fail(f"{what} maximum {hi} is below its minimum {lo}")
        return lo, hi


def check_module(data: bytes, drivers: list[str], memory_pages: int, shared: bool = False,
                 rows_drivers: list[str] = ()) -> None:
    """Raise ValueError("module.wasm: ...") unless ``data`` is a well-formed module honouring the contract.
    ``rows_drivers``: exports that must be functions (i32) -> () (run-time rows drivers).
    ``shared``: the memory import must be shared (a threaded module, ``wasm/threads.py``), and the
    module must export ``worker`` (i32) -> (), ``stop`` and ``threads_setup`` (i32, i32) -> (), and
    may export ``wake`` () -> ()."""
    data = memoryview(data).cast("B")
    r = _Reader(data, 0, len(data))
    head = bytes(data[:8])
    if head != HEADER:
        if HEADER.startswith(head):
            _fail(f"unexpected end at byte {len(head)}")
        _fail("not a WebAssembly module (bad magic bytes)" if head[:4] != HEADER[:4]
              else "unsupported WebAssembly version (expected 1)")
    r.pos = 8
    types, funcs, exports, last, memory, code_count, data_count, data_segments = [], [], {}, -1, None, 0, None, 0
    while r.pos < r.end:
        at, sid = r.pos, r.byte()
        if sid not in SECTIONS:
            _fail(f"unknown section id {sid} at byte {at}")
        size = r.u32()
        if size > r.end - r.pos:
            _fail(f"{SECTIONS[sid]} section at byte {at} has size {size}, past the end of the module")
        s = _Reader(data, r.pos, r.pos + size, f"{SECTIONS[sid]} section")
        r.pos += size
        if sid:
            if ORDER.index(sid) <= last:
                _fail(f"{SECTIONS[sid]} section at byte {at} is out of order or repeated")
            last = ORDER.index(sid)
        if sid == 0:
            s.name()
            continue
        if sid == 1:                                            # §5.5.4, §5.3.6
            for _ in range(s.count("type")):
                form = s.byte()
                if form != 0x60:
                    s.fail(f"unsupported type form 0x{form:02x} (only function types, 0x60)")
                sig = []
                for what in ("parameter", "result"):
                    vals = [s.byte() for _ in range(s.count(what))]
                    bad = [v for v in vals if v not in VALTYPES]
                    if bad:
                        s.fail(f"unsupported value type 0x{bad[0]:02x}")
                    sig.append(tuple(vals))
                types.append(tuple(sig))
        elif sid == 2:                                          # §5.5.5
            for _ in range(s.count("import")):
                mod, field, kind = s.name(), s.name(), s.byte()
                if kind >= len(KINDS):
                    s.fail(f"unknown import kind 0x{kind:02x}")
                if (mod, field, kind) != ("env", "memory", 2):
                    _fail(f"imports '{_show(mod)}'.'{_show(field)}' ({KINDS[kind]}); "
                          "the only import allowed is the memory env.memory")
                if memory is not None:
                    _fail("imports env.memory twice")
                memory = s.limits("env.memory", shared)
                if memory[0] > memory_pages:
                    _fail(f"env.memory needs at least {memory[0]} pages, "
                          f"more than the {memory_pages} pages the artifact provides")
        elif sid == 3:                                          # §5.5.6
            for i in range(s.count("function")):
                t = s.u32()
                if t >= len(types):
                    s.fail(f"function {i} has type index {t}, but there are {len(types)} types")
                funcs.append(types[t])
        elif sid == 4:                                          # §5.5.7, §5.3.9
            for i in range(s.count("table")):
                ref = s.byte()
                if ref not in (0x70, 0x6F):
                    s.fail(f"table {i} has unsupported element type 0x{ref:02x}")
                for bound, n in zip(("minimum", "maximum"), s.limits(f"table {i}")):
                    if n is not None and n > MAX_TABLE_ENTRIES:
                        s.fail(f"table {i} {bound} {n} exceeds {MAX_TABLE_ENTRIES} entries")
        elif sid == 5:
            _fail("defines its own memory; the memory must be imported as env.memory")
        elif sid == 7:                                          # §5.5.10
            for _ in range(s.count("export")):
                ename, kind = s.name(), s.byte()
                if kind >= len(KINDS):
                    s.fail(f"unknown export kind 0x{kind:02x}")
                index = s.u32()
                if ename in exports:
                    s.fail(f"duplicate export name '{_show(ename)}'")
                exports[ename] = (kind, index)
        elif sid == 8:
            _fail("has a start function; start functions are not allowed")
        elif sid == 10:                                         # §5.5.13: bodies skipped by size
            code_count = s.count("code entry")
            for _ in range(code_count):
                s.skip(s.u32())
        elif sid == 12:                                         # §5.5.15
            data_count = s.u32()
        else:                                                   # global, element, data: skipped
            data_segments = s.count("data segment") if sid == 11 else 0
            s.pos = s.end
        if s.pos != s.end:
            s.fail(f"contents end at byte {s.pos}, before the section's end at byte {s.end}")
    if code_count != len(funcs):
        _fail(f"the function section declares {len(funcs)} functions but the code section has {code_count} bodies")
    if data_count is not None and data_count != data_segments:
        _fail(f"the data count section declares {data_count} segments but the data section has {data_segments}")
    if memory is None:
        _fail("does not import env.memory")
    for name, t in ({**THREAD_EXPORTS, **THREAD_OPTIONAL} if shared else {}).items():
        optional = name in THREAD_OPTIONAL
        if optional and name not in exports:
            continue
        kind, index = exports.get(name, (None, None))
        if kind != 0 or index >= len(funcs) or funcs[index] != t:
            _fail(f"a threaded module's export '{name}' must be a function of type {_fmt_type(t)}" if optional
                  else f"a threaded module must export the function '{name}' of type {_fmt_type(t)}")
    for d, want in [(d, ((), ())) for d in drivers] + [(d, ((0x7F,), ())) for d in rows_drivers]:
        if d not in exports:
            _fail(f"does not export the driver function '{_show(d)}'")
        kind, index = exports[d]
        if kind != 0:
            _fail(f"export '{_show(d)}' is a {KINDS[kind]}, a driver must be a function {_fmt_type(want)}")
        if index >= len(funcs):
            _fail(f"export '{_show(d)}' is function {index}, but the module defines {len(funcs)} functions")
        if funcs[index] != want:
            _fail(f"export '{_show(d)}' has type {_fmt_type(funcs[index])}, a driver must be {_fmt_type(want)}")
