"""Engines: where the ``"wasm"`` device's WebAssembly runs.

An engine owns ONE linear memory, instantiates modules that import it as ``env.memory`` and
calls their exports; :class:`~webtensor.wasm.runtime.WasmDevice` (allocator, kernel cache,
one-call executables) is the same on every engine. The interface:

- ``fma``: relaxed SIMD (``f32x4.relaxed_madd``) is available and used;
- ``size``: bytes of linear memory; ``grow(pages) -> bool`` (False when the engine refuses);
- ``write(offset, buffer)``: copy a C-contiguous buffer into memory; ``read(offset, nbytes)``:
  a ``bytearray`` copy out of it; ``address(offset)``: a host address for zero-copy numpy views
  (None where the memory may move or is not addressable, as in the browser);
- ``instantiate(module_bytes, export, nargs)``: a callable taking ``nargs`` i32 arguments
  (``WasmtimeEngine(..., interruptible=True)``: ``deadline(seconds)`` interrupts a call);
- ``validate(module_bytes)``: raise ValueError for an invalid module;
- ``memory_import``: keyword arguments of ``Module.import_memory`` the modules it instantiates need
  (``{}``: an ordinary memory; ``{"max_pages": ..., "shared": True}``: a shared one).

Engines:

- :class:`WasmtimeEngine` (native CPython, ``wasmtime``): memory is a zero-copy ``memoryview``
  of the linear memory (``Memory.get_buffer_ptr``), re-made after growth; no numpy needed.
  wasmtime keeps every instance (and its module's machine code) until its ``Store`` is dropped, so
  the ``"wasm"`` device's engine is ``shared=True``: its memory is a ``SharedMemory`` (the threads
  proposal's shared memory, which lives outside any store), modules import it as shared
  (``memory_import``), and once dropped modules outnumber live ones the engine moves the live
  instances to a fresh store and drops the old one (``recycle``), freeing the rest.
- :class:`BrowserEngine` (Pyodide): the page's ``WebAssembly`` through Pyodide's ``js`` module
  (``WebAssembly.Module``/``Instance``/``Memory``); bytes cross with one bulk copy each way
  (``Uint8Array.assign``/``assign_to``; ``memory.buffer`` is re-read every time, since growth
  detaches the old ``ArrayBuffer``), as measured in ``shared/PLATFORM.md``. With ``shared=True``
  (a loaded artifact's threads, or the ``"wasm"`` device's when more than one intra-op thread is
  set before its first use, on a cross-origin isolated page: :func:`default_engine`) its memory is
  a shared ``WebAssembly.Memory`` and :meth:`BrowserEngine.workers` runs a threaded module's
  ``worker(tid)`` in Web Workers (:class:`BrowserWorkers`).

Engines are not locked: their owner (the device, a loaded model) serialises calls with its lock.
"""
from __future__ import annotations

import ctypes
import threading
import warnings
import weakref

from ..core.runtime.hostdata import byte_view
from ..core.runtime.parallelism import intra_op_threads
from ..core.runtime.util import require
from .binary import V128, Module

PAGE = 65536
MAX_PAGES = 65536           # wasm32: 4 GiB


def relaxed_simd_probe() -> bytes:
    """A module using ``f32x4.relaxed_madd``: valid only where the engine has relaxed SIMD."""
    m = Module()
    f = m.function("probe", results=[V128], export=True)
    for v in (1.0, 2.0, 3.0):
        f.f32_const(v)
        f.f32x4_splat()
    f.f32x4_relaxed_madd()
    f.finish()
    return m.emit()


class _Caller:
    """Call a wasmtime export with i32 arguments, the fast way when possible: a raw
    ``wasmtime_func_call_unchecked`` with a preallocated argument array (~3 us) instead of
    ``Func.__call__`` (~50 us). ``bind`` points it at the same export in another store (a shared
    engine's ``recycle``); ``module``/``export`` are kept for that."""

    def __init__(self, store, func, nargs: int, module=None, export: str | None = None):
        self.nargs, self.module, self.export = nargs, module, export
        self.fast = None
        try:
            from wasmtime import _ffi as ffi
            self._ffi = ffi
            self._args = (ffi.wasmtime_val_raw * max(nargs, 1))()
            self._trap = ctypes.POINTER(ffi.wasm_trap_t)()
            self.fast = ffi.wasmtime_func_call_unchecked
        except Exception:   # an older or newer wasmtime-py without the raw call: use the public API
            self.fast = None
        self.bind(store, func)

    def bind(self, store, func) -> None:
        self.store, self.func = store, func
        if self.fast is not None:
            self._ctx = store._context()
            self._fn = ctypes.byref(func._func)

    def __call__(self, *vals):
        if self.fast is None:
            return self.func(self.store, *vals)
        args = self._args
        for i, v in enumerate(vals):
            args[i].i32 = v
        err = self.fast(self._ctx, self._fn, args, self.nargs, ctypes.byref(self._trap))
        if err or self._trap:       # raise what Func.__call__ would, without running it again
            trap, self._trap = self._trap, ctypes.POINTER(self._ffi.wasm_trap_t)()
            import wasmtime
            raise wasmtime.WasmtimeError._from_ptr(err) if err else wasmtime.Trap._from_ptr(trap)


