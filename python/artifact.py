"""``webtensor.load``: read, check and run an exported artifact (``docs/artifact.md``) in Python.

An artifact is code and data from somewhere else, so every byte is hostile until checked, with the
same checks as the JS runtime (``js/artifact.js``) and before anything is created: manifest.json
(at most 16 MiB of UTF-8 JSON) against ``docs/artifact.schema.json`` (``schema.py``); each listed
file's path (its real path inside the artifact directory, a regular file), size (before reading)
and SHA-256 (before parsing); the references between sections; the weights; then the chosen
backend's section, and for ``'wasm'`` the module's imports, exports and function types
(``wasm/module_check.py``) before it is compiled. Any failure raises :class:`ArtifactError` naming
the file or variable and what is wrong (never the size, hash or contents of a file that failed a
check), and nothing is left half-loaded.

Backends: ``'wasm'`` instantiates ``module.wasm`` in ``wasmtime`` with one memory of the
signatures' largest ``memory_bytes`` (also its maximum: a driver cannot grow it), copies the
variables and the large constants (the sections' ``"constants"``) to their addresses once, and each run writes the inputs, calls the signature's driver
(optionally under a deadline: wasmtime epoch interruption) and copies the outputs out. ``'webgpu'``
(on ``webtensor.get_device('webgpu')``'s wgpu device) creates the variable buffers once, each
signature's buffers, pipelines and bind groups once, and each run writes the inputs, encodes every
dispatch in one compute pass of one command encoder, copies the outputs to a staging buffer,
submits once and maps it. Requires numpy, and wasmtime or wgpu for the backend used.

Threads: a loaded model may be used from many threads. Each run (inputs written, driver or
dispatches, outputs read back), weight read and write holds the backend's lock: one per model on
``'wasm'`` (its store and memory are its own), the device's lock on ``'webgpu'`` (its queue is the
device's).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import threading
from math import prod

from . import hostdata
from .core.dtypes import as_dtype
from .schema import artifact_schema

# the format's name, version and dtypes, as docs/artifact.schema.json (the one contract) states them
FORMAT = artifact_schema()["properties"]["format"]["const"]
FORMAT_VERSION = artifact_schema()["properties"]["format_version"]["const"]
DTYPES = tuple(artifact_schema()["$defs"]["dtype"]["enum"])
PAGE = 65536


class ArtifactError(ValueError):
    """A damaged, malformed, hostile or unsupported artifact; the message names the file or variable
    (and never quotes the size, hash or contents of a file that failed a check)."""


MAX_MANIFEST_BYTES = 16 << 20          # manifest.json is read before anything says how large it is
MAX_FILE_BYTES = 4 << 30               # docs/artifact.schema.json's limit on any listed file


def _nbytes(spec) -> int:
    return 4 * prod(spec["shape"])


def _is_obj(v) -> bool:
    return isinstance(v, dict)


def _is_index(v, n) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n


def _reason(e: Exception) -> str:
    """An engine error's cause in one line (wasmtime puts it last, after a backtrace)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(e).__name__


