"""The ``"webgpu"`` backend: kernel IR -> WGSL (:mod:`.wgsl`, pure Python) and the runtime
(:mod:`.runtime`, imported lazily), on the optional ``wgpu`` natively or, in Pyodide, on the
browser's ``navigator.gpu`` through :mod:`.browser` (created with ``await webtensor.init_async()``)."""


def reset_device() -> None:
    """Forget the current ``"webgpu"`` device (e.g. after a device loss); the next
    ``get_device('webgpu')`` creates a new one."""
    from ..device import _INSTANCES
    _INSTANCES.pop("webgpu", None)
