"""The ``"webgpu"`` device: WGSL from :mod:`webtensor.webgpu.wgsl`, run natively through ``wgpu``
(wgpu-py: Vulkan, Metal, D3D12; Mesa's lavapipe on machines without a GPU), and in Pyodide through
the browser's ``navigator.gpu`` (:mod:`.browser` wraps it in the same snake_case API, so this
runtime is the same on both).

- Device selection: ``wgpu.gpu.request_adapter_sync(power_preference=...)``; the device is created
  with the adapter's limits (``required_limits``) and ``shader-f16`` where offered, and the
  compiler respects those limits (:class:`~webtensor.webgpu.wgsl.Limits`).
- Memory: every tensor's data is a :class:`GPUData` holding a pooled ``GPUBuffer``; when the data
  is garbage collected (``weakref.finalize``) the buffer returns to the :class:`BufferPool`, so
  repeated work allocates nothing new.
- Eager ops: ``execute`` lowers the op's kernel (cached by kernel) and submits one dispatch.
- Graphs: ``compile`` fuses with ``core.compile.compile_graph``, lowers each kernel, groups
  independent one-pass maps into one dispatch each (``group.py``, horizontal fusion: an
  optimizer's per-parameter updates; not on CPU adapters), plans the temporaries once (buffers reused across steps whose lifetimes do not overlap, allocated once per
  executable), and each ``run`` encodes every kernel into ONE command encoder (one compute pass,
  split only where a kernel copies inputs into its ``packed`` binding) and submits it.
- Readback is explicit: ``to_host_bytes`` copies into a mappable staging buffer and maps it. In
  the browser mapping is asynchronous: ``to_host_bytes_async`` awaits it (``Tensor.numpy_async``).
- Device loss: errors from a lost device become a RuntimeError that says so;
  ``webtensor.webgpu.reset_device()`` drops the instance so ``get_device('webgpu')`` creates a
  fresh one.
- Caches: eager kernels by kernel, least recently used first past
  ``webtensor.config.set_cache_limits(kernels=...)``; executables hold their kernels themselves,
  and identical kernels/WGSL are shared (without a copy) while anything holds them.
- Threads: the queue, encoders, pools, caches, bind groups and executables' buffers are shared, so
  ``from_host``, readback, ``execute``, ``compile`` and ``Executable.run`` hold the device's ``lock``;
  the buffer pools have their own lock (``GPUData`` returns its buffer from any thread, also from
  inside the garbage collector).
- float16 is a dtype-table concern: stored and computed as f16 where the device has
  ``shader-f16``, as f32 otherwise (``wgsl.storage_type``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
import weakref
from collections import defaultdict

from ..core import compile as C
from ..core.dtypes import int32
from ..core.op import Aval
from ..core.runtime.cache import LRUCache
from ..core.runtime.device import Device
from ..core.runtime.hostdata import as_host, from_storage, to_storage
from ..core.runtime.util import require
from . import group, wgsl

NO_ADAPTER = ("webtensor: no WebGPU adapter found (wgpu.gpu.request_adapter_sync returned none). "
              "Install a Vulkan driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers libvulkan1` "
              "gives a CPU adapter (lavapipe) and GPU drivers; on macOS Metal is built in. "
              "Or use device 'wasm' (CPU) or 'reference' (numpy).")

# Limits the runtime asks the device for (the adapter's values), as wgpu-py names them.
REQUESTED_LIMITS = ("max-storage-buffers-per-shader-stage", "max-storage-buffer-binding-size", "max-buffer-size",
                    "max-compute-workgroups-per-dimension", "max-compute-invocations-per-workgroup",
                    "max-compute-workgroup-size-x", "max-compute-workgroup-size-y",
                    "max-compute-workgroup-size-z", "max-compute-workgroup-storage-size")


class GPUData:
    """A tensor's bytes on the device: a pooled buffer (returned to the pool when this is collected)."""
    __slots__ = ("buffer", "nbytes", "device", "__weakref__")

    def __init__(self, device: "WebGPUDevice", buffer, nbytes: int):
        self.buffer, self.nbytes, self.device = buffer, nbytes, device
        weakref.finalize(self, device.pool.release, buffer)


