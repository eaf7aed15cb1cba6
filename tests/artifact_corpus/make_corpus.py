#!/usr/bin/env python3
"""A corpus of damaged and hostile webtensor artifacts, shared by the Python and JS loader tests.

    python3 tests/artifact_corpus/make_corpus.py OUTDIR          # write the corpus
    python3 tests/artifact_corpus/make_corpus.py --table [OUTDIR] # ... and print counts per kind (Markdown)

or ``make_corpus(outdir) -> list[dict]`` (the index entries) from Python; ``case_list()`` gives the
same entries without writing anything (test parametrization).

The base is the hand-built ``linear`` artifact of ``js/test/fixtures/make_fixtures.py`` (signatures
predict / classify / train_step, WebAssembly and WGSL). Every case is a copy of it with one thing
wrong, written to ``OUTDIR/cases/<NNN-short-name>/``; ``OUTDIR/outside/`` holds what traversal and
symlink cases point at (``secret.txt``: 4321 bytes starting with a random token, plus a valid copy
of the base's files). Everything is deterministic (seeded randomness only; the one absolute path
written into a manifest is ``OUTDIR``'s).

``OUTDIR/index.json`` lists the cases, in order::

    {"name": "NNN-short-name", "dir": "cases/NNN-short-name", "kind": "path", "backend": "wasm",
     "expect": ["ArtifactError"], "desc": "..."}

``expect`` is the set of allowed outcomes. An outcome is: load the directory with ``backend``
(Python ``webtensor.load(dir, backend=..., timeout=1.0)``, no timeout on webgpu; JS
``load(dir, {backend: 'wasm', worker: true, timeout: 1000})`` or ``{backend: 'webgpu', gpu}``); if it
loaded, run every signature once on zero inputs of the declared shapes and dtypes; dispose. The
outcome is ``"ok"`` or the error's class name (Python ``type(e).__name__``, JS ``e.name``).
Deterministic hostile cases allow only ``ArtifactError``; the looping driver ``TimeoutError``;
random damage that may leave a valid artifact ``ArtifactError``/``ok``/``TimeoutError``; the controls
``ok``. ``OUTDIR/expected_counts.json`` holds the counts per kind (what ``--table`` prints).
``OUTDIR/secret.json`` holds the secret's path, token and SHA-256 (which no error may quote).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from typing import Callable

from webtensor.wasm import binary as wb   # LEB128, vectors and names for the hand-made hostile modules

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "js", "test", "fixtures", "make_fixtures.py")

AE = ["ArtifactError"]
MAYBE = ["ArtifactError", "ok"]                  # spec-legal or hostile: either is fine, the runtimes must agree
RANDOM = ["ArtifactError", "ok", "TimeoutError"]  # random damage that may leave a valid (or looping) artifact
OK = ["ok"]
TIMEOUT = ["TimeoutError"]

SECRET_BYTES = 4321
SPARSE_BYTES = 5 << 29           # 2.5 GiB sparse files: more than a loader may read into memory
URL_PORT = 9                     # URL-shaped names in the directory corpus (the JS HTTP test uses real ports)
WGSL = ["kernels/classify_0.wgsl", "kernels/predict_0.wgsl"] + [f"kernels/train_step_{i}.wgsl" for i in range(6)]
DEEP = 100_000                   # nesting depth of the deep-JSON cases


# ---------------------------------------------------------------- WebAssembly encoder (hostile modules)

I32, I64, F32, F64, V128, FUNCREF, EXTERNREF = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F


def limits(lo: int, hi: int | None = None, shared: bool = False, i64: bool = False) -> bytes:
    flag = (1 if hi is not None else 0) | (2 if shared else 0) | (4 if i64 else 0)
    return bytes([flag]) + wb.uleb(lo) + (wb.uleb(hi) if hi is not None else b"")


class Wasm:
    """A tiny module writer: enough for the hostile modules below (raw instruction bytes)."""

    def __init__(self):
        self.types, self.imports, self.funcs, self.tables, self.mems = [], [], [], [], []
        self.globals, self.exports, self.codes, self.datas = [], [], [], []
        self.start = None
        self.imported_funcs = 0

    def type(self, params=(), results=()) -> int:
        t = b"\x60" + wb.vec(bytes([p]) for p in params) + wb.vec(bytes([r]) for r in results)
        if t not in self.types:
            self.types.append(t)
        return self.types.index(t)

    def import_memory(self, lim: bytes, module="env", name="memory"):
        self.imports.append(wb.name(module) + wb.name(name) + b"\x02" + lim)
        return self

    def import_raw(self, module, name, desc: bytes):
        self.imports.append(wb.name(module) + wb.name(name) + desc)
        return self

    def import_func(self, module, name, params=(), results=()):
        self.imports.append(wb.name(module) + wb.name(name) + b"\x00" + wb.uleb(self.type(params, results)))
        self.imported_funcs += 1
        return self

    def func(self, body: bytes = b"", params=(), results=(), export: str | None = None, locals_: bytes = b"\x00") -> int:
        idx = self.imported_funcs + len(self.funcs)
        self.funcs.append(wb.uleb(self.type(params, results)))
        code = locals_ + body + b"\x0b"
        self.codes.append(wb.uleb(len(code)) + code)
        if export is not None:
            self.exports.append(wb.name(export) + b"\x00" + wb.uleb(idx))
        return idx

    def drivers(self, bodies: dict | None = None, skip=()):
        """predict / classify / train_step as () -> () functions (empty unless ``bodies`` says)."""
        bodies = bodies or {}
        for name in ("predict", "classify", "train_step"):
            if name not in skip:
                self.func(bodies.get(name, b""), export=name)
        return self

    def emit(self) -> bytes:
        def sec(i, items):
            return bytes([i]) + wb.uleb(len(wb.vec(items))) + wb.vec(items) if items else b""
        out = b"\x00asm\x01\x00\x00\x00"
        out += sec(1, self.types) + sec(2, self.imports) + sec(3, self.funcs) + sec(4, self.tables)
        out += sec(5, self.mems) + sec(6, self.globals) + sec(7, self.exports)
        if self.start is not None:
            out += b"\x08" + wb.uleb(len(wb.uleb(self.start))) + wb.uleb(self.start)
        if self.datas:
            out += b"\x0c" + wb.uleb(len(wb.uleb(len(self.datas)))) + wb.uleb(len(self.datas))
        out += sec(10, self.codes) + sec(11, self.datas)
        return out


def env_memory() -> Wasm:
    return Wasm().import_memory(limits(1))


LOOP = b"\x03\x40\x0c\x00\x0b"                               # loop br 0 end
UNREACHABLE = b"\x00"
OOB_LOAD = b"\x41" + wb.sleb(-16) + b"\x28\x02\x00\x1a"          # i32.load (-16) ; drop
GROW_PAGES = 40_000                                            # 2.6 GB
GROW_AND_FILL = (b"\x41" + wb.sleb(GROW_PAGES) + b"\x40\x00\x1a"  # memory.grow 40000 ; drop
                 + b"\x41\x00\x41" + wb.sleb(0xAB) + b"\x41" + wb.sleb(GROW_PAGES * 65536 - (1 << 32))
                 + b"\xfc\x0b\x00")                            # memory.fill 0 0xAB 2.6e9


# ---------------------------------------------------------------- the cases

@dataclass
class Case:
    name: str
    kind: str
    expect: list
    backend: str
    build: Callable
    desc: str


@dataclass
class Ctx:
    """What a case's builder gets: the artifact to damage and where things are."""
    files: dict                      # name -> bytes (written as regular files)
    manifest: dict                   # written as manifest.json (indent=1) unless raw_manifest is set
    outdir: str
    case_dir: str
    rng: random.Random
    secret: bytes
    raw_manifest: bytes | None = None
    raw: dict = field(default_factory=dict)      # sentinel string -> raw JSON text spliced into the manifest
    actions: list = field(default_factory=list)  # callables(case_dir) run after the files are written

    # -- helpers ----------------------------------------------------------------------------------
    def entry(self, data: bytes) -> dict:
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def resign(self, *names):
        """Re-list the size and SHA-256 of ``names`` (default: every listed file we hold)."""
        for n in names or list(self.manifest["files"]):
            if n in self.files:
                self.manifest["files"][n] = self.entry(self.files[n])

    def set_file(self, name, data: bytes, sign=True):
        self.files[name] = data
        if sign:
            self.manifest["files"][name] = self.entry(data)

    def rawval(self, text: str) -> str:
        """A placeholder value: the manifest gets ``text`` (raw JSON) in its place."""
        key = f"@@RAW{len(self.raw)}@@"
        self.raw[key] = text
        return key

    def sig(self, name="predict") -> dict:
        return self.manifest["signatures"][name]

    def symlink(self, name, target):
        self.files.pop(name, None)
        self.actions.append(lambda d: _symlink(os.path.join(d, name), target))

    def fifo(self, name):
        self.files.pop(name, None)
        self.actions.append(lambda d: os.mkfifo(os.path.join(d, name)))

    def sparse(self, name, size):
        self.files.pop(name, None)

        def make(d):
            with open(os.path.join(d, name), "wb") as f:
                f.truncate(size)
        self.actions.append(make)

    @property
    def secret_entry(self) -> dict:
        return self.entry(self.secret)


