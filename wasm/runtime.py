"""The ``"wasm"`` device: WebAssembly kernels run in ``wasmtime`` over one linear memory.

- One ``wasmtime`` store and one linear memory per device; every module imports it
  (``env.memory``), so tensors never move between kernels.
- :class:`Allocator`: a first-fit free list with coalescing over that memory (64-byte
  blocks); it grows the memory on demand and raises ``MemoryError`` naming the tensor
  beyond the 4 GiB wasm32 limit.
- Device data is a :class:`WasmBuffer` (offset, nbytes). Buffers are immutable once
  written; ``weakref.finalize`` frees the bytes when the last tensor holding one is gone.
- Eager ops: ``op.kernel(...)`` -> one module per distinct kernel, cached by the kernel
  itself (kernels hash structurally), one call per op. Kernels that only copy their input
  (reshape) alias it instead.
- ``compile(graph)``: fused kernels (``core.compile.compile_graph``) in ONE module with a
  generated ``run`` function that calls them in order, so a whole step is one host call.
  Temporaries live in a static arena (``plan_arena``) allocated once per executable;
  inputs, captures and results are passed through an address table in memory; outputs and
  variable updates are written straight into fresh buffers.

Calls go through ``wasmtime_func_call_unchecked`` with a preallocated argument array (a few
microseconds) when the installed wasmtime exposes it, else ``Func.__call__`` (~50 us).
Requires the optional extra: ``pip install 'webtensor[wasm]'``.
"""
from __future__ import annotations

import bisect
import ctypes
import weakref
from math import prod

from ..core import compile as C
from ..device import Device
from ..util import require, require_numpy
from .binary import Module
from .lower import kernel_module, lower

PAGE = 65536
MAX_PAGES = 65536           # wasm32: 4 GiB
ALIGN = 64


