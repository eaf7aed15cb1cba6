"""The ``"wasm"`` device: WebAssembly kernels over one linear memory, run by an engine
(:mod:`.engines`): ``wasmtime`` natively, the page's ``WebAssembly`` in Pyodide. Only the engine
differs; allocator, kernels and executables are the same.

- One linear memory per device; every module imports it (``env.memory``), so tensors never
  move between kernels.
- :class:`Allocator`: a first-fit free list with coalescing over that memory (64-byte
  blocks); it grows the memory on demand and raises ``MemoryError`` naming the tensor
  beyond the 4 GiB wasm32 limit.
- Device data is a :class:`WasmBuffer` (offset, nbytes). Buffers are immutable once
  written; ``WasmBuffer.__del__`` frees the bytes when the last tensor holding one is gone.
- Eager ops: ``op.kernel(...)`` -> one module per distinct kernel, one call per op. Kernels that
  only copy their input (reshape) alias it instead. The cache is keyed by (op, input avals, output
  aval, attributes) and bounded (``webtensor.config.set_cache_limits(kernels=...)``, least recently
  used first); keys whose kernels are structurally equal share one module while any of them is cached.
  Dropped modules are freed by the engine (``WasmtimeEngine.recycle``).
- ``compile(graph)``: fused kernels (``core.compile.compile_graph``) in ONE module with a
  generated ``run`` function that calls them in order, so a whole step is one host call.
  Temporaries live in a static arena (``plan_arena``) allocated once per executable;
  inputs, captures and results are passed through an address table in memory; outputs and
  variable updates are written straight into fresh buffers.

Host data crosses in one bulk copy each way (``engine.write``/``engine.read``); no numpy is
needed.

Threads: the engine's store is not thread-safe, and kernels, executables (their address table and
arena) and the eager workspace are shared, so every use of the engine happens under the device's
``lock`` (an RLock): ``from_host``, ``to_host_bytes``, ``execute``, ``compile`` and
``WasmExecutable.run``. The allocator has its own lock, and ``WasmBuffer.__del__`` (which runs in
whichever thread drops the last reference, or inside the garbage collector in the middle of an
allocation) never waits: it queues the block, which the next allocation returns. Natively this requires the optional extra ``pip install 'webtensor[wasm]'`` (wasmtime);
in Pyodide nothing.
"""
from __future__ import annotations

import os

import array
import bisect
import threading
import weakref
from math import prod

from ..core import compile as C
from ..core.runtime.cache import TICK, LRUCache
from ..core.runtime.device import Device
from ..core.runtime.hostdata import NUMPY, as_host, from_storage, to_storage
from ..core.runtime.parallelism import intra_op_threads
from . import threads as T
from .binary import Module
from .engines import MAX_PAGES, PAGE, _Caller, default_engine  # noqa: F401  (_Caller: tests patch it)
from .lower import inline_scalars, kernel_module, lower

ALIGN = 64


