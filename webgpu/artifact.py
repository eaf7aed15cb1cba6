"""Loading an artifact's "webgpu" sections (``docs/artifact.md``): the ``"webgpu"`` artifact loader."""
from __future__ import annotations

import json
import re

from ..core.runtime.artifacts import (engine_reason as _reason, is_index as _is_index, register_loader,
                                      storage_nbytes, to_storage as _storage)
from ..core.runtime.device import get_device
from ..core.runtime.util import require_numpy
from .emit import rows_total, rows_workgroups
from .runtime import is_software_adapter

_LEGACY_BINDING = re.compile(r"@group\(\s*(\d+)\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var<\s*(\w+)\s*(?:,\s*(\w+)\s*)?>")


def _nbytes(spec) -> int:
    return storage_nbytes(spec["shape"])


def _is_obj(v) -> bool:
    return isinstance(v, dict)


def _text(files, name, fail) -> str:
    """A listed WGSL file as text: strict UTF-8 (a byte order mark is kept, and refused by WGSL)."""
    try:
        return files[name].decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{name} is not UTF-8 text")


def declared_bindings(kernel, files, fail) -> dict[int, tuple[int, str, str]]:
    """``{binding: (group, address space, access)}`` of a kernel entry: from its ``"access"`` (one
    entry per binding, ``@group(0) @binding(b) var<storage, access>``), checked against its
    ``"bindings"``. WebGPU then checks the layout built from it against the shader when the pipeline
    is created (a shader that declares another binding or access fails there)."""
    access = kernel.get("access")
    if access is None:
        return legacy_wgsl_bindings(_text(files, kernel["wgsl"], fail))
    if len(access) != len(kernel["bindings"]):
        fail(f'manifest.json: {kernel["wgsl"]}: "access" lists {len(access)} bindings, "bindings" {len(kernel["bindings"])}')
    return {b: (0, "storage", a) for b, a in enumerate(access)}


def legacy_wgsl_bindings(source: str) -> dict[int, tuple[int, str, str]]:
    """LEGACY (artifacts exported before kernels carried ``"access"``): ``{binding: (group, address
    space, access)}`` read from a WGSL source's resource declarations."""
    code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", source, flags=re.S))
    return {int(b): (int(g), space, access or "read") for g, b, space, access in _LEGACY_BINDING.findall(code)}


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