def _symlink(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


CASES: list[Case] = []


def add(kind, name, build, expect=AE, backend="wasm", desc=""):
    assert all(c.isalnum() or c in "-_" for c in name), name
    CASES.append(Case(name, kind, list(expect), backend, build, desc))


def edit(fn):
    """A builder that only edits the manifest: ``fn(manifest)``."""
    return lambda c: fn(c.manifest)


def module(w: Wasm):
    """A builder that replaces module.wasm (re-signed)."""
    return lambda c: c.set_file("module.wasm", w.emit())


# ---- control: valid artifacts -------------------------------------------------------------------

def _compact(c):
    c.resign()
    c.raw_manifest = json.dumps(c.manifest, separators=(",", ":")).encode()


add("control", "base", lambda c: None, OK, desc="the unchanged base artifact")
add("control", "base-resigned", lambda c: c.resign(), OK, desc="every file re-listed (identical)")
add("control", "stub-module", module(env_memory().drivers()), OK,
    desc="module.wasm replaced by a minimal valid one (three empty () -> () drivers)")
add("control", "base-webgpu", lambda c: None, OK, "webgpu", desc="the unchanged base on WebGPU")
add("control", "compact-manifest-webgpu", _compact, OK, "webgpu", desc="manifest re-serialized without whitespace")


# ---- path: hostile names in "files" ----------------------------------------------------------------

def _extra(name, data=None, entry=None):
    """List an extra file ``name`` (with ``data``'s size/hash, or ``entry``)."""
    def build(c):
        c.manifest["files"][name] = entry or (c.entry(data) if data is not None else
                                              {"bytes": 12, "sha256": "0" * 64})
    return build


def _extra_secret(name_fn, hashed=True):
    def build(c):
        e = c.secret_entry if hashed else {"bytes": len(c.secret), "sha256": "1" * 64}
        c.manifest["files"][name_fn(c)] = e
    return build


UP = "../" * 40
add("path", "dotdot-etc-hostname", _extra("../../../../etc/hostname"), desc="files lists ../../../../etc/hostname")
add("path", "dotdot-secret-hashed", _extra_secret(lambda c: "../../outside/secret.txt"),
    desc="files lists ../../outside/secret.txt with its true size and SHA-256 (it would verify)")
add("path", "dotdot-secret-wrong-hash", _extra_secret(lambda c: "../../outside/secret.txt", hashed=False),
    desc="the secret with a wrong hash: a loader that reads it must not quote its real SHA-256")
add("path", "inner-dotdot-secret", _extra_secret(lambda c: "kernels/../../../outside/secret.txt"),
    desc="kernels/../../../outside/secret.txt (traversal after a real directory)")
add("path", "deep-dotdot-secret", _extra_secret(lambda c: UP + c.outdir.lstrip("/") + "/outside/secret.txt"),
    desc="40 x ../ then the secret's absolute path")
add("path", "absolute-etc-hostname", _extra("/etc/hostname"), desc="an absolute path")
add("path", "absolute-secret", _extra_secret(lambda c: os.path.join(c.outdir, "outside", "secret.txt")),
    desc="the secret's absolute path with its true hash")
add("path", "dotdot-dev-zero", _extra("../../../../dev/zero", entry={"bytes": 1024, "sha256": "0" * 64}),
    desc="../../../../dev/zero")
add("path", "deep-dotdot-dev-zero", _extra(UP + "dev/zero", entry={"bytes": 1024, "sha256": "0" * 64}),
    desc="40 x ../ then dev/zero (reaches /dev/zero from any depth)")
add("path", "absolute-dev-zero", _extra("/dev/zero", entry={"bytes": 1024, "sha256": "0" * 64}), desc="/dev/zero")
add("path", "url-http", _extra(f"http://127.0.0.1:{URL_PORT}/secret"), desc="an http: URL as a file name")
add("path", "url-protocol-relative", _extra(f"//127.0.0.1:{URL_PORT}/secret"), desc="a protocol-relative URL")
add("path", "url-file", _extra("file:///etc/hostname"), desc="a file: URL")
add("path", "url-data-hashed", _extra("data:application/octet-stream;base64,AGFzbQEAAAA=", b"\0asm\1\0\0\0"),
    desc="a data: URL whose content matches the listed hash")
add("path", "backslash-secret", _extra_secret(lambda c: "..\\..\\outside\\secret.txt"), desc="..\\..\\outside\\secret.txt")


def _backslash_existing(c):
    name = "kernels\\predict_0.wgsl"
    c.set_file(name, c.files["kernels/predict_0.wgsl"])


add("path", "backslash-existing-file", _backslash_existing,
    desc="a file literally named 'kernels\\predict_0.wgsl' exists and verifies (backslash names are refused)")
add("path", "drive-letter", _extra("C:\\Windows\\win.ini"), desc="a Windows drive path")


def _percent(c):
    c.set_file("%2e%2e/%2e%2e/outside/secret.txt", b"decoy: a URL reader would decode this to ../../outside/secret.txt\n")


add("path", "percent-dotdot-existing", _percent,
    desc="%2e%2e/%2e%2e/outside/secret.txt exists literally inside the directory and verifies")
add("path", "percent-dotdot-secret", _extra_secret(lambda c: "%2e%2e/%2e%2e/outside/secret.txt"), desc="%2e%2e/ traversal")
add("path", "fullwidth-dots", _extra_secret(lambda c: "\uff0e\uff0e/\uff0e\uff0e/outside/secret.txt"),
    desc="fullwidth full stops (NFKC-normalize to ../../)")
add("path", "empty-name", _extra(""), desc="an empty file name")
add("path", "dot-name", _extra("."), desc="'.' (the directory itself)")
add("path", "directory-name", _extra("kernels"), desc="a directory as a file name")
add("path", "trailing-slash", _extra("kernels/"), desc="a trailing slash")
add("path", "dot-segment-existing", lambda c: c.manifest["files"].update(
    {"./module.wasm": c.entry(c.files["module.wasm"])}), desc="./module.wasm (exists, verifies; not canonical)")
add("path", "double-slash-existing", lambda c: c.manifest["files"].update(
    {"kernels//predict_0.wgsl": c.entry(c.files["kernels/predict_0.wgsl"])}), desc="kernels//predict_0.wgsl (verifies)")
add("path", "nul-byte", lambda c: c.manifest["files"].update(
    {"module.wasm\u0000.txt": c.entry(c.files["module.wasm"])}), desc="module.wasm\\0.txt (C strings end at the NUL)")
add("path", "very-long-name", _extra("a" * 5000), desc="a 5000-character name")
add("path", "very-deep-name", _extra("a/" * 2000 + "x"), desc="2001 path segments")
add("path", "lone-surrogate", _extra("kernels/\ud800.wgsl"), desc="a lone UTF-16 surrogate (not encodable as a path)")
add("path", "newline-existing", lambda c: c.set_file("kernels/pre\ndict.wgsl", c.files["kernels/predict_0.wgsl"]),
    desc="a file with a newline in its name exists and verifies")
add("path", "wgsl-dotdot-secret-wasm", lambda c: (
    c.manifest["files"].__setitem__("../../outside/secret.txt", c.secret_entry),
    c.sig()["webgpu"]["kernels"][0].__setitem__("wgsl", "../../outside/secret.txt")),
    desc="a kernel's wgsl is the traversal path (wasm backend: the file is still listed and read)")


# ---- special-file: symlinks, FIFOs, directories, huge files ---------------------------------------

def _link_secret(name, depth):
    def build(c):
        c.symlink(name, "../" * depth + "outside/secret.txt")
        c.manifest["files"][name] = c.secret_entry
    return build


add("special-file", "wasm-symlink-secret", _link_secret("module.wasm", 2),
    desc="module.wasm -> ../../outside/secret.txt, listed with the secret's hash")
add("special-file", "wasm-symlink-outside-copy", lambda c: c.symlink("module.wasm", "../../outside/linear/module.wasm"),
    desc="module.wasm -> a byte-identical copy outside the directory (it would verify)")
add("special-file", "weights-symlink-dev-zero", lambda c: c.symlink("weights.safetensors", "/dev/zero"),
    desc="weights.safetensors -> /dev/zero")
add("special-file", "wgsl-symlink-dev-zero", lambda c: c.symlink("kernels/predict_0.wgsl", "/dev/zero"),
    desc="a listed WGSL file -> /dev/zero (read even on the wasm backend)")
add("special-file", "wgsl-symlink-secret", _link_secret("kernels/train_step_5.wgsl", 3),
    desc="a listed WGSL file -> the secret, listed with its hash")
add("special-file", "kernels-dir-symlink-outside", lambda c: (
    [c.files.pop(n) for n in WGSL], c.actions.append(lambda d: os.symlink("../../outside/linear/kernels", os.path.join(d, "kernels")))),
    desc="kernels/ -> a directory outside holding byte-identical WGSL files")
add("special-file", "manifest-symlink-outside", lambda c: setattr(c, "raw_manifest", b"SYMLINK"),
    desc="manifest.json -> a valid manifest outside the directory")
add("special-file", "wasm-symlink-inside", lambda c: (c.files.__setitem__("module.real", c.files["module.wasm"]),
                                                        c.symlink("module.wasm", "module.real")),
    MAYBE, desc="module.wasm -> module.real in the same directory (stays inside)")
add("special-file", "wasm-symlink-loop", lambda c: c.symlink("module.wasm", "module.wasm"), desc="module.wasm -> itself")
add("special-file", "wasm-symlink-dangling", lambda c: c.symlink("module.wasm", "nowhere.wasm"), desc="a dangling symlink")
add("special-file", "wasm-fifo", lambda c: c.fifo("module.wasm"), desc="module.wasm is a FIFO (opening it must not hang)")
add("special-file", "manifest-fifo", lambda c: setattr(c, "raw_manifest", b"FIFO"), desc="manifest.json is a FIFO")
add("special-file", "wgsl-fifo", lambda c: c.fifo("kernels/train_step_2.wgsl"), desc="a listed WGSL file is a FIFO")
add("special-file", "wasm-directory", lambda c: (c.files.pop("module.wasm"),
                                                   c.actions.append(lambda d: os.mkdir(os.path.join(d, "module.wasm")))),
    desc="module.wasm is a directory")
add("special-file", "weights-sparse-huge", lambda c: c.sparse("weights.safetensors", SPARSE_BYTES),
    desc="weights.safetensors is a 2.5 GiB sparse file; the manifest lists its real (small) size")
add("special-file", "manifest-sparse-huge", lambda c: setattr(c, "raw_manifest", b"SPARSE"),
    desc="manifest.json is a 2.5 GiB sparse file")
add("special-file", "wasm-sparse-huge-declared", lambda c: (
    c.sparse("module.wasm", SPARSE_BYTES),
    c.manifest["files"].__setitem__("module.wasm", {"bytes": SPARSE_BYTES, "sha256": "2" * 64})),
    desc="module.wasm really is 2.5 GiB and the manifest says so: more than a loader may read into memory")


# ---- wasm-module: hostile module.wasm, re-signed --------------------------------------------------

def _w(build):
    w = env_memory()
    build(w)
    return w


def _brief(w):
    w.func(b"", params=[I32], export="predict")
    w.func(b"", export="train_step")


add("wasm-module", "brief-example", module(_w(_brief)),
    desc='(import "env" "memory" (memory 1)) (func (export "predict") (param i32)) (func (export "train_step"))')
add("wasm-module", "driver-param-i32", module(_w(lambda w: (w.func(b"", params=[I32], export="predict"),
                                                          w.drivers(skip=["predict"])))), desc="predict takes an i32")
add("wasm-module", "driver-param-externref", module(_w(lambda w: (w.func(b"", params=[EXTERNREF, EXTERNREF], export="predict"),
                                                                w.drivers(skip=["predict"])))), desc="predict takes two externrefs")
add("wasm-module", "driver-result-externref", module(_w(lambda w: (w.func(b"\xd0\x6f", results=[EXTERNREF], export="classify"),
                                                                 w.drivers(skip=["classify"])))), desc="classify returns an externref")
add("wasm-module", "driver-param-v128", module(_w(lambda w: (w.func(b"", params=[V128], export="predict"),
                                                           w.drivers(skip=["predict"])))), desc="predict takes a v128")
add("wasm-module", "driver-result-v128", module(_w(lambda w: (w.func(b"\xfd\x0c" + bytes(16), results=[V128], export="predict"),
                                                            w.drivers(skip=["predict"])))), desc="predict returns a v128")
add("wasm-module", "driver-64-i64-results", module(_w(lambda w: (w.func(b"\x42\x00" * 64, results=[I64] * 64, export="predict"),
                                                               w.drivers(skip=["predict"])))), desc="predict returns 64 i64s")
add("wasm-module", "driver-result-f64", module(_w(lambda w: (w.func(b"\x44" + bytes(8), results=[F64], export="train_step"),
                                                           w.drivers(skip=["train_step"])))), desc="train_step returns an f64")


def _start(body):
    def b(w):
        w.drivers()
        w.start = w.func(body)
    return b


add("wasm-module", "start-infinite-loop", module(_w(_start(LOOP))), desc="a start function that never returns")
add("wasm-module", "start-unreachable", module(_w(_start(UNREACHABLE))), desc="a start function that traps")
add("wasm-module", "start-grow-and-fill", module(_w(_start(GROW_AND_FILL))),
    desc="a start function that grows the memory by 2.6 GB and fills it")
add("wasm-module", "start-nop", module(_w(_start(b""))), desc="a start function that does nothing (start sections are refused)")
add("wasm-module", "no-imports", module(Wasm().drivers()), desc="no env.memory import at all")
add("wasm-module", "own-memory",
    module((lambda w: (w.mems.append(limits(1)), w.drivers(), w.exports.append(wb.name("memory") + b"\x02\x00"), w)[-1])(Wasm())),
    desc="defines and exports its own memory instead of importing env.memory")
add("wasm-module", "import-and-own-memory",
    module((lambda w: (w.mems.append(limits(1)), w.drivers(), w)[-1])(env_memory())),
    desc="imports env.memory and defines a second memory (multi-memory)")
add("wasm-module", "two-memory-imports",
    module(env_memory().import_memory(limits(1), "env", "memory2").drivers()), desc="imports two memories")
add("wasm-module", "extra-function-import",
    module(env_memory().import_func("env", "abort", [I32]).drivers()), desc="also imports a function env.abort")
add("wasm-module", "memory-imported-as-table",
    module(Wasm().import_raw("env", "memory", b"\x01\x70" + limits(1)).drivers()), desc="imports env.memory as a table")
add("wasm-module", "memory-imported-as-global",
    module(Wasm().import_raw("env", "memory", b"\x03\x7f\x00").drivers()), desc="imports env.memory as a global")
add("wasm-module", "memory-min-4gib", module(Wasm().import_memory(limits(65536)).drivers()),
    desc="the memory import's minimum is 65536 pages (4 GiB)")
add("wasm-module", "memory-min-1gib", module(Wasm().import_memory(limits(16384)).drivers()),
    desc="minimum 16384 pages, more than the manifest's memory_bytes")
add("wasm-module", "memory-with-maximum", module(Wasm().import_memory(limits(1, 1)).drivers()), MAYBE,
    desc="the memory import has a maximum (allowed when at least its minimum)")
add("wasm-module", "memory-shared", module(Wasm().import_memory(limits(1, 1, shared=True)).drivers()), desc="a shared memory")
add("wasm-module", "memory-64", module(Wasm().import_memory(limits(1, i64=True)).drivers()), desc="a 64-bit memory")
add("wasm-module", "huge-table", module((lambda w: (w.tables.append(b"\x70" + limits(10_000_000)), w.drivers(), w)[-1])(env_memory())),
    desc="a table of 10,000,000 funcrefs")
add("wasm-module", "table-min-max-u32", module((lambda w: (w.tables.append(b"\x70" + limits(0xFFFFFFFF)), w.drivers(), w)[-1])(env_memory())),
    desc="a table of 2^32 - 1 funcrefs")
add("wasm-module", "driver-is-a-global",
    module((lambda w: (w.globals.append(b"\x7f\x00\x41\x00\x0b"), w.drivers(skip=["predict"]),
                       w.exports.append(wb.name("predict") + b"\x03\x00"), w)[-1])(env_memory())),
    desc="predict is exported as a global, not a function")
add("wasm-module", "data-segment-out-of-bounds",
    module((lambda w: (w.drivers(), w.datas.append(b"\x00\x41" + wb.sleb(-16) + b"\x0b" + wb.vec([b"\x01"] * 32)), w)[-1])(env_memory())),
    desc="an active data segment at 0xFFFFFFF0 (past the memory)")
add("wasm-module", "data-segment-over-variables",
    module((lambda w: (w.drivers(), w.datas.append(b"\x00\x41" + wb.sleb(1024) + b"\x0b" + wb.vec([b"\x7f"] * 64)), w)[-1])(env_memory())),
    MAYBE, desc="a data segment over the variables' bytes (the loader copies the weights after instantiation)")
add("wasm-module", "too-many-locals", module(_w(lambda w: (w.func(b"", export="predict", locals_=b"\x01" + wb.uleb(0xFFFFFFFF) + b"\x7f"),
                                                          w.drivers(skip=["predict"])))),
    desc="a driver declaring 2^32 - 1 locals")
add("wasm-module", "duplicate-exports", module(_w(lambda w: (w.drivers(), w.func(b"", export="predict")))),
    desc="predict exported twice (invalid module)")
add("wasm-module", "missing-driver", module(_w(lambda w: w.drivers(skip=["classify"]))), desc="classify is not exported")
add("wasm-module", "text-format", lambda c: c.set_file(
    "module.wasm", b'(module (import "env" "memory" (memory 1)) (func (export "predict")) (func (export "classify")) (func (export "train_step")))'),
    desc="WebAssembly text instead of binary")
add("wasm-module", "component-version", lambda c: c.set_file("module.wasm", b"\x00asm\x0d\x00\x01\x00"),
    desc="a component-model header")
add("wasm-module", "header-only", lambda c: c.set_file("module.wasm", b"\x00asm\x01\x00\x00\x00"), desc="an empty module")
add("wasm-module", "section-length-lies", lambda c: c.set_file(
    "module.wasm", b"\x00asm\x01\x00\x00\x00\x01" + wb.uleb(0xFFFFFFF0) + b"\x01\x60\x00\x00"),
    desc="a type section claiming 4 GB")
add("wasm-module", "overlong-leb", lambda c: c.set_file(
    "module.wasm", b"\x00asm\x01\x00\x00\x00\x01\x84\x80\x80\x80\x80\x80\x80\x80\x00\x01\x60\x00\x00"),
    desc="a section length as a 10-byte LEB128")


# ---- wasm-runtime: modules that load, then misbehave when run --------------------------------------

add("wasm-runtime", "predict-infinite-loop", module(env_memory().drivers({"predict": LOOP})), TIMEOUT,
    desc="predict never returns (the only case that loads and then times out)")
add("wasm-runtime", "train-step-infinite-loop", module(env_memory().drivers({"train_step": LOOP})), TIMEOUT,
    desc="train_step never returns (predict and classify run first)")
add("wasm-runtime", "predict-unreachable", module(env_memory().drivers({"predict": UNREACHABLE})),
    desc="predict traps (unreachable): loads, then fails when run")
add("wasm-runtime", "predict-out-of-bounds", module(env_memory().drivers({"predict": OOB_LOAD})),
    desc="predict loads from 0xFFFFFFF0")


def _recursive(c):
    w = env_memory()
    w.func(b"\x10\x00", export="predict")       # func 0 calls itself: stack overflow
    w.drivers(skip=["predict"])
    c.set_file("module.wasm", w.emit())


add("wasm-runtime", "predict-stack-overflow", _recursive, desc="predict recurses forever (stack exhaustion)")
add("wasm-runtime", "predict-grow-and-fill", module(env_memory().drivers({"predict": GROW_AND_FILL})),
    ["ArtifactError", "TimeoutError"], desc="predict grows the memory by 2.6 GB and fills it")


# ---- manifest: value confusion ------------------------------------------------------------------

def fv(text):
    return lambda c: c.manifest.__setitem__("format_version", c.rawval(text))


for name, text, exp in [("list", "[1]", AE), ("1e30", "1e30", AE), ("string", '"1"', AE),
                        ("devanagari-digit", '"\\u0967"', AE), ("true", "true", AE), ("2", "2", OK),
                        ("3", "3", AE),
                        ("1-5", "1.5", AE), ("null", "null", AE), ("0", "0", AE), ("1abc", '"1abc"', AE),
                        ("01-string", '"01"', AE), ("1e400", "1e400", AE), ("1-0", "1.0", OK)]:
    add("manifest", f"format-version-{name}", fv(text), exp, desc=f"format_version {text}")
add("manifest", "format-version-missing", edit(lambda m: m.pop("format_version")), desc="no format_version")


# ---- manifest: symbolic batch (format version 2, docs/artifact.md "Symbolic batch") ------------------

def batch(section, version=2, sig="predict"):
    """Signature ``sig`` gets ``"batch": section`` (raw JSON text), the manifest ``version``."""
    def build(c):
        c.manifest["format_version"] = version
        c.sig(sig)["batch"] = c.rawval(section)
    return build


add("manifest", "batch-ok", batch('{"chunk": 8}'), OK, desc="predict takes any batch, run as chunks of its 8 rows")
add("manifest", "batch-ok-maximum", batch('{"chunk": 8, "maximum": 20}'), OK, desc="a declared maximum batch")
add("manifest", "batch-in-version-1", batch('{"chunk": 8}', version=1), desc="a batch section in a version 1 manifest")
add("manifest", "batch-chunk-mismatch", batch('{"chunk": 4}'), desc="chunk 4, but predict's shapes have 8 rows")
add("manifest", "batch-scalar-output", batch('{"chunk": 8}', sig="train_step"),
    desc="a batch section on train_step, whose loss has no axis 0")
for name, text in [("chunk-0", '{"chunk": 0}'), ("chunk-negative", '{"chunk": -8}'), ("chunk-huge", '{"chunk": 1e12}'),
                   ("chunk-fraction", '{"chunk": 8.5}'), ("chunk-string", '{"chunk": "8"}'), ("chunk-null", '{"chunk": null}'),
                   ("chunk-missing", '{"maximum": 8}'), ("maximum-0", '{"chunk": 8, "maximum": 0}'),
                   ("maximum-huge", '{"chunk": 8, "maximum": 4294967296}'), ("extra-key", '{"chunk": 8, "rows": 2}'),
                   ("list", '[8]'), ("relations-proto", '{"chunk": 8, "__proto__": {"maximum": 1}}')]:
    add("manifest", f"batch-{name}", batch(text), desc=f"batch section {text}")


def rows_train(section, version=2, dtype="int32", shape=()):
    """train_step gets a row count input ``n`` (``dtype``, ``shape``; written at byte 60000 of the
    memory, which its hand-made driver never reads) and ``"batch": section`` (raw JSON text); its
    WebGPU section goes (it would need a binding for ``n``): docs/artifact.md "Symbolic batch: train steps"."""
    def build(c):
        c.manifest["format_version"] = version
        sig = c.sig("train_step")
        sig["inputs"].append({"name": "n", "dtype": dtype, "shape": list(shape)})
        sig["wasm"]["inputs"].append(60000)
        sig.pop("webgpu")
        sig["batch"] = c.rawval(section)
    return build


add("manifest", "batch-rows-input-ok", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 2}'), OK,
    desc="train_step takes 1 to 8 rows of its chunk of 8, its input 2 the row count")