def _shared_memory_class(wasmtime):
    """``wasmtime.SharedMemory`` with an ``_as_extern`` that passes its pointer once (wasmtime-py 50
    wraps it twice, and ``Instance`` then fails with a TypeError)."""
    from wasmtime import _ffi as ffi

    class SharedMemory(wasmtime.SharedMemory):
        def _as_extern(self):
            return ffi.wasmtime_extern_t(ffi.WASMTIME_EXTERN_SHAREDMEMORY,
                                         ffi.wasmtime_extern_union(sharedmemory=self.ptr()))
    return SharedMemory


class WasmtimeEngine:
    """``wasmtime``: one store, one memory (see the module docstring).

    ``shared=True`` (the ``"wasm"`` device's engine): the memory is a ``SharedMemory`` whose maximum is
    ``maximum_pages``, modules must import it as ``memory_import`` says, and dropped instances are
    freed by :meth:`recycle` (automatically, from :meth:`instantiate`). Falls back to an ordinary
    memory (``shared`` False) where wasmtime-py has no shared memories.

    Raises:
        ImportError: ``wasmtime`` is not installed (names the ``wasm`` extra).
    """
    name = "wasmtime"
    load_splat = False      # Cranelift runs the matmul template faster with shuffle broadcasts (matmul.lower)
    RECYCLE_MIN = 64        # instances in a store before dropped ones are worth a recycle

    def __init__(self, initial_pages: int, fma: bool | None = None, maximum_pages: int = MAX_PAGES,
                 interruptible: bool = False, shared: bool = False):
        self.wasmtime = wasmtime = require("wasmtime", "the 'wasm' device")
        self.fma = True if fma is None else bool(fma)
        self.shared = bool(shared) and hasattr(wasmtime, "SharedMemory") and hasattr(wasmtime.Config, "wasm_threads")
        cfg = wasmtime.Config()
        cfg.wasm_simd = True
        cfg.wasm_relaxed_simd = self.fma
        if self.shared:
            cfg.wasm_threads = True
            if hasattr(wasmtime.Config, "shared_memory"):
                cfg.shared_memory = True
        # epoch interruption: a call can be stopped from another thread (``interrupt``), at the cost of
        # a counter check on every loop back-edge, so only engines that need it pay
        cfg.epoch_interruption = self.interruptible = interruptible
        # reserve all 4 GiB up front and never move the memory on growth, so numpy views of
        # it stay valid (``address``); wasmtime-py without these options: no views, copies
        self.fixed_base = all(hasattr(wasmtime.Config, o) for o in ("memory_may_move", "memory_reservation"))
        if self.fixed_base:
            cfg.memory_reservation = MAX_PAGES * PAGE
            cfg.memory_may_move = False
        self.engine = wasmtime.Engine(cfg)
        self.store = self._new_store()
        limits = wasmtime.Limits(initial_pages, maximum_pages)
        if self.shared:
            self.memory = _shared_memory_class(wasmtime)(self.engine, wasmtime.MemoryType(limits, shared=True))
            self.fixed_base = True      # a shared memory never moves
            self.memory_import = {"max_pages": maximum_pages, "shared": True}
        else:
            self.memory = wasmtime.Memory(self.store, wasmtime.MemoryType(limits))
            self.memory_import = {}
        self._view = None
        self._live = weakref.WeakSet()  # callers (shared engine) whose instances are in self.store
        self._in_store = 0              # instances made in self.store, live or dropped
        self.stats = {"instances": 0, "recycles": 0}

    def _new_store(self):
        store = self.wasmtime.Store(self.engine)
        if self.interruptible:
            store.set_epoch_deadline(1 << 62)
        return store

    def deadline(self, seconds: float):
        """Arm an interruption of the next calls after ``seconds`` (an interruptible engine): returns the
        started ``threading.Timer``; ``cancel()`` it when the call returns. An interrupted call raises
        ``wasmtime.Trap`` with ``trap_code == TrapCode.INTERRUPT``."""
        self.store.set_epoch_deadline(1)
        timer = threading.Timer(seconds, self.engine.increment_epoch)
        timer.daemon = True
        timer.start()
        return timer

    @property
    def size(self) -> int:
        return self.memory.data_len() if self.shared else self.memory.data_len(self.store)

    @property
    def view(self) -> memoryview:
        """Unsigned-byte view of the whole linear memory, no copy (re-made after every growth,
        also growth by a module's own ``memory.grow``)."""
        size = self.size
        if self._view is None or self._view.nbytes != size:
            if self.shared:
                raw = (ctypes.c_ubyte * size).from_address(ctypes.addressof(self.memory.data_ptr().contents))
                self._view = memoryview(raw).cast("B")
            else:
                self._view = memoryview(self.memory.get_buffer_ptr(self.store)).cast("B")
        return self._view

    def grow(self, pages: int) -> bool:
        try:
            if self.shared:
                self.memory.grow(pages)
            else:
                self.memory.grow(self.store, pages)
        except Exception:
            return False
        self._view = None        # the old view may point at freed memory now
        return True

    def write(self, offset: int, buffer) -> None:
        mv = byte_view(buffer)
        self.view[offset:offset + mv.nbytes] = mv

    def read(self, offset: int, nbytes: int) -> bytearray:
        return bytearray(self.view[offset:offset + nbytes])

    def address(self, offset: int) -> int | None:
        """The host address of linear-memory byte ``offset``, stable for the engine's life (the
        memory never moves), or None where that is not guaranteed."""
        if not self.fixed_base:
            return None
        ptr = self.memory.data_ptr() if self.shared else self.memory.data_ptr(self.store)
        return ctypes.addressof(ptr.contents) + offset

    def instantiate(self, module_bytes: bytes, export: str, nargs: int):
        """A callable running export ``export`` of the module (``nargs`` i32 arguments). On a shared
        engine the instance lives while the callable does (freed by a later :meth:`recycle`)."""
        wasmtime = self.wasmtime
        module = wasmtime.Module(self.engine, module_bytes)
        if self.shared and self._in_store >= max(self.RECYCLE_MIN, 2 * len(self._live)):
            self.recycle()
        inst = wasmtime.Instance(self.store, module, [self.memory])
        self._in_store += 1
        self.stats["instances"] += 1
        if not self.shared:
            return _Caller(self.store, inst.exports(self.store)[export], nargs)
        caller = _Caller(self.store, inst.exports(self.store)[export], nargs, module, export)
        self._live.add(caller)
        return caller

    def recycle(self) -> None:
        """(Shared engine.) Re-instantiate the live callers' modules in a fresh store and drop the old
        one, and with it the instances and machine code of every module no longer referenced. Each
        re-instantiation is cheap (the module is compiled already); :meth:`instantiate` calls this
        once dropped instances outnumber live ones (and there are at least ``RECYCLE_MIN``)."""
        if not self.shared:
            raise RuntimeError("recycle() needs a shared engine (WasmtimeEngine(..., shared=True))")
        wasmtime = self.wasmtime
        store, callers = self._new_store(), list(self._live)
        for c in callers:
            c.bind(store, wasmtime.Instance(store, c.module, [self.memory]).exports(store)[c.export])
        self.store, self._in_store = store, len(callers)
        self.stats["recycles"] += 1

    def workers(self, module, n: int, keep=None) -> "Workers":
        """(Shared engine.) Start threads 1..n-1, each running export ``worker(tid)`` of ``module`` (a
        compiled ``wasmtime.Module``, see :mod:`.threads`) in an instance of its own store on this
        engine's shared memory; the returned :class:`Workers` ends them. ``keep``: an object held
        until they have ended (the buffer holding the module's control block, so that it cannot be
        reused while a worker may still read it)."""
        if not self.shared:
            raise RuntimeError("workers() needs a shared engine (WasmtimeEngine(..., shared=True))")
        return Workers(self, module, n, keep)

    def live_instances(self) -> int:
        """(Shared engine.) Instances whose caller is alive; -1 where not tracked."""
        return len(self._live) if self.shared else -1

    def validate(self, module_bytes: bytes) -> None:
        try:
            self.wasmtime.Module.validate(self.engine, module_bytes)
        except Exception as e:
            raise ValueError(f"invalid WebAssembly module: {e}") from None


