"""WebGPU in Pyodide: the browser's ``navigator.gpu`` through Pyodide's ``js`` module, shaped like
the part of wgpu-py that :mod:`.runtime` calls, so the same runtime runs on the browser's WebGPU
(wgpu-py does not run in Pyodide).

The wrappers mirror WebGPU in snake_case, as wgpu-py does (``create_buffer(size=, usage=)``,
``queue.write_buffer``, ``begin_compute_pass``, ...); descriptors are Python dicts with snake_case
keys, converted to JS objects with camelCase keys. Limits are reported with wgpu-py's names
(``max-buffer-size``). Only the calls the runtime makes are wrapped.

Asynchrony: the browser creates adapters and devices, and maps buffers, with Promises.

- :func:`request_device` is a coroutine; ``await webtensor.init_async('webgpu')`` calls it once
  and registers the device as ``"webgpu"``.
- Readback: ``GPUBuffer.map_async`` returns an awaitable; ``Tensor.numpy_async``/``tolist_async``/
  ``item_async`` and ``Model.fit_async``/``evaluate_async`` await it.
- ``map_sync`` and :func:`request_device_sync` block on the Promise with ``pyodide.ffi.run_sync``,
  which works only where ``pyodide.ffi.can_run_sync()`` (JSPI: shipped in Chromium; not in
  Node 20, nor in code run with the synchronous ``runPython``); elsewhere they raise RuntimeError
  saying what to await instead.

Bytes cross the boundary in bulk (``shared/PLATFORM.md``): ``write_buffer`` hands WebGPU a view of
the Python buffer in Pyodide's heap (``create_proxy(mv).getBuffer('u8')``, no intermediate copy);
``read_mapped`` copies the mapped range with one ``Uint8Array.assign_to``.

Errors: WebGPU reports validation errors asynchronously (``uncapturederror``); they are collected
and raised (RuntimeError) at the next buffer mapping, i.e. the next readback.
"""
from __future__ import annotations

import functools
import sys

import js
from pyodide.code import run_js
from pyodide.ffi import JsException, can_run_sync, create_once_callable, create_proxy, run_sync, to_js

from ..core.runtime.hostdata import byte_view
from .runtime import REQUESTED_LIMITS, WebGPUDevice

ASYNC_READBACK = True            # the runtime awaits map_async in to_host_bytes_async
GPUError = JsException           # what failing WebGPU calls raise here

SYNC_READBACK = ("reading a 'webgpu' tensor back is asynchronous in the browser (GPUBuffer.mapAsync): await it "
                 "with `await t.numpy_async()`, `await t.tolist_async()` or `await t.item_async()` (and train with "
                 "`await model.fit_async(...)`, `await model.evaluate_async(...)`) instead of t.numpy(), t.tolist(), "
                 "float(t), model.fit(...). Synchronous readback needs JavaScript Promise Integration (JSPI) and "
                 "code run with runPythonAsync")
SYNC_DEVICE = ("in Pyodide the browser creates WebGPU devices asynchronously: run "
               "`await webtensor.init_async('webgpu')` once before using the 'webgpu' device "
               "(or use 'wasm')")
NO_ADAPTER = ("webtensor: no WebGPU adapter in this browser (navigator.gpu.requestAdapter() returned null). "
              "Use a browser with WebGPU enabled (Chromium: --enable-unsafe-webgpu where it is off), "
              "or the 'wasm' device")
NO_GPU = ("webtensor: this JavaScript environment has no navigator.gpu (no WebGPU). Use a browser with "
          "WebGPU, or in Node set globalThis.navigator = {gpu: create([])} from the 'webgpu' npm package; "
          "or use the 'wasm' device")


class BufferUsage:
    MAP_READ, MAP_WRITE, COPY_SRC, COPY_DST = 0x1, 0x2, 0x4, 0x8
    INDEX, VERTEX, UNIFORM, STORAGE, INDIRECT, QUERY_RESOLVE = 0x10, 0x20, 0x40, 0x80, 0x100, 0x200


class MapMode:
    READ, WRITE = 0x1, 0x2


class ShaderStage:
    VERTEX, FRAGMENT, COMPUTE = 0x1, 0x2, 0x4


# ---- Python <-> JS descriptors ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _camel(name: str) -> str:
    """``entry_point`` / ``max-buffer-size`` -> ``entryPoint`` / ``maxBufferSize``."""
    parts = name.replace("-", "_").split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _hyphen(name: str) -> str:
    """``maxBufferSize`` -> ``max-buffer-size`` (wgpu-py's limit names)."""
    return "".join("-" + c.lower() if c.isupper() else c for c in name)