for name, build, desc in [
        ("no-maximum", rows_train('{"chunk": 8, "rows_input": 2}'), "a row count without a maximum (any batch)"),
        ("maximum-past-chunk", rows_train('{"chunk": 8, "maximum": 9, "rows_input": 2}'), "a maximum past the chunk"),
        ("float32", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 2}', dtype="float32"), "a float32 row count"),
        ("not-scalar", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 2}', shape=(8,)), "a row count of shape [8]"),
        ("index-past", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 3}'), "rows_input 3 of 3 inputs"),
        ("on-x", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 0}'), "rows_input names x, float32 [8, 4]"),
        ("negative", rows_train('{"chunk": 8, "maximum": 8, "rows_input": -1}'), "rows_input -1"),
        ("huge", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 4294967298}'), "rows_input 2^32 + 2"),
        ("string", rows_train('{"chunk": 8, "maximum": 8, "rows_input": "2"}'), 'rows_input "2"'),
        ("version-1", rows_train('{"chunk": 8, "maximum": 8, "rows_input": 2}', version=1), "in a version 1 manifest"),
        ("on-predict", batch('{"chunk": 8, "maximum": 8, "rows_input": 0}'), "predict's float32 x as a row count")]:
    add("manifest", f"batch-rows-input-{name}", build, desc=desc)
# ---- manifest + module: run-time rows (docs/artifact.md "Run-time rows") --------------------------

def rows_driver(name, with_batch=True, wasm=None):
    """predict's wasm section names ``name`` as its rows driver (with a batch section unless not
    ``with_batch``); ``wasm``: the module to carry instead."""
    def build(c):
        if with_batch:
            batch('{"chunk": 8}')(c)
        c.sig()["wasm"]["rows_driver"] = name
        if wasm is not None:
            c.set_file("module.wasm", wasm.emit())
    return build


def _with_rows(params):
    w = env_memory().drivers()
    w.func(b"", params=params, export="__rows_predict")
    return w


add("manifest", "rows-driver-ok", rows_driver("__rows_predict", wasm=_with_rows((0x7F,))), OK,
    desc="predict has a rows driver (i32) -> ()")
add("manifest", "rows-driver-no-batch", rows_driver("__rows_predict", False, _with_rows((0x7F,))),
    desc="a rows driver on a signature without a batch section")
add("manifest", "rows-driver-is-driver", rows_driver("predict"), desc="the rows driver is predict's driver (() -> ())")
add("manifest", "rows-driver-missing", rows_driver("__rows_predict"), desc="module.wasm does not export the rows driver")
add("manifest", "rows-driver-wrong-type", rows_driver("__rows_predict", wasm=_with_rows(())),
    desc="the rows driver is () -> (), not (i32) -> ()")
add("manifest", "rows-driver-i64", rows_driver("__rows_predict", wasm=_with_rows((0x7E,))),
    desc="the rows driver is (i64) -> ()")
for name, text in [("number", "7"), ("null", "null"), ("dash", '"a-b"'), ("empty", '""'), ("long", '"' + "r" * 129 + '"')]:
    add("manifest", f"rows-driver-{name}", lambda c, text=text: rows_driver(c.rawval(text))(c), desc=f"rows_driver {text}")

add("manifest", "format-trailing-space", edit(lambda m: m.__setitem__("format", "webtensor-artifact ")), desc="format with a trailing space")
add("manifest", "format-missing", edit(lambda m: m.pop("format")), desc="no format")

