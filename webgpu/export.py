"""The ``"webgpu"`` section of an artifact (``docs/artifact.md``): per signature, each kernel's WGSL
(``wgsl.lower``, compiled for the WebGPU spec's default limits, so artifacts run on any adapter;
with ``webgpu_f16``, also for the ``shader-f16`` feature, float16 computed as WGSL ``f16``),
buffers (temporaries shared by liveness as in the native runtime), bindings and dispatch sizes.
Copies (the plan's, ``core.runtime.artifacts.plan_signature``) are copy dispatches
(``wgsl.copy_pass``): a kernel may not bind one buffer both read-only and writable. A variable that
the plan updates in place is bound once, writable, by its kernel (``kernel_ir.Kernel.inplace``). A signature
with a symbolic batch lowers the kernels that loop over its rows for run-time rows (a kernel entry's
``"rows"``; docs/artifact.md, "Run-time rows: WebGPU"). Independent one-pass maps are grouped into
one kernel (``group.py``, as the native runtime does; buffers told apart by the plan's locations).
"""
from __future__ import annotations

import dataclasses
import warnings

from math import prod

from ..core.compile import inline_scalars
from ..core.runtime.artifacts import batch_steps, register_exporter, row_sum_reads, storage_nbytes as _nbytes
from . import group, wgsl
from .runtime import _plan as share_by_liveness


def _gpu_limits(shader_f16: bool = False, adapter_class: str = "unknown"):
    """What WGSL is compiled for: the WebGPU spec's default limits (8 storage buffers per stage, 256
    invocations per workgroup, 16 KiB workgroup storage, 128 MiB bindings), which every adapter
    offers (browsers, Dawn, SwiftShader), not the limits of the exporting machine; ``shader_f16``
    (``export(..., webgpu_f16=True)``): and the ``shader-f16`` feature; the templates tuned for
    ``adapter_class`` (export's ``webgpu_adapter``; ValueError for an unknown name)."""
    return wgsl.Limits(shader_f16=shader_f16, adapter_class=adapter_class)


class _NoF16(ValueError):
    """A signature that float16 storage cannot carry (``export_webgpu`` compiles it without)."""


