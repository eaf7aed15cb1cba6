"""The ``"webgpu"`` backend: kernel IR -> WGSL (:mod:`.wgsl`, pure Python) and the runtime
(:mod:`.runtime`), on the optional ``wgpu`` natively or, in Pyodide, on the browser's
``navigator.gpu`` through :mod:`.browser` (created with ``await webtensor.init_async()``).

Artifacts: ``export`` (the "webgpu" exporter) and ``artifact`` (the "webgpu" artifact loader),
registered in ``core.runtime.artifacts`` when imported.

Importing this package registers the ``"webgpu"`` device (``core.runtime.device.register_device``).
"""
import sys

from ..core.runtime.device import created_device, forget_device, register_device
from .runtime import WebGPUDevice, has_hardware_adapter


def _create():
    if sys.platform == "emscripten":            # Pyodide: the browser's navigator.gpu, not wgpu-py
        from .browser import request_device_sync   # Pyodide only: imports the js module
        return request_device_sync()
    return WebGPUDevice()                       # needs the optional 'wgpu' (imported when created)


async def _create_async():
    if sys.platform != "emscripten":
        return WebGPUDevice()
    from .browser import request_device         # Pyodide only: imports the js module
    return await request_device()


def _probe() -> bool:
    """The default device where a hardware adapter exists (natively), or once created (Pyodide)."""
    return created_device("webgpu") is not None if sys.platform == "emscripten" else has_hardware_adapter()


register_device("webgpu", _create, async_factory=_create_async, probe=_probe, rank=2)


def reset_device() -> None:
    """Forget the current ``"webgpu"`` device (e.g. after a device loss); the next
    ``get_device('webgpu')`` creates a new one."""
    forget_device("webgpu")