def _py_to_js(x):
    if isinstance(x, dict):
        return {_camel(k): _py_to_js(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_py_to_js(v) for v in x]
    if isinstance(x, _Wrapped):
        return x._js
    return x


def _descriptor(d: dict):
    return to_js(_py_to_js(d), dict_converter=js.Object.fromEntries)


_helpers = None


def _js_helpers():
    """Small JS functions for what Pyodide's proxies do not expose directly."""
    global _helpers
    if _helpers is None:
        _helpers = run_js("""({
          limits: (l) => { const o = {}; for (const k in l) if (typeof l[k] === 'number') o[k] = l[k]; return o; },
          list: (s) => Array.from(s),
        })""")
    return _helpers


def _limits(js_limits) -> dict:
    return {_hyphen(k): int(v) for k, v in _js_helpers().limits(js_limits).to_py().items()}


def _features(js_features) -> set:
    return {str(f) for f in _js_helpers().list(js_features)}


# ---- wrappers ----------------------------------------------------------------------------------

class _Wrapped:
    """A JS WebGPU object (``_js``)."""
    __slots__ = ("_js",)

    def __init__(self, obj):
        self._js = obj


class GPUBuffer(_Wrapped):
    __slots__ = ("size", "usage", "_device")

    def __init__(self, obj, size: int, usage: int, device: "GPUDevice"):
        super().__init__(obj)
        self.size, self.usage, self._device = int(size), int(usage), device

    async def map_async(self, mode: int, offset: int = 0, size: int | None = None) -> None:
        """Await ``mapAsync``; raises RuntimeError for WebGPU errors reported since the last mapping."""
        try:
            await self._js.mapAsync(mode, offset, self.size - offset if size is None else size)
        except JsException as e:
            self._device.raise_errors()
            raise RuntimeError(f"webgpu: mapping a buffer for readback failed ({e})") from None
        self._device.raise_errors(unmap=self)

    def map_sync(self, mode: int, offset: int = 0, size: int | None = None) -> None:
        """Block on ``mapAsync`` with ``run_sync`` (JSPI). Raises RuntimeError where that is not possible."""
        if not can_run_sync():
            raise RuntimeError(SYNC_READBACK)
        run_sync(self.map_async(mode, offset, size))

    def read_mapped(self, offset: int = 0, size: int | None = None) -> memoryview:
        """A copy of the mapped range (one bulk copy)."""
        size = self.size - offset if size is None else size
        out = bytearray(size)
        if size:
            js.Uint8Array.new(self._js.getMappedRange(offset, size)).assign_to(out)
        return memoryview(out)

    def unmap(self) -> None:
        self._js.unmap()

    def destroy(self) -> None:
        self._js.destroy()


class GPUQueue(_Wrapped):
    __slots__ = ()

    def write_buffer(self, buffer: GPUBuffer, buffer_offset: int, data, data_offset: int = 0,
                     size: int | None = None) -> None:
        """``queue.writeBuffer`` from any C-contiguous Python buffer, read in place from Pyodide's heap."""
        mv = byte_view(data)
        mv = mv[data_offset:] if size is None else mv[data_offset:data_offset + size]
        if not mv.nbytes:
            return
        proxy = create_proxy(mv)
        try:
            view = proxy.getBuffer("u8")
            try:
                self._js.writeBuffer(buffer._js, buffer_offset, view.data)
            finally:
                view.release()
        finally:
            proxy.destroy()

    def submit(self, command_buffers) -> None:
        self._js.submit(to_js([c._js for c in command_buffers]))


class GPUComputePassEncoder(_Wrapped):
    __slots__ = ()

    def set_pipeline(self, pipeline) -> None:
        self._js.setPipeline(pipeline._js)

    def set_bind_group(self, index: int, bind_group) -> None:
        self._js.setBindGroup(index, bind_group._js)

    def dispatch_workgroups(self, x: int, y: int = 1, z: int = 1) -> None:
        self._js.dispatchWorkgroups(x, y, z)

    def end(self) -> None:
        self._js.end()


class GPUCommandEncoder(_Wrapped):
    __slots__ = ()

    def copy_buffer_to_buffer(self, source: GPUBuffer, source_offset: int, destination: GPUBuffer,
                              destination_offset: int, size: int) -> None:
        self._js.copyBufferToBuffer(source._js, source_offset, destination._js, destination_offset, size)

    def begin_compute_pass(self) -> GPUComputePassEncoder:
        return GPUComputePassEncoder(self._js.beginComputePass())

    def finish(self) -> _Wrapped:
        return _Wrapped(self._js.finish())


class _Lost:
    """``device.lost``: ``then(callback)`` calls ``callback(info)`` once the device is lost."""

    def __init__(self, promise):
        self._promise = promise

    def then(self, callback) -> None:
        self._promise.then(create_once_callable(callback))


class GPUDevice(_Wrapped):
    __slots__ = ("queue", "limits", "features", "errors", "_on_error")

    def __init__(self, obj):
        super().__init__(obj)
        self.queue = GPUQueue(obj.queue)
        self.limits = _limits(obj.limits)
        self.features = _features(obj.features)
        self.errors: list[str] = []
        self._on_error = create_proxy(lambda event: self.errors.append(str(event.error.message)))
        obj.addEventListener("uncapturederror", self._on_error)

    def raise_errors(self, unmap: GPUBuffer | None = None) -> None:
        """Raise the WebGPU errors reported since the last call (unmapping ``unmap`` first)."""
        if self.errors:
            errors, self.errors[:] = list(self.errors), []
            if unmap is not None:
                unmap.unmap()
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise RuntimeError(f"webgpu: the browser's WebGPU reported an error: {errors[0]}{more}")

    @property
    def lost(self) -> _Lost:
        return _Lost(self._js.lost)

    def create_buffer(self, *, size: int, usage: int, mapped_at_creation: bool = False) -> GPUBuffer:
        obj = self._js.createBuffer(_descriptor({"size": size, "usage": usage, "mapped_at_creation": mapped_at_creation}))
        return GPUBuffer(obj, size, usage, self)

    def create_bind_group_layout(self, *, entries) -> _Wrapped:
        return _Wrapped(self._js.createBindGroupLayout(_descriptor({"entries": entries})))

    def create_pipeline_layout(self, *, bind_group_layouts) -> _Wrapped:
        return _Wrapped(self._js.createPipelineLayout(_descriptor({"bind_group_layouts": bind_group_layouts})))

    def create_shader_module(self, *, code: str) -> _Wrapped:
        return _Wrapped(self._js.createShaderModule(_descriptor({"code": code})))

    def create_compute_pipeline(self, *, layout, compute: dict) -> _Wrapped:
        return _Wrapped(self._js.createComputePipeline(_descriptor({"layout": layout, "compute": compute})))

    def create_bind_group(self, *, layout, entries) -> _Wrapped:
        return _Wrapped(self._js.createBindGroup(_descriptor({"layout": layout, "entries": entries})))

    def create_command_encoder(self) -> GPUCommandEncoder:
        return GPUCommandEncoder(self._js.createCommandEncoder())


class GPUAdapter(_Wrapped):
    __slots__ = ("limits", "features", "info")

    def __init__(self, obj):
        super().__init__(obj)
        self.limits = _limits(obj.limits)
        self.features = _features(obj.features)
        info = getattr(obj, "info", None)
        name = " ".join(str(getattr(info, k, "") or "") for k in ("vendor", "architecture", "device", "description"))
        # isFallbackAdapter: on GPUAdapterInfo in current browsers, on GPUAdapter before (a software
        # adapter such as SwiftShader: limits.adapter_class's "cpu")
        fallback = bool(getattr(info, "isFallbackAdapter", False) or getattr(obj, "isFallbackAdapter", False))
        self.info = {"device": " ".join(name.split()) or "?", "adapter_type": "browser",
                     "is_fallback_adapter": fallback}

    async def request_device_async(self, *, required_features=(), required_limits=None) -> GPUDevice:
        limits = {_camel(k): v for k, v in (required_limits or {}).items()}
        obj = await self._js.requestDevice(_descriptor({"required_features": list(required_features),
                                                         "required_limits": limits}))
        return GPUDevice(obj)


async def request_adapter_async(power_preference: str = "high-performance") -> GPUAdapter | None:
    """``navigator.gpu.requestAdapter``; None when the browser has no adapter.

    Raises:
        RuntimeError: this JavaScript environment has no ``navigator.gpu``.
    """
    navigator = getattr(js, "navigator", None)
    gpu = getattr(navigator, "gpu", None) if navigator is not None else None
    if gpu is None:
        raise RuntimeError(NO_GPU)
    obj = await gpu.requestAdapter(_descriptor({"power_preference": power_preference}))
    return None if obj is None else GPUAdapter(obj)


async def request_device(power_preference: str = "high-performance", limits: dict | None = None):
    """A :class:`~webtensor.webgpu.runtime.WebGPUDevice` on the browser's WebGPU: the adapter's limits
    are requested (as natively), and ``shader-f16`` where offered. ``limits``: as ``WebGPUDevice``.

    Raises:
        RuntimeError: no ``navigator.gpu`` or no adapter (the message says what to do).
    """
    adapter = await request_adapter_async(power_preference)
    if adapter is None:
        raise RuntimeError(NO_ADAPTER)
    alim = adapter.limits
    features = [f for f in ("shader-f16",) if f in adapter.features]
    gpu = await adapter.request_device_async(required_features=features,
                                             required_limits={k: alim[k] for k in REQUESTED_LIMITS if k in alim})
    return WebGPUDevice(limits=limits, wgpu=sys.modules[__name__], adapter=adapter, gpu=gpu)


def request_device_sync(power_preference: str = "high-performance", limits: dict | None = None):
    """:func:`request_device`, blocking with ``run_sync`` where Pyodide can (JSPI).

    Raises:
        RuntimeError: blocking is not possible here (says to ``await webtensor.init_async('webgpu')``),
            or as :func:`request_device`.
    """
    if not can_run_sync():
        raise RuntimeError(SYNC_DEVICE)
    return run_sync(request_device(power_preference, limits))