def _read_file(root: str, name: str, nbytes: int | None, fail, dirs: dict) -> bytes:
    """The bytes of ``name`` (a schema-checked relative name) in the directory ``root`` (a real path):
    its real path must stay inside ``root`` and be a regular file of exactly ``nbytes`` bytes (at most
    :data:`MAX_MANIFEST_BYTES` when None). Opened without following a final symlink (one is resolved
    and checked first) and without blocking (a FIFO cannot hang the loader); never reads more than
    the expected size. ``dirs`` caches the real paths of folders."""
    def inside(real):
        return real == root or real.startswith(root + os.sep)
    parent, _, leaf = name.rpartition("/")
    if parent not in dirs:
        dirs[parent] = os.path.realpath(os.path.join(root, *parent.split("/"))) if parent else root
    path = os.path.join(dirs[parent], leaf)
    if not hasattr(os, "O_NOFOLLOW"):
        path = os.path.realpath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)

    def opened(path):
        if not inside(path):
            fail(f"{name} resolves outside the artifact directory")
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            fail(f"{name} is missing")
        except OSError as e:
            if e.errno == errno.ELOOP and follow:
                return None
            fail(f"{name} cannot be opened ({e.strerror})")
    follow = True
    fd = opened(path)
    if fd is None:                              # the name is a symlink: follow it, then check again
        follow = False
        fd = opened(os.path.realpath(path))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        fail(f"{name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        limit = MAX_MANIFEST_BYTES if nbytes is None else nbytes
        if st.st_size > limit if nbytes is None else st.st_size != nbytes:
            fail(f"{name}: is larger than the {limit}-byte limit" if nbytes is None else
                 f"{name}: its size is not the {nbytes} bytes the manifest lists (truncated or replaced file?)")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            fail(f"{name} cannot be read ({e.strerror})")
    if nbytes is not None and len(data) != nbytes:
        fail(f"{name}: its size is not the {nbytes} bytes the manifest lists (truncated or replaced file?)")
    return data


def _text(files, name, fail) -> str:
    """A listed WGSL file as text: strict UTF-8 (a byte order mark is kept, and refused by WGSL)."""
    try:
        return files[name].decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{name} is not UTF-8 text")

_BINDING = re.compile(r"@group\(\s*(\d+)\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var<\s*(\w+)\s*(?:,\s*(\w+)\s*)?>")


def read_artifact(path):
    """Read and check the artifact directory ``path``. Returns ``(manifest, files, weights)``: ``files``
    maps each listed name to its bytes, ``weights`` each tensor of ``weights.safetensors`` to
    ``(dtype, shape, bytes)``. Order of checks: manifest.json (at most 16 MiB, UTF-8 JSON) against
    ``docs/artifact.schema.json``; each listed file's path, type, size and SHA-256; the references
    between sections; the weights. Raises :class:`ArtifactError` (see the module docstring)."""
    from . import safetensors_io
    from .schema import SchemaError, artifact_schema, loads, validate
    where = os.fspath(path)

    def fail(msg):
        raise ArtifactError(f"webtensor: artifact '{where}': {msg}")
    if not os.path.isdir(where):
        fail("is not a directory")
    root = os.path.realpath(where)
    dirs: dict[str, str] = {}
    text = _read_file(root, "manifest.json", None, fail, dirs)
    try:
        manifest = loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"manifest.json is not valid JSON ({str(e)[:200]})")
    if not _is_obj(manifest):
        fail("manifest.json is not a JSON object")
    if "format_version" in manifest and manifest.get("format") == FORMAT and manifest["format_version"] != FORMAT_VERSION:
        fail(f"manifest.json: format_version {json.dumps(manifest['format_version'])[:40]} is not supported "
             f"(this runtime reads version {FORMAT_VERSION})")
    try:
        validate(manifest, artifact_schema())
    except SchemaError as e:
        fail(f"manifest.json: {e}")
    files = {}
    for name, info in manifest["files"].items():
        data = _read_file(root, name, info["bytes"], fail, dirs)
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            fail(f"{name}: its SHA-256 is not the one the manifest lists (damaged file?)")
        files[name] = data
    _check_manifest(manifest, fail)
    for name in files.keys() - {"module.wasm", "weights.safetensors"}:     # WGSL sources
        _text(files, name, fail)
    try:
        stored, _ = safetensors_io.load(files["weights.safetensors"])
    except ValueError as e:
        fail(f"weights.safetensors: {e}")
    weights = {k: (d, tuple(s), bytes(v)) for k, (d, s, v) in stored.items()}
    for v in manifest["variables"]:
        t = weights.get(v["name"])
        if t is None:
            fail(f"weights.safetensors: variable '{v['name']}' is missing")
        if t[0] != v["dtype"] or list(t[1]) != list(v["shape"]):
            fail(f"weights.safetensors: variable '{v['name']}' is {t[0]} {list(t[1])}, the manifest lists "
                 f"{v['dtype']} {v['shape']}")
    return manifest, files, weights


def _check_manifest(manifest, fail):
    """What the schema cannot say: unique names, indices in range, files listed, sizes that fit."""
    variables, signatures = manifest["variables"], manifest["signatures"]

    def sized(spec, what):
        if _nbytes(spec) > MAX_FILE_BYTES:
            fail(f"manifest.json: {what} '{spec['name']}': shape {spec['shape']} needs more than 4 GiB")
    names = set()
    for i, v in enumerate(variables):
        sized(v, f"variables[{i}]")
        if v["name"] in names:
            fail(f"manifest.json: variable '{v['name']}' is listed twice")
        names.add(v["name"])

    def listed(file, what):
        if file not in manifest["files"]:
            fail(f"manifest.json: {what} names {json.dumps(file)}, which \"files\" does not list")
    for name, sig in signatures.items():
        what = f"signature '{name}'"
        for key in ("inputs", "outputs"):
            seen = set()
            for i, s in enumerate(sig[key]):
                sized(s, f"{what} {key}[{i}]")
                if s["name"] in seen:
                    fail(f"manifest.json: {what}: two {key} are named '{s['name']}'")
                seen.add(s["name"])
        for key in ("reads", "writes"):
            if not all(i < len(variables) for i in sig.get(key, [])):
                fail(f'manifest.json: {what}: "{key}" must be indices into "variables" (0..{len(variables) - 1}), '
                     f"got {json.dumps(sig[key])[:80]}")
        if "wasm" in sig:
            listed("module.wasm", f"{what} wasm")
        for i, k in enumerate(sig.get("webgpu", {}).get("kernels", [])):
            listed(k["wgsl"], f"{what} webgpu.kernels[{i}]")


def _storage(data: bytes, dtype: str) -> bytes:
    """safetensors bytes of a tensor -> backend storage (bool: one byte -> a 4-byte 0/1 integer)."""
    dt = as_dtype(dtype)
    return bytes(hostdata.to_storage(data, dt, dt.wasm))


