"""The device interface and the device registry.

A device holds tensors and runs ops: :class:`Device` is what every runtime implements
(``"reference"`` here; ``"wasm"`` and ``"webgpu"`` in their backends, which register themselves
with :func:`register_device` when ``webtensor`` is imported). The API layer (``webtensor.device``)
adds the per-thread ``with webtensor.device(...)`` scopes on top of :func:`get_device`.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
from math import prod
from typing import Awaitable, Callable

from .hostdata import NUMPY, byte_view, to_numpy
from .util import require_numpy


class Device:
    """A runtime: holds buffers, executes single ops (eager) and compiled graphs.

    Host data crosses in the host layout (:mod:`webtensor.core.runtime.hostdata`: row-major,
    little-endian, bool one byte). A device implements ``from_host`` and at least one of ``to_host``
    (numpy) and ``to_host_bytes`` (no numpy); each has a default in terms of the other. Devices whose
    readback is asynchronous (WebGPU in the browser) also implement ``to_host_bytes_async``.

    Threads: a device may be used from many threads at once. ``lock`` (a ``threading.RLock``, one
    per device; ``Device.__init__`` makes it) serialises what touches its shared state: devices with
    such state ("wasm", "webgpu") take it inside ``from_host``, ``to_host*``, ``execute``, ``compile``
    and their executables' ``run``, and ``webtensor.function`` holds it across a call so that a
    step's variable reads and updates are not interleaved with another thread's. A subclass that does
    not call ``Device.__init__`` shares one process-wide lock (correct, only coarser).
    """
    name = "?"
    lock = threading.RLock()        # replaced per instance by __init__

    def __init__(self):
        self.lock = threading.RLock()

    def from_host(self, buffer, aval):
        """Host data -> device data. ``buffer``: a C-contiguous buffer-protocol object (numpy array,
        ``array.array``, ``memoryview``, ``bytes``) holding ``aval``'s elements in the host layout;
        numpy arrays of another dtype are converted."""
        raise NotImplementedError

    def to_host(self, data, aval):
        """Device data -> a numpy array of ``aval``'s shape and dtype (a copy the caller may modify).

        Raises:
            ImportError: numpy is not installed (names the extra).
        """
        return to_numpy(self.to_host_bytes(data, aval), aval.shape, aval.dtype)

    def to_host_bytes(self, data, aval):
        """Device data -> ``bytes``/``bytearray``/``memoryview`` in the host layout (no numpy needed)."""
        a = self.to_host(data, aval)
        return memoryview(a.astype(NUMPY[aval.dtype.name], order="C", copy=False)).cast("B") if a.size else b""

    def to_host_view(self, data, aval):
        """Device data -> a read-only numpy array sharing the device's memory (no copy), kept
        valid while it exists; None where the device cannot (then callers copy)."""
        return None

    async def to_host_bytes_async(self, data, aval):
        """``to_host_bytes`` as a coroutine: devices with asynchronous readback override it."""
        return self.to_host_bytes(data, aval)

    def check_alloc(self, aval, what: str = "a tensor") -> None:
        """Raise MemoryError, naming ``what`` and the bytes, when this device cannot hold a tensor of
        ``aval``. Creation functions (``zeros``, ``arange``, ``normal``, ...) call it before they build
        anything; devices run the same check where they allocate. The default knows no limit."""

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
        super().__init__()
        self.np = require_numpy("the 'reference' device")

    def from_host(self, buffer, aval):
        np = self.np
        if isinstance(buffer, np.ndarray):
            return buffer.copy()        # tensors are immutable: never share the caller's array
        from ..numpy_util import np_dtype     # numpy at module level: lazy, as in every core module
        return np.frombuffer(byte_view(buffer), NUMPY[aval.dtype.name]).reshape(aval.shape).astype(np_dtype(aval.dtype))

    def to_host(self, data, aval):
        return data.copy()              # the caller may modify it (Device.to_host)

    def check_alloc(self, aval, what: str = "a tensor") -> None:
        """Raise MemoryError when a tensor of ``aval`` takes more bytes than this machine's physical
        memory (numpy would fail to allocate it, or the system would kill the process filling it)."""
        from ..numpy_util import np_dtype
        nbytes = prod(aval.shape) * self.np.dtype(np_dtype(aval.dtype)).itemsize
        limit = physical_memory()
        if limit is not None and nbytes > limit:
            raise MemoryError(f"reference device: cannot allocate {what} ({nbytes:,} bytes): more than this "
                              f"machine's {limit:,} bytes of memory")

    def to_host_view(self, data, aval):
        view = data.view()
        view.flags.writeable = False
        return view

    def execute(self, op, datas, attrs, in_avals, out_aval):
        with self.np.errstate(all="ignore"):    # NaN and inf are values here, as on every device
            out = op.reference(*datas, **attrs)
        out = self.np.asarray(out)
        if out.shape != tuple(out_aval.shape):
            raise AssertionError(f"{op.name}: reference returned shape {out.shape}, inference said {out_aval.shape}")
        return out

    def compile(self, graph):
        return GraphInterpreter(self, graph)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (POSIX ``sysconf``), or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


class GraphInterpreter:
    """Runs a graph node by node with a device's eager ``execute`` (reference executable)."""

    def __init__(self, device: Device, graph):
        self.device, self.graph = device, graph

    def run(self, inputs, captures):
        g = self.graph
        env = g.environment(inputs, captures)
        for n in g.nodes:
            env[n.out] = self.device.execute(n.op, [env[v] for v in n.inputs], n.attrs,
                                             [v.aval for v in n.inputs], n.out.aval)
        return [env[v] for v in g.outputs], [env[v] for _, v in g.updates]