for where, name in [("variables[0]", "constructor"), ("predict.inputs[0]", "toString"),
                    ("predict.outputs[0]", "__proto__"), ("classify.inputs[1]", "hasOwnProperty"),
                    ("variables[2]", "valueOf"), ("predict.inputs[0]", "float64"), ("predict.inputs[0]", "Float32")]:
    def _dt(c, where=where, name=name):
        if where.startswith("variables"):
            c.manifest["variables"][int(where[10])]["dtype"] = name
        else:
            sig, rest = where.split(".")
            c.sig(sig)[rest[:-3]][int(rest[-2])]["dtype"] = name
    add("manifest", f"dtype-{name.strip('_')}-{where.split('[')[0].replace('.', '-')}", _dt, desc=f"{where}.dtype = {name!r}")
add("manifest", "dtype-array", lambda c: c.sig()["inputs"][0].__setitem__("dtype", ["float32"]),
    desc='predict.inputs[0].dtype = ["float32"] (a one-element array stringifies to a dtype name)')
add("manifest", "dtype-null", lambda c: c.sig("classify")["outputs"][1].__setitem__("dtype", None), desc="an output dtype null")


def _rename_sig(new):
    def build(c):
        c.manifest["signatures"] = {(new if k == "predict" else k): v for k, v in c.manifest["signatures"].items()}
    return build


add("manifest", "signature-proto", _rename_sig("__proto__"), desc='a signature named "__proto__"')
add("manifest", "signature-constructor", _rename_sig("constructor"), MAYBE, desc='a signature named "constructor"')
add("manifest", "signature-hasownproperty", _rename_sig("hasOwnProperty"), MAYBE, desc='a signature named "hasOwnProperty"')
add("manifest", "signature-empty-name", _rename_sig(""), desc="a signature named ''")


def _var_proto(c):
    from webtensor import safetensors_io
    c.manifest["variables"][1]["name"] = "__proto__"
    tensors, meta = safetensors_io.load(c.files["weights.safetensors"])
    tensors = {("__proto__" if k == "dense/bias" else k): (d, s, bytes(v)) for k, (d, s, v) in tensors.items()}
    c.set_file("weights.safetensors", safetensors_io.save(tensors, meta))


add("manifest", "variable-named-proto", _var_proto, desc='a variable (and its tensor) named "__proto__"')

for key in ["\u00b2", "01", "-1", " 1", "1e0", "1.0", "+1", "0x1", "", "\u0661"]:
    def _vk(c, key=key):
        v = c.sig()["wasm"]["variables"]
        c.sig()["wasm"]["variables"] = {(key if k == "1" else k): a for k, a in v.items()}
    add("manifest", "wasm-variable-key-" + (key.encode("unicode_escape").decode().replace("\\", "u").replace(" ", "space")
                                           .replace(".", "dot").replace("+", "plus") or "empty"),
        _vk, desc=f"wasm.variables key {key!r} for variable 1")
add("manifest", "wasm-variables-array", lambda c: c.sig()["wasm"].__setitem__("variables", [1024, 1088]),
    desc="wasm.variables as an array [1024, 1088] (its indices look like keys)")

add("manifest", "deep-nesting-whole", lambda c: setattr(c, "raw_manifest", ("[" * DEEP + "]" * DEEP).encode()),
    desc=f"the manifest is {DEEP} nested arrays")
add("manifest", "deep-nesting-version", lambda c: c.manifest.__setitem__("webtensor_version", c.rawval('{"a":' * DEEP + "1" + "}" * DEEP)),
    desc=f"webtensor_version is {DEEP} nested objects")
add("manifest", "deep-nesting-trainable", lambda c: c.manifest["variables"][0].__setitem__("trainable", c.rawval("[" * DEEP + "]" * DEEP)),
    desc=f"a variable's trainable is {DEEP} nested arrays")
