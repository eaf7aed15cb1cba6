"""The ``"webgpu"`` backend: kernel IR -> WGSL (:mod:`.wgsl`, pure Python) and the native
``wgpu`` runtime (:mod:`.runtime`, imported lazily: it needs the optional ``wgpu``)."""


def reset_device() -> None:
    """Forget the current ``"webgpu"`` device (e.g. after a device loss); the next
    ``get_device('webgpu')`` creates a new one."""
    from ..device import _INSTANCES
    _INSTANCES.pop("webgpu", None)