class Workers:
    """Python threads running a threaded module's ``worker(tid)`` (:mod:`.threads`), one store and
    instance each on the engine's shared memory. wasmtime-py calls through ``ctypes.CDLL``, which
    releases the GIL, so they run in parallel with the caller (``bench/bench_threads.py`` measures
    it). :meth:`close` (also run when the object is collected, or at exit) calls the module's
    ``stop`` from a store of its own and joins the threads."""

    def __init__(self, engine: WasmtimeEngine, module, n: int, keep=None):
        wasmtime = engine.wasmtime
        self.threads = []
        for tid in range(1, n):
            store = wasmtime.Store(engine.engine)
            func = wasmtime.Instance(store, module, [engine.memory]).exports(store)["worker"]
            t = threading.Thread(target=func, args=(store, tid), name=f"webtensor-wasm-{tid}", daemon=True)
            self.threads.append(t)
        store = wasmtime.Store(engine.engine)
        stop = wasmtime.Instance(store, module, [engine.memory]).exports(store)["stop"]
        for t in self.threads:
            t.start()
        self._close = weakref.finalize(self, _stop_workers, stop, store, self.threads, keep)

    def close(self) -> None:
        """End the workers (idempotent)."""
        self._close()


def _stop_workers(stop, store, threads, keep):
    stop(store)
    for t in threads:
        t.join()
    del keep            # now the control block's memory may be reused


