"""Devices: where tensors live and ops run.

``"reference"`` runs every op with its numpy reference implementation (the oracle);
``"wasm"`` and ``"webgpu"`` plug in through :func:`register_device` (the runtime layer,
:mod:`webtensor.core.runtime.device`, holds the interface and the registry). Placement is
explicit: ``Tensor.device`` says where a tensor is, ``webtensor.device(name)`` sets the default
inside a ``with`` block, and ops refuse tensors on different devices.
"""
from __future__ import annotations

import contextlib
import sys

from . import _state
from .core.runtime import device as _runtime
from .core.runtime.device import (Device, GraphInterpreter, ReferenceDevice, default_device_name,  # noqa: F401
                                  physical_memory, register_device)


def get_device(name=None) -> Device:
    """The device called ``name``, created on first use (one instance per name and process).

    Args:
        name: a registered device name (``'reference'``, ``'wasm'``, ``'webgpu'`` or one given to
            :func:`register_device`), a ``Device`` (returned as is), or None: the innermost
            ``webtensor.device`` context's, else :func:`default_device_name`.
    Returns:
        The ``Device``.
    Raises:
        ValueError: an unknown name.
        RuntimeError: the device is not available here (its factory's message says why).
    """
    if name is None:
        name = _state.local.device_stack[-1] if _state.local.device_stack else default_device_name()
    return _runtime.get_device(name)


async def init_async(name: str | None = None) -> Device:
    """Create the device ``name`` (awaiting what the platform does asynchronously) and return it.

    In Pyodide the browser creates WebGPU devices asynchronously, so run
    ``await webtensor.init_async('webgpu')`` before the first use of ``"webgpu"``; with no name,
    ``await webtensor.init_async()`` creates ``"webgpu"`` where an adapter exists, else ``"wasm"``,
    and that device becomes the default. Natively this is :func:`get_device`. Readback from a
    browser GPU is asynchronous too: see ``Tensor.numpy_async``/``tolist_async`` and
    ``Model.fit_async``.

    Args:
        name: the device name, or None: ``"webgpu"`` where an adapter exists, else ``"wasm"``.
    Returns:
        The Device (awaitable in Pyodide).
    Raises:
        RuntimeError: ``"webgpu"`` named and no adapter/device could be created (the message says why).
        ValueError: an unknown name.
    """
    if sys.platform == "emscripten":
        if name is None:
            try:
                return await init_async("webgpu")
            except RuntimeError:
                return get_device("wasm")
        return await _runtime.create_device_async(name)
    return get_device(name)


def device(name: str):
    """``with webtensor.device('wasm'):`` — new tensors and ops default to that device (per thread).

    Args:
        name: a device name (``'reference'``, ``'wasm'``, ``'webgpu'`` or a registered one).
    Returns:
        A context manager.
    Raises:
        ValueError: an unknown name (the message lists the known devices).
        RuntimeError: the device is unavailable. Both at the call itself, not only when the
            ``with`` block is entered.
    """
    get_device(name)
    return _device_scope(name)


@contextlib.contextmanager
def _device_scope(name):
    _state.local.device_stack.append(name)
    try:
        yield get_device(name)
    finally:
        _state.local.device_stack.pop()