add("manifest", "memory-bytes-1e400", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", c.rawval("1e400")), desc="memory_bytes 1e400")
add("manifest", "memory-bytes-5000-digits", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", c.rawval("9" * 5000)),
    desc="memory_bytes is a 5000-digit integer")
add("manifest", "memory-bytes-2-40", lambda c: [s["wasm"].__setitem__("memory_bytes", 1 << 40) for s in c.manifest["signatures"].values()],
    desc="memory_bytes 2^40")
add("manifest", "memory-bytes-negative", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", -1), desc="memory_bytes -1")
add("manifest", "memory-bytes-fraction", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", 65536.5), desc="memory_bytes 65536.5")
add("manifest", "memory-bytes-string", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", "65536"), desc='memory_bytes "65536"')
add("manifest", "memory-bytes-over-4gib", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", (1 << 32) + 65536),
    desc="memory_bytes 4 GiB + 64 KiB")
add("manifest", "memory-bytes-4gib", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", 1 << 32), MAYBE,
    desc="memory_bytes exactly 4 GiB (the format's maximum)")


def _shape(value, where="inputs"):
    return lambda c: c.sig()[where][0].__setitem__("shape", value(c) if callable(value) else value)


for name, value in [("2-31", [1 << 31, 4]), ("2-53", [1 << 53, 4]), ("negative", [-8, 4]), ("fraction", [8.5, 4]),
                    ("string-dim", [8, "4"]), ("2-64-times-0", [1 << 64, 0]), ("2-31-squared-times-0", [1 << 31, 1 << 31, 0]),
                    ("string", "8x4"), ("object", {"0": 8, "length": 1}), ("null-dim", [8, None]),
                    ("million-dims", [1] * 1_000_000), ("2-40-elements", [1 << 20, 1 << 20])]:
    add("manifest", f"input-shape-{name}", _shape(value), desc=f"predict.inputs[0].shape = {json.dumps(value)[:60]}")
add("manifest", "input-shape-1e400", _shape(lambda c: [c.rawval("1e400"), 4]), desc="a dimension 1e400")
add("manifest", "input-shape-float-8-0", _shape(lambda c: [c.rawval("8.0"), 4]), OK,
    desc="a dimension 8.0 (JSON is read as JS reads it: the integer 8)")
add("manifest", "output-shape-2-40", _shape([1 << 40], "outputs"), desc="predict.outputs[0].shape = [2^40]")
add("manifest", "variable-shape-2-53", lambda c: c.manifest["variables"][0].__setitem__("shape", [1 << 53]), desc="a variable of shape [2^53]")

for name, fn in [("input-2-32", lambda w: w["inputs"].__setitem__(0, 1 << 32)),
                 ("variable-past-4gib", lambda w: w["variables"].__setitem__("0", (1 << 32) + 1024)),
                 ("output-2-53", lambda w: w["outputs"].__setitem__(0, 1 << 53)),
                 ("input-negative", lambda w: w["inputs"].__setitem__(0, -1)),
                 ("input-fraction", lambda w: w["inputs"].__setitem__(0, 2048.5)),
                 ("input-string", lambda w: w["inputs"].__setitem__(0, "2048")),
                 ("input-2-64-minus-8", lambda w: w["inputs"].__setitem__(0, (1 << 64) - 8)),
                 ("input-past-memory", lambda w: w["inputs"].__setitem__(0, 65536 - 64)),
                 ("inputs-too-many", lambda w: w["inputs"].append(3072)),
                 ("variables-overlap", lambda w: w["variables"].__setitem__("1", 1032)),
                 ("driver-proto", lambda w: w.__setitem__("driver", "__proto__")),
                 ("driver-constructor", lambda w: w.__setitem__("driver", "constructor")),
                 ("driver-empty", lambda w: w.__setitem__("driver", "")),
                 ("driver-classify", lambda w: w.__setitem__("driver", "classify")),
                 ("section-array", None)]:
    if fn is None:
        add("manifest", f"wasm-{name}", lambda c: c.sig().__setitem__("wasm", []), desc="predict.wasm = []")
        continue
    add("manifest", f"wasm-{name}", lambda c, fn=fn: fn(c.sig()["wasm"]),
        MAYBE if name == "driver-classify" else AE, desc=f"predict.wasm: {name}")


def _var_moved(c):
    c.sig("train_step")["wasm"]["variables"]["0"] = 8192


add("manifest", "wasm-variable-two-addresses", _var_moved, desc="variable 0 at different addresses in two signatures")
add("manifest", "reads-out-of-range", lambda c: c.sig()["reads"].append(3), desc="reads [0, 1, 3] (3 variables)")
add("manifest", "reads-1e400", lambda c: c.sig()["reads"].append(c.rawval("1e400")), desc="reads holds 1e400")
add("manifest", "reads-negative", lambda c: c.sig()["reads"].append(-1), desc="reads holds -1")
add("manifest", "reads-string", lambda c: c.sig()["reads"].__setitem__(0, "0"), desc='reads holds "0"')
add("manifest", "writes-unmapped", lambda c: c.sig()["writes"].append(2), desc="predict writes variable 2, which it has no address for")

for name, fn in [("bytes-1e15", lambda e: e.__setitem__("bytes", 10 ** 15)),
                 ("bytes-negative", lambda e: e.__setitem__("bytes", -1)),
                 ("bytes-fraction", lambda e: e.__setitem__("bytes", e["bytes"] + 0.5)),
                 ("bytes-string", lambda e: e.__setitem__("bytes", str(e["bytes"]))),
                 ("bytes-null", lambda e: e.__setitem__("bytes", None)),
                 ("bytes-2-53-plus-1", lambda e: e.__setitem__("bytes", (1 << 53) + 1)),
                 ("sha256-not-hex", lambda e: e.__setitem__("sha256", "zz" * 32)),
                 ("sha256-short", lambda e: e.__setitem__("sha256", e["sha256"][:63])),
                 ("sha256-doubled", lambda e: e.__setitem__("sha256", e["sha256"] * 2)),
                 ("sha256-number", lambda e: e.__setitem__("sha256", 0)),
                 ("sha256-nul-suffix", lambda e: e.__setitem__("sha256", e["sha256"] + "\u0000")),
                 ("sha256-space-prefix", lambda e: e.__setitem__("sha256", " " + e["sha256"])),
                 ("sha256-uppercase", lambda e: e.__setitem__("sha256", e["sha256"].upper()))]:
    add("manifest", f"files-{name}", lambda c, fn=fn: fn(c.manifest["files"]["module.wasm"]),
        AE, desc=f"module.wasm's entry: {name}")
add("manifest", "files-entry-string", lambda c: c.manifest["files"].__setitem__("module.wasm", "abc"), desc="a files entry that is a string")
add("manifest", "files-array", lambda c: c.manifest.__setitem__("files", list(c.manifest["files"])), desc='"files" is an array')
add("manifest", "files-without-wasm", lambda c: c.manifest["files"].pop("module.wasm"), desc="module.wasm is not listed")
add("manifest", "files-without-weights", lambda c: c.manifest["files"].pop("weights.safetensors"), desc="weights.safetensors is not listed")
add("manifest", "files-lists-manifest", lambda c: c.manifest["files"].__setitem__("manifest.json", {"bytes": 10, "sha256": "3" * 64}),
    desc="files lists manifest.json itself")
add("manifest", "files-missing-file", _extra("kernels/missing.wgsl"), desc="a listed file that does not exist")
add("manifest", "files-20000-entries", lambda c: c.manifest.__setitem__(
    "files", {**{f"junk/{i}.bin": {"bytes": 1, "sha256": "4" * 64} for i in range(20000)}, **c.manifest["files"]}),
    desc="20000 listed files that do not exist, before the real ones")
add("manifest", "top-level-array", lambda c: setattr(c, "raw_manifest", b"[]"), desc="the manifest is []")
add("manifest", "top-level-null", lambda c: setattr(c, "raw_manifest", b"null"), desc="the manifest is null")
add("manifest", "empty-object", lambda c: setattr(c, "raw_manifest", b"{}"), desc="the manifest is {}")
add("manifest", "empty-file", lambda c: setattr(c, "raw_manifest", b""), desc="manifest.json is empty")
add("manifest", "variables-object", lambda c: c.manifest.__setitem__("variables", {"0": c.manifest["variables"][0]}), desc='"variables" is an object')
add("manifest", "signatures-empty", lambda c: c.manifest.__setitem__("signatures", {}), desc='"signatures" is {}')
add("manifest", "signature-null", lambda c: c.manifest["signatures"].__setitem__("predict", None), desc="a signature is null")
add("manifest", "variables-duplicate-name", lambda c: c.manifest["variables"][1].__setitem__("name", "dense/kernel"), desc="two variables with one name")
add("manifest", "inputs-duplicate-name", lambda c: c.sig("classify")["inputs"][1].__setitem__("name", "x"), desc="two inputs with one name")
add("manifest", "inputs-100000", lambda c: c.sig().__setitem__(
    "inputs", [{"name": f"x{i}", "dtype": "float32", "shape": [1]} for i in range(100_000)]),
    desc="predict has 100000 inputs")
add("manifest", "variables-100001", lambda c: c.manifest["variables"].extend(
    {"name": f"v{i}", "dtype": "float32", "shape": [1]} for i in range(100_001)), desc="100001 more variables")
add("manifest", "reads-1000000", lambda c: c.sig().__setitem__("reads", [0] * 1_000_000), desc="reads lists variable 0 a million times")
add("manifest", "nan-literal", lambda c: c.manifest["variables"][0].__setitem__("trainable", c.rawval("NaN")),
    desc="a NaN literal (not JSON; Python's json accepts it)")
add("manifest", "infinity-literal", lambda c: c.sig()["wasm"].__setitem__("memory_bytes", c.rawval("Infinity")),
    desc="an Infinity literal")
add("manifest", "utf8-bom", lambda c: setattr(c, "raw_manifest", b"\xef\xbb\xbf" + json.dumps(c.manifest, indent=1).encode()),
    desc="manifest.json starts with a UTF-8 byte order mark")
add("manifest", "duplicate-key", lambda c: setattr(c, "raw_manifest", b'{"format_version": 2,' + json.dumps(c.manifest, indent=1).encode()[1:]),
    MAYBE, desc='"format_version": 2 and later "format_version": 1 (last one wins in both parsers)')
add("manifest", "not-utf8", lambda c: setattr(c, "raw_manifest", json.dumps(c.manifest, indent=1).encode().replace(
    b'"0.1.0"', b'"0.1.0\xff"')), desc="an invalid UTF-8 byte inside a string")
add("manifest", "utf16", lambda c: setattr(c, "raw_manifest", json.dumps(c.manifest).encode("utf-16")), desc="the manifest in UTF-16")
add("manifest", "trailing-garbage", lambda c: setattr(c, "raw_manifest", json.dumps(c.manifest).encode() + b"\n}garbage"),
    desc="bytes after the JSON value")
add("manifest", "unknown-key", lambda c: c.manifest.__setitem__("extra", 1), MAYBE, desc="an unknown top-level key")


# ---- safetensors: lying headers (re-signed) -----------------------------------------------------

def _st_parts(data: bytes):
    n = struct.unpack_from("<Q", data)[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _st(header, body: bytes, n: int | None = None, pad=True) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + body


def st_case(name, fn, expect=AE, desc=""):
    """fn(header dict, body bytes) -> safetensors bytes (or (header, body))."""
    def build(c):
        header, body = _st_parts(c.files["weights.safetensors"])
        out = fn(header, body)
        if isinstance(out, tuple):
            out = _st(*out)
        c.set_file("weights.safetensors", out)
    add("safetensors", name, build, expect, desc=desc)


def _off(name, offsets):
    def fn(h, b):
        h[name]["data_offsets"] = offsets
        return h, b
    return fn


st_case("header-length-2-63", lambda h, b: _st(h, b, 1 << 63), desc="header length 2^63")
st_case("header-length-2-64-minus-1", lambda h, b: _st(h, b, (1 << 64) - 1), desc="header length 2^64 - 1")
st_case("header-length-past-end", lambda h, b: (lambda d: d[:0] + struct.pack("<Q", len(d)) + d[8:])(_st(h, b)),
        desc="header length = file length (runs past the end)")
st_case("header-length-over-limit", lambda h, b: _st(h, b, 100_000_001), desc="header length just over the 100 MB limit")
st_case("header-length-0", lambda h, b: _st(h, b, 0), desc="header length 0")
st_case("header-length-7", lambda h, b: _st(h, b, 7), desc="header length 7 (cuts the JSON)")
st_case("header-not-json", lambda h, b: _st(b"this is not json", b), desc="header is not JSON")
st_case("header-not-utf8", lambda h, b: _st(b'{"\xff\xfe":1}', b), desc="header is not UTF-8")
st_case("header-array", lambda h, b: _st(b"[]", b), desc="header is a JSON array")
st_case("header-string", lambda h, b: _st(b'"x"', b), desc="header is a JSON string")
st_case("offsets-overlap", _off("dense/bias", [0, 12]), desc="dense/bias overlaps the constant")
st_case("offsets-gap", lambda h, b: (h["dense/kernel"].__setitem__("data_offsets", [20, 68]),
                                     h["optimizer/iterations"].__setitem__("data_offsets", [68, 72]),
                                     (h, b[:16] + bytes(4) + b[16:]))[2], desc="a 4-byte gap before dense/kernel")
st_case("offsets-past-end", _off("dense/kernel", [1000, 1048]), desc="dense/kernel past the end of the data")
st_case("offsets-2-64", _off("dense/kernel", [1 << 64, (1 << 64) + 48]), desc="offsets around 2^64")
st_case("offsets-negative", _off("dense/kernel", [-48, 0]), desc="negative offsets")
st_case("offsets-strings", _off("dense/kernel", ["16", "64"]), desc="offsets as strings")
st_case("offsets-reversed", _off("dense/kernel", [64, 16]), desc="end before begin")
st_case("offsets-three", _off("dense/kernel", [16, 64, 64]), desc="three offsets")
st_case("offsets-float", lambda h, b: _st(json.dumps(h, separators=(",", ":")).replace("[16,64]", "[16.0,64.0]").encode(), b),
        MAYBE, desc="offsets 16.0 and 64.0 (JSON cannot tell them from integers in JS)")
st_case("offsets-1e400", lambda h, b: _st(json.dumps(h, separators=(",", ":")).replace("[16,64]", "[16,1e400]").encode(), b),
        desc="an offset 1e400")
st_case("dtype-mismatch", lambda h, b: (h["dense/kernel"].__setitem__("dtype", "I32"), (h, b))[1],
        desc="dense/kernel stored as I32 (same size), the manifest says float32")
st_case("dtype-unknown", lambda h, b: (h["dense/kernel"].__setitem__("dtype", "F8_E4M3"), (h, b))[1], desc="an unknown dtype")
st_case("dtype-proto", lambda h, b: (h["dense/kernel"].__setitem__("dtype", "__proto__"), (h, b))[1], desc='dtype "__proto__"')
st_case("dtype-tostring", lambda h, b: (h["dense/kernel"].__setitem__("dtype", "toString"), (h, b))[1], desc='dtype "toString"')
st_case("shape-2-31-squared", lambda h, b: (h["dense/kernel"].__setitem__("shape", [1 << 31, 1 << 31]), (h, b))[1],
        desc="dense/kernel of shape [2^31, 2^31] in 48 bytes")
st_case("shape-2-53-squared", lambda h, b: (h["dense/kernel"].__setitem__("shape", [1 << 53, 1 << 53]), (h, b))[1],
        desc="shape [2^53, 2^53]")
st_case("shape-wraps-to-zero", lambda h, b: (h["dense/kernel"].update(shape=[1 << 32, 1 << 32], data_offsets=[16, 16]),
                                            h["optimizer/iterations"].__setitem__("data_offsets", [16, 20]), (h, b[:16] + b[64:]))[2],
        desc="shape [2^32, 2^32] (x4 bytes wraps to 0 in 64 bits) stored in 0 bytes")
st_case("shape-negative", lambda h, b: (h["dense/kernel"].__setitem__("shape", [-4, -3]), (h, b))[1], desc="shape [-4, -3]")
st_case("shape-fraction", lambda h, b: (h["dense/kernel"].__setitem__("shape", [4.5, 3]), (h, b))[1], desc="shape [4.5, 3]")
st_case("shape-mismatch", lambda h, b: (h["dense/bias"].update(shape=[4], data_offsets=[4, 20]),
                                        h["dense/kernel"].__setitem__("data_offsets", [20, 68]),
                                        h["optimizer/iterations"].__setitem__("data_offsets", [68, 72]), (h, b[:16] + bytes(4) + b[16:]))[3],
        desc="dense/bias stored as [4], the manifest says [3]")
st_case("duplicate-tensor", lambda h, b: _st(json.dumps(h, separators=(",", ":"))[:-1].encode()
                                             + b',"dense/bias":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}', b),
        desc="dense/bias listed twice")
st_case("metadata-not-strings", lambda h, b: (h.__setitem__("__metadata__", {"format": 1}), (h, b))[1], desc="__metadata__ maps to a number")
st_case("metadata-deep", lambda h, b: (h.pop("__metadata__"), _st(b'{"__metadata__":' + b'{"a":' * DEEP + b'"x"' + b"}" * DEEP + b","
                                          + json.dumps(h, separators=(",", ":")).encode()[1:], b))[1],
        desc=f"__metadata__ nested {DEEP} deep")
st_case("trailing-bytes", lambda h, b: (h, b + b"extra!!!"), desc="8 bytes after the last tensor")
st_case("variable-missing", lambda h, b: (h.pop("dense/bias"), h["dense/kernel"].__setitem__("data_offsets", [4, 52]),
                                          h["optimizer/iterations"].__setitem__("data_offsets", [52, 56]), (h, b[:4] + b[16:]))[3],
        desc="dense/bias is not stored")
st_case("tensor-named-proto", lambda h, b: _st(json.dumps(h, separators=(",", ":"))[:-1].encode()
                                               + b',"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[68,69]}}', b + b"\x01"),
        MAYBE, desc='an extra tensor named "__proto__"')
st_case("utf8-bom", lambda h, b: _st(b"\xef\xbb\xbf" + json.dumps(h, separators=(",", ":")).encode(), b), MAYBE,
        desc="the header starts with a UTF-8 byte order mark")
st_case("empty-file", lambda h, b: b"", desc="weights.safetensors is empty")


# ---- webgpu: WGSL-specific (backend webgpu) -----------------------------------------------------

def gpu(name, build, expect=AE, desc=""):
    add("webgpu", name, build, expect, "webgpu", desc)


def _kernel(sig="predict", k=0):
    return lambda c: c.sig(sig)["webgpu"]["kernels"][k]


def _wgsl_edit(name, fn):
    return lambda c: c.set_file(name, fn(c.files[name]))


gpu("wgsl-dotdot-secret", lambda c: (c.manifest["files"].__setitem__("../../outside/secret.txt", c.secret_entry),
                                     c.sig()["webgpu"]["kernels"][0].__setitem__("wgsl", "../../outside/secret.txt")),
    desc="predict's kernel is ../../outside/secret.txt, listed with its hash (a compile error would quote it)")
gpu("wgsl-symlink-secret", _link_secret("kernels/predict_0.wgsl", 3), desc="kernels/predict_0.wgsl -> the secret, with its hash")
gpu("wgsl-fifo", lambda c: c.fifo("kernels/train_step_5.wgsl"), desc="a WGSL file is a FIFO")
for name, value in [("1e9", [10 ** 9, 1, 1]), ("65536", [65536, 1, 1]), ("empty", []), ("four", [1, 1, 1, 1]),
                    ("negative", [-1, 1, 1]), ("fraction", [1.5, 1, 1])]:
    gpu(f"dispatch-{name}", lambda c, value=value: _kernel()(c).__setitem__("dispatch", value), desc=f"dispatch {value}")
gpu("buffer-bytes-2-40", lambda c: c.sig("train_step")["webgpu"]["buffers"][5].__setitem__("bytes", 1 << 40), desc="a 1 TiB temp buffer")
gpu("buffer-bytes-negative", lambda c: c.sig()["webgpu"]["buffers"][3].__setitem__("bytes", -1), desc="buffer bytes -1")
gpu("buffer-bytes-1e400", lambda c: c.sig()["webgpu"]["buffers"][3].__setitem__("bytes", c.rawval("1e400")), desc="buffer bytes 1e400")
gpu("buffer-role-proto", lambda c: c.sig()["webgpu"]["buffers"][3].__setitem__("role", "__proto__"), desc='role "__proto__"')
gpu("buffer-index-string", lambda c: c.sig()["webgpu"]["buffers"][0].__setitem__("index", "0"), desc='input index "0"')
gpu("bindings-out-of-range", lambda c: _kernel()(c).__setitem__("bindings", [0, 1, 2, 99]), desc="binding buffer 99 of 4")
gpu("entry-point-proto", lambda c: _kernel()(c).__setitem__("entry_point", "__proto__"), desc='entry_point "__proto__"')
gpu("wgsl-unlisted", lambda c: _kernel()(c).__setitem__("wgsl", "kernels/unlisted.wgsl"), desc="a kernel file that files does not list")
gpu("wgsl-dot-segment", lambda c: (_kernel()(c).__setitem__("wgsl", "kernels/./predict_0.wgsl"),
                                   c.manifest["files"].__setitem__("kernels/./predict_0.wgsl", c.entry(c.files["kernels/predict_0.wgsl"]))),
    desc="kernels/./predict_0.wgsl (verifies; not canonical)")
gpu("const-data-proto", lambda c: c.sig("train_step")["webgpu"]["buffers"][7].__setitem__("data", "__proto__"), desc='const data "__proto__"')
gpu("const-missing", lambda c: c.set_file("weights.safetensors", (lambda h, b: _st(
    {k: v for k, v in h.items() if k != "const/train_step/0"} | {k: {**v, "data_offsets": [v["data_offsets"][0] - 4, v["data_offsets"][1] - 4]}
                                                                   for k, v in h.items() if k not in ("const/train_step/0", "__metadata__")}, b[4:]))
    (*_st_parts(c.files["weights.safetensors"]))), desc="the const tensor is not in weights.safetensors")
gpu("limits-proto", lambda c: c.sig()["webgpu"]["required_limits"].__setitem__("__proto__", 1), desc='required_limits {"__proto__": 1}')
gpu("limits-constructor", lambda c: c.sig()["webgpu"]["required_limits"].__setitem__("constructor", 1), desc='required_limits {"constructor": 1}')
gpu("limits-string", lambda c: c.sig()["webgpu"]["required_limits"].__setitem__("maxStorageBufferBindingSize", "1"),
    desc='a required limit "1" (a string)')
gpu("no-webgpu-section", lambda c: c.sig("classify").pop("webgpu"), desc="classify has no webgpu section")
gpu("wgsl-not-utf8", _wgsl_edit("kernels/predict_0.wgsl", lambda s: s.replace(b"fixture kernel", b"fixture \xff\xfe kernel")),
    desc="a WGSL file with invalid UTF-8 in a comment (re-signed)")
gpu("wgsl-nul-byte", _wgsl_edit("kernels/predict_0.wgsl", lambda s: s.replace(b"fixture kernel", b"fixture \x00 kernel")),
    desc="a NUL byte in a WGSL comment (re-signed)")
gpu("wgsl-enable-unknown", _wgsl_edit("kernels/predict_0.wgsl", lambda s: b"enable chromium_experimental_warp_drive;\n" + s),
    desc="enable of a feature no adapter has")
gpu("wgsl-extra-group", _wgsl_edit("kernels/predict_0.wgsl", lambda s: s.replace(
    b"\n@compute", b"@group(1) @binding(0) var<storage, read> extra: array<f32>;\n\n@compute")), desc="an extra @group(1) binding")


def gpu_rows(rows, with_batch=True, access=True, wgsl=True):
    """predict's kernel takes run-time rows (docs/artifact.md "Run-time rows: WebGPU"): ``"rows":
    rows`` (raw JSON text), with a batch section of 8 rows, its ``"access"``, and its WGSL bounded
    by the ``wt_rows`` uniform at @binding(4), unless told otherwise."""
    def build(c):
        if with_batch:
            batch('{"chunk": 8}')(c)
        k = _kernel()(c)
        k["rows"] = c.rawval(rows)
        if access:
            k["access"] = ["read", "read", "read", "read_write"]
        if wgsl:
            _wgsl_edit("kernels/predict_0.wgsl", lambda s: s.replace(
                b"\n@compute", b"@group(0) @binding(4) var<uniform> wt_rows: u32;\n\n@compute").replace(
                b"if (idx >= N * M)", b"if (idx >= wt_rows * M)"))(c)
    return build


gpu("rows-ok", gpu_rows("[1, 8, 1]"), OK, desc="predict's kernel takes its rows from a uniform: 1 workgroup per 8 rows")
gpu("rows-no-batch", gpu_rows("[1, 8, 1]", with_batch=False), desc='"rows" on a signature without a batch section')
gpu("rows-no-access", gpu_rows("[1, 8, 1]", access=False), desc='"rows" on a kernel without "access"')
gpu("rows-over-dispatch", gpu_rows("[1, 1, 1]"), desc='"rows" [1, 1, 1]: 8 workgroups at 8 rows, over its dispatch of 1')
for name, text in [("zero", "[0, 8, 1]"), ("negative", "[1, -8, 1]"), ("two", "[1, 8]"), ("huge", "[2147483648, 1, 1]"),
                   ("fraction", "[1, 8.5, 1]"), ("string", '"1, 8, 1"'), ("null", "null"), ("object", '{"a": 1}')]:
    gpu(f"rows-{name}", gpu_rows(text), desc=f'kernel "rows" {text}')
gpu("wgsl-uniform-binding", _wgsl_edit("kernels/train_step_5.wgsl", lambda s: s.replace(
    b"var<storage, read_write> iters: array<i32>", b"var<uniform> iters: vec4<i32>").replace(b"iters[0] = iters[0] + 1;", b"")),
    desc="a binding declared var<uniform>")



# ---- webgpu: the kernels' "access" (binding access modes, written by export) ---------------------
# The base fixture predates "access" (the loaders' legacy path reads the WGSL); these cases add it to
# every kernel, as export writes it, then damage it. The runtimes check it against "bindings" and
# WebGPU checks the layout built from it against the shader when the pipeline is created.

def _wgsl_access(source: bytes) -> list[str]:
    """The access of each @binding of a fixture kernel, in binding order (read off its declarations)."""
    import re
    found = re.findall(rb"@binding\((\d+)\) var<storage, (\w+)>", source)
    return [acc.decode() for _, acc in sorted(found, key=lambda m: int(m[0]))]


def _with_access(then=None):
    def build(c):
        for sig in c.manifest["signatures"].values():
            for k in sig.get("webgpu", {}).get("kernels", []):
                k["access"] = _wgsl_access(c.files[k["wgsl"]])
        if then is not None:
            then(c)
    return build


def _written(c, sig="predict", k=0) -> int:
    return _kernel(sig, k)(c)["access"].index("read_write")


gpu("access-control", _with_access(), expect=OK, desc="every kernel lists its bindings' access (as export writes it)")
gpu("access-short", _with_access(lambda c: _kernel()(c)["access"].pop()), desc='"access" one entry short of "bindings"')
gpu("access-long", _with_access(lambda c: _kernel()(c)["access"].append("read")), desc='"access" one entry longer than "bindings"')
gpu("access-empty", _with_access(lambda c: _kernel()(c).__setitem__("access", [])), desc='"access" []')
gpu("access-65", _with_access(lambda c: _kernel()(c).__setitem__("access", ["read"] * 65)), desc='65 "access" entries')
gpu("access-write", _with_access(lambda c: _kernel()(c)["access"].__setitem__(0, "write")), desc='an access "write" (not WGSL)')
gpu("access-number", _with_access(lambda c: _kernel()(c)["access"].__setitem__(0, 1)), desc="an access 1 (a number)")
gpu("access-string", _with_access(lambda c: _kernel()(c).__setitem__("access", "read")), desc='"access" "read" (not an array)')
gpu("access-null", _with_access(lambda c: _kernel()(c).__setitem__("access", None)), desc='"access" null')
gpu("access-read-for-written", _with_access(lambda c: _kernel()(c)["access"].__setitem__(_written(c), "read")),
    desc="a binding the shader writes listed as read (the layout does not match the shader)")
gpu("access-written-aliased", _with_access(lambda c: (_kernel()(c)["access"].__setitem__(0, "read_write"),
                                                      _kernel()(c)["bindings"].__setitem__(0, _kernel()(c)["bindings"][1]))),
    desc="a buffer bound twice, once listed read_write (writable aliasing)")
gpu("access-binding-beyond", _with_access(_wgsl_edit("kernels/predict_0.wgsl", lambda s: s.replace(
    b"\n@compute", b"@group(0) @binding(7) var<storage, read> extra: array<f32>;\n\n@compute").replace(
    b"{\n", b"{\n  _ = extra[0];\n", 1))),
    desc="the shader uses @binding(7), beyond the kernel's 4 listed bindings")


# ---- damage: truncations and bit flips of every file -----------------------------------------------

def _truncate(name, length_of, sign):
    def build(c):
        if name == "manifest.json":
            text = json.dumps(c.manifest, indent=1).encode()
            c.raw_manifest = text[:length_of(text)]
        else:
            data = c.files[name]
            c.set_file(name, data[:length_of(data)], sign=sign)
    return build


def _flip(name, sign, nbits=1):
    def build(c):
        if name == "manifest.json":
            data = bytearray(json.dumps(c.manifest, indent=1).encode())
        else:
            data = bytearray(c.files[name])
        for _ in range(nbits):
            bit = c.rng.randrange(len(data) * 8)
            data[bit // 8] ^= 1 << (bit % 8)
        if name == "manifest.json":
            c.raw_manifest = bytes(data)
        else:
            c.set_file(name, bytes(data), sign=sign)
    return build


def _slug(name):
    return name.replace("kernels/", "").replace(".safetensors", "").replace(".json", "").replace(".wasm", "-wasm").replace(".wgsl", "").replace("_", "-")


LEN = {"0": lambda d: 0, "1": lambda d: 1, "4": lambda d: 4, "7": lambda d: 7, "8": lambda d: 8, "9": lambda d: 9,
       "10": lambda d: 10, "16": lambda d: 16, "third": lambda d: len(d) // 3, "half": lambda d: len(d) // 2,
       "minus-1": lambda d: len(d) - 1, "minus-2": lambda d: len(d) - 2, "minus-4": lambda d: len(d) - 4,
       "header-minus-1": lambda d: 8 + struct.unpack_from("<Q", d)[0] - 1, "header": lambda d: 8 + struct.unpack_from("<Q", d)[0],
       "before-name-section": lambda d: _last_section(d)}


def _last_section(d):
    i, last = 8, 8
    while i < len(d):
        last = i
        n, j, shift = 0, i + 1, 0
        while True:
            b = d[j]
            j += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        i = j + n
    return last


for name, lengths in [("manifest.json", ["0", "1", "10", "half", "minus-1"]),
                      ("module.wasm", ["0", "4", "8", "half", "minus-1"]),
                      ("weights.safetensors", ["0", "7", "8", "half", "minus-1"])] + [(w, ["0", "half"]) for w in WGSL]:
    for ln in lengths:
        add("truncate", f"trunc-{_slug(name)}-{ln}", _truncate(name, LEN[ln], sign=False),
            desc=f"{name} truncated to {ln} bytes" + ("" if name == "manifest.json" else ", manifest not re-signed"))
for name, lengths in [("module.wasm", ["0", "4", "8", "9", "third", "half", "minus-1"]),
                      ("weights.safetensors", ["0", "7", "8", "16", "header-minus-1", "header", "minus-4", "minus-1"])]:
    for ln in lengths:
        add("truncate-signed", f"trunc-signed-{_slug(name)}-{ln}", _truncate(name, LEN[ln], sign=True),
            desc=f"{name} truncated to {ln} bytes, re-signed")
add("truncate-signed", "trunc-signed-module-wasm-before-name-section", _truncate("module.wasm", LEN["before-name-section"], True), MAYBE,
    desc="module.wasm without its trailing custom 'name' section (still a valid module), re-signed")
for w in WGSL:
    add("truncate-signed", f"trunc-signed-{_slug(w)}-0-on-wasm", _truncate(w, LEN["0"], True), MAYBE,
        desc=f"{w} emptied, re-signed, loaded on the wasm backend (which does not compile WGSL)")
for w, ln in [("kernels/predict_0.wgsl", "0"), ("kernels/predict_0.wgsl", "half"), ("kernels/predict_0.wgsl", "minus-2"),
              ("kernels/train_step_1.wgsl", "1")]:
    add("truncate-signed", f"trunc-signed-{_slug(w)}-{ln}-webgpu", _truncate(w, LEN[ln], True), AE, "webgpu",
        desc=f"{w} truncated to {ln} bytes, re-signed, on WebGPU")

for name, n in [("module.wasm", 6), ("weights.safetensors", 6)] + [(w, 1) for w in WGSL]:
    for i in range(n):
        add("bitflip", f"flip-{_slug(name)}-{i}", _flip(name, sign=False), desc=f"one random bit of {name} flipped, not re-signed")
for i in range(20):
    add("bitflip-manifest", f"flip-manifest-{i}", _flip("manifest.json", sign=False), RANDOM, desc="one random bit of manifest.json flipped")
for i in range(24):
    add("bitflip-signed", f"flip-signed-module-wasm-{i}", _flip("module.wasm", True), RANDOM, desc="one random bit of module.wasm flipped, re-signed")
for i in range(4):
    add("bitflip-signed", f"flip-signed-module-wasm-8bits-{i}", _flip("module.wasm", True, 8), RANDOM, desc="8 random bits of module.wasm flipped, re-signed")
for i in range(14):
    add("bitflip-signed", f"flip-signed-weights-{i}", _flip("weights.safetensors", True), RANDOM, desc="one random bit of weights.safetensors flipped, re-signed")
for i in range(2):
    add("bitflip-signed", f"flip-signed-weights-8bits-{i}", _flip("weights.safetensors", True, 8), RANDOM, desc="8 random bits of weights.safetensors flipped, re-signed")
for w in WGSL:
    add("bitflip-signed", f"flip-signed-{_slug(w)}-on-wasm", _flip(w, True), MAYBE, desc=f"one random bit of {w} flipped, re-signed, wasm backend")
for w in ["kernels/classify_0.wgsl", "kernels/classify_0.wgsl", "kernels/train_step_3.wgsl", "kernels/train_step_3.wgsl",
          "kernels/train_step_0.wgsl"]:
    k = sum(1 for c in CASES if c.name.startswith(f"flip-signed-{_slug(w)}-webgpu"))
    add("bitflip-signed", f"flip-signed-{_slug(w)}-webgpu-{k}", _flip(w, True), RANDOM, "webgpu",
        desc=f"one random bit of {w} flipped, re-signed, on WebGPU")


# wasm "constants" (large constants stored once in weights.safetensors, copied in at load): appended
# last so that the cases above keep their numbers (and seeds)
def _consts(**by_sig):
    def build(c):
        for sig, value in by_sig.items():
            c.sig(sig)["wasm"]["constants"] = value
    return build


def _const_tensor(dtype, shape, data):
    def build(c):
        from webtensor import safetensors_io
        tensors, meta = safetensors_io.load(c.files["weights.safetensors"])
        tensors = {k: (d, s, bytes(v)) for k, (d, s, v) in tensors.items()}
        tensors["extra/const"] = (dtype, shape, data)
        c.set_file("weights.safetensors", safetensors_io.save(tensors, meta))
        c.sig()["wasm"]["constants"] = {"8192": "extra/const"}
    return build


add("manifest", "wasm-constant-ok", _consts(predict={"8192": "const/train_step/0"}), OK,
    desc="predict.wasm.constants copies a weights tensor to unused memory (valid)")
add("manifest", "wasm-constant-missing-tensor", _consts(predict={"8192": "no/such/tensor"}),
    desc="a constant naming a tensor weights.safetensors lacks")
add("manifest", "wasm-constant-outside-memory", _consts(predict={"65532": "dense/kernel"}),
    desc="a 48-byte constant at 65532 in a 65536-byte memory")
add("manifest", "wasm-constant-2-32", _consts(predict={"4294967296": "dense/kernel"}), desc="a constant at 2^32")
add("manifest", "wasm-constant-11-digits", _consts(predict={"10000000000": "dense/kernel"}), desc="a constant at 10^10")
add("manifest", "wasm-constant-overlaps-variable", _consts(predict={"1040": "dense/kernel"}),
    desc="a constant over variable 0 (dense/kernel at 1024)")
add("manifest", "wasm-constants-overlap", _consts(predict={"8192": "dense/kernel", "8200": "dense/bias"}),
    desc="two constants overlapping each other")
add("manifest", "wasm-constant-two-names", _consts(predict={"8192": "dense/kernel"}, train_step={"8192": "dense/bias"}),
    desc="one address holding different constants in two signatures")
add("manifest", "wasm-constant-key-leading-zero", _consts(predict={"08192": "dense/kernel"}), desc='a constants key "08192"')
add("manifest", "wasm-constant-key-negative", _consts(predict={"-64": "dense/kernel"}), desc='a constants key "-64"')
add("manifest", "wasm-constant-proto", _consts(predict={"8192": "__proto__"}), desc='a constant named "__proto__"')
add("manifest", "wasm-constant-number", _consts(predict={"8192": 3}), desc="a constant named by a number")
add("manifest", "wasm-constants-array", _consts(predict=["dense/kernel"]), desc="wasm.constants as an array")
add("manifest", "wasm-constant-float64", _const_tensor("float64", (2,), bytes(16)),
    desc="a constant naming a float64 tensor (constants are float32, int32 or bool)")
add("manifest", "wasm-constant-huge-shape", _const_tensor("uint8", (1 << 20,), bytes(1 << 20)),
    desc="a constant naming a 1 MiB uint8 tensor (not a storage dtype)")

# module_relaxed.wasm (relaxed SIMD): checked like module.wasm on every engine, used or not
add("wasm-module", "relaxed-header-only", lambda c: c.set_file("module_relaxed.wasm", b"\x00asm\x01\x00\x00\x00"),
    desc="module_relaxed.wasm is an empty module (no drivers)")
add("wasm-module", "relaxed-text", lambda c: c.set_file("module_relaxed.wasm", b"(module)"),
    desc="module_relaxed.wasm is WebAssembly text")
add("wasm-module", "relaxed-hash", lambda c: (c.set_file("module_relaxed.wasm", c.files["module.wasm"]),
                                               c.manifest["files"]["module_relaxed.wasm"].__setitem__("sha256", "0" * 64)),
    desc="module_relaxed.wasm with a wrong SHA-256")


# compact weights (variables' "storage": float16, int8 with per-channel scales; docs/artifact.md
# "Compact weights"): appended last so that the cases above keep their numbers (and seeds). The valid
# base adds two host-only variables (no signature maps them): a 3 x 4 int8 weight packed into 3 words
# and its 4 scales; dense/bias is stored as float16.
def _compact_weights(storage=None, scales=(0.5, 0.25, 2.0, 1.0), q_shape=(3, 4), words=3, n_scales=None,
                     q_dtype="int8", bias_dtype="float16", half_scales=False, more=None):
    def build(c):
        from webtensor import safetensors_io
        tensors, meta = safetensors_io.load(c.files["weights.safetensors"])
        tensors = {k: (d, s, bytes(v)) for k, (d, s, v) in tensors.items()}
        d, shape, data = tensors["dense/bias"]
        bias = struct.unpack(f"<{len(data) // 4}f", data)
        tensors["dense/bias"] = (bias_dtype, shape, struct.pack(f"<{len(bias)}e", *bias)) if bias_dtype == "float16" \
            else (d, shape, data)
        c.manifest["variables"][1]["storage"] = {"dtype": "float16"}
        n = n_scales if n_scales is not None else len(scales)
        q = bytes((i * 37 - 100) & 0xFF for i in range(q_shape[0] * q_shape[1]))
        tensors["q8/kernel"] = (q_dtype, q_shape, q if q_dtype == "int8" else bytes(4 * len(q)))
        fmt = "e" if half_scales else "f"        # float16-stored scales: widened before the int8 checks
        tensors["q8/kernel/scales"] = ("float16" if half_scales else "float32", (n,),
                                       struct.pack(f"<{n}{fmt}", *(list(scales) * n)[:n]))
        c.manifest["variables"] += [
            {"name": "q8/kernel", "dtype": "int32", "shape": [words], "trainable": False,
             "storage": storage or {"dtype": "int8", "shape": [3, 4], "scales": "q8/kernel/scales"}},
            {"name": "q8/kernel/scales", "dtype": "float32", "shape": [n], "trainable": False}]
        if half_scales:
            c.manifest["variables"][4]["storage"] = {"dtype": "float16"}
        if more:
            more(c)
        c.set_file("weights.safetensors", safetensors_io.save(tensors, meta))
    return build


def _q8(key, value):
    return lambda c: c.manifest["variables"][3]["storage"].__setitem__(key, value)


add("control", "compact-weights", _compact_weights(), OK,
    desc="a float16-stored bias and a host-only int8 weight with its scales (valid)")
add("manifest", "storage-dtype-unknown", _compact_weights({"dtype": "int4", "shape": [3, 4], "scales": "q8/kernel/scales"}),
    desc='storage dtype "int4"')
add("manifest", "storage-dtype-bfloat16", _compact_weights(more=lambda c: c.manifest["variables"][1]["storage"].__setitem__("dtype", "bfloat16")),
    desc='storage dtype "bfloat16" (float16 and int8 only)')
add("manifest", "storage-extra-key", _compact_weights(more=_q8("zero_point", 0)), desc="an int8 storage with a zero_point")
add("manifest", "storage-float16-with-scales", _compact_weights(more=lambda c: c.manifest["variables"][1]["storage"].__setitem__("scales", "q8/kernel/scales")),
    desc="float16 storage that names scales")
add("manifest", "storage-float16-on-int32", _compact_weights(more=lambda c: c.manifest["variables"][2].__setitem__("storage", {"dtype": "float16"})),
    desc="float16 storage of the int32 optimizer/iterations")
add("manifest", "storage-float16-tensor-f32", _compact_weights(bias_dtype="float32"),
    desc="float16 storage, but weights.safetensors holds the bias as F32")
add("manifest", "storage-int8-no-scales", _compact_weights({"dtype": "int8", "shape": [3, 4]}), desc="int8 storage without scales")
add("manifest", "storage-int8-no-shape", _compact_weights({"dtype": "int8", "scales": "q8/kernel/scales"}), desc="int8 storage without its shape")
add("manifest", "storage-int8-scale-count-5", _compact_weights(n_scales=5), desc="wrong scale count: 5 scales for a 3 x 4 weight")
add("manifest", "storage-int8-scale-count-12", _compact_weights(n_scales=12, scales=[1.0]),
    desc="12 scales for a 3 x 4 weight (one per element, not per output channel)")
add("manifest", "storage-int8-scale-count-0", _compact_weights(n_scales=0), desc="no scales for a 3 x 4 weight")
add("safetensors", "storage-int8-scale-nan", _compact_weights(scales=(0.5, float("nan"), 2.0, 1.0)), desc="a scale NaN")
add("safetensors", "storage-int8-scale-inf", _compact_weights(scales=(0.5, float("inf"), 2.0, 1.0)), desc="a scale +inf")
add("safetensors", "storage-int8-scale-zero", _compact_weights(scales=(0.5, 0.0, 2.0, 1.0)), desc="a scale 0")
add("safetensors", "storage-int8-scale-negative", _compact_weights(scales=(0.5, -0.25, 2.0, 1.0)), desc="a scale -0.25")
add("manifest", "storage-int8-scales-missing", _compact_weights(more=_q8("scales", "no/such/scales")), desc="scales naming no variable")
add("manifest", "storage-int8-scales-itself", _compact_weights(more=_q8("scales", "q8/kernel")), desc="scales naming the int8 variable itself")
add("manifest", "storage-int8-scales-int32", _compact_weights(more=_q8("scales", "optimizer/iterations")), desc="scales naming an int32 scalar")
add("manifest", "storage-int8-scales-proto", _compact_weights(more=_q8("scales", "__proto__")), desc='scales named "__proto__"')
add("manifest", "storage-int8-words-4", _compact_weights(words=4), desc="4 words for 12 int8 values (3 expected)")
add("manifest", "storage-int8-rank-1", _compact_weights({"dtype": "int8", "shape": [12], "scales": "q8/kernel/scales"}),
    desc="an int8 weight of rank 1 (no output channels)")
add("manifest", "storage-int8-shape-2-40", _compact_weights({"dtype": "int8", "shape": [1 << 20, 1 << 20], "scales": "q8/kernel/scales"}),
    desc="an int8 weight of 2^40 elements")
add("manifest", "storage-int8-on-float32", _compact_weights(more=lambda c: c.manifest["variables"][3].__setitem__("dtype", "float32")),
    desc="int8 storage of a float32 variable")
add("safetensors", "storage-int8-tensor-int32", _compact_weights(q_dtype="int32"), desc="int8 storage, but the tensor is int32")
add("safetensors", "storage-int8-tensor-shape", _compact_weights(q_shape=(4, 3)), desc="int8 storage [3, 4], the tensor is [4, 3]")
add("control", "compact-weights-half-scales", _compact_weights(half_scales=True), OK,
    desc="an int8 weight whose scales are stored as float16 (after it, as export writes them; valid)")
add("safetensors", "storage-int8-half-scale-inf", _compact_weights(scales=(0.5, float("inf"), 2.0, 1.0), half_scales=True),
    desc="a float16-stored scale +inf")
add("safetensors", "storage-int8-half-scale-zero", _compact_weights(scales=(0.5, 0.0, 2.0, 1.0), half_scales=True),
    desc="a float16-stored scale 0")
add("manifest", "storage-int8-scales-int8", _compact_weights(
        half_scales=True, more=lambda c: c.manifest["variables"][4].__setitem__(
            "storage", {"dtype": "int8", "shape": [2, 2], "scales": "q8/kernel/scales"})),
    desc="scales stored as int8 (float32 or float16 only)")
add("manifest", "storage-int8-half-scales-tensor-f32", _compact_weights(
        more=lambda c: c.manifest["variables"][4].__setitem__("storage", {"dtype": "float16"})),
    desc="float16-stored scales, but weights.safetensors holds them as F32")


def _threads_layout(stride):
    """Every signature's wasm section with a threads workspace (module_threads.wasm's, which
    loaders read only on more than one thread) of ``stride`` bytes past the memory."""
    def fn(m):
        scratch = max(sig["wasm"]["memory_bytes"] for sig in m["signatures"].values())
        for sig in m["signatures"].values():
            sig["wasm"]["threads"] = {"scratch": scratch, "stride": stride}
    return edit(fn)


add("control", "threads-layout", _threads_layout(1 << 20), OK,
    desc="a threads section without module_threads.wasm (one thread: unused; valid)")
add("manifest", "threads-stride-4gib", _threads_layout(1 << 32),
    desc="threads stride 2**32: a second thread's workspace past WebAssembly's 4 GiB")


# ---- manifest: symbolic length (docs/artifact.md "Symbolic length"): appended last so that the cases
# above keep their numbers (and seeds)

def length(section, sig="predict", extra=None):
    """Signature ``sig`` gets ``"length": section`` (raw JSON text); ``extra``: another edit."""
    def build(c):
        c.sig(sig)["length"] = c.rawval(section)
        if extra is not None:
            extra(c)
    return build


# predict: x [8, 4] -> y [8, 3]; its axis 1 of 4 may be a length (its output has none)
add("manifest", "length-ok", length('{"maximum": 4, "inputs": [1], "outputs": [-1]}'), OK,
    desc="predict takes lengths up to 4 in x's axis 1 (run at the maximum)")
add("manifest", "length-maximum-off-shape", length('{"maximum": 5, "inputs": [1], "outputs": [-1]}'),
    desc="maximum 5, but x's axis 1 holds 4")
add("manifest", "length-axis-past-rank", length('{"maximum": 4, "inputs": [2], "outputs": [-1]}'),
    desc="x has no axis 2")
add("manifest", "length-output-axis-off", length('{"maximum": 4, "inputs": [1], "outputs": [1]}'),
    desc="y's axis 1 holds 3, not the maximum 4")
add("manifest", "length-too-few-inputs", length('{"maximum": 4, "inputs": [], "outputs": [-1]}'),
    desc="no entry for x")
add("manifest", "length-too-many-outputs", length('{"maximum": 4, "inputs": [1], "outputs": [-1, -1]}'),
    desc="two entries for one output")
add("manifest", "length-no-input", length('{"maximum": 8, "inputs": [-1], "outputs": [0]}'),
    desc="only the output has the length")
add("manifest", "length-with-batch", length('{"maximum": 4, "inputs": [1], "outputs": [-1]}',
                                            extra=batch('{"chunk": 8}')), OK,
    desc="a length (axis 1) and a batch (axis 0) on one signature (valid: docs/artifact.md \"Symbolic batch and length\")")
for name, text in [("maximum-0", '{"maximum": 0, "inputs": [1], "outputs": [-1]}'),
                   ("maximum-huge", '{"maximum": 1048577, "inputs": [1], "outputs": [-1]}'),
                   ("maximum-string", '{"maximum": "4", "inputs": [1], "outputs": [-1]}'),
                   ("axis-minus-2", '{"maximum": 4, "inputs": [-2], "outputs": [-1]}'),
                   ("axis-null", '{"maximum": 4, "inputs": [null], "outputs": [-1]}'),
                   ("axis-fraction", '{"maximum": 4, "inputs": [1.5], "outputs": [-1]}'),
                   ("missing-outputs", '{"maximum": 4, "inputs": [1]}'),
                   ("extra-key", '{"maximum": 4, "inputs": [1], "outputs": [-1], "relations": []}'),
                   ("proto", '{"maximum": 4, "inputs": [1], "outputs": [-1], "__proto__": {"maximum": 1}}'),
                   ("list", '[4]')]:
    add("manifest", f"length-{name}", length(text), desc=f"length section {text}")

# a symbolic batch and length together (docs/artifact.md "Symbolic batch and length"): appended last
add("manifest", "length-in-batch-axis", length('{"maximum": 8, "inputs": [0], "outputs": [0]}',
                                               extra=batch('{"chunk": 8}')),
    desc="a length in axis 0, which the signature's batch section makes the batch")
add("manifest", "length-with-batch-version-1", length('{"maximum": 4, "inputs": [1], "outputs": [-1]}',
                                                      extra=batch('{"chunk": 8}', version=1)),
    desc="a length and a batch in a format version 1 manifest")

# ---------------------------------------------------------------- writing

def case_list() -> list[dict]:
    """The index entries (name, dir, kind, expect, backend, desc) without writing anything."""
    return [{"name": f"{i:03d}-{c.name}", "dir": f"cases/{i:03d}-{c.name}", "kind": c.kind, "expect": list(c.expect),
             "backend": c.backend, "desc": c.desc} for i, c in enumerate(CASES, 1)]


def _read_tree(root) -> dict:
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = open(p, "rb").read()
    return out


def _secret() -> bytes:
    rng = random.Random(20240611)
    token = "wt-secret-" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
    text = f"{token}\nTHIS FILE IS OUTSIDE EVERY ARTIFACT: NO LOADER MAY READ IT ({token})\n"
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n"
    while len(text) < SECRET_BYTES:
        text += "".join(rng.choice(alphabet) for _ in range(80)) + f" {token}\n"
    return text[:SECRET_BYTES].encode()


def secret_token(secret: bytes) -> str:
    return secret.split(b"\n", 1)[0].decode()


def counts(index: list[dict]) -> dict:
    kinds: dict = {}
    for e in index:
        k = kinds.setdefault(e["kind"], {"cases": 0, "wasm": 0, "webgpu": 0, "ArtifactError only": 0,
                                         "TimeoutError only": 0, "ok only": 0, "several allowed": 0})
        k["cases"] += 1
        k[e["backend"]] += 1
        if e["expect"] in (AE, TIMEOUT, OK):
            k[e["expect"][0] + " only"] += 1
        else:
            k["several allowed"] += 1
    return {"total": len(index), "kinds": kinds}


def table(c: dict) -> str:
    cols = ["cases", "wasm", "webgpu", "ArtifactError only", "TimeoutError only", "ok only", "several allowed"]
    lines = ["| kind | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for kind, row in c["kinds"].items():
        lines.append(f"| {kind} | " + " | ".join(str(row[k]) for k in cols) + " |")
    tot = {k: sum(r[k] for r in c["kinds"].values()) for k in cols}
    lines.append("| **total** | " + " | ".join(f"**{tot[k]}**" for k in cols) + " |")
    return "\n".join(lines)


def make_corpus(outdir) -> list[dict]:
    """Write the corpus under ``outdir`` (created; must not hold a previous corpus). Returns the index."""
    outdir = os.path.abspath(os.fspath(outdir))
    os.makedirs(outdir, exist_ok=True)
    if os.path.exists(os.path.join(outdir, "cases")):
        raise FileExistsError(f"{outdir} already holds a corpus")
    build = os.path.join(outdir, "base")
    subprocess.run([sys.executable, FIXTURES, build], check=True, stdout=subprocess.DEVNULL)
    base_dir = os.path.join(build, "linear")
    base = _read_tree(base_dir)
    base_manifest = json.loads(base.pop("manifest.json"))
    secret = _secret()

    outside = os.path.join(outdir, "outside")
    os.makedirs(outside)
    with open(os.path.join(outside, "secret.txt"), "wb") as f:
        f.write(secret)
    shutil.copytree(base_dir, os.path.join(outside, "linear"))
    with open(os.path.join(outdir, "secret.json"), "w") as f:
        json.dump({"path": os.path.join(outside, "secret.txt"), "token": secret_token(secret),
                   "sha256": hashlib.sha256(secret).hexdigest(), "bytes": len(secret)}, f, indent=1)

    index = case_list()
    for entry, case in zip(index, CASES):
        d = os.path.join(outdir, entry["dir"])
        os.makedirs(d)
        c = Ctx(files=dict(base), manifest=copy.deepcopy(base_manifest), outdir=outdir, case_dir=d,
                rng=random.Random(zlib.crc32(entry["name"].encode())), secret=secret)
        case.build(c)
        for name, data in c.files.items():
            p = os.path.join(d, *name.split("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        mp = os.path.join(d, "manifest.json")
        if c.raw_manifest == b"SYMLINK":
            os.symlink("../../outside/linear/manifest.json", mp)
        elif c.raw_manifest == b"FIFO":
            os.mkfifo(mp)
        elif c.raw_manifest == b"SPARSE":
            with open(mp, "wb") as f:
                f.truncate(SPARSE_BYTES)
        else:
            text = c.raw_manifest
            if text is None:
                text = json.dumps(c.manifest, indent=1)
                for key, raw in c.raw.items():
                    assert f'"{key}"' in text, key
                    text = text.replace(f'"{key}"', raw)
                text = text.encode("utf-8", "surrogatepass")
            with open(mp, "wb") as f:
                f.write(text)
        for action in c.actions:
            action(d)

    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    with open(os.path.join(outdir, "expected_counts.json"), "w") as f:
        json.dump(counts(index), f, indent=1)
    return index


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", nargs="?", help="where to write the corpus (a temporary directory with --table alone)")
    p.add_argument("--table", action="store_true", help="print a Markdown table of the cases per kind")
    a = p.parse_args(argv)
    if not a.outdir and not a.table:
        p.error("OUTDIR is required (or --table)")
    if a.outdir:
        index = make_corpus(a.outdir)
    else:
        index = case_list()
    if a.table:
        print(table(counts(index)))
    else:
        print(f"{len(index)} cases written to {os.path.abspath(a.outdir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