class BrowserEngine:
    """The JavaScript host's ``WebAssembly`` from Pyodide (see the module docstring).

    ``fma=None`` uses relaxed SIMD where the engine validates it (Chromium; Node 20's V8 does not).

    Raises:
        RuntimeError: ``fma=True`` on an engine without relaxed SIMD.
    """
    name = "WebAssembly (JS)"

    def __init__(self, initial_pages: int, fma: bool | None = None, maximum_pages: int = MAX_PAGES,
                 shared: bool = False):
        import js
        from pyodide.ffi import to_js
        self.js, self._to_js = js, to_js
        self.shared = bool(shared)
        # how modules import the memory; JS frees dropped instances
        self.memory_import = {"max_pages": maximum_pages, "shared": True} if self.shared else {}
        self.memory = js.WebAssembly.Memory.new(self._object({"initial": initial_pages, "maximum": maximum_pages,
                                                              "shared": shared}))
        relaxed = bool(js.WebAssembly.validate(to_js(relaxed_simd_probe())))
        if fma and not relaxed:
            raise RuntimeError("wasm device: fma=True needs relaxed SIMD, which this JavaScript engine lacks; "
                               "use fma=False or fma=None")
        self.fma = relaxed if fma is None else bool(fma)

    def _object(self, d: dict):
        return self._to_js(d, dict_converter=self.js.Object.fromEntries)

    @property
    def size(self) -> int:
        return int(self.memory.buffer.byteLength)

    def grow(self, pages: int) -> bool:
        try:
            self.memory.grow(pages)
        except Exception:       # RangeError: past the maximum or out of memory
            return False
        return True

    def write(self, offset: int, buffer) -> None:
        mv = byte_view(buffer)
        if mv.nbytes:
            self.js.Uint8Array.new(self.memory.buffer, offset, mv.nbytes).assign(mv)

    def read(self, offset: int, nbytes: int) -> bytearray:
        out = bytearray(nbytes)
        if nbytes:
            self.js.Uint8Array.new(self.memory.buffer, offset, nbytes).assign_to(out)
        return out

    def address(self, offset: int) -> None:
        return None                     # JavaScript memory: no host pointers (and it moves on growth)

    def instantiate(self, module_bytes: bytes, export: str, nargs: int):
        module = self.compile(module_bytes)
        fn = getattr(self.exports(module), export)
        return _JsExport(fn, module) if self.shared else fn

    def compile(self, module_bytes: bytes):
        """A ``WebAssembly.Module`` of ``module_bytes`` (a JsProxy)."""
        return self.js.WebAssembly.Module.new(self._to_js(module_bytes))

    def exports(self, module):
        """The exports of a new instance of ``module`` (:meth:`compile`) on this engine's memory."""
        return self.js.WebAssembly.Instance.new(module, self._object({"env": {"memory": self.memory}})).exports

    @staticmethod
    def threads_unavailable() -> str | None:
        """Why a shared memory and Web Workers cannot run threads here (a sentence), or None."""
        import js
        if not hasattr(js, "Worker"):
            return "this JavaScript host has no Web Workers (Pyodide in Node runs WebAssembly on one thread)"
        if getattr(js, "crossOriginIsolated", False) is not True:
            return ("the page is not cross-origin isolated (crossOriginIsolated is false), so it has no shared "
                    "memory; serve it with the headers Cross-Origin-Opener-Policy: same-origin and "
                    "Cross-Origin-Embedder-Policy: require-corp")
        return None

    @property
    def can_block(self) -> bool:
        """Whether this thread may block in ``memory.atomic.wait32``: not a page's main thread."""
        return not hasattr(self.js, "document")

    def workers(self, module, n: int, stop=None, keep=None) -> "BrowserWorkers":
        """(``shared=True``.) Start Web Workers 1..n-1, each running export ``worker(tid)`` of
        ``module`` (:meth:`compile`; see :mod:`.threads`) on this engine's shared memory; ``stop``:
        the module's ``stop`` export (of an instance on this memory; default: a new instance's).
        ``keep``: an object held until the workers are ended (the memory of their control block).
        The returned :class:`BrowserWorkers` ends them."""
        return BrowserWorkers(self, module, n, self.exports(module).stop if stop is None else stop, keep)

    def validate(self, module_bytes: bytes) -> None:
        if not self.js.WebAssembly.validate(self._to_js(module_bytes)):
            try:
                self.js.WebAssembly.Module.new(self._to_js(module_bytes))
            except Exception as e:    # CompileError names the problem
                raise ValueError(f"invalid WebAssembly module: {e}") from None
            raise ValueError("invalid WebAssembly module")