class BufferPool:
    """Storage buffers by size class (sizes rounded up to 1, 1.125, ..., 1.875 times a power of two,
    at least 256 bytes): ``acquire`` reuses a free buffer of the class before creating one; at most
    ``max_idle_bytes`` are kept idle (past that, released buffers are dropped and wgpu frees them).

    ``stats``: ``created`` (buffers ever created), ``bytes`` (their total size), ``reused``
    (acquisitions served from the free lists), ``in_use``, ``idle_bytes``.

    Thread-safe: ``release`` only queues the buffer (one atomic ``list.append``: it never blocks, and is
    safe from any thread and from a ``GPUData`` finalizer that the garbage collector runs in the middle
    of ``acquire``); ``acquire``, ``stats`` and ``clear`` take the pool's lock and take the queued
    buffers back first."""

    def __init__(self, gpu_device, usage, max_size: int, max_idle_bytes: int = 1 << 30):
        self.device, self.usage, self.max_size, self.max_idle_bytes = gpu_device, usage, max_size, max_idle_bytes
        self.free: dict[int, list] = defaultdict(list)
        self._stats = {"created": 0, "bytes": 0, "reused": 0, "in_use": 0, "idle_bytes": 0}
        self._lock = threading.Lock()
        self._pending: list = []            # buffers released since the last acquire/stats/clear

    @property
    def stats(self) -> dict:
        with self._lock:
            self._drain()
            return self._stats

    def size_class(self, nbytes: int) -> int:
        n = max(int(nbytes), 256)
        step = (1 << (n - 1).bit_length()) // 16
        return min(-(-n // step) * step, max(self.max_size, -(-n // 4) * 4))

    def acquire(self, nbytes: int):
        size = self.size_class(nbytes)
        with self._lock:
            self._drain()
            stats = self._stats
            stats["in_use"] += 1
            free = self.free.get(size)
            if free:
                stats["reused"] += 1
                stats["idle_bytes"] -= size
                return free.pop()
            stats["created"] += 1
            stats["bytes"] += size
        return self.device.create_buffer(size=size, usage=self.usage)

    def release(self, buffer) -> None:
        self._pending.append(buffer)

    def _drain(self):
        pending, stats = self._pending, self._stats
        while pending:
            buffer = pending.pop()
            stats["in_use"] -= 1
            if stats["idle_bytes"] + buffer.size <= self.max_idle_bytes:
                stats["idle_bytes"] += buffer.size
                self.free[buffer.size].append(buffer)

    def clear(self) -> None:
        """Drop the idle buffers (wgpu frees them once no submitted work uses them)."""
        with self._lock:
            self._drain()
            self.free.clear()
            self._stats["idle_bytes"] = 0


class _Compiled:
    """A lowered kernel with a pipeline per pass, and a use stamp (LRUCache)."""
    __slots__ = ("lowered", "pipelines", "used", "__weakref__")

    def __init__(self, lowered, pipelines):
        self.lowered, self.pipelines, self.used = lowered, pipelines, 0


class _Pipeline:
    """A compute pipeline and its bind group layout; unpacks as ``(pipeline, layout)``."""
    __slots__ = ("pipeline", "layout", "__weakref__")

    def __init__(self, pipeline, layout):
        self.pipeline, self.layout = pipeline, layout

    def __iter__(self):
        return iter((self.pipeline, self.layout))


class WebGPUDevice(Device):
    """The ``"webgpu"`` device (see the module docstring).

    Args:
        power_preference: ``'high-performance'`` or ``'low-power'`` adapter.
        limits: overrides of the compiler's view of the device limits (``wgsl.Limits`` field names),
            e.g. ``{'max_storage_buffers_per_shader_stage': 4}`` to exercise input packing, or
            ``{'adapter_class': 'discrete-gpu'}`` to compile with another adapter class's plans
            (by default the adapter's own: ``wgsl.adapter_class`` of ``adapter.info``).
        wgpu, adapter, gpu: an adapter and device created elsewhere, and the module with their API
            (wgpu-py, or :mod:`.browser` in Pyodide, whose ``request_device`` passes them); by
            default they are created here with wgpu-py.
    Raises:
        ImportError: ``wgpu`` is not installed (names the ``webgpu`` extra).
        RuntimeError: no adapter exists (says what to install or which device to use instead).
    """
    name = "webgpu"

    def __init__(self, power_preference: str = "high-performance", limits: dict | None = None, *,
                 wgpu=None, adapter=None, gpu=None):
        if gpu is None:
            wgpu = require("wgpu", "the 'webgpu' device")
            set_runtime_dir()   # else libwayland complains on stderr while the adapter is requested
            try:
                adapter = wgpu.gpu.request_adapter_sync(power_preference=power_preference)
            except RuntimeError as e:   # some wgpu versions raise instead of returning None
                raise RuntimeError(f"{NO_ADAPTER} ({e})") from None
            if adapter is None:
                raise RuntimeError(NO_ADAPTER)
            alim = adapter.limits
            features = [f for f in ("shader-f16",) if f in adapter.features]
            gpu = adapter.request_device_sync(required_features=features,
                                              required_limits={k: alim[k] for k in REQUESTED_LIMITS if k in alim})
        super().__init__()
        self.wgpu, self.adapter, self.gpu = wgpu, adapter, gpu
        self.async_readback = getattr(wgpu, "ASYNC_READBACK", False)   # the browser maps buffers asynchronously
        self.limits = wgsl.Limits.from_mapping(self.gpu.limits, self.gpu.features, **{
            "adapter_class": wgsl.adapter_class(getattr(adapter, "info", None)), **(limits or {})})
        self.lost: str | None = None
        self._watch_loss()
        U = wgpu.BufferUsage
        self.pool = BufferPool(self.gpu, U.STORAGE | U.COPY_SRC | U.COPY_DST, self.limits.max_buffer_size)
        self.staging = BufferPool(self.gpu, U.MAP_READ | U.COPY_DST, self.limits.max_buffer_size)
        self.pipelines = weakref.WeakValueDictionary()   # WGSL source -> _Pipeline, while a kernel holds it
        self.kernels = LRUCache("kernels")               # Kernel -> _Compiled: the eager cache
        self._compiled = weakref.WeakValueDictionary()   # Kernel -> _Compiled, while anything holds it
        self._executables = weakref.WeakSet()
        self.stats = {"pipeline_hits": 0, "pipeline_misses": 0, "kernel_hits": 0, "kernel_misses": 0,
                      "submits": 0}

    def __repr__(self):
        info = getattr(self.adapter, "info", {}) or {}
        return f"Device('webgpu', adapter={info.get('device', '?')!r}, type={info.get('adapter_type', '?')})"

    # ---- device loss --------------------------------------------------------------------------
    def _watch_loss(self):
        self._suspect: str | None = None
        try:
            self.gpu.lost.then(lambda info: self._mark_lost(getattr(info, "message", str(info))))
            return
        except (NotImplementedError, AttributeError):
            pass
        # wgpu-py 0.32 has no `lost` promise yet: it logs a loss on the 'wgpu' logger, without saying
        # which device. The log makes every device suspect; _check confirms with a probe.
        dev = weakref.ref(self)

        class _Watch(logging.Handler):
            def emit(self, record):
                d = dev()
                if d is not None and "device was lost" in record.getMessage().lower():
                    d._suspect = record.getMessage()

        handler, logger = _Watch(logging.ERROR), logging.getLogger("wgpu")
        logger.addHandler(handler)
        weakref.finalize(self, logger.removeHandler, handler)

    def _mark_lost(self, reason: str):
        self.lost = reason or "unknown reason"

    def _check(self, exc: Exception | None = None):
        """Raise the 'device lost' RuntimeError if this device is lost (``exc``: a wgpu error just seen)."""
        if self._suspect is not None and self.lost is None:
            reason, self._suspect = self._suspect, None
            try:
                self.gpu.create_buffer(size=4, usage=self.wgpu.BufferUsage.COPY_DST)
            except self.wgpu.GPUError as e:
                if "lost" in str(e).lower():
                    self.lost = reason.strip().splitlines()[-1].strip()
        if exc is not None and "lost" in str(exc).lower() and self.lost is None:
            self.lost = str(exc).strip().splitlines()[-1].strip()
        if self.lost is not None:
            raise RuntimeError(f"the WebGPU device was lost ({self.lost}); its tensors are gone. Call "
                               "webtensor.webgpu.reset_device() and get_device('webgpu') again to "
                               "recreate it") from exc

    @contextlib.contextmanager
    def _guard(self):
        """Turn errors of a lost device into the RuntimeError that says so."""
        self._check()
        try:
            yield
        except self.wgpu.GPUError as e:
            self._check(e)
            raise

    def _submit(self, encoder):
        with self._guard():
            self.gpu.queue.submit([encoder.finish()])
        self.stats["submits"] += 1

    # ---- host <-> device ------------------------------------------------------------------------
    def check_alloc(self, aval, what: str = "a tensor") -> None:
        """Raise BufferTooLarge (a MemoryError) naming ``what`` and the bytes when a tensor of ``aval``
        exceeds ``maxBufferSize``; :meth:`alloc` runs it, creation functions before building anything."""
        nbytes = wgsl.storage_nbytes(aval.shape, aval.dtype, self.limits)
        if nbytes > self.limits.max_buffer_size:
            raise wgsl.BufferTooLarge(f"webgpu: {what} needs {nbytes} bytes, above this "
                                      f"device's maxBufferSize of {self.limits.max_buffer_size} bytes")

    def alloc(self, shape, dt, what: str = "tensor") -> GPUData:
        """Device memory for a tensor of ``shape``/``dt``. Raises BufferTooLarge past ``maxBufferSize``."""
        self.check_alloc(Aval(tuple(shape), dt), f"{what} {dt.name}{list(shape)}")
        nbytes = wgsl.storage_nbytes(shape, dt, self.limits)
        with self.lock, self._guard():
            return GPUData(self, self.pool.acquire(max(nbytes, 4)), nbytes)

    def from_host(self, buffer, aval):
        st = wgsl.storage_type(aval.dtype, self.limits)
        src = to_storage(as_host(buffer, aval.dtype), aval.dtype, st)
        data = self.alloc(aval.shape, aval.dtype)
        if src.nbytes != data.nbytes:
            raise ValueError(f"webgpu: host data of {src.nbytes} bytes for a {aval.dtype.name} tensor of shape "
                             f"{tuple(aval.shape)} (expected {data.nbytes} bytes as {st})")
        if src.nbytes:
            if src.nbytes % 4:      # writeBuffer sizes are multiples of 4
                src = bytes(src) + bytes(4 - src.nbytes % 4)
            with self.lock, self._guard():
                self.gpu.queue.write_buffer(data.buffer, 0, src)
        return data

    def _stage(self, data: GPUData):
        """Copy ``data`` into a staging buffer (one submission); returns (staging, bytes to map)."""
        if data.device is not self:
            raise RuntimeError("this tensor's data belongs to another (older) webgpu device")
        size = -(-data.nbytes // 4) * 4
        staging = self.staging.acquire(size)
        try:
            with self.lock:
                enc = self.gpu.create_command_encoder()
                enc.copy_buffer_to_buffer(data.buffer, 0, staging, 0, size)
                self._submit(enc)
        except BaseException:
            self.staging.release(staging)
            raise
        return staging, size

    def _unstage(self, staging, size: int, data: GPUData, aval):
        """Read a mapped staging buffer into host bytes, unmap it and return it to the pool."""
        try:
            with self.lock, self._guard():
                raw = staging.read_mapped(0, size)
                out = bytearray(memoryview(raw)[:data.nbytes])
                staging.unmap()
        finally:
            self.staging.release(staging)
        return from_storage(out, aval.dtype, wgsl.storage_type(aval.dtype, self.limits))

    def to_host_bytes(self, data: GPUData, aval):
        """Device data -> host bytes, waiting for the queue. In the browser this works only where Pyodide
        can block on a Promise (JSPI); otherwise it raises RuntimeError naming the ``*_async`` calls."""
        if data.nbytes == 0:
            return b""
        with self.lock:         # one thread at a time maps and polls the device
            staging, size = self._stage(data)
            try:
                with self._guard():
                    staging.map_sync(self.wgpu.MapMode.READ, 0, size)
            except BaseException:
                self.staging.release(staging)
                raise
            return self._unstage(staging, size, data, aval)

    async def to_host_bytes_async(self, data: GPUData, aval):
        """Device data -> host bytes, awaiting ``GPUBuffer.mapAsync`` in the browser (natively the same
        as :meth:`to_host_bytes`)."""
        if not self.async_readback or data.nbytes == 0:
            return self.to_host_bytes(data, aval)
        staging, size = self._stage(data)
        try:
            await staging.map_async(self.wgpu.MapMode.READ, 0, size)
        except BaseException:
            self.staging.release(staging)
            raise
        return self._unstage(staging, size, data, aval)

    # ---- kernels ----------------------------------------------------------------------------------
    def compiled(self, kernel, what: str = "kernel", cache: bool = True) -> _Compiled:
        """The kernel lowered to WGSL with its pipelines: from the eager cache (``cache``: look there
        and insert there; executables pass False and hold their kernels themselves), else shared
        with whoever holds the same kernel, else lowered now (pipelines shared by WGSL source).
        Raises BufferTooLarge naming ``what`` when a buffer exceeds the device's limits."""
        with self.lock:
            c = self.kernels.get(kernel) if cache else None
            if c is None:
                c = self._compiled.get(kernel)
            if c is not None:
                self.stats["kernel_hits"] += 1
            else:
                self.stats["kernel_misses"] += 1
                try:
                    low = wgsl.lower(kernel, self.limits)
                except wgsl.BufferTooLarge as e:
                    raise wgsl.BufferTooLarge(f"webgpu: {what}: {e}") from None
                c = self._compiled[kernel] = _Compiled(low, [self.pipeline(p) for p in low.passes])
            if cache:
                self.kernels.put(kernel, c)
            return c

    def pipeline(self, p: wgsl.Pass) -> _Pipeline:
        """(compute pipeline, bind group layout) for a pass, shared by WGSL source while any kernel
        holds it."""
        with self.lock:
            hit = self.pipelines.get(p.source)
            if hit is not None:
                self.stats["pipeline_hits"] += 1
                return hit
            self.stats["pipeline_misses"] += 1
            wgpu = self.wgpu
            with self._guard():
                layout = self.gpu.create_bind_group_layout(entries=[
                    {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE,
                     "buffer": {"type": "storage" if w else "read-only-storage"}} for i, (_, w) in enumerate(p.bindings)])
                module = self.gpu.create_shader_module(code=p.source)
                pipe = self.gpu.create_compute_pipeline(
                    layout=self.gpu.create_pipeline_layout(bind_group_layouts=[layout]),
                    compute={"module": module, "entry_point": "main"})
            hit = self.pipelines[p.source] = _Pipeline(pipe, layout)
            return hit

    def bind_group(self, layout, buffers):
        with self._guard():
            return self.gpu.create_bind_group(layout=layout, entries=[
                {"binding": i, "resource": {"buffer": b, "offset": 0, "size": size}}
                for i, (b, size) in enumerate(buffers)])

    def encode(self, enc, c: _Compiled, resolve, bind_groups=None, cp=None):
        """Encode a compiled kernel's copies and dispatches. ``resolve(name) -> (buffer, bytes)`` maps
        the passes' binding names to buffers; ``bind_groups`` caches bind groups across runs. ``cp``:
        the compute pass the previous kernel left open, which this one continues (its input copies,
        outside any pass, end it first). Returns the open compute pass: the caller ends it, so a
        program's kernels share one pass, as the artifact loaders' runs do (each dispatch is its own
        usage scope there: a kernel sees the writes of the ones before it)."""
        low = c.lowered
        if low.packed:
            if cp is not None:
                cp.end()
                cp = None
            packed = resolve("packed")[0]
            for k, word in low.packed:
                buf, size = resolve(f"in{k}")
                if size:
                    enc.copy_buffer_to_buffer(buf, 0, packed, word * 4, -(-size // 4) * 4)
        if cp is None:
            cp = enc.begin_compute_pass()
        for i, (p, (pipe, layout)) in enumerate(zip(low.passes, c.pipelines)):
            bufs = [resolve(name) for name, _ in p.bindings]
            bufs = [(b, max(-(-size // 4) * 4, 4)) for b, size in bufs]
            if bind_groups is not None:
                key = (i,) + tuple(id(b) for b, _ in bufs)
                bg = bind_groups.get(key)
                if bg is None:
                    if len(bind_groups) > 256:
                        bind_groups.clear()
                    bg = bind_groups[key] = (self.bind_group(layout, bufs), [b for b, _ in bufs])
                bg = bg[0]
            else:
                bg = self.bind_group(layout, bufs)
            cp.set_pipeline(pipe)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(*p.workgroups)
        return cp

    def execute(self, op, datas, attrs, in_avals, out_aval):
        kernel = op.kernel(in_avals, out_aval, **attrs)
        return self.run_kernel(kernel, datas, f"op {op.name} with inputs {', '.join(map(str, in_avals))} -> "
                                              f"{out_aval}")

    def run_kernel(self, kernel, datas: list[GPUData], what: str = "kernel") -> GPUData:
        """Run one kernel on device data (one submission); returns the output's data."""
        with self.lock:
            c = self.compiled(kernel, what)
            out = self.alloc(kernel.out.shape, kernel.out.dtype, f"the output of {what}")
            if not c.lowered.passes:
                return out
            scratch = {name: self.pool.acquire(size) for name, size in c.lowered.scratch}
            names = {f"in{k}": (d.buffer, d.nbytes) for k, d in enumerate(datas)}
            names["result"] = (out.buffer, out.nbytes)
            names.update({n: (b, size) for (n, size), b in zip(c.lowered.scratch, scratch.values())})
            enc = self.gpu.create_command_encoder()
            self.encode(enc, c, names.__getitem__).end()
            self._submit(enc)
            for b in scratch.values():   # queue order makes reuse by later submissions safe
                self.pool.release(b)
            return out

    def compile(self, graph):
        with self.lock:
            exe = Executable(self, graph)
            self._executables.add(exe)
        return exe

    def cache_stats(self) -> dict:
        """Compiled code: ``kernels`` (lowered kernels alive: eager cache and executables),
        ``kernel_cache`` (eager cache entries, at most the ``kernels`` limit), ``kernel_evictions``,
        ``pipelines`` (compute pipelines alive) and ``executables`` (compiled graphs alive)."""
        with self.lock:
            return {"kernels": len(self._compiled), "kernel_cache": len(self.kernels),
                    "kernel_evictions": self.kernels.evictions, "pipelines": len(self.pipelines),
                    "executables": len(self._executables)}

    def sync(self):
        """Wait until the device has finished all submitted work."""
        self.to_host_bytes(self.alloc((1,), int32), Aval((1,), int32))   # a readback waits for the queue


class Executable:
    """A compiled graph: fused kernels, their pipelines, and a static buffer plan.

    Temporaries get buffers once (at compile time), shared between temporaries whose lifetimes do
    not overlap; outputs and variable updates get fresh pooled buffers each run (they outlive it).
    ``run`` encodes all kernels into one command encoder and submits once, under the device's
    ``lock`` (queue order then keeps runs from different threads apart on the shared temporaries).
    Its kernels are its own (shared with the eager cache only while that holds them too).
    """

    def __init__(self, device: WebGPUDevice, graph):
        self.device = device
        self.program = prog = C.compile_graph(graph, prologues=True)   # its matmul computes prologues
        self.steps = []
        scalars = {}            # one-element constants given as host data: inlined (no binding)
        for b, d in prog.consts.items():
            buf = prog.bufs[b]
            st = wgsl.storage_type(buf.dtype, device.limits)
            if len(buf.shape) == 0 or all(n == 1 for n in buf.shape):
                if not isinstance(d, GPUData) and st in ("f32", "i32"):
                    scalars[b] = bytes(to_storage(as_host(d, buf.dtype), buf.dtype, st))
        for i, s in enumerate(prog.steps):
            names = [_describe(prog, b) for b in s.inputs]
            what = f"kernel {i} ({s.kernel.kind}, inputs {', '.join(names)}; output {_describe(prog, s.output)})"
            kernel = C.inline_scalars(s.kernel, {k: scalars[b] for k, b in enumerate(s.inputs) if b in scalars})
            self.steps.append((device.compiled(kernel, what, cache=False), s))
        self.consts = {b: d if isinstance(d, GPUData) else device.from_host(d, _aval(prog.bufs[b]))
                       for b, d in prog.consts.items()}
        keep = set(prog.outputs) | set(prog.updates)
        self.fresh = [b for b in dict.fromkeys(prog.outputs + prog.updates) if prog.bufs[b].role == "temp"]
        # Horizontal fusion (group.py): the order to run the steps in, independent maps grouped into one
        # dispatch each; ``units``: (compiled kernel or group, its step indices)
        order = group.schedule(prog.steps, [c.lowered for c, _ in self.steps], device.limits)
        self.units = []
        for members in order:
            if len(members) == 1:
                self.units.append((self.steps[members[0]][0], members))
                continue
            low = group.lower_group([prog.steps[i] for i in members], [self.steps[i][0].lowered for i in members],
                                    device.limits)
            self.units.append((_Compiled(low, [device.pipeline(p) for p in low.passes]), members))
        span = group.liveness(len(prog.bufs), order, prog.steps, prog.outputs + prog.updates)
        # Static plan: temporaries and per-step scratch buffers as (key, bytes, first, last).
        items = [(("buf", b.id), wgsl.storage_nbytes(b.shape, b.dtype, device.limits), *span[b.id])
                 for b in prog.bufs if b.role == "temp" and b.id not in keep]
        for pos, (c, members) in enumerate(self.units):
            if len(members) == 1:
                items += [(("scratch", members[0], name), size, pos, pos) for name, size in c.lowered.scratch]
        self.slots, self.slot_of = _plan(items)
        self.buffers = [device.pool.acquire(max(size, 4)) for size in self.slots]
        for b in self.buffers:
            weakref.finalize(self, device.pool.release, b)
        self.sizes = {key: size for key, size, _, _ in items}
        self.bind_groups = [dict() for _ in self.units]

    def run(self, inputs, captures):
        with self.device.lock:
            return self._run(inputs, captures)

    def _run(self, inputs, captures):
        dev, prog = self.device, self.program
        data: dict[int, GPUData | tuple] = dict(self.consts)
        data.update(zip(prog.inputs, inputs))
        data.update(zip(prog.captures, captures))
        for b in self.fresh:
            buf = prog.bufs[b]
            data[b] = dev.alloc(buf.shape, buf.dtype, f"program output b{b}")

        def where(b):
            d = data.get(b)
            if d is not None:
                return d.buffer, d.nbytes
            return self.buffers[self.slot_of[("buf", b)]], self.sizes[("buf", b)]

        enc, cp = dev.gpu.create_command_encoder(), None     # one encoder, one compute pass, one submit

        def resolver(i):
            s = prog.steps[i]

            def resolve(name):
                if name.startswith(("in", "result")):
                    return where(group.binding_buffer(s, name))
                key = ("scratch", i, name)
                return self.buffers[self.slot_of[key]], self.sizes[key]
            return resolve
        for u, (c, members) in enumerate(self.units):
            if not c.lowered.passes:
                continue
            if len(members) == 1:
                resolve = resolver(members[0])
            else:                       # a group's bindings: "<member>:<name>" (group.lower_group)
                each = [resolver(i) for i in members]

                def resolve(name, each=each):
                    k, name = name.split(":")
                    return each[int(k)](name)
            cp = dev.encode(enc, c, resolve, self.bind_groups[u], cp)
        if cp is not None:
            cp.end()
        dev._submit(enc)
        return [data[b] for b in prog.outputs], [data[b] for b in prog.updates]


def _aval(buf):
    return Aval(tuple(buf.shape), buf.dtype)


def _describe(prog, b: int) -> str:
    buf = prog.bufs[b]
    kind = {"input": f"argument {prog.inputs.index(b)}" if b in prog.inputs else "argument",
            "capture": "variable", "const": "constant", "temp": "intermediate"}[buf.role]
    if b in prog.outputs:
        kind = f"output {prog.outputs.index(b)}"
    return f"{kind} {buf.dtype.name}{list(buf.shape)}"


def _plan(items):
    """Assign items ``(key, bytes, first, last)`` to buffers: an item reuses a buffer whose items all
    ended before it starts (best fit; a buffer grows to its largest item). Returns (sizes, slot_of)."""
    slots: list[list] = []     # [size, last step in use]
    slot_of = {}
    for key, size, first, last in sorted(items, key=lambda it: (it[2], -it[1])):
        free = [i for i, (_, end) in enumerate(slots) if end < first]
        fit = [i for i in free if slots[i][0] >= size]
        i = min(fit, key=lambda i: slots[i][0]) if fit else (max(free, key=lambda i: slots[i][0]) if free else None)
        if i is None:
            slots.append([size, last])
            i = len(slots) - 1
        slots[i] = [max(slots[i][0], size), last]
        slot_of[key] = i
    return [s for s, _ in slots], slot_of



# ---- the adapter: software or not, and the default device -------------------------------------------

def is_software_adapter(info) -> bool:
    """Whether a WebGPU adapter's ``info`` (wgpu-py's ``adapter.info``) describes a software adapter
    that renders on the CPU (llvmpipe, lavapipe, SwiftShader, WARP: ``adapter_type`` ``"CPU"``) or
    one of unknown type. WebAssembly is faster on the same CPU, so neither the default device nor
    ``webtensor.load(backend='auto')`` picks WebGPU there (``"webgpu"`` named explicitly still runs)."""
    return info.get("adapter_type") in ("CPU", "Unknown", None)


def has_hardware_adapter() -> bool:
    """Whether wgpu finds a hardware adapter here (the default device's probe). Raises ImportError
    without wgpu."""
    set_runtime_dir()
    import wgpu
    adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    return adapter is not None and not is_software_adapter(adapter.info)


def set_runtime_dir() -> None:
    """Give the process a private ``XDG_RUNTIME_DIR`` (``<tempdir>/webtensor-runtime-<uid>``, mode
    0700) if it has none: requesting a wgpu adapter probes Wayland (wgpu-native's OpenGL backend),
    and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." to
    stderr, twice, where it is unset or not an absolute path (headless machines, containers, CI)."""
    if os.name != "posix" or os.environ.get("XDG_RUNTIME_DIR", "").startswith("/"):
        return
    path = os.path.join(tempfile.gettempdir(), f"webtensor-runtime-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            path = tempfile.mkdtemp(prefix="webtensor-runtime-")   # not ours, or not private
    except OSError:
        path = tempfile.mkdtemp(prefix="webtensor-runtime-")
    os.environ["XDG_RUNTIME_DIR"] = path