def _required_limits(buffers, kernels, passes, limits) -> dict:
    """The WebGPU limits (spec names) the signature's dispatches need, for the manifest."""
    inv = max([p.workgroup_size[0] * p.workgroup_size[1] * p.workgroup_size[2] for p in passes] or [1])
    size = [max([p.workgroup_size[d] for p in passes] or [1]) for d in range(3)]
    shared = max([p.workgroup_storage for p in passes] or [0])
    bound = [buffers[i]["bytes"] for k in kernels for i in k["bindings"]]
    biggest = max([max(-(-n // 4) * 4, 4) for n in bound] or [4])
    return {"maxStorageBuffersPerShaderStage": max([len(k["bindings"]) for k in kernels] or [1]),
            "maxStorageBufferBindingSize": biggest, "maxBufferSize": biggest,
            "maxComputeWorkgroupsPerDimension": max([max(k["dispatch"]) for k in kernels] or [1]),
            "maxComputeInvocationsPerWorkgroup": inv, "maxComputeWorkgroupSizeX": size[0],
            "maxComputeWorkgroupSizeY": size[1], "maxComputeWorkgroupSizeZ": size[2],
            "maxComputeWorkgroupStorageSize": shared}


def _emit_webgpu(t: _Traced, variables, consts: dict[int, bytes], files: dict[str, str], weights: dict,
                 lowered: dict, limits, stored: dict[bytes, str] | None = None) -> dict:
    """The signature's "webgpu" section; adds WGSL sources to ``files`` (source -> path) and constants
    to ``weights`` (those in ``stored`` are there already, under its name). Raises
    BufferTooLarge/ValueError where the limits are too small."""

    prog, plan = t.prog, t.plan
    chunk_of, zeroed = _batched_steps(t)
    scalars = {b: data for b, data in consts.items() if prod(prog.bufs[b].shape) == 1}
    kernel_of = {}          # one-element constants inlined (core.compile.inline_scalars): no binding
    for i, s in enumerate(prog.steps):
        k = inline_scalars(s.kernel, {j: scalars[b] for j, b in enumerate(s.inputs) if b in scalars})
        if i in plan.inplace:               # variables updated in place: read through the output's binding
            k = dataclasses.replace(k, inplace=plan.inplace[i])
        key = kernel_of[id(s)] = (k, chunk_of.get(id(s)), limits)
        if key not in lowered:
            lowered[key] = wgsl.lower(k, limits, key[1])
    buffers: list[dict] = []
    index: dict = {}

    def buf(key, entry) -> int:
        if key not in index:
            index[key] = len(buffers)
            buffers.append(entry)
        return index[key]
    for i, spec in enumerate(t.inputs):
        buf(("input", i), {"bytes": _nbytes(spec["shape"]), "role": "input", "index": i})
    for v in sorted(set(plan.reads + plan.writes)):
        buf(("var", v), {"bytes": _nbytes(variables[v]["shape"]), "role": "variable", "index": v})
    half = {b.id for b in prog.bufs if wgsl.storage_type(b.dtype, limits) == "f16"}   # 2 bytes an element
    for j, (b, data) in enumerate(sorted(consts.items())):
        if b in half and b not in scalars:
            raise _NoF16("a float16 constant tensor (artifacts store constants as float32)")
        name = stored.get(data)
        if name is None:
            name = f"const/{t.name}/{j}"
            dt = prog.bufs[b].dtype
            weights[name] = ("float32" if dt.wasm == "f32" else "int32", tuple(prog.bufs[b].shape), data)
        buf(("const", b), {"bytes": len(data), "role": "const", "data": name})
    for k, spec in enumerate(t.outputs):
        buf(("output", k), {"bytes": _nbytes(spec["shape"]), "role": "output", "index": k})
    for v in plan.stage:
        buf(("stage", v), {"bytes": _nbytes(variables[v]["shape"]), "role": "temp"})
    # horizontal fusion (group.py): independent maps grouped into one dispatch, as the native runtime does;
    # buffers are told apart by where the plan puts them (an in-place update and its variable: one)
    key = lambda b: plan.locs.get(b, ("buf", b))
    order = group.schedule(prog.steps, [lowered[kernel_of[id(s)]] for s in prog.steps], limits, key,
                           lambda i: prog.steps[i].output not in zeroed)
    span = group.liveness(len(prog.bufs), order, prog.steps, prog.outputs + prog.updates)
    items = [(("temp", b.id), -(-wgsl.storage_nbytes(b.shape, b.dtype, limits) // 4) * 4, *span[b.id])
             for b in prog.bufs if plan.locs.get(b.id) == ("temp", b.id)]
    for pos, members in enumerate(order):
        if len(members) == 1:
            i = members[0]
            items += [(("scratch", i, name), size, pos, pos) for name, size in lowered[kernel_of[id(prog.steps[i])]].scratch]
    sizes, slot_of = share_by_liveness(items)
    slots = [buf(("slot", j), {"bytes": size, "role": "temp"}) for j, size in enumerate(sizes)]
    where = lambda loc: slots[slot_of[loc]] if loc[0] in ("temp", "scratch") else index[loc]

    kernels, passes = [], []

    def dispatch(p, resolve, what):
        if p.source not in files:
            files[p.source] = f"kernels/{t.name}_{len(set(q.source for q in passes))}.wgsl"
        path = files[p.source]
        passes.append(p)
        bindings = [resolve(name) for name, _ in p.bindings]
        for (name, writable), i in zip(p.bindings, bindings):
            if writable and bindings.count(i) > 1:
                raise AssertionError(f"export: {what} binds buffer {i} writable twice")
        kernels.append({"wgsl": path, "entry_point": "main", "bindings": bindings,
                        "access": ["read_write" if writable else "read" for _, writable in p.bindings],
                        "dispatch": list(p.workgroups)})
        if p.rows is not None:
            kernels[-1]["rows"] = list(p.rows)

    def copy(src: int, dst: int, nbytes: int, dst_word: int | None = None):
        """``dst_word=None``: all of ``dst``, a buffer of exactly ``nbytes`` (one shader for every size)."""
        if nbytes:
            dispatch(wgsl.copy_pass(nbytes // 4, dst_word, limits), {"src": src, "dst": dst}.__getitem__, "copy")
    def zero_rows(b: int):          # rows past the run's of a buffer that row sums read
        p = wgsl.zero_rows_pass(zeroed[b], t.rows[0], limits)
        dispatch(p, {"dst": where(plan.locs[b])}.__getitem__, "zeroing")
    if half & set(zeroed) or any(loc[0] == "temp" and loc[1] in half for src, dst, _ in plan.pre + plan.post
                                 for loc in (src, dst)):
        raise _NoF16("float16 rows to zero or copy (word-sized passes)")
    for src, dst, n in plan.pre:
        copy(where(src), where(dst), n)
    for b in sorted(set(zeroed) & set(prog.inputs)):
        zero_rows(b)
    def resolver(i):
        s = prog.steps[i]

        def resolve(name):
            if name.startswith(("in", "result")):
                return where(plan.locs[group.binding_buffer(s, name)])
            return where(("scratch", i, name))
        return resolve
    for members in order:
        if len(members) > 1:            # one dispatch; bindings "<member>:<name>" (group.lower_group)
            gkey = ("group",) + tuple(kernel_of[id(prog.steps[i])] for i in members) + \
                tuple(key(b) for i in members for b in prog.steps[i].inputs + [prog.steps[i].output] + prog.steps[i].extra)
            if gkey not in lowered:
                lowered[gkey] = group.lower_group([prog.steps[i] for i in members],
                                                  [lowered[kernel_of[id(prog.steps[i])]] for i in members], limits, key)
            each = [resolver(i) for i in members]
            for p in lowered[gkey].passes:
                dispatch(p, lambda name: each[int(name.split(":")[0])](name.split(":")[1]), f"kernels {list(members)}")
            continue
        i = members[0]
        s, low, resolve = prog.steps[i], lowered[kernel_of[id(prog.steps[i])]], resolver(i)
        for k, word in low.packed:
            copy(resolve(f"in{k}"), resolve("packed"), _nbytes(s.kernel.inputs[k].shape), word)
        for p in low.passes:
            dispatch(p, resolve, f"kernel {i}")
        if s.output in zeroed:
            zero_rows(s.output)
    for src, dst, n in plan.post:
        copy(where(src), where(dst), n)
    return {"buffers": buffers, "kernels": kernels,
            "required_limits": _required_limits(buffers, kernels, passes, limits)}


def _batched_steps(t) -> tuple[dict[int, int], dict[int, int]]:
    """``{id(step): chunk}`` for the steps of a symbolic-batch signature that loop over its rows
    (``core.runtime.artifacts.batch_steps``, row sums accepted), lowered for run-time rows, and the
    batched buffers that row sums read (a train step's gradient and loss sums), by id, with their
    32-bit words per row: a zeroing pass (``wgsl.zero_rows_pass``) clears their rows past the run's
    before the sums, which run whole (docs/artifact.md "Run-time rows: train steps"). Both empty
    where the programs for ``chunk`` and ``chunk + 1`` rows differ in structure (every kernel then
    runs the whole chunk, and loaders pad), a chunk is one row, or a buffer to zero is a sibling's
    output or has rows of a partial word. The other steps run whole: their dispatches stay."""
    if t.rows is None or t.rows[0] < 2:
        return {}, {}
    chunk, more_chunk, more = t.rows
    on_rows = batch_steps(t.prog, more, chunk, more_chunk, sums=True)
    if on_rows is None:
        return {}, {}
    zeroed = {b: _nbytes(t.prog.bufs[b].shape) // chunk for b in row_sum_reads(t.prog, more, on_rows)}
    if not set(zeroed) <= set(t.prog.inputs) | {s.output for s in t.prog.steps} or \
            any(n % 4 or _nbytes(t.prog.bufs[b].shape) % chunk for b, n in zeroed.items()):
        return {}, {}
    return {id(s): chunk for s, batched in zip(t.prog.steps, on_rows) if batched}, \
        {b: n // 4 for b, n in zeroed.items()}


def export_webgpu(traced, variables: list[dict], consts: dict[str, dict[int, bytes]], weights: dict,
                  stored: dict[bytes, str], options: dict):
    """Every signature's "webgpu" section and the WGSL files; a signature whose kernels do not fit
    the default limits gets no section (a warning says why). ``options["webgpu_adapter"]``: the
    adapter class the kernels are tuned for (default ``"unknown"``)."""
    wgsl_files: dict[str, str] = {}
    lowered: dict = {}
    sections = {}
    adapter = options.get("webgpu_adapter", "unknown")
    _gpu_limits(adapter_class=adapter)          # an unknown class: ValueError before any signature
    for t in traced:
        for f16 in (True, False) if options.get("webgpu_f16") else (False,):
            files, new_weights = dict(wgsl_files), dict(weights)    # kept only if the signature compiles
            try:
                sections[t.name] = _emit_webgpu(t, variables, consts[t.name], files, new_weights, lowered,
                                                _gpu_limits(f16, adapter), stored)
            except (wgsl.BufferTooLarge, ValueError) as e:
                if f16:
                    warnings.warn(f"export: signature '{t.name}' is compiled without shader-f16: {e}")
                    continue
                warnings.warn(f"export: signature '{t.name}' has no WebGPU code: {e}")
                break
            wgsl_files.update(files)
            weights.update(new_weights)
            break
    return {p: src.encode() for src, p in wgsl_files.items()}, sections


register_exporter("webgpu", export_webgpu)