class WebGPUArtifact:
    kind = "webgpu"

    """Runs an artifact's "webgpu" sections on ``get_device('webgpu')``'s wgpu device: the variable
    buffers once, each signature's buffers, pipelines and bind groups once; each run writes the
    inputs, encodes every dispatch in one compute pass of one command encoder, copies the outputs to
    a staging buffer, submits once and maps it. Holds the device's lock (its queue is the device's).
    A signature whose kernels take run-time rows (kernel entries' ``"rows"``) runs fewer rows than
    its chunk (``run(name, inputs, rows)``; docs/artifact.md, "Run-time rows: WebGPU")."""
    interruptible = False

    @classmethod
    def auto(cls, artifact) -> bool:
        """On a hardware adapter that meets every signature's needs (a software adapter such as
        llvmpipe runs WebAssembly faster)."""
        try:
            dev = get_device("webgpu")
        except (ImportError, RuntimeError):
            return False
        return (not is_software_adapter(dev.adapter.info)
                and webgpu_shortfall(artifact.manifest, artifact.files, dict(dev.gpu.limits),
                                     set(dev.gpu.features)) is None)

    def __init__(self, artifact, fail, *, timeout=None, memory_limit=None):
        manifest, files, weights = artifact.manifest, artifact.files, artifact.weights
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
                if "rows" in kernel:
                    if "batch" not in sig:
                        fail(f'manifest.json: {at}: "rows" needs a "batch" section (a symbolic batch)')
                    if "access" not in kernel:
                        fail(f'manifest.json: {at}: "rows" needs "access"')
                    chunk, (x, y, z) = sig["batch"]["chunk"], list(disp) + [1] * (3 - len(disp))
                    if rows_total(chunk, kernel["rows"]) > x * y * z:
                        fail(f'manifest.json: {at}: "rows" {kernel["rows"]} asks for more workgroups at {chunk} '
                             f'rows than its dispatch {disp}')
                declared = declared_bindings(kernel, files, fail)
                layouts[id(kernel)] = declared
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
            # run-time rows: one uniform (the rows, u32) bound after the storage bindings of its kernels
            uniform = self._buffer(16, U.UNIFORM | U.COPY_DST) if any("rows" in k for k in w["kernels"]) else None
            for k, kernel in enumerate(w["kernels"]):
                decl, n = layouts[id(kernel)], len(kernel["bindings"])
                key = (kernel["wgsl"], kernel["entry_point"], tuple(decl[b][2] for b in range(n)), "rows" in kernel)
                if key not in pipelines:
                    layout = gpu.create_bind_group_layout(entries=[
                        {"binding": b, "visibility": self.wgpu.ShaderStage.COMPUTE,
                         "buffer": {"type": "storage" if decl[b][2] == "read_write" else "read-only-storage"}}
                        for b in range(n)] + ([{"binding": n, "visibility": self.wgpu.ShaderStage.COMPUTE,
                                                "buffer": {"type": "uniform"}}] if "rows" in kernel else []))
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
                    for b, i in enumerate(kernel["bindings"])] + ([
                        {"binding": n, "resource": {"buffer": uniform, "offset": 0, "size": 16}}] if "rows" in kernel else []))
                steps.append((pipe, group, list(kernel["dispatch"]) + [1] * (3 - len(kernel["dispatch"])),
                              kernel.get("rows")))
            index = lambda role, k: next(i for i, b in enumerate(w["buffers"]) if b["role"] == role and b["index"] == k)
            out_bytes = [_nbytes(s) for s in sig["outputs"]]
            out_offs = np.cumsum([0] + [-(-max(n, 4) // 4) * 4 for n in out_bytes]).tolist()
            self.sigs[name] = {
                "steps": steps,
                "inputs": [bufs[index("input", k)] for k in range(len(sig["inputs"]))],
                "outputs": [(bufs[index("output", k)], off, n) for k, (off, n) in enumerate(zip(out_offs, out_bytes))],
                "staging": self._buffer(out_offs[-1], U.MAP_READ | U.COPY_DST) if out_bytes else None,
                "uniform": uniform, "chunk": sig["batch"]["chunk"] if uniform is not None else None,
                "whole": "rows_input" in sig.get("batch", {}),      # a train step's outputs have no rows
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
    def takes_rows(self, name) -> bool:
        """Whether signature ``name`` runs fewer rows than its chunk (``run``'s ``rows``)."""
        return self.sigs[name]["uniform"] is not None

    def dispatches(self, name, rows: int | None = None) -> list[tuple[int, int, int]]:
        """The workgroup counts a run of ``rows`` rows (None: the whole chunk) dispatches, per kernel."""
        return [tuple(disp) if rows is None or formula is None else rows_workgroups(rows, formula, disp)
                for _, _, disp, formula in self.sigs[name]["steps"]]

    def run(self, name, inputs: list[bytes], rows: int | None = None) -> list[bytes]:
        """Write ``inputs``, run, read the outputs. ``rows`` (1 <= rows <= chunk, where
        :meth:`takes_rows`): the inputs and outputs hold only the first ``rows`` rows (a train
        step's: the inputs other than the row count; its outputs are whole)."""
        sig = self.sigs[name]
        if rows is not None and not (self.takes_rows(name) and 1 <= rows <= sig["chunk"]):
            raise ValueError(f"webtensor: signature '{name}' cannot run {rows} rows")
        with self.dev._guard():
            return self._run(name, inputs, rows)

    def _run(self, name, inputs: list[bytes], rows: int | None) -> list[bytes]:
        sig, gpu = self.sigs[name], self.dev.gpu
        for buf, data in zip(sig["inputs"], inputs):
            if data:
                gpu.queue.write_buffer(buf, 0, data)
        if sig["uniform"] is not None:
            gpu.queue.write_buffer(sig["uniform"], 0, (sig["chunk"] if rows is None else rows).to_bytes(4, "little"))
        outs = [(buf, off, n if rows is None or sig["whole"] else n // sig["chunk"] * rows) for buf, off, n in sig["outputs"]]

        def encode(enc):
            cp = enc.begin_compute_pass()
            for (pipe, group, _, _), disp in zip(sig["steps"], self.dispatches(name, rows)):
                cp.set_pipeline(pipe)
                cp.set_bind_group(0, group)
                cp.dispatch_workgroups(*disp)
            cp.end()
            for buf, off, n in outs:
                if n:
                    enc.copy_buffer_to_buffer(buf, 0, sig["staging"], off, -(-max(n, 4) // 4) * 4)
        if sig["staging"] is None:
            enc = gpu.create_command_encoder()
            encode(enc)
            gpu.queue.submit([enc.finish()])
            return []
        data = self._readback(sig["staging"], encode)
        return [data[off:off + n] for _, off, n in outs]

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


register_loader("webgpu", WebGPUArtifact, rank=2)