# ---- the registry ---------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Device]] = {"reference": ReferenceDevice}
_ASYNC_FACTORIES: dict[str, Callable[[], Awaitable[Device]]] = {}
_PROBES: list[tuple[int, str, Callable[[], bool]]] = []     # (rank, name, probe), for the default device
_INSTANCES: dict[str, Device] = {}
# Drop the devices before the interpreter tears modules down: an engine freed later finds its
# library's bindings (wasmtime's ffi module) already cleared and prints errors at exit.
atexit.register(_INSTANCES.clear)
_CREATING = threading.RLock()   # one instance per name even when threads ask for it together


def register_device(name: str, factory: Callable[[], Device], *, async_factory=None, probe=None,
                    rank: int = 0) -> None:
    """Make ``name`` a device (registering a name again replaces its factory and probe).

    Args:
        name: the device's name (a str), as :func:`get_device` and ``webtensor.device`` take it.
        factory: ``factory() -> Device``, called on first use; it may raise RuntimeError (the
            device is not available here), which :func:`get_device` passes on.
        async_factory: None or a coroutine function returning the Device, where the platform creates
            it asynchronously (the browser's WebGPU); :func:`create_device_async` awaits it.
        probe: None or ``probe() -> bool``: whether this device should be the default here. Probes
            run in decreasing ``rank``; the first that says yes names the default, else
            ``"reference"`` (:func:`default_device_name`).
        rank: an int, the probe's precedence (higher runs first).
    Returns:
        None.
    """
    _FACTORIES[name] = factory
    if async_factory is not None:
        _ASYNC_FACTORIES[name] = async_factory
    if probe is not None:
        _PROBES[:] = sorted([p for p in _PROBES if p[1] != name] + [(rank, name, probe)], key=lambda p: -p[0])


def known_devices() -> list[str]:
    """The registered device names, sorted."""
    return sorted(_FACTORIES)


def created_device(name: str) -> Device | None:
    """The instance of ``name`` if it has been created, else None (creates nothing)."""
    return _INSTANCES.get(name)


def forget_device(name: str) -> None:
    """Drop the instance of ``name`` (e.g. after a device loss): the next :func:`get_device` creates
    a new one."""
    _INSTANCES.pop(name, None)


def _factory(name: str):
    """The factory of ``name``: a registered name, or TensorFlow's indexed form ``"<kind>:<k>"`` of a
    registered kind (``"wasm:1"``: another instance of ``"wasm"``, its own engine; ``"wasm:0"`` is
    ``"wasm"`` itself)."""
    if name in _FACTORIES:
        return name, _FACTORIES[name]
    kind, sep, index = name.partition(":")
    if sep and index.isdigit() and kind in _FACTORIES:
        return (kind, _FACTORIES[kind]) if int(index) == 0 else (name, _FACTORIES[kind])
    raise ValueError(f"unknown device {name!r}; known devices: {known_devices()} (and '<kind>:<index>' of them)")


def get_device(name) -> Device:
    """The device called ``name`` (a ``Device`` is returned as is), created on first use. ``name``: a
    registered name or ``"<kind>:<index>"`` (TensorFlow's form: ``"wasm:1"`` is a second WebAssembly
    engine, ``"wasm:0"`` the first, ``"wasm"``).

    Raises ValueError for an unknown name, RuntimeError if unavailable."""
    if isinstance(name, Device):
        return name
    dev = _INSTANCES.get(name)
    if dev is None:
        key, factory = _factory(name)
        with _CREATING:
            dev = _INSTANCES.get(key)
            if dev is None:
                dev = _INSTANCES[key] = factory()
                if key != name.partition(":")[0]:
                    dev.name = key           # "wasm:1": its own name in errors and reprs
    return dev


async def create_device_async(name: str) -> Device:
    """:func:`get_device`, awaiting the device's ``async_factory`` where it has one and no instance
    exists yet (the browser creates WebGPU devices asynchronously)."""
    if name not in _INSTANCES and name in _ASYNC_FACTORIES:
        dev = await _ASYNC_FACTORIES[name]()
        with _CREATING:
            _INSTANCES.setdefault(name, dev)
    return get_device(name)


_default: str | None = None


def default_device_name() -> str:
    """The device used when none is named, decided once per process: ``$WEBTENSOR_DEVICE`` if set;
    else the first registered probe (in decreasing rank) that says yes; else ``"reference"``. The
    backends' probes give: ``"webgpu"`` when a hardware GPU adapter exists (a software adapter such
    as llvmpipe does not count: WebAssembly is faster on the same CPU); else ``"wasm"`` when its
    runtime is installed. In Pyodide the answer is not kept (``"webgpu"`` once ``init_async`` has
    created it, else ``"wasm"``): the browser creates GPU devices asynchronously."""
    global _default
    env = os.environ.get("WEBTENSOR_DEVICE")
    if env:
        return env
    if sys.platform == "emscripten":
        return _probe()
    if _default is None:
        _default = _probe()
    return _default


def _probe() -> str:
    for _, name, probe in _PROBES:
        try:
            if probe():
                return name
        except Exception:   # a probe that fails (no driver, no library) says no
            pass
    return "reference"