class Allocator:
    """First-fit free list over linear memory [ALIGN, size), ALIGN-byte granules.

    ``grow(pages) -> bool`` enlarges the memory. ``stats()`` reports bytes in use, live
    blocks, the peak and the memory size, so tests can check that loops do not leak.
    """

    def __init__(self, size: int, grow):
        self.size, self._grow = size, grow
        self.free: list[list[int]] = [[ALIGN, size - ALIGN]] if size > ALIGN else []   # sorted [offset, size]
        self.used: dict[int, int] = {}
        self.in_use = self.peak = 0

    def alloc(self, nbytes: int, what: str = "buffer") -> int:
        size = max(-(-nbytes // ALIGN) * ALIGN, ALIGN)
        for i, (off, n) in enumerate(self.free):
            if n >= size:
                break
        else:
            self._expand(size, nbytes, what)
            return self.alloc(nbytes, what)
        if n == size:
            del self.free[i]
        else:
            self.free[i] = [off + size, n - size]
        self.used[off] = size
        self.in_use += size
        self.peak = max(self.peak, self.in_use)
        return off

    def _expand(self, size: int, nbytes: int, what: str):
        tail = self.free[-1][1] if self.free and sum(self.free[-1]) == self.size else 0
        need = -(-(size - tail) // PAGE)
        pages = self.size // PAGE
        grow = min(max(need, pages // 2), MAX_PAGES - pages)    # grow by half again, at least what is needed
        if need > MAX_PAGES - pages or not self._grow(grow):
            raise MemoryError(
                f"wasm device: cannot allocate {what} ({nbytes:,} bytes): the linear memory would exceed the "
                f"4 GiB wasm32 limit ({self.in_use:,} bytes in use of {self.size:,})")
        start, self.size = self.size, self.size + grow * PAGE
        if tail:
            self.free[-1][1] += grow * PAGE
        else:
            self.free.append([start, grow * PAGE])

    def release(self, off: int):
        size = self.used.pop(off)
        self.in_use -= size
        i = bisect.bisect(self.free, [off, 0])
        self.free.insert(i, [off, size])
        if i + 1 < len(self.free) and off + size == self.free[i + 1][0]:
            self.free[i][1] += self.free.pop(i + 1)[1]
        if i > 0 and sum(self.free[i - 1]) == off:
            self.free[i - 1][1] += self.free.pop(i)[1]

    def stats(self) -> dict:
        return {"in_use": self.in_use, "blocks": len(self.used), "peak": self.peak, "memory": self.size,
                "free_blocks": len(self.free)}


class WasmBuffer:
    """A tensor's bytes in the device's linear memory; freed when garbage collected."""
    __slots__ = ("offset", "nbytes", "__weakref__")

    def __init__(self, alloc: Allocator, nbytes: int, what: str = "buffer"):
        self.offset = alloc.alloc(nbytes, what)
        self.nbytes = nbytes
        weakref.finalize(self, alloc.release, self.offset)

    def __repr__(self):
        return f"WasmBuffer(offset={self.offset}, nbytes={self.nbytes})"


def _storage(aval) -> tuple[str, int]:
    """(numpy storage dtype name, bytes) of a tensor on the wasm device (bool as i32, f16 as f32)."""
    t = "float32" if aval.dtype.wasm == "f32" else "int32"
    return t, 4 * prod(aval.shape)


class _Caller:
    """Call an exported function with i32 arguments, the fast way when possible."""

    def __init__(self, store, func, nargs: int):
        self.store, self.func, self.nargs = store, func, nargs
        self.fast = None
        try:
            from wasmtime import _ffi as ffi
            self._ffi = ffi
            self._ctx = store._context()
            self._fn = ctypes.byref(func._func)
            self._args = (ffi.wasmtime_val_raw * max(nargs, 1))()
            self._trap = ctypes.POINTER(ffi.wasm_trap_t)()
            self.fast = ffi.wasmtime_func_call_unchecked
        except Exception:   # an older or newer wasmtime-py without the raw call: use the public API
            self.fast = None

    def __call__(self, *vals):
        if self.fast is None:
            return self.func(self.store, *vals)
        args = self._args
        for i, v in enumerate(vals):
            args[i].i32 = v
        err = self.fast(self._ctx, self._fn, args, self.nargs, ctypes.byref(self._trap))
        if err or self._trap:
            self._trap = ctypes.POINTER(self._ffi.wasm_trap_t)()
            return self.func(self.store, *vals)   # re-run through the checked API to raise properly


class WasmDevice(Device):
    """The ``"wasm"`` device (see the module docstring)."""
    name = "wasm"

    def __init__(self, initial_pages: int = 256, fma: bool = True):
        wasmtime = require("wasmtime", "the 'wasm' device")
        self.np = require_numpy("the 'wasm' device")
        self.wasmtime = wasmtime
        cfg = wasmtime.Config()
        cfg.wasm_simd = True
        cfg.wasm_relaxed_simd = fma
        self.fma = fma
        self.engine = wasmtime.Engine(cfg)
        self.store = wasmtime.Store(self.engine)
        self.memory = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(initial_pages, MAX_PAGES)))
        self.alloc = Allocator(initial_pages * PAGE, self._grow)
        self._view = None
        self._kernels: dict = {}        # Kernel -> (Lowered, caller): one module per distinct kernel
        self._ops: dict = {}            # (op, input avals, output aval, attrs) -> the same, skipping op.kernel
        self.kernel_stats = {"hits": 0, "misses": 0}
        self._scratch = None

    # ---- memory ----
    def _grow(self, pages: int) -> bool:
        try:
            self.memory.grow(self.store, pages)
        except Exception:
            return False
        self._view = None        # the old view may point at freed memory now
        return True

    @property
    def view(self):
        """uint8 numpy view of the whole linear memory (re-made after every growth)."""
        if self._view is None:
            n = self.memory.data_len(self.store)
            self._view = self.np.ctypeslib.as_array(self.memory.data_ptr(self.store), shape=(n,))
        return self._view

    def buffer(self, nbytes: int, what: str = "buffer") -> WasmBuffer:
        return WasmBuffer(self.alloc, nbytes, what)

    def scratch(self, nbytes: int) -> int:
        """Address of a device-wide workspace of at least ``nbytes`` (eager templates)."""
        if self._scratch is None or self._scratch.nbytes < nbytes:
            self._scratch = None
            self._scratch = self.buffer(nbytes, "kernel workspace")
        return self._scratch.offset

    # ---- Device interface ----
    def from_host(self, array, aval):
        np = self.np
        t, n = _storage(aval)
        buf = self.buffer(n, f"a {aval.dtype.name} tensor of shape {tuple(aval.shape)}")
        if n:
            a = np.ascontiguousarray(array, dtype=t)
            self.view[buf.offset:buf.offset + n] = a.reshape(-1).view(np.uint8)
        return buf

    def to_host(self, data, aval):
        np = self.np
        t, n = _storage(aval)
        a = self.view[data.offset:data.offset + n].view(t).reshape(aval.shape).copy()
        if aval.dtype.name == "bool":
            return a != 0
        if aval.dtype.name == "float16":
            return a.astype(np.float16)
        return a

    def _kernel(self, kernel):
        ent = self._kernels.get(kernel)
        if ent is None:
            self.kernel_stats["misses"] += 1
            m, lw = kernel_module(kernel, fma=self.fma)
            ent = self._kernels[kernel] = (lw, self._instantiate(m, "kernel", lw.n_inputs + 4))
        else:
            self.kernel_stats["hits"] += 1
        return ent

    def _instantiate(self, module: Module, export: str, nargs: int) -> _Caller:
        wasmtime = self.wasmtime
        mod = wasmtime.Module(self.engine, module.emit())
        inst = wasmtime.Instance(self.store, mod, [self.memory])
        return _Caller(self.store, inst.exports(self.store)[export], nargs)

    def execute(self, op, datas, attrs, in_avals, out_aval):
        if op.kernel is None:
            raise NotImplementedError(f"op {op.name!r} has no kernel; it cannot run on the wasm device")
        key = (op, tuple(in_avals), out_aval, tuple(sorted(attrs.items())))
        try:
            ent = self._ops.get(key)
        except TypeError:               # an unhashable attribute: build the kernel every time
            key, ent = None, None
        if ent is None:
            ent = self._kernel(op.kernel(list(in_avals), out_aval, **attrs))
            if key is not None:
                self._ops[key] = ent
        else:
            self.kernel_stats["hits"] += 1
        lw, call = ent
        if lw.copy:
            return datas[0]             # same bytes (buffers are immutable): alias, no copy
        _, n = _storage(out_aval)
        out = self.buffer(n, f"the {out_aval.dtype.name} result of shape {tuple(out_aval.shape)} of {op.name}")
        if lw.rows:
            scratch = self.scratch(lw.scratch) if lw.scratch else 0
            call(out.offset, *(d.offset for d in datas), 0, lw.rows, scratch)
        return out

    def compile(self, graph):
        return WasmExecutable(self, graph)

    def stats(self) -> dict:
        """Allocator statistics plus the eager kernel cache's hits and misses."""
        return {**self.alloc.stats(), **{f"kernel_{k}": v for k, v in self.kernel_stats.items()},
                "kernels": len(self._kernels)}


class WasmExecutable:
    """A compiled graph: one module, one ``run`` call per execution (module docstring)."""

    def __init__(self, device: WasmDevice, graph):
        self.device = device
        prog = C.compile_graph(graph)
        self.program = prog
        results = [b for b in dict.fromkeys(prog.outputs + prog.updates) if prog.bufs[b].role == "temp"]
        for b in results:
            prog.bufs[b].role = "result"
        offsets, arena = C.plan_arena(prog)
        m = Module()
        m.import_memory("env", "memory", 1)
        lowered, fns = {}, []
        for s in prog.steps:
            if s.kernel not in lowered:
                lowered[s.kernel] = lower(m, s.kernel, f"k{len(lowered)}", fma=device.fma)
            fns.append(lowered[s.kernel])
        scratch = max((lw.scratch for lw in lowered.values()), default=0)
        slots = prog.inputs + prog.captures + results
        self.slot = {b: i for i, b in enumerate(slots)}
        table_bytes = -(-4 * max(len(slots), 1) // ALIGN) * ALIGN
        arena_al = -(-arena // ALIGN) * ALIGN
        self.arena = device.buffer(table_bytes + arena_al + scratch, "an executable's arena")
        self.table = self.arena.offset
        base, scratch_at = self.table + table_bytes, self.table + table_bytes + arena_al
        self.consts = dict(prog.consts)                  # keeps constant buffers alive
        addr = {}
        for b, data in self.consts.items():
            if not isinstance(data, WasmBuffer):
                data = self.consts[b] = device.from_host(data, _Aval(prog.bufs[b]))
            addr[b] = ("const", data.offset)
        for b, off in offsets.items():
            addr[b] = ("const", base + off)
        for b, i in self.slot.items():
            addr[b] = ("slot", self.table + 4 * i)
        f = m.function("run", export=True)
        for s, lw in zip(prog.steps, fns):
            emit_call(f, lw, [a if kind == "const" else _load_slot(a) for kind, a in
                              (addr[b] for b in [s.output] + s.inputs)], scratch_at)
        f.finish()
        self.module = m
        self._run = device._instantiate(m, "run", 0)
        self.results = [(b, _storage(_Aval(prog.bufs[b]))[1]) for b in results]
        self._slots = slots

    def run(self, inputs, captures):
        dev, prog = self.device, self.program
        data = dict(self.consts)
        data.update(zip(prog.inputs, inputs))
        data.update(zip(prog.captures, captures))
        for b, n in self.results:
            data[b] = dev.buffer(n, f"a result of shape {prog.bufs[b].shape}")
        t = self.table // 4
        dev.view.view(dev.np.int32)[t:t + len(self._slots)] = [data[b].offset for b in self._slots]
        self._run()
        return [data[b] for b in prog.outputs], [data[b] for b in prog.updates]


def emit_call(f, lw, addresses, scratch: int) -> None:
    """Emit into function ``f`` a call of the lowered kernel ``lw`` over all its rows (the calling
    convention of :mod:`.lower`: ``(out, in..., start=0, end=rows, scratch)``); nothing for an empty
    kernel. ``addresses``: the output's then each input's byte address, each an int or a callable
    ``push(f)`` that leaves it on the stack. Used by :class:`WasmExecutable` and by export's drivers."""
    if not lw.rows:
        return
    for a in addresses:
        if callable(a):
            a(f)
        else:
            f.i32_const(a)
    f.i32_const(0)
    f.i32_const(lw.rows)
    f.i32_const(scratch)
    f.call(lw.name)


def _load_slot(at: int):
    """An address pusher: the i32 stored at byte ``at`` (an executable's address table)."""
    return lambda f: f.i32_const(at).i32_load()


class _Aval:
    """Shape/dtype of a program buffer in the form ``_storage``/``from_host`` read."""

    def __init__(self, buf):
        self.shape, self.dtype = buf.shape, buf.dtype