def _from_storage(data, spec):
    """Backend storage bytes -> a numpy array of ``spec``'s shape and dtype (a copy)."""
    dt = as_dtype(spec["dtype"])
    return hostdata.to_numpy(hostdata.from_storage(data, dt, dt.wasm), tuple(spec["shape"]), dt)


# ---- WebAssembly ------------------------------------------------------------------------------------

class _WasmBackend:
    kind = "wasm"

    def __init__(self, manifest, files, weights, fail, timeout=None, memory_limit=None):
        self.lock = threading.RLock()       # the model's own store and memory
        from .util import require
        from .wasm.engines import WasmtimeEngine, _Caller
        from .wasm.module_check import check_module
        wasmtime = require("wasmtime", "webtensor.load(backend='wasm')")
        variables, sigs = manifest["variables"], manifest["signatures"]
        memory_bytes, address, constants = 0, {}, {}
        for name, sig in sigs.items():
            w, what = sig.get("wasm"), f"signature '{name}' wasm"
            if w is None:
                fail(f"manifest.json: {what}: section is missing (this artifact has no WebAssembly code for it)")
            memory_bytes = max(memory_bytes, w["memory_bytes"])
            for key in ("inputs", "outputs"):
                if len(w[key]) != len(sig[key]):
                    fail(f'manifest.json: {what}: "{key}" must hold one byte address per {key[:-1]} ({len(sig[key])})')
            vars_ = w.get("variables", {})
            for i in set(sig.get("reads", [])) | set(sig.get("writes", [])):
                if str(i) not in vars_:
                    fail(f"manifest.json: {what}: no address for variable {i} ('{variables[i]['name']}'), which the "
                         "signature uses")
            for key, addr in vars_.items():
                i = int(key)                              # the schema allows only canonical decimal indices
                if i >= len(variables):
                    fail(f"manifest.json: {what}: variables {{\"{key}\": {addr}}}: there is no variable {i}")
                if address.get(i, addr) != addr:
                    fail(f"manifest.json: {what}: variable '{variables[i]['name']}' is at {addr}, another signature "
                         f"has it at {address[i]} (variables must have one address)")
                address[i] = addr
            for key, tname in w.get("constants", {}).items():
                addr = int(key)                           # the schema allows only canonical decimal addresses
                if tname not in weights:
                    fail(f"weights.safetensors: constant '{tname}' ({what} constants) is missing")
                if weights[tname][0] not in DTYPES:
                    fail(f"weights.safetensors: constant '{tname}' is {weights[tname][0]}; constants are float32, "
                         "int32 or bool")
                if constants.get(addr, tname) != tname:
                    fail(f"manifest.json: {what}: constants at {addr} names '{tname}', another signature has "
                         f"'{constants[addr]}' there")
                constants[addr] = tname
        regions = sorted([(a, a + _nbytes(variables[i]), f"variable '{variables[i]['name']}'") for i, a in address.items()]
                         + [(a, a + _nbytes({"shape": weights[n][1]}), f"constant '{n}'") for a, n in constants.items()])
        for (a0, e0, w0), (a1, e1, w1) in zip(regions, regions[1:]):
            if a1 < e0:
                fail(f"manifest.json: wasm: {w1} [{a1}, {e1}) overlaps {w0}")
        for name, sig in sigs.items():
            for key in ("inputs", "outputs"):
                for a, spec in zip(sig["wasm"][key], sig[key]):
                    regions.append((a, a + _nbytes(spec), f"signature '{name}' {key[:-1]} '{spec['name']}'"))
        for a, e, w in regions:
            if e > memory_bytes:
                fail(f"manifest.json: wasm: {w} [{a}, {e}) lies outside the {memory_bytes}-byte memory")
        pages = max(1, -(-memory_bytes // PAGE))
        if memory_limit is not None and pages * PAGE > memory_limit:
            raise MemoryError(f"webtensor.load: the artifact's WebAssembly memory is {pages * PAGE} bytes, over "
                              f"memory_limit={memory_limit}")
        try:
            check_module(files["module.wasm"], [sig["wasm"]["driver"] for sig in sigs.values()], pages)
        except ValueError as e:
            fail(str(e))
        # the memory cannot grow past what the manifest declares: a driver's memory.grow returns -1
        self.engine = eng = WasmtimeEngine(pages, fma=True, maximum_pages=pages, interruptible=timeout is not None)
        try:
            module = wasmtime.Module(eng.engine, files["module.wasm"])
        except Exception as e:
            fail(f"module.wasm is not a valid WebAssembly module ({_reason(e)})")
        try:
            inst = wasmtime.Instance(eng.store, module, [eng.memory])
        except Exception as e:
            fail(f"module.wasm cannot be instantiated ({_reason(e)})")
        self.variables, self.address, self.timeout = variables, address, timeout
        # check_module proved every driver is () -> (): the unchecked fast call is safe
        self.drivers = {name: _Caller(eng.store, inst.exports(eng.store)[sig["wasm"]["driver"]], 0)
                        for name, sig in sigs.items()}
        self.io = {name: (sig["wasm"]["inputs"], [(a, _nbytes(s)) for a, s in zip(sig["wasm"]["outputs"], sig["outputs"])])
                   for name, sig in sigs.items()}
        for addr, tname in constants.items():           # large constants: stored once, in the weights
            dt, _, data = weights[tname]
            eng.write(addr, _storage(data, dt))
        self.host = {}
        for i, v in enumerate(variables):
            data = _storage(weights[v["name"]][2], v["dtype"])
            if i in address:
                eng.write(address[i], data)
            else:
                self.host[i] = data

    def _call(self, name):
        wasmtime = self.engine.wasmtime
        timer = self.engine.deadline(self.timeout) if self.timeout is not None else None
        try:
            self.drivers[name]()
        except wasmtime.Trap as e:
            if e.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise TimeoutError(f"webtensor: signature '{name}' did not finish within {self.timeout} s (the "
                                   "variables it writes may be partly updated)") from None
            raise ArtifactError(f"webtensor: signature '{name}': the WebAssembly driver trapped "
                                f"({_reason(e)})") from None
        finally:
            if timer is not None:
                timer.cancel()

    def run(self, name, inputs: list[bytes]) -> list[bytes]:
        ins, outs = self.io[name]
        for a, data in zip(ins, inputs):
            self.engine.write(a, data)
        self._call(name)
        return [bytes(self.engine.read(a, n)) for a, n in outs]

    def read_variables(self, indices) -> list[bytes]:
        return [self.host[i] if i in self.host else
                bytes(self.engine.read(self.address[i], _nbytes(self.variables[i]))) for i in indices]

    def write_variable(self, i, data: bytes):
        if i in self.host:
            self.host[i] = data
        else:
            self.engine.write(self.address[i], data)

    def stats(self) -> dict:
        return {"wasm_memory_bytes": self.engine.size}

    def dispose(self):
        self.drivers = self.engine = None


# ---- WebGPU -----------------------------------------------------------------------------------------

def wgsl_bindings(source: str) -> dict[int, tuple[int, str, str]]:
    """``{binding: (group, address space, access)}`` of a WGSL source's resource declarations."""
    code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", source, flags=re.S))
    return {int(b): (int(g), space, access or "read") for g, b, space, access in _BINDING.findall(code)}


def _kebab(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), name)


def webgpu_shortfall(manifest, files, limits: dict, features) -> str | None:
    """Why the artifact cannot run on a device with ``limits`` (wgpu-py's kebab-case names) and
    ``features``: a signature without WebGPU code, a limit or WGSL feature it lacks; else None."""
    for name, sig in manifest["signatures"].items():
        w = sig.get("webgpu")
        if not _is_obj(w):
            return f"signature '{name}' has no WebGPU code"
        for key, need in (w.get("required_limits") or {}).items():
            have = limits.get(_kebab(key))
            if have is None:
                return f"signature '{name}' requires {key} (unknown limit on this device)"
            if (have > need) if key.startswith("min") else (have < need):
                return f"signature '{name}' requires {key} {need} (the device offers {have})"
        for k in w["kernels"]:
            for f in re.findall(r"^[ \t]*enable[ \t]+([\w \t,]+);", files[k["wgsl"]].decode("utf-8", "replace"), re.M):
                for feat in (x.strip() for x in f.split(",")):
                    feat = {"f16": "shader-f16"}.get(feat, feat)
                    if feat and feat not in features:
                        return f"{k['wgsl']} needs the WebGPU feature '{feat}'"
    return None


class _WebGPUBackend:
    kind = "webgpu"

    def __init__(self, manifest, files, weights, fail, timeout=None, memory_limit=None):
        from .device import get_device
        from .util import require_numpy
        np = require_numpy("webtensor.load")
        dev = get_device("webgpu")
        self.np, self.dev, self.wgpu, gpu = np, dev, dev.wgpu, dev.gpu
        self.lock = dev.lock                # the device's queue is shared with its eager work
        variables, sigs = manifest["variables"], manifest["signatures"]
        short = webgpu_shortfall(manifest, files, dict(gpu.limits), set(gpu.features))
        if short:
            fail(f"cannot run on this WebGPU device: {short}")
        layouts = {}
        for name, sig in sigs.items():
            w, what = sig["webgpu"], f"signature '{name}' webgpu"
            seen = {"input": set(), "output": set()}
            for k, b in enumerate(w["buffers"]):
                at = f"manifest.json: {what} buffers[{k}]"
                spec = None
                if b["role"] in ("input", "output"):
                    lst = sig[b["role"] + "s"]
                    if not _is_index(b.get("index"), len(lst)):
                        fail(f"{at}: no {b['role']} {json.dumps(b.get('index'))}")
                    if b["index"] in seen[b["role"]]:
                        fail(f"{at}: {b['role']} {b['index']} has two buffers")
                    seen[b["role"]].add(b["index"])
                    spec = lst[b["index"]]
                elif b["role"] == "variable":
                    if not _is_index(b.get("index"), len(variables)):
                        fail(f"{at}: no variable {json.dumps(b.get('index'))}")
                    spec = variables[b["index"]]
                elif b["role"] == "const":
                    if b.get("data") not in weights:
                        fail(f"weights.safetensors: constant {json.dumps(b.get('data'))} ({what} buffers[{k}]) is missing")
                    spec = {"shape": weights[b["data"]][1]}
                if spec is not None and b["bytes"] < _nbytes(spec):
                    fail(f"{at}: {b['bytes']} bytes cannot hold {list(spec['shape'])} ({_nbytes(spec)} bytes)")
            for role in ("input", "output"):
                for k, spec in enumerate(sig[role + "s"]):
                    if k not in seen[role]:
                        fail(f"manifest.json: {what}: no buffer for {role} {k} ('{spec['name']}')")
            for k, kernel in enumerate(w["kernels"]):
                at = f"{what} kernels[{k}] ({kernel['wgsl']})"
                binds, disp = kernel.get("bindings"), kernel.get("dispatch")
                if not all(i < len(w["buffers"]) for i in binds):
                    fail(f'manifest.json: {at}: "bindings" must be indices into buffers')
                if any(n > gpu.limits.get("max-compute-workgroups-per-dimension", 65535) for n in disp):
                    fail(f"manifest.json: {at}: dispatch {disp} is over this device's maxComputeWorkgroupsPerDimension")
                if kernel["wgsl"] not in layouts:
                    layouts[kernel["wgsl"]] = wgsl_bindings(_text(files, kernel["wgsl"], fail))
                declared = layouts[kernel["wgsl"]]
                for b, (group, space, _) in declared.items():
                    if group != 0 or space != "storage":
                        fail(f"{kernel['wgsl']}: @group({group}) @binding({b}) var<{space}> is not a @group(0) storage binding")
                    if b >= len(binds):
                        fail(f"{at}: the shader declares @binding({b}), but the kernel lists {len(binds)} bindings")
                for b, i in enumerate(binds):
                    if b not in declared:
                        fail(f"{at}: the kernel lists binding {b}, but the shader declares no @group(0) @binding({b})")
                    if declared[b][2] == "read_write" and binds.count(i) > 1:
                        fail(f"{at}: buffers[{i}] is bound twice and written (WebGPU forbids writable aliasing)")
        total = sum(-(-max(b["bytes"], 4) // 4) * 4 for sig in sigs.values() for b in sig["webgpu"]["buffers"])
        if memory_limit is not None and total > memory_limit:
            raise MemoryError(f"webtensor.load: the artifact's WebGPU buffers take {total} bytes, over "
                              f"memory_limit={memory_limit}")
        self.created = []
        try:
            self._build(manifest, files, weights, layouts, fail)
        except BaseException:
            self.dispose()
            raise

    def _buffer(self, size, usage):
        b = self.dev.gpu.create_buffer(size=max(4, -(-size // 4) * 4), usage=usage)
        self.created.append(b)
        return b

    def _build(self, manifest, files, weights, layouts, fail):
        U, gpu, np = self.wgpu.BufferUsage, self.dev.gpu, self.np
        variables, sigs = manifest["variables"], manifest["signatures"]
        self.variables = variables
        var_bytes = [max([_nbytes(v)] + [b["bytes"] for s in sigs.values() for b in s["webgpu"]["buffers"]
                                         if b["role"] == "variable" and b["index"] == i])
                     for i, v in enumerate(variables)]
        self.var_buffers = []
        for v, n in zip(variables, var_bytes):
            b = self._buffer(n, U.STORAGE | U.COPY_SRC | U.COPY_DST)
            data = _storage(weights[v["name"]][2], v["dtype"])
            if data:
                gpu.queue.write_buffer(b, 0, data)
            self.var_buffers.append(b)
        offs = np.cumsum([0] + [-(-max(_nbytes(v), 4) // 4) * 4 for v in variables]).tolist()
        self.var_offsets = offs[:-1]
        self.var_staging = self._buffer(offs[-1], U.MAP_READ | U.COPY_DST)
        pipelines = {}
        self.sigs = {}
        for name, sig in sigs.items():
            w = sig["webgpu"]
            bufs = []
            for b in w["buffers"]:
                if b["role"] == "variable":
                    bufs.append(self.var_buffers[b["index"]])
                    continue
                usage = {"input": U.STORAGE | U.COPY_DST, "output": U.STORAGE | U.COPY_SRC,
                         "const": U.STORAGE | U.COPY_DST, "temp": U.STORAGE}[b["role"]]
                buf = self._buffer(b["bytes"], usage)
                if b["role"] == "const":
                    dt, _, data = weights[b["data"]]
                    data = _storage(data, dt)
                    if data:
                        gpu.queue.write_buffer(buf, 0, data)
                bufs.append(buf)
            steps = []
            for k, kernel in enumerate(w["kernels"]):
                key = (kernel["wgsl"], kernel["entry_point"])
                if key not in pipelines:
                    decl = layouts[kernel["wgsl"]]
                    layout = gpu.create_bind_group_layout(entries=[
                        {"binding": b, "visibility": self.wgpu.ShaderStage.COMPUTE,
                         "buffer": {"type": "storage" if decl[b][2] == "read_write" else "read-only-storage"}}
                        for b in range(len(kernel["bindings"]))])
                    try:
                        module = gpu.create_shader_module(code=_text(files, kernel["wgsl"], fail))
                        pipe = gpu.create_compute_pipeline(
                            layout=gpu.create_pipeline_layout(bind_group_layouts=[layout]),
                            compute={"module": module, "entry_point": kernel["entry_point"]})
                    except Exception as e:
                        fail(f"signature '{name}' webgpu kernels[{k}] ({kernel['wgsl']}): cannot create the "
                             f"pipeline ({_reason(e)})")
                    pipelines[key] = (pipe, layout)
                pipe, layout = pipelines[key]
                group = gpu.create_bind_group(layout=layout, entries=[
                    {"binding": b, "resource": {"buffer": bufs[i], "offset": 0, "size": bufs[i].size}}
                    for b, i in enumerate(kernel["bindings"])])
                steps.append((pipe, group, list(kernel["dispatch"]) + [1] * (3 - len(kernel["dispatch"]))))
            index = lambda role, k: next(i for i, b in enumerate(w["buffers"]) if b["role"] == role and b["index"] == k)
            out_bytes = [_nbytes(s) for s in sig["outputs"]]
            out_offs = np.cumsum([0] + [-(-max(n, 4) // 4) * 4 for n in out_bytes]).tolist()
            self.sigs[name] = {
                "steps": steps,
                "inputs": [bufs[index("input", k)] for k in range(len(sig["inputs"]))],
                "outputs": [(bufs[index("output", k)], off, n) for k, (off, n) in enumerate(zip(out_offs, out_bytes))],
                "staging": self._buffer(out_offs[-1], U.MAP_READ | U.COPY_DST) if out_bytes else None,
            }

    def _readback(self, staging, copies) -> bytes:
        gpu = self.dev.gpu
        enc = gpu.create_command_encoder()
        copies(enc)
        gpu.queue.submit([enc.finish()])
        staging.map_sync(self.wgpu.MapMode.READ)
        data = bytes(staging.read_mapped())
        staging.unmap()
        return data

    # Calls run under the device's guard: errors of a lost device become the RuntimeError eager
    # code raises ("the WebGPU device was lost ...").
    def run(self, name, inputs: list[bytes]) -> list[bytes]:
        with self.dev._guard():
            return self._run(name, inputs)

    def _run(self, name, inputs: list[bytes]) -> list[bytes]:
        sig, gpu = self.sigs[name], self.dev.gpu
        for buf, data in zip(sig["inputs"], inputs):
            if data:
                gpu.queue.write_buffer(buf, 0, data)

        def encode(enc):
            cp = enc.begin_compute_pass()
            for pipe, group, disp in sig["steps"]:
                cp.set_pipeline(pipe)
                cp.set_bind_group(0, group)
                cp.dispatch_workgroups(*disp)
            cp.end()
            for buf, off, n in sig["outputs"]:
                enc.copy_buffer_to_buffer(buf, 0, sig["staging"], off, -(-max(n, 4) // 4) * 4)
        if sig["staging"] is None:
            enc = gpu.create_command_encoder()
            encode(enc)
            gpu.queue.submit([enc.finish()])
            return []
        data = self._readback(sig["staging"], encode)
        return [data[off:off + n] for _, off, n in sig["outputs"]]

    def read_variables(self, indices) -> list[bytes]:
        def copies(enc):
            for i in indices:
                enc.copy_buffer_to_buffer(self.var_buffers[i], 0, self.var_staging, self.var_offsets[i],
                                          -(-max(_nbytes(self.variables[i]), 4) // 4) * 4)
        with self.dev._guard():
            data = self._readback(self.var_staging, copies)
        return [data[self.var_offsets[i]:self.var_offsets[i] + _nbytes(self.variables[i])] for i in indices]

    def write_variable(self, i, data: bytes):
        with self.dev._guard():
            if data:
                self.dev.gpu.queue.write_buffer(self.var_buffers[i], 0, data)

    def stats(self) -> dict:
        return {"gpu_buffers": len(self.created), "gpu_buffer_bytes": sum(b.size for b in self.created)}

    def dispose(self):
        for b in self.created:
            b.destroy()
        self.created = []


# ---- the loaded model ---------------------------------------------------------------------------

class LoadedModel:
    """An artifact loaded on one backend (``backend``: ``'wasm'`` or ``'webgpu'``).

    ``signatures``: ``{name: {'inputs': [spec], 'outputs': [spec]}}`` (spec: ``{name, dtype, shape}``);
    ``variables``: ``[{name, dtype, shape, trainable}]``. Values are numpy arrays in and out.
    Safe to use from many threads: each call runs alone on the model (module docstring).
    """

    def __init__(self, manifest, backend):
        self._manifest, self._backend = manifest, backend
        self.backend = backend.kind
        self.runs = 0

    @property
    def signatures(self) -> dict:
        return {n: {"inputs": s["inputs"], "outputs": s["outputs"]} for n, s in self._manifest["signatures"].items()}

    @property
    def variables(self) -> list[dict]:
        return [dict(v) for v in self._manifest["variables"]]

    def _value(self, value, spec, what) -> bytes:
        import numpy as np
        from .tensor import Tensor
        if isinstance(value, Tensor):
            value = value.numpy()
        a = np.asarray(value)
        if tuple(a.shape) != tuple(spec["shape"]):
            raise ValueError(f"webtensor: {what}: expected shape {list(spec['shape'])} {spec['dtype']}, got "
                             f"{list(a.shape)} {a.dtype}")
        want = np.dtype(hostdata.NUMPY[spec["dtype"]])
        if not (np.can_cast(a.dtype, want, "same_kind") and (a.dtype.kind != "f" or want.kind == "f")):
            raise ValueError(f"webtensor: {what}: expected {spec['dtype']} data, got {a.dtype}")
        a = a.astype(want)
        return (a.astype("<i4") if spec["dtype"] == "bool" else a).tobytes()

    @staticmethod
    def _one_array(v, spec) -> bool:
        """Is ``v`` an array (numpy, Tensor) of ``spec``'s shape, rather than a list wrapping inputs?"""
        return hasattr(v, "shape") and tuple(v.shape) == tuple(spec["shape"])

    def _arrange(self, name: str, inputs: tuple) -> list:
        """``inputs`` (Keras 3's forms: values in input order, one list/tuple of them, or one dict keyed
        by input name) as one value per input of signature ``name``, in its order."""
        specs = self._manifest["signatures"][name]["inputs"]
        names = [s["name"] for s in specs]
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            given = inputs[0]
            for key in given:
                if key not in names:
                    raise ValueError(f"webtensor: signature '{name}' has no input '{key}' (inputs: {', '.join(names)})")
            for n in names:
                if n not in given:
                    raise ValueError(f"webtensor: signature '{name}': input '{n}' is missing")
            return [given[n] for n in names]
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            seq = inputs[0]
            if len(specs) > 1 and len(seq) == len(specs):
                return list(seq)
            if len(specs) == 1 and len(seq) == 1 and self._one_array(seq[0], specs[0]):
                return [seq[0]]             # [x]: a list of the one input (a list of numbers is data)
        return list(inputs)

    def run(self, name: str, *inputs) -> dict:
        """Run signature ``name`` on ``inputs``: its inputs in order (``run('predict', a, b, c)``), one
        list/tuple of them (``run('predict', [a, b, c])``) or one dict keyed by input name; each value an
        array, Tensor or list of the input's shape and a dtype that casts to it safely. Returns
        ``{output name: numpy array}``.

        Raises:
            KeyError: no such signature. ValueError: a wrong number, name, shape or dtype of inputs.
        """
        sigs = self._manifest["signatures"]
        if name not in sigs:
            raise KeyError(f"webtensor: no signature '{name}' (this model has: {', '.join(sigs)})")
        sig = sigs[name]
        inputs = self._arrange(name, inputs)
        if len(inputs) != len(sig["inputs"]):
            raise ValueError(f"webtensor: signature '{name}' takes {len(sig['inputs'])} input(s) "
                             f"({', '.join(s['name'] for s in sig['inputs'])}), got {len(inputs)}")
        data = [self._value(x, s, f"signature '{name}', input '{s['name']}'") for x, s in zip(inputs, sig["inputs"])]
        with self._backend.lock:
            outs = self._backend.run(name, data)
            self.runs += 1
        return {s["name"]: _from_storage(d, s) for s, d in zip(sig["outputs"], outs)}

    def predict(self, *x):
        """``run('predict', ...)``: its output array (a list of arrays if it has several). ``x``: the
        input (``predict(a)``), or for several inputs ``predict(a, b, c)``, ``predict([a, b, c])`` or
        ``predict({'a': a, 'b': b, 'c': c})`` (keys: the signature's input names, Keras' input names)."""
        out = list(self.run("predict", *x).values())
        return out[0] if len(out) == 1 else out

    def train_step(self, x, y):
        """``run('train_step', x, y)``: one optimizer step; returns the loss (its first output). ``x`` is
        the input, or for several inputs a list/tuple in input order or a dict keyed by input name."""
        specs = self._manifest["signatures"].get("train_step", {}).get("inputs", [])
        if isinstance(x, dict) and specs:
            return next(iter(self.run("train_step", {**x, specs[-1]["name"]: y}).values()))
        if isinstance(x, (list, tuple)) and len(specs) > 2 and len(x) == len(specs) - 1:
            return next(iter(self.run("train_step", *x, y).values()))
        return next(iter(self.run("train_step", x, y).values()))

    def get_weights(self) -> dict:
        """``{variable name: numpy array}``: copies of every variable's current value."""
        vs = self._manifest["variables"]
        with self._backend.lock:
            datas = self._backend.read_variables(range(len(vs)))
        return {v["name"]: _from_storage(d, v) for v, d in zip(vs, datas)}

    def set_weights(self, weights: dict) -> None:
        """Overwrite the variables named in ``weights`` (checked first: names, shapes, dtypes)."""
        vs = {v["name"]: (i, v) for i, v in enumerate(self._manifest["variables"])}
        writes = []
        for name, value in weights.items():
            if name not in vs:
                raise ValueError(f"webtensor: set_weights: no variable '{name}' (variables: {', '.join(vs)})")
            i, spec = vs[name]
            writes.append((i, self._value(value, spec, f"set_weights: variable '{name}'")))
        with self._backend.lock:      # all or nothing for other threads' runs
            for i, data in writes:
                self._backend.write_variable(i, data)

    def save_weights(self, path) -> None:
        """Every variable in the safetensors layout, as the JS runtime's ``saveWeights()`` writes it."""
        import numpy as np
        from . import __version__, safetensors_io
        tensors = {}
        for name, a in self.get_weights().items():
            a = np.ascontiguousarray(a, dtype="|b1" if a.dtype == bool else a.dtype.newbyteorder("<"))
            tensors[name] = (str(a.dtype) if a.dtype != bool else "bool", tuple(a.shape), a.tobytes())
        safetensors_io.save_file(path, tensors, {"format": "webtensor-weights", "format_version": "1",
                                                 "webtensor_version": __version__})

    def stats(self) -> dict:
        with self._backend.lock:
            return {"backend": self.backend, "runs": self.runs, **self._backend.stats()}

    def dispose(self) -> None:
        with self._backend.lock:
            self._backend.dispose()

    def __repr__(self):
        return f"<webtensor.LoadedModel backend={self.backend!r} signatures={list(self._manifest['signatures'])}>"


def load(path, backend: str = "auto", *, timeout: float | None = None,
         memory_limit: int | None = None) -> LoadedModel:
    """Load the artifact directory ``path`` (written by :func:`webtensor.export`) to run it here.

    Every byte of the artifact is treated as hostile until checked (``docs/artifact.md``, "Loading
    untrusted artifacts"): the manifest against ``docs/artifact.schema.json``, file names (inside
    ``path``, regular files), sizes and SHA-256 before parsing, ``module.wasm``'s imports, exports
    and types before it is compiled, then the backend's section.

    Args:
        path: the artifact directory (a str or path-like).
        backend: ``'wasm'`` (wasmtime), ``'webgpu'`` (wgpu) or ``'auto'`` (WebGPU when a hardware
            adapter exists and meets every signature's needs, else WebAssembly, which is faster than a
            software adapter such as llvmpipe: ``is_software_adapter`` in ``device.py``;
            ``model.backend`` says which).
        timeout: seconds a signature may run on ``'wasm'`` (wasmtime epoch interruption) before it is
            stopped with ``TimeoutError``; ``'auto'`` with a timeout picks ``'wasm'``. None: no limit.
        memory_limit: bytes the artifact may ask for (WebAssembly memory, or the sum of its WebGPU
            buffers); more raises ``MemoryError`` before anything is allocated. None: the format's
            own limit (4 GiB of WebAssembly memory).

    Raises:
        ArtifactError: a damaged, malformed, hostile or wrong-version artifact, or one without code or
            with needs beyond this device for the backend asked for (the message names what is wrong);
            also a driver that traps when run.
        MemoryError: over ``memory_limit``. TimeoutError: (when run) a signature over ``timeout``.
        ValueError: an unknown backend, a bad ``timeout``/``memory_limit``, or ``timeout`` with
            ``'webgpu'`` (GPU work cannot be interrupted). ImportError/RuntimeError: the backend is
            not available. RuntimeError: (when run) the WebGPU device was lost (the message eager
            code raises: ``webtensor.webgpu.reset_device()``, then load again).
    """
    if backend not in ("auto", "wasm", "webgpu"):
        raise ValueError(f"webtensor.load: backend must be 'auto', 'webgpu' or 'wasm', got {backend!r}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e9:
            raise ValueError(f"webtensor.load: timeout must be a positive number of seconds, got {timeout!r}")
        if backend == "webgpu":
            raise ValueError("webtensor.load: timeout works on backend 'wasm' only (WebGPU work cannot be "
                             "interrupted); use backend='wasm' or 'auto'")
        backend = "wasm"
    if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                     or memory_limit < 0):
        raise ValueError(f"webtensor.load: memory_limit must be a number of bytes, got {memory_limit!r}")
    manifest, files, weights = read_artifact(path)

    def fail(msg):
        raise ArtifactError(f"webtensor: artifact '{os.fspath(path)}': {msg}")
    if backend == "auto":
        backend = "wasm"
        try:
            from .device import get_device, is_software_adapter
            dev = get_device("webgpu")
            if (not is_software_adapter(dev.adapter.info)
                    and webgpu_shortfall(manifest, files, dict(dev.gpu.limits), set(dev.gpu.features)) is None):
                backend = "webgpu"
        except (ImportError, RuntimeError):
            pass
    impl = _WebGPUBackend if backend == "webgpu" else _WasmBackend
    return LoadedModel(manifest, impl(manifest, files, weights, fail, timeout=timeout, memory_limit=memory_limit))
