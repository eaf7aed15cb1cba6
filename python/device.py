"""Devices: where tensors live and ops run.

``"reference"`` runs every op with its numpy reference implementation (the oracle);
``"wasm"`` and ``"webgpu"`` plug in here through :func:`register_device`. Placement
is explicit: ``Tensor.device`` says where a tensor is, ``webtensor.device(name)``
sets the default inside a ``with`` block, and ops refuse tensors on different devices.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import threading
from typing import Callable

from . import _state


class Device:
    """A runtime: holds buffers, executes single ops (eager) and compiled graphs.

    Host data crosses in the host layout (:mod:`webtensor.hostdata`: row-major, little-endian,
    bool one byte). A device implements ``from_host`` and at least one of ``to_host`` (numpy)
    and ``to_host_bytes`` (no numpy); each has a default in terms of the other. Devices whose
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
        from .hostdata import to_numpy
        return to_numpy(self.to_host_bytes(data, aval), aval.shape, aval.dtype)

    def to_host_bytes(self, data, aval):
        """Device data -> ``bytes``/``bytearray``/``memoryview`` in the host layout (no numpy needed)."""
        from .hostdata import NUMPY
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
        from .util import require_numpy
        self.np = require_numpy("the 'reference' device")

    def from_host(self, buffer, aval):
        np = self.np
        if isinstance(buffer, np.ndarray):
            return buffer.copy()        # tensors are immutable: never share the caller's array
        from .core.numpy_util import np_dtype
        from .hostdata import NUMPY, byte_view
        return np.frombuffer(byte_view(buffer), NUMPY[aval.dtype.name]).reshape(aval.shape).astype(np_dtype(aval.dtype))

    def to_host(self, data, aval):
        return data.copy()              # the caller may modify it (Device.to_host)

    def check_alloc(self, aval, what: str = "a tensor") -> None:
        """Raise MemoryError when a tensor of ``aval`` takes more bytes than this machine's physical
        memory (numpy would fail to allocate it, or the system would kill the process filling it)."""
        from math import prod
        from .core.numpy_util import np_dtype
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
        env = dict(g.consts)
        env.update(zip(g.inputs, inputs))
        env.update(zip((v for v, _ in g.captures), captures))
        for n in g.nodes:
            env[n.out] = self.device.execute(n.op, [env[v] for v in n.inputs], n.attrs,
                                             [v.aval for v in n.inputs], n.out.aval)
        return [env[v] for v in g.outputs], [env[v] for _, v in g.updates]


def _webgpu() -> Device:
    if sys.platform == "emscripten":            # Pyodide: the browser's navigator.gpu, not wgpu-py
        from .webgpu.browser import request_device_sync
        return request_device_sync()
    from .webgpu.runtime import WebGPUDevice   # lazy: needs the optional 'wgpu'
    return WebGPUDevice()


def _wasm() -> Device:
    from .wasm.runtime import WasmDevice       # lazy: needs the optional 'wasmtime'
    return WasmDevice()


_FACTORIES: dict[str, Callable[[], Device]] = {"reference": ReferenceDevice, "webgpu": _webgpu, "wasm": _wasm}
_INSTANCES: dict[str, Device] = {}
_CREATING = threading.RLock()   # one instance per name even when threads ask for it together


def register_device(name: str, factory: Callable[[], Device]) -> None:
    """Make ``name`` a device (how a backend registers itself).

    Args:
        name: the device name used by :func:`device` and :func:`get_device` (replaces any factory
            of that name not yet created).
        factory: ``() -> Device``, called once on first use; it may raise RuntimeError (device
            unavailable), which :func:`get_device` passes on.
    """
    _FACTORIES[name] = factory


def get_device(name=None) -> Device:
    """The device called ``name``, created on first use (one instance per name).

    Args:
        name: a device name (``'reference'``, ``'wasm'``, ``'webgpu'``), a Device (returned as is),
            or None: the innermost ``webtensor.device`` context, else the default device.
    Returns:
        The Device.
    Raises:
        ValueError: an unknown name (the message lists the known ones).
        RuntimeError: the device is unavailable (its factory says why).
    """
    if isinstance(name, Device):
        return name
    if name is None:
        name = _state.local.device_stack[-1] if _state.local.device_stack else default_device_name()
    dev = _INSTANCES.get(name)
    if dev is None:
        with _CREATING:
            dev = _INSTANCES.get(name)
            if dev is None:
                if name not in _FACTORIES:
                    raise ValueError(f"unknown device {name!r}; known devices: {sorted(_FACTORIES)}")
                dev = _INSTANCES[name] = _FACTORIES[name]()
    return dev


_default: str | None = None


def default_device_name() -> str:
    """The device used when none is named (docs/architecture.md), decided once per process:
    ``$WEBTENSOR_DEVICE`` if set; else ``"webgpu"`` when a hardware GPU adapter exists; else
    ``"wasm"`` when its runtime is installed; else ``"reference"``. A software adapter (llvmpipe,
    SwiftShader) does not count: WebAssembly is faster on the same CPU. In Pyodide (where the
    browser creates GPU devices asynchronously): ``"webgpu"`` once :func:`init_async` has created
    it, else ``"wasm"``."""
    global _default
    if sys.platform == "emscripten":  # Pyodide: WebGPU once init_async() created it, else WebAssembly
        return os.environ.get("WEBTENSOR_DEVICE") or ("webgpu" if "webgpu" in _INSTANCES else "wasm")
    if _default is None:
        _default = os.environ.get("WEBTENSOR_DEVICE") or _probe_default()
    return _default


def is_software_adapter(info) -> bool:
    """Whether a WebGPU adapter's ``info`` (wgpu-py's ``adapter.info``) describes a software adapter
    that renders on the CPU (llvmpipe, lavapipe, SwiftShader, WARP: ``adapter_type`` ``"CPU"``) or
    one of unknown type. WebAssembly is faster on the same CPU, so neither the default device nor
    ``webtensor.load(backend='auto')`` picks WebGPU there (``"webgpu"`` named explicitly still runs)."""
    return info.get("adapter_type") in ("CPU", "Unknown", None)


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


def _probe_default() -> str:
    try:
        set_runtime_dir()
        import wgpu
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        if adapter is not None and not is_software_adapter(adapter.info):
            return "webgpu"
    except Exception:  # no wgpu, no Vulkan/Metal/D3D12 loader, no adapter: fall through
        pass
    try:
        import wasmtime  # noqa: F401
        return "wasm"
    except ImportError:
        return "reference"


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
        if name == "webgpu" and name not in _INSTANCES and _FACTORIES.get(name) is _webgpu:
            from .webgpu.browser import request_device
            _INSTANCES[name] = await request_device()
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