class Allocator:
    """First-fit free list over linear memory [ALIGN, size), ALIGN-byte granules.

    ``grow(pages) -> bool`` enlarges the memory. ``stats()`` reports bytes in use, live
    blocks, the peak and the memory size, so tests can check that loops do not leak.

    Thread-safe: ``release`` only queues the block (one atomic ``list.append``: it never blocks, and
    is safe from any thread and from a ``WasmBuffer.__del__`` that the garbage collector runs in the
    middle of ``alloc``); ``alloc`` and ``stats`` take ``lock`` (the allocator's own, or its owner's:
    the device passes its RLock, and then calls ``alloc_locked`` where it holds it already) and
    return the queued blocks to the free list first, so a freed block is reused by the next
    allocation as before.
    """

    def __init__(self, size: int, grow, lock=None, poison=None):
        self.size, self._grow = size, grow
        self._poison = poison           # (offset, size) -> None: fills each new block (a test aid)
        self.free: list[list[int]] = [[ALIGN, size - ALIGN]] if size > ALIGN else []   # sorted [offset, size]
        self.used: dict[int, int] = {}
        self.in_use = self.peak = 0
        self.lock = lock if lock is not None else threading.Lock()
        self._pending: list[int] = []   # offsets released since the last alloc/stats

    def check(self, nbytes: int, what: str = "buffer") -> None:
        """Raise MemoryError (naming ``what`` and ``nbytes``) unless ``nbytes`` fit in a free block or
        in the memory grown within the 4 GiB wasm32 limit. :meth:`alloc` runs it before growing, and
        the device before anything is built (``WasmDevice.check_alloc``)."""
        size = max(-(-nbytes // ALIGN) * ALIGN, ALIGN)
        if any(n >= size for _, n in self.free):
            return
        if self._pages_needed(size) > MAX_PAGES - self.size // PAGE:
            raise MemoryError(
                f"wasm device: cannot allocate {what} ({nbytes:,} bytes): the linear memory would exceed the "
                f"4 GiB wasm32 limit ({self.in_use:,} bytes in use of {self.size:,})")

    def alloc(self, nbytes: int, what: str = "buffer") -> int:
        """Offset of a new block of at least ``nbytes`` (ALIGN-aligned). Raises MemoryError naming
        ``what`` past the 4 GiB wasm32 limit."""
        with self.lock:
            return self.alloc_locked(nbytes, what)

    def alloc_locked(self, nbytes: int, what: str = "buffer") -> int:
        """:meth:`alloc` for a caller that holds ``lock``."""
        size = max(-(-nbytes // ALIGN) * ALIGN, ALIGN)
        pending = self._pending
        while pending:
            self._release(pending.pop())
        for i, (off, n) in enumerate(self.free):
            if n >= size:
                break
        else:
            self._expand(size, nbytes, what)
            return self.alloc_locked(nbytes, what)
        if n == size:
            del self.free[i]
        else:
            self.free[i] = [off + size, n - size]
        self.used[off] = size
        if self._poison is not None:
            self._poison(off, size)
        self.in_use += size
        if self.in_use > self.peak:
            self.peak = self.in_use
        return off

    def _tail(self) -> int:
        """Bytes of the free block at the end of the memory (0 if the last block is in use)."""
        return self.free[-1][1] if self.free and sum(self.free[-1]) == self.size else 0

    def _pages_needed(self, size: int) -> int:
        return -(-(size - self._tail()) // PAGE)

    def _expand(self, size: int, nbytes: int, what: str):
        self.check(nbytes, what)
        tail, need, pages = self._tail(), self._pages_needed(size), self.size // PAGE
        grow = min(max(need, pages // 2), MAX_PAGES - pages)    # grow by half again, at least what is needed
        if not self._grow(grow):
            raise MemoryError(f"wasm device: cannot allocate {what} ({nbytes:,} bytes): the engine refused to grow "
                              f"the linear memory by {grow * PAGE:,} bytes ({self.in_use:,} bytes in use of "
                              f"{self.size:,})")
        start, self.size = self.size, self.size + grow * PAGE
        if tail:
            self.free[-1][1] += grow * PAGE
        else:
            self.free.append([start, grow * PAGE])

    def release(self, off: int):
        """Free the block at ``off``: queued, returned by the next ``alloc``/``stats`` (any thread, also
        ``__del__``; never blocks)."""
        self._pending.append(off)

    def _drain(self):
        pending = self._pending
        while pending:
            self._release(pending.pop())

    def _release(self, off: int):
        size = self.used.pop(off)
        self.in_use -= size
        i = bisect.bisect(self.free, [off, 0])
        self.free.insert(i, [off, size])
        if i + 1 < len(self.free) and off + size == self.free[i + 1][0]:
            self.free[i][1] += self.free.pop(i + 1)[1]
        if i > 0 and sum(self.free[i - 1]) == off:
            self.free[i - 1][1] += self.free.pop(i)[1]

    def stats(self) -> dict:
        with self.lock:
            self._drain()
            return {"in_use": self.in_use, "blocks": len(self.used), "peak": self.peak, "memory": self.size,
                    "free_blocks": len(self.free)}


class WasmBuffer:
    """A tensor's bytes in the device's linear memory; freed when garbage collected.
    ``held``: the caller holds ``alloc.lock``."""
    __slots__ = ("offset", "nbytes", "_alloc", "__weakref__")

    def __init__(self, alloc: Allocator, nbytes: int, what: str = "buffer", held: bool = False):
        self.offset = alloc.alloc_locked(nbytes, what) if held else alloc.alloc(nbytes, what)
        self.nbytes, self._alloc = nbytes, alloc

    def __del__(self):
        # a buffer refers to nothing that refers back (never in a cycle), so __del__ runs as
        # the last reference goes; ~8x cheaper than weakref.finalize, paid on every eager op
        alloc = getattr(self, "_alloc", None)       # unset when alloc() raised MemoryError
        if alloc is not None:
            alloc._pending.append(self.offset)      # = alloc.release(offset), a call cheaper

    def __repr__(self):
        return f"WasmBuffer(offset={self.offset}, nbytes={self.nbytes})"


class _Pinned:
    """Exposes a WasmBuffer's bytes to numpy (``__array_interface__``, read-only); numpy keeps this
    object as the array's base, so the buffer is not freed while a view exists."""
    __slots__ = ("buffer", "__array_interface__")

    def __init__(self, buffer: WasmBuffer, address: int, shape: tuple, typestr: str):
        self.buffer = buffer
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": typestr, "version": 3}


def _storage(aval) -> tuple[str, int]:
    """(storage type ``'f32'``/``'i32'``, bytes) of a tensor on the wasm device (bool as i32, f16 as f32)."""
    return aval.dtype.wasm, 4 * prod(aval.shape)


class WasmDevice(Device):
    """The ``"wasm"`` device (see the module docstring)."""
    name = "wasm"

    def __init__(self, initial_pages: int = 256, fma: bool | None = None, engine=None):
        """``fma``: use relaxed-SIMD fused multiply-adds (None: where the engine has them; results
        then differ from ``fma=False`` in the last bits). ``engine``: an engine from
        :mod:`.engines` (default: :func:`~.engines.default_engine`, which gets ``initial_pages``).

        Raises:
            ImportError: natively, ``wasmtime`` is not installed (names the ``wasm`` extra).
        """
        super().__init__()
        self.engine = engine if engine is not None else default_engine(initial_pages, fma)
        self.fma = self.engine.fma
        self.splat = getattr(self.engine, "load_splat", True)    # the matmul template's A broadcast (lower's splat)
        self.memory_import = getattr(self.engine, "memory_import", {})   # how modules import the memory
        # $WEBTENSOR_POISON_MEMORY=1 (tests): every new block starts as 0xFF bytes (float32 NaN, int32 -1),
        # so a kernel that leaves part of its output unwritten cannot pass on a freed block's old values
        poison = (lambda off, n: self.engine.write(off, b"\xff" * n)) \
            if os.environ.get("WEBTENSOR_POISON_MEMORY", "") not in ("", "0") else None
        self.alloc = Allocator(self.engine.size, self.engine.grow, self.lock, poison)   # guarded by the device lock
        self._ops = LRUCache("kernels")     # (op, input avals, output aval, attrs) -> _Kernel
        self._kernels = weakref.WeakValueDictionary()   # Kernel -> _Kernel, while some key caches it
        self._executables = weakref.WeakSet()           # live WasmExecutables (stats)
        self.kernel_stats = {"hits": 0, "misses": 0}
        self._scratch = None

    # ---- memory ----
    def buffer(self, nbytes: int, what: str = "buffer") -> WasmBuffer:
        return WasmBuffer(self.alloc, nbytes, what)

    def scratch(self, nbytes: int) -> int:
        """Address of a device-wide workspace of at least ``nbytes`` (eager templates; hold ``lock``
        while it is in use)."""
        if self._scratch is None or self._scratch.nbytes < nbytes:
            self._scratch = None
            self._scratch = self.buffer(nbytes, "kernel workspace")
        return self._scratch.offset

    # ---- Device interface ----
    def check_alloc(self, aval, what: str = "a tensor") -> None:
        """Raise MemoryError unless a tensor of ``aval`` fits in the linear memory (:meth:`Allocator.check`)."""
        self.alloc.check(_storage(aval)[1], what)

    def from_host(self, buffer, aval):
        t, n = _storage(aval)
        src = to_storage(as_host(buffer, aval.dtype), aval.dtype, t)
        if src.nbytes != n:
            raise ValueError(f"wasm device: host data of {src.nbytes} bytes for a {aval.dtype.name} tensor of shape "
                             f"{tuple(aval.shape)} (expected {n} bytes as {t})")
        buf = self.buffer(n, f"a {aval.dtype.name} tensor of shape {tuple(aval.shape)}")
        with self.lock:
            self.engine.write(buf.offset, src)
        return buf

    def to_host_bytes(self, data, aval):
        t, n = _storage(aval)
        with self.lock:
            raw = self.engine.read(data.offset, n)
        return from_storage(raw, aval.dtype, t)

    def to_host_view(self, data, aval):
        """A read-only numpy view of the tensor in linear memory (float32 and int32, whose storage
        is their host layout); it keeps the buffer allocated while it lives."""
        with self.lock:
            address = getattr(self.engine, "address", lambda offset: None)(data.offset)
        if address is None or aval.dtype.name not in ("float32", "int32") or not data.nbytes:
            return None
        import numpy as np
        return np.asarray(_Pinned(data, address, tuple(aval.shape), NUMPY[aval.dtype.name]))

    def _kernel(self, kernel):
        """The compiled kernel (shared with other cache keys that hold it); call under ``lock``."""
        ent = self._kernels.get(kernel)
        if ent is None:
            self.kernel_stats["misses"] += 1
            m, lw = kernel_module(kernel, fma=self.fma, memory=self.memory_import, splat=self.splat)
            ent = self._kernels[kernel] = _Kernel(lw, self._instantiate(m, "kernel", lw.n_inputs + 4))
        else:
            self.kernel_stats["hits"] += 1
        return ent

    def _instantiate(self, module: Module, export: str, nargs: int):
        return self.engine.instantiate(module.emit(), export, nargs)

    def execute(self, op, datas, attrs, in_avals, out_aval):
        if op.kernel is None:
            raise NotImplementedError(f"op {op.name!r} has no kernel; it cannot run on the wasm device")
        key = (op, tuple(in_avals), out_aval, tuple(sorted(attrs.items())) if attrs else ())
        with self.lock:
            try:
                ent = dict.get(self._ops, key)      # LRUCache.get, inlined: the eager hot path
            except TypeError:               # an unhashable attribute: key the cache by the kernel
                key, ent = None, None
            if ent is None:
                kernel = op.kernel(list(in_avals), out_aval, **attrs)
                ent = self._kernel(kernel)
                self._ops.put(key if key is not None else kernel, ent)
            else:
                ent.used = next(TICK)
                self.kernel_stats["hits"] += 1
            lw = ent.lowered
            if lw.copy:
                return datas[0]             # same bytes (buffers are immutable): alias, no copy
            _, n = _storage(out_aval)
            out = WasmBuffer(self.alloc, n, f"the {out_aval.dtype.name} result of shape {tuple(out_aval.shape)} of "
                                            f"{op.name}", held=True)
            if lw.rows:
                scratch = self.scratch(lw.scratch) if lw.scratch else 0
                ent.call(out.offset, *(d.offset for d in datas), 0, lw.rows, scratch)
            return out

    def stack_rows(self, datas, aval):
        """Tensors of shape ``aval.shape[1:]`` stacked into one of ``aval`` (row k is ``datas[k]``): byte
        copies within the linear memory, no kernel. The optional fast path of
        :mod:`webtensor.core.runtime.control` for a loop's per-iteration values (else concat kernels)."""
        _, n = _storage(aval)
        row = n // aval.shape[0] if aval.shape[0] else 0
        out = self.buffer(n, f"a stack of shape {tuple(aval.shape)}")
        with self.lock:
            eng = self.engine
            view = eng.view if hasattr(type(eng), "view") else None
            for k, d in enumerate(datas):
                at = out.offset + k * row
                if view is not None:
                    view[at:at + row] = view[d.offset:d.offset + row]
                else:
                    eng.write(at, eng.read(d.offset, row))
        return out

    def compile(self, graph):
        with self.lock:
            exe = WasmExecutable(self, graph)
            self._executables.add(exe)
        return exe

    def stats(self) -> dict:
        """Allocator statistics (bytes ``in_use``, ``blocks``, ``peak``, ``memory``, ``free_blocks``)
        plus compiled code: ``kernels`` (eager kernel modules alive), ``kernel_cache`` (cached keys,
        at most the ``kernels`` limit), ``kernel_hits``/``kernel_misses``/``kernel_evictions``,
        ``executables`` (compiled graphs alive), ``instances`` (WebAssembly instances alive; -1 where
        the engine does not track them) and ``store_recycles``."""
        with self.lock:
            eng = self.engine
            live = eng.live_instances() if hasattr(eng, "live_instances") else -1
            return {**self.alloc.stats(), **{f"kernel_{k}": v for k, v in self.kernel_stats.items()},
                    "kernel_evictions": self._ops.evictions, "kernel_cache": len(self._ops),
                    "kernels": len(self._kernels), "executables": len(self._executables),
                    "instances": live, "store_recycles": getattr(eng, "stats", {}).get("recycles", 0)}


class _Kernel:
    """A compiled eager kernel: its ``Lowered`` facts, the engine callable, a use stamp (LRUCache)."""
    __slots__ = ("lowered", "call", "used", "__weakref__")

    def __init__(self, lowered, call):
        self.lowered, self.call, self.used = lowered, call, 0


class WasmExecutable:
    """A compiled graph: one module, one ``run`` call per execution (module docstring). Built and
    run under the device's ``lock`` (its address table and arena are shared by every run); its
    module, arena and constants are freed with it."""

    def __init__(self, device: WasmDevice, graph):
        self.device = device
        prog = C.compile_graph(graph)
        self.program = prog
        results = [b for b in dict.fromkeys(prog.outputs + prog.updates) if prog.bufs[b].role == "temp"]
        for b in results:
            prog.bufs[b].role = "result"
        offsets, arena = C.plan_arena(prog)
        m = Module()
        m.import_memory("env", "memory", 1, **device.memory_import)
        self.consts = dict(prog.consts)                  # keeps constant buffers alive
        for b, data in self.consts.items():
            if not isinstance(data, WasmBuffer):
                data = self.consts[b] = device.from_host(data, _Aval(prog.bufs[b]))
        scalars = {b: bytes(device.engine.read(d.offset, 4)) for b, d in self.consts.items()
                   if prod(prog.bufs[b].shape) == 1 and d.nbytes >= 4}
        for s in prog.steps:
            s.kernel = inline_scalars(s.kernel, {i: scalars[b] for i, b in enumerate(s.inputs) if b in scalars})
        lowered, fns = {}, []
        for s in prog.steps:
            if s.kernel not in lowered:
                lowered[s.kernel] = lower(m, s.kernel, f"k{len(lowered)}", fma=device.fma, splat=device.splat)
            fns.append(lowered[s.kernel])
        scratch = max((lw.scratch for lw in lowered.values()), default=0)
        slots = prog.inputs + prog.captures + results
        self.slot = {b: i for i, b in enumerate(slots)}
        table_bytes = -(-4 * max(len(slots), 1) // ALIGN) * ALIGN
        arena_al = -(-arena // ALIGN) * ALIGN
        # threads (wasm/threads.py): a control block and threads 1..n-1's scratch after thread 0's
        self.threads = intra_op_threads() if getattr(device.engine, "shared", False) else 1
        stride = -(-scratch // ALIGN) * ALIGN
        extra = T.CONTROL_BYTES + (self.threads - 1) * stride if self.threads > 1 else 0
        self.arena = device.buffer(table_bytes + arena_al + stride + extra, "an executable's arena")
        self.table = self.arena.offset
        base, scratch_at = self.table + table_bytes, self.table + table_bytes + arena_al
        addr = {}
        for b, data in self.consts.items():
            addr[b] = ("const", data.offset)
        for b, off in offsets.items():
            addr[b] = ("const", base + off)
        for b, i in self.slot.items():
            addr[b] = ("slot", self.table + 4 * i)
        self._addr, self._scratch_at = addr, scratch_at
        f = m.function("run", export=True)
        par = None
        if self.threads > 1:
            control = scratch_at + stride
            par = T.Parallel(m, control)
        if par is not None:
            par.begin(f)
        for s, lw in zip(prog.steps, fns):
            if par is None:
                emit_call(f, lw, self._addresses(s), scratch_at)
            else:
                par.call(f, lw, self._addresses(s), scratch_at, T.work(s.kernel))
        if par is not None:
            par.end(f)
        f.finish()
        self.module = m
        self.workers = None
        if par is not None and par.tasks:
            par.finish(control + T.CONTROL_BYTES)
            # a page's main thread may not block (Pyodide): the driver then spins
            block = getattr(device.engine, "can_block", True)
            device.engine.write(control, array.array("i", T.control_words(self.threads, block, control + T.CONTROL_BYTES,
                                                                           par.scratch)))
        self._run = device._instantiate(m, "run", 0)
        if par is not None and par.tasks:
            self.workers = device.engine.workers(self._run.module, self.threads, keep=self.arena)
        self.results = [(b, _storage(_Aval(prog.bufs[b]))[1]) for b in results]
        self._slots = slots

    def run(self, inputs, captures):
        dev, prog = self.device, self.program
        data = dict(self.consts)
        data.update(zip(prog.inputs, inputs))
        data.update(zip(prog.captures, captures))
        with dev.lock:
            for b, n in self.results:
                data[b] = WasmBuffer(dev.alloc, n, f"a result of shape {prog.bufs[b].shape}", held=True)
            dev.engine.write(self.table, array.array("i", [data[b].offset for b in self._slots]))
            self._run()
        return [data[b] for b in prog.outputs], [data[b] for b in prog.updates]

    def _addresses(self, step):
        return [a if kind == "const" else _load_slot(a) for kind, a in
                (self._addr[b] for b in [step.output] + step.inputs + step.extra)]

    def profile(self, inputs, captures, repeat: int = 5, threads: int = 1) -> list[tuple]:
        """Time each kernel of the program on these inputs (a tool for ``bench/profile_wasm.py`` and
        ``bench/bench_threads.py --amdahl``): ``[(best seconds of repeat calls, Step)]`` in program
        order. Builds a second module with one function ``step(i, start, end, packed)`` over every
        step's rows (same arena and addresses), so a step runs exactly as in ``run``.

        ``threads`` > 1: ``[(seconds, seconds on threads, tiles, Step)]``, a load-insensitive
        estimate of what :mod:`.threads` makes of each kernel: its tiles (``threads.tile_rows``, 1:
        not split) dealt round robin to ``threads`` threads, each thread's share run alone on this
        thread (packing B once, as ``Lowered.reuses_b`` lets it) and the longest share taken; times
        are this thread's CPU time (``time.thread_time``: time preempted by other jobs is not
        counted); no synchronisation and no contention for memory or cores are counted."""
        import time
        dev, prog = self.device, self.program
        m = Module()
        m.import_memory("env", "memory", 1, **dev.memory_import)
        lowered = {}
        f = m.function("step", params=["i32"] * 4, export=True)
        for i, s in enumerate(prog.steps):
            if s.kernel not in lowered:
                lowered[s.kernel] = lower(m, s.kernel, f"k{len(lowered)}", fma=dev.fma, splat=dev.splat)
            lw = lowered[s.kernel]
            f.local_get(0).i32_const(i).i32_eq()
            with f.if_():
                if lw.rows:
                    for a in self._addresses(s):
                        T._push(f, a)
                    f.local_get(1).local_get(2).i32_const(self._scratch_at).local_get(3).i32_or().call(lw.name)
        f.finish()
        data = dict(self.consts)
        data.update(zip(prog.inputs, inputs))
        data.update(zip(prog.captures, captures))

        clock = time.perf_counter if threads <= 1 else time.thread_time    # CPU time: no preemption counted

        def best(run):
            times = []
            for _ in range(repeat):
                t = clock()
                run()
                times.append(clock() - t)
            return min(times)
        out = []
        with dev.lock:
            call = dev._instantiate(m, "step", 4)
            for b, n in self.results:
                data[b] = WasmBuffer(dev.alloc, n, "a profiled result")
            dev.engine.write(self.table, array.array("i", [data[b].offset for b in self._slots]))
            for i, s in enumerate(prog.steps):
                lw = lowered[s.kernel]
                one = best(lambda: call(i, 0, lw.rows, 0))
                if threads <= 1:
                    out.append((one, s))
                    continue
                chunk = T.tile_rows(lw.rows, T.work(s.kernel), T.PACKED_ROWS if lw.scratch else T.ROW_ALIGN)
                if chunk is None:
                    out.append((one, one, 1, s))
                    continue
                tiles = -(-lw.rows // chunk)

                def share(tid):
                    for j, t in enumerate(range(tid, tiles, threads)):
                        call(i, t * chunk, min(t * chunk + chunk, lw.rows), int(lw.reuses_b and j > 0))
                out.append((one, max(best(lambda: share(tid)) for tid in range(threads)), tiles, s))
        return out


def emit_call(f, lw, addresses, scratch: int, end=None) -> None:
    """Emit into function ``f`` a call of the lowered kernel ``lw`` over all its rows (the calling
    convention of :mod:`.lower`: ``(out, in..., start=0, end=rows, scratch)``); nothing for an empty
    kernel. ``addresses``: the output's then each input's byte address, each an int or a callable
    ``push(f)`` that leaves it on the stack; ``end``: None (all rows) or a ``push(f)`` of a run-time
    end (export's rows drivers). Used by :class:`WasmExecutable` and by export's drivers."""
    if not lw.rows:
        return
    for a in addresses:
        if callable(a):
            a(f)
        else:
            f.i32_const(a)
    f.i32_const(0)
    if end is None:
        f.i32_const(lw.rows)
    else:
        end(f)
    f.i32_const(scratch)
    f.call(lw.name)


def _load_slot(at: int):
    """An address pusher: the i32 stored at byte ``at`` (an executable's address table)."""
    return lambda f: f.i32_const(at).i32_load()


class _Aval:
    """Shape/dtype of a program buffer in the form ``_storage``/``from_host`` read."""

    def __init__(self, buf):
        self.shape, self.dtype = buf.shape, buf.dtype