# A thread of a threaded module in Pyodide: the protocol of the npm runtime's js/thread.js (which
# the wheel does not ship): {module, memory, tid} in; {type: 'ready' | 'error' | 'done'} out.
# It instantiates the module synchronously, which a Worker may do for a module of any size.
_THREAD_JS = """self.onmessage = ({ data: { module, memory, tid } }) => {
  let exports;
  try {
    exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  } catch (e) {
    console.error('webtensor: a wasm thread could not start', e);
    self.postMessage({ type: 'error', message: String(e && e.message || e).slice(0, 200) });
    self.close();
    return;
  }
  self.postMessage({ type: 'ready' });
  exports.worker(tid); // returns after stop()
  self.postMessage({ type: 'done' });
  self.close();
};
"""
_thread_url = []        # the Blob URL of _THREAD_JS, made once per page


class _JsExport:
    """An export of an instance on a shared :class:`BrowserEngine`, with its ``module`` (what
    :meth:`BrowserEngine.workers` instantiates again in each Worker), as wasmtime's ``_Caller``."""
    __slots__ = ("fn", "module")

    def __init__(self, fn, module):
        self.fn, self.module = fn, module

    def __call__(self, *vals):
        return self.fn(*vals)


class BrowserWorkers:
    """Web Workers running a threaded module's ``worker(tid)`` (:mod:`.threads`) on a
    :class:`BrowserEngine`'s shared memory, one instance each. They start while Python runs on: the
    driver never waits for a worker (it takes every tile itself until workers join), so loading
    need not wait for them either. :meth:`close` (also run when the object is collected) calls the
    module's ``stop`` and terminates them (a Worker still starting ends too)."""

    def __init__(self, engine: BrowserEngine, module, n: int, stop, keep=None):
        js = engine.js
        if not _thread_url:
            blob = js.Blob.new(engine._to_js([_THREAD_JS]), engine._object({"type": "text/javascript"}))
            _thread_url.append(js.URL.createObjectURL(blob))
        self.workers = []
        try:
            for tid in range(1, n):
                w = js.Worker.new(_thread_url[0])
                self.workers.append(w)
                w.postMessage(engine._object({"module": module, "memory": engine.memory, "tid": tid}))
        except Exception:       # e.g. a Content-Security-Policy without worker-src blob:
            _end_browser_workers(stop, self.workers)
            raise
        self._close = weakref.finalize(self, _end_browser_workers, stop, self.workers, keep)

    def close(self) -> None:
        """End the workers (idempotent)."""
        self._close()


def _end_browser_workers(stop, workers, keep=None):
    stop()
    for w in workers:
        w.terminate()
    del keep            # now the control block's memory may be reused


def default_engine(initial_pages: int, fma: bool | None = None):
    """:class:`BrowserEngine` in Pyodide, else a shared :class:`WasmtimeEngine` (dropped modules freed).

    In Pyodide the memory is shared (so compiled functions run on that many threads) when more than
    one intra-op thread is set (``core/runtime/parallelism.py``) as the device is made and the page
    can run threads; where it cannot, a ``RuntimeWarning`` says why and the device has one thread."""
    import sys
    if sys.platform == "emscripten":
        n = intra_op_threads()
        short = BrowserEngine.threads_unavailable() if n > 1 else None
        if short:
            warnings.warn(f"wasm device: {n} threads are set, but compiled functions run on 1: {short}", RuntimeWarning,
                          stacklevel=2)
        return BrowserEngine(initial_pages, fma, shared=n > 1 and short is None)
    return WasmtimeEngine(initial_pages, fma, shared=True)
