"""Devices: where tensors live and ops run.

``"reference"`` runs every op with its numpy reference implementation (the oracle);
``"wasm"`` and ``"webgpu"`` plug in here through :func:`register_device`. Placement
is explicit: ``Tensor.device`` says where a tensor is, ``webtensor.device(name)``
sets the default inside a ``with`` block, and ops refuse tensors on different devices.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable

from . import _state


class Device:
    """A runtime: holds buffers, executes single ops (eager) and compiled graphs."""
    name = "?"

    def from_host(self, array, aval):
        """numpy array (already of ``aval``'s dtype and shape) -> device data."""
        raise NotImplementedError

    def to_host(self, data, aval):
        """device data -> numpy array."""
        raise NotImplementedError

    def execute(self, op, datas, attrs, in_avals, out_aval):
        """Run one op eagerly."""
        raise NotImplementedError

    def compile(self, graph):
        """Compile a graph to an object with ``run(inputs, captures) -> (outputs, updates)``."""
        raise NotImplementedError

    def __repr__(self):
        return f"Device({self.name!r})"

    def __str__(self):
        return self.name


class ReferenceDevice(Device):
    """numpy executes each op's reference implementation; graphs run node by node."""
    name = "reference"

    def __init__(self):
        from .util import require_numpy
        self.np = require_numpy("the 'reference' device")

    def from_host(self, array, aval):
        return array

    def to_host(self, data, aval):
        return data

    def execute(self, op, datas, attrs, in_avals, out_aval):
        out = op.reference(*datas, **attrs)
        out = self.np.asarray(out)
        if out.shape != tuple(out_aval.shape):
            raise AssertionError(f"{op.name}: reference returned shape {out.shape}, inference said {out_aval.shape}")
        return out

    def compile(self, graph):
        return GraphInterpreter(self, graph)


class GraphInterpreter:
    """Runs a graph node by node with a device's eager ``execute`` (reference executable)."""

    def __init__(self, device: Device, graph):
        self.device, self.graph = device, graph

    def run(self, inputs, captures):
        g = self.graph
        env = dict(g.consts)
        env.update(zip(g.inputs, inputs))
        env.update(zip((v for v, _ in g.captures), captures))
        for n in g.nodes:
            env[n.out] = self.device.execute(n.op, [env[v] for v in n.inputs], n.attrs,
                                             [v.aval for v in n.inputs], n.out.aval)
        return [env[v] for v in g.outputs], [env[v] for _, v in g.updates]


def _webgpu() -> Device:
    from .webgpu.runtime import WebGPUDevice   # lazy: needs the optional 'wgpu'
    return WebGPUDevice()


def _wasm() -> Device:
    from .wasm.runtime import WasmDevice       # lazy: needs the optional 'wasmtime'
    return WasmDevice()


_FACTORIES: dict[str, Callable[[], Device]] = {"reference": ReferenceDevice, "webgpu": _webgpu, "wasm": _wasm}
_INSTANCES: dict[str, Device] = {}


def register_device(name: str, factory: Callable[[], Device]) -> None:
    """Make ``name`` a device; ``factory()`` is called on first use and may raise RuntimeError."""
    _FACTORIES[name] = factory


def get_device(name=None) -> Device:
    """The device called ``name`` (default: the innermost ``webtensor.device`` context, else
    the default device). Raises ValueError for an unknown name, RuntimeError if unavailable."""
    if isinstance(name, Device):
        return name
    if name is None:
        name = _state.device_stack[-1] if _state.device_stack else default_device_name()
    if name not in _INSTANCES:
        if name not in _FACTORIES:
            raise ValueError(f"unknown device {name!r}; known devices: {sorted(_FACTORIES)}")
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


_default: str | None = None


def default_device_name() -> str:
    """The device used when none is named (DESIGN.md, "Devices"), decided once per process:
    ``$WEBTENSOR_DEVICE`` if set; else ``"webgpu"`` when a hardware GPU adapter exists; else
    ``"wasm"`` when its runtime is installed; else ``"reference"``. A software adapter (llvmpipe,
    SwiftShader) does not count: WebAssembly is faster on the same CPU."""
    global _default
    if _default is None:
        _default = os.environ.get("WEBTENSOR_DEVICE") or _probe_default()
    return _default


def _probe_default() -> str:
    try:
        # Vulkan loaders complain on stderr when XDG_RUNTIME_DIR is unset (headless machines, CI).
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        import wgpu
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        if adapter is not None and adapter.info.get("adapter_type") not in ("CPU", "Unknown", None):
            return "webgpu"
    except Exception:  # no wgpu, no Vulkan/Metal/D3D12 loader, no adapter: fall through
        pass
    try:
        import wasmtime  # noqa: F401
        return "wasm"
    except ImportError:
        return "reference"


def device(name: str):
    """``with webtensor.device('wasm'):`` — new tensors and ops default to that device.

    Raises ValueError (unknown name; the message lists the known devices) or RuntimeError
    (unavailable) at the call itself, not only when the ``with`` block is entered."""
    get_device(name)
    return _device_scope(name)


@contextlib.contextmanager
def _device_scope(name):
    _state.device_stack.append(name)
    try:
        yield get_device(name)
    finally:
        _state.device_stack.pop()
