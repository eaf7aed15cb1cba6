"""``webtensor.export``: traced signatures -> a portable artifact (``docs/artifact.md``, version 1)
that the npm package (``js/``) and :func:`webtensor.load` run on WebAssembly and WebGPU.

Each signature (``predict``, ``train_step``, or any traced function) is traced with
:class:`webtensor.function` (``Function.get_concrete(...).graph``: the optimised graph; its
``captures`` are the Variables it reads, its ``updates`` those it writes) and compiled with
``core.compile.compile_graph``. All Variables of all signatures become the artifact's
``variables`` (one storage place each, shared by every signature, so a ``train_step`` updates
exactly what ``predict`` reads). Then both backends are emitted from the same plan:

- WebAssembly: ONE module. Each distinct kernel is lowered once (``wasm.lower.lower``); one
  exported driver per signature calls the kernels in order with fixed byte addresses
  (``wasm.runtime.emit_call``): variables, then constants (active data segments; those of at
  least :data:`LARGE_CONSTANT_BYTES` are stored once, in weights.safetensors, and the section's
  ``"constants"`` tells the loader where to copy them), then each signature's region (inputs,
  outputs, staging, temporaries packed by ``plan_arena``, scratch; signatures run one at a time,
  so their regions overlap).
- WebGPU: per signature, each kernel's WGSL (``webgpu.wgsl.lower``, compiled for the WebGPU
  spec's default limits, so artifacts run on any adapter), buffers
  (temporaries shared by liveness as in the native runtime), bindings and dispatch sizes.

In-place updates. A kernel writes a variable's new value straight into the variable when no
later kernel (nor the kernel itself) reads the old value; otherwise it writes a temporary that is
copied over the variable after the last kernel (``memory.copy`` in WebAssembly; a copy dispatch,
``wgsl.copy_pass``, in WebGPU, where a kernel may not bind one buffer both read-only and
writable). Outputs that are not computed by a kernel of their own (an input, a constant, a
variable's old value, a value returned twice) are copies too.

Names of variables: model weights by their path (as ``save_weights``: ``dense/kernel``);
optimizer state ``optimizer/iterations``, ``optimizer/learning_rate``,
``optimizer/<slot>/<weight path>`` (``optimizer/momentum/dense/kernel``); any other Variable
(e.g. a Dropout layer's step counter) ``state/<variable name>``. ``Model.load_weights`` skips the
``optimizer/`` and ``state/`` entries, so weights saved by the JS runtime load into the model.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field
from math import prod

from .core.runtime import hostdata
from .artifact import DTYPES, FORMAT, FORMAT_VERSION   # what artifacts carry: docs/artifact.schema.json
from .core import compile as C
from .function import Function, function
from .tensor import Tensor, Variable, tensor

ALIGN = 64                              # bytes: WebAssembly addresses (SIMD loads want 16)
LARGE_CONSTANT_BYTES = 1024             # constants this large are stored once, in weights.safetensors


def _gpu_limits():
    """What WGSL is compiled for: the WebGPU spec's default limits (8 storage buffers per stage, 256
    invocations per workgroup, 16 KiB workgroup storage, 128 MiB bindings), which every adapter
    offers (browsers, Dawn, SwiftShader), not the limits of the exporting machine."""
    from .webgpu import wgsl
    return wgsl.Limits()


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


def _nbytes(shape) -> int:
    """Storage bytes on both backends: 4 per element for every dtype (bool as i32 0/1)."""
    return 4 * prod(shape)


def _spec(name: str, aval, what: str) -> dict:
    if aval.dtype.name not in DTYPES:
        raise ValueError(f"export: {what} '{name}' is {aval.dtype.name}; artifacts carry {', '.join(DTYPES)}")
    return {"name": name, "dtype": aval.dtype.name, "shape": [int(d) for d in aval.shape]}


# ---- signatures ---------------------------------------------------------------------------------

@dataclass
class _Traced:
    name: str
    graph: object
    device: object
    inputs: list[dict]
    outputs: list[dict]
    prog: C.Program = None
    var_of: dict[int, int] = field(default_factory=dict)   # capture buffer id -> variable index
    plan: "_Plan" = None


def _is_model(x) -> bool:
    from .nn.model import Model
    return isinstance(x, Model)


def _train_step_function(model):
    """The model's own ``train_step`` when a subclass overrides it; else forward, ``compute_loss``,
    ``GradientTape`` backward and ``optimizer.apply_gradients`` (Model.train_step without metrics)."""
    from .nn.model import Model
    from .tape import GradientTape
    if type(model).train_step is not Model.train_step:
        return model.train_step

    def train_step(x, y):
        with GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x, y, y_pred)
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
    return train_step


def _split_example(model, example_inputs, n: int):
    """A several-input model's ``example_inputs`` as ``(x, y)``: ``x`` is a list of ``n`` arrays in input
    order or a dict keyed by input name, or ``(x,)`` / ``(x, y)`` with such an ``x``."""
    from .nn.model import _holds_arrays
    ex = example_inputs
    if isinstance(ex, dict):
        return ex, None
    if isinstance(ex, (tuple, list)):
        if len(ex) == n and not any(isinstance(v, dict) or (isinstance(v, (list, tuple)) and _holds_arrays(v))
                                    for v in ex):
            return list(ex), None
        if 1 <= len(ex) <= 2 and isinstance(ex[0], (tuple, list, dict)):
            return ex[0], (ex[1] if len(ex) > 1 else None)
    raise ValueError(f"export: model {model.name!r} takes {n} inputs {tuple(model.input_names)}: its example_inputs "
                     f"are x (a list of {n} arrays in that order, or a dict keyed by those names) or (x, y)")


def _check_names(names, what):
    """Signature input names must be schema names (docs/artifact.schema.json) and distinct."""
    import re
    for n in names:
        if not isinstance(n, str) or not 0 < len(n) <= 256 or n.startswith("__") or not re.fullmatch(r"[ -~]+", n):
            raise ValueError(f"export: {what} name {n!r} cannot name an artifact input (printable ASCII, at most 256 "
                             "characters, not starting with '__'); rename the Input")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"export: {what} names {dup} twice; inputs of a signature need distinct names "
                         "(rename the Inputs)")


def _model_specs(model, example_inputs, signatures, batch_size):
    """``{name: (fn, args, input names, output names)}`` for a Keras-style model.

    A model with one input takes ``x`` (signature inputs ``x``, and ``y`` for ``train_step``); a
    functional model with several takes one signature input per Input, named by
    ``model.input_names`` and ordered as ``model.inputs``."""
    from .creation import zeros
    from .nn.model import _holds_arrays
    from .tree import flatten, unflatten
    dev = model.variables[0].device if model.built and model.variables else None
    put = (lambda t: (t if dev is None else t.to(dev)) if isinstance(t, Tensor) else tensor(t, device=dev))

    def put_nest(v):
        leaves: list = []
        struct = flatten(v, leaves)
        return unflatten(struct, iter([put(t) for t in leaves]))
    ins = model.__dict__.get("_inputs")          # a functional model's Inputs
    multi = ins is not None and len(ins) > 1
    if example_inputs is None:
        if multi:
            x = [zeros((int(batch_size or kt._batch_size or 1),) + tuple(kt.shape[1:]), kt.dtype, device=dev)
                 for kt in ins]
            y = None
        else:
            shape = model._build_shape
            if shape is None:
                raise ValueError(f"export: model {model.name!r} is not built; build it (call it on a batch or start "
                                 "a Sequential with Input(shape)) or pass example_inputs")
            x, y = zeros((int(batch_size or shape[0] or 1),) + tuple(shape[1:]), device=dev), None
    elif multi:
        x, y = _split_example(model, example_inputs, len(ins))
    elif isinstance(example_inputs, (tuple, list)):
        if not 1 <= len(example_inputs) <= 2:
            raise ValueError("export: a model's example_inputs are x or (x, y)")
        x, y = example_inputs[0], (example_inputs[1] if len(example_inputs) > 1 else None)
    else:
        x, y = example_inputs, None
    if multi:
        leaves = [put(v if isinstance(v, Tensor) else tensor(v, dtype=kt.dtype))
                  for v, kt in zip(model._flat_inputs(x), ins)]
        x, in_names = unflatten(model._in_struct, iter(leaves)), list(model.input_names)
        x0 = leaves[0]
    elif model._n_inputs() is None and (isinstance(x, dict) or (isinstance(x, (list, tuple)) and _holds_arrays(x))):
        # a subclassed model called on several tensors (Keras: a tuple or a dict): one input per leaf
        x = put_nest(x if isinstance(x, dict) else tuple(x))
        leaves: list = []
        struct = flatten(x, leaves)
        keys = struct[1] if struct[0] == "dict" and all(c is None for c in struct[2]) else None
        in_names = [str(k) for k in keys] if keys else [f"x_{i}" for i in range(len(leaves))]
        x0 = leaves[0]
    else:
        x, in_names = put(x), ["x"]
        x0 = x
    model._ensure_built(x)
    compiled = model.optimizer is not None and model.loss is not None
    names = list(signatures) if signatures is not None else ["predict"] + (["train_step"] if compiled else [])
    specs = {}
    for name in names:
        if name == "predict":
            _check_names(in_names, f"model {model.name!r} input")
            specs[name] = (function(model.predict_step, name=f"{model.name}_predict"), (x,), in_names, None)
        elif name == "train_step":
            if not compiled:
                raise ValueError("export: train_step needs a compiled model (model.compile(optimizer, loss))")
            model.optimizer.build(model.trainable_variables)
            if y is None:
                out = function(model.predict_step).get_concrete(x).graph.outputs[0].aval
                sparse = "sparse" in (getattr(model.loss, "name", "") or type(model.loss).__name__).lower()
                y = zeros((x0.shape[0],), "int32", device=dev) if sparse else zeros(out.shape, out.dtype, device=dev)
            y = put_nest(y)
            y_leaves: list = []
            flatten(y, y_leaves)
            y_names = ["y"] if len(y_leaves) == 1 else [f"y_{i}" for i in range(len(y_leaves))]
            _check_names(in_names + y_names, f"model {model.name!r} train_step input")
            specs[name] = (function(_train_step_function(model), name=f"{model.name}_train_step"), (x, y),
                           in_names + y_names, ["loss"])
        else:
            raise ValueError(f"export: unknown model signature {name!r}; models export 'predict' and 'train_step' "
                             "(pass signatures={'name': (fn, example_inputs)} for others)")
    return specs


def _fn_specs(signatures):
    specs = {}
    for name, value in signatures.items():
        try:
            fn, args = value
        except (TypeError, ValueError):
            raise TypeError(f"export: signatures[{name!r}] must be (function, example_inputs)") from None
        args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
        pyfn = fn.python_function if isinstance(fn, Function) else fn
        try:
            params = [p.name for p in inspect.signature(pyfn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        names = params[:len(args)] if len(params) >= len(args) else None
        specs[name] = (fn if isinstance(fn, Function) else function(fn, name=name), args, names, None)
    return specs


def _trace(name, fn: Function, args, in_names, out_names) -> _Traced:
    c = fn.get_concrete(*args)
    g = c.graph
    dev = c.exe.device
    if in_names is None or len(in_names) != len(g.inputs):
        in_names = [f"input_{i}" for i in range(len(g.inputs))]
    if out_names is None or len(out_names) != len(g.outputs):
        out_names = [f"output_{i}" for i in range(len(g.outputs))]
    inputs = [_spec(n, v.aval, f"signature '{name}' input") for n, v in zip(in_names, g.inputs)]
    outputs = [_spec(n, v.aval, f"signature '{name}' output") for n, v in zip(out_names, g.outputs)]
    return _Traced(name, g, dev, inputs, outputs)


# ---- variables ----------------------------------------------------------------------------------

def _variable_names(model, optimizer) -> dict[int, str]:
    """``{id(variable): name}`` for the model's weights and its optimizer's state (module docstring)."""
    names: dict[int, str] = {}
    if model is not None:
        from .nn.saving import weight_paths
        for path, v in weight_paths(model).items():
            names[id(v)] = path
    if optimizer is not None:
        for attr, n in (("_iterations", "iterations"), ("_lr_var", "learning_rate")):
            v = getattr(optimizer, attr, None)
            if v is not None:
                names[id(v)] = f"optimizer/{n}"
        for owner in getattr(optimizer, "_slot_owners", []):
            for slot, v in optimizer._slots[id(owner)].items():
                names[id(v)] = f"optimizer/{slot}/{names.get(id(owner), owner.name)}"
    return names


def _collect_variables(traced: list[_Traced], model, optimizer):
    """The artifact's variables (model weights first, then the others in order of first use) as
    ``(manifest entries, Variables)``; sets each signature's ``var_of`` after compiling it."""
    known = _variable_names(model, optimizer)
    order: list[Variable] = []
    seen: set[int] = set()

    def add(v):
        if id(v) not in seen:
            seen.add(id(v))
            order.append(v)
    if model is not None:
        from .nn.saving import weight_paths
        for v in weight_paths(model).values():
            add(v)
    for t in traced:
        for _, v in t.graph.captures:
            add(v)
    entries, used = [], set()
    for v in order:
        name = known.get(id(v)) or f"state/{v.name}"
        base, k = name, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        entries.append({**_spec(name, v._aval, "variable"), "trainable": bool(v.trainable)})
    return entries, order


# ---- the plan: where each buffer lives, which copies run before and after the kernels ------------

@dataclass
class _Plan:
    """``loc(b)``: ``('input', i)``, ``('var', v)``, ``('const', b)``, ``('output', k)``, ``('temp', b)`` or
    ``('stage', v)``; ``pre``/``post``: ``(src loc, dst loc, bytes)`` copies before/after the kernels."""
    locs: dict
    pre: list
    post: list
    stage: list          # variables whose old value is staged (read after they are updated)
    reads: list
    writes: list


def _plan(prog: C.Program, var_of: dict[int, int], update_vars: list[int]) -> _Plan:
    role = lambda b: prog.bufs[b].role
    nb = lambda b: _nbytes(prog.bufs[b].shape)
    locs = {b: ("input", i) for i, b in enumerate(prog.inputs)}
    locs.update({b: ("var", v) for b, v in var_of.items()})
    locs.update({b: ("const", b) for b in prog.consts})
    cap_of = {v: b for b, v in var_of.items()}
    producer = {s.output: i for i, s in enumerate(prog.steps)}
    last_read: dict[int, int] = {}
    for i, s in enumerate(prog.steps):
        for b in s.inputs:
            last_read[b] = i
    dest: dict[int, tuple] = {}
    pre, post, stage, writes = [], [], [], []     # post sources: a buffer id (resolved below) or a loc
    for b, v in zip(prog.updates, update_vars):
        if var_of.get(b) == v:
            continue                                   # assigned its own old value: nothing to do
        writes.append(v)
        if role(b) == "temp":
            if b not in dest and last_read.get(cap_of.get(v), -1) < producer[b]:
                dest[b] = ("var", v)                   # in place: nothing reads the old value later
            else:
                post.append((b, ("var", v), nb(b)))
        elif role(b) == "capture":                     # another variable's old value: stage it first
            u = var_of[b]
            if u not in stage:
                stage.append(u)
                pre.append((("var", u), ("stage", u), nb(b)))
            post.append((("stage", u), ("var", v), nb(b)))
        else:                                          # an input or a constant
            post.append((b, ("var", v), nb(b)))
    for k, b in enumerate(prog.outputs):
        if role(b) == "temp" and b not in dest:
            dest[b] = ("output", k)
        elif role(b) == "temp":
            post.append((b, ("output", k), nb(b)))
        else:                                          # input, constant or a variable's old value
            pre.append((locs[b], ("output", k), nb(b)))
    for b in prog.bufs:
        if b.role == "temp":
            locs[b.id] = dest.get(b.id, ("temp", b.id))
    post = [(locs[src] if isinstance(src, int) else src, dst, n) for src, dst, n in post]
    read = {b for s in prog.steps for b in s.inputs}
    reads = {v for b, v in var_of.items() if b in read} | {src[1] for src, _, _ in pre if src[0] == "var"}
    return _Plan(locs, pre, post, stage, sorted(reads), sorted(set(writes)))


# ---- constants --------------------------------------------------------------------------------

def _const_bytes(t: _Traced) -> dict[int, bytes]:
    """Storage bytes of each constant the signature's kernels or copies read."""
    from .core.op import Aval
    used = {b for s in t.prog.steps for b in s.inputs} | {src[1] for src, _, _ in t.plan.pre if src[0] == "const"}
    out = {}
    for b, data in t.prog.consts.items():
        if b in used:
            buf = t.prog.bufs[b]
            host = t.device.to_host_bytes(data, Aval(tuple(buf.shape), buf.dtype))
            out[b] = bytes(hostdata.to_storage(host, buf.dtype, buf.dtype.wasm))   # f32, or i32 for int/bool
    return out


# ---- WebAssembly ------------------------------------------------------------------------------

def _stored_constants(traced: list[_Traced], consts: dict[str, dict[int, bytes]], weights: dict) -> dict[bytes, str]:
    """Large constants (at least :data:`LARGE_CONSTANT_BYTES`) go into ``weights`` once, under the
    name WebGPU's ``const`` buffer of the first signature using them gets (``const/<signature>/<n>``);
    returns ``{storage bytes: weights name}``. WebAssembly then copies them into memory at load
    (the wasm section's ``"constants"``) instead of carrying them as data segments, and WebGPU reads
    them from that one tensor (a traced function that captures large tensors no longer writes them
    twice). Smaller constants stay data segments and per-signature tensors, as before."""
    names: dict[bytes, str] = {}
    for t in traced:
        for j, (b, data) in enumerate(sorted(consts[t.name].items())):
            if len(data) >= LARGE_CONSTANT_BYTES and data not in names:
                names[data] = name = f"const/{t.name}/{j}"
                dt = t.prog.bufs[b].dtype
                weights[name] = ("float32" if dt.wasm == "f32" else "int32", tuple(t.prog.bufs[b].shape), data)
    return names


def _emit_wasm(traced: list[_Traced], variables: list[dict], consts: dict[str, dict[int, bytes]], fma: bool,
               stored: dict[bytes, str] | None = None):
    """One module for every signature; returns (module bytes, {signature: its "wasm" section}).
    Constants named in ``stored`` are not data segments: each section's ``"constants"`` maps their
    addresses to their tensors in weights.safetensors, which the loader copies there."""
    stored = stored or {}
    from dataclasses import replace

    from .wasm.binary import Module
    from .wasm.lower import lower
    from .wasm.runtime import emit_call

    m = Module()
    lowered: dict = {}
    for t in traced:
        for s in t.prog.steps:
            if s.kernel not in lowered:
                lowered[s.kernel] = lower(m, s.kernel, f"k{len(lowered)}", fma=fma)
    top = ALIGN                                  # address 0 stays unused
    var_addr: dict[int, int] = {}
    for v in sorted({v for t in traced for v in t.plan.reads + t.plan.writes}):
        var_addr[v] = top
        top = _align(top + max(_nbytes(variables[v]["shape"]), 1))
    const_addr: dict[tuple[str, int], int] = {}
    by_bytes: dict[bytes, int] = {}
    for t in traced:
        for b, data in consts[t.name].items():
            if data not in by_bytes:
                by_bytes[data] = top
                if data and data not in stored:
                    m.data(top, data)
                top = _align(top + max(len(data), 1))
            const_addr[(t.name, b)] = by_bytes[data]
    base = top
    sections = {}
    for n_sig, t in enumerate(traced):
        prog, plan = t.prog, t.plan
        at = base

        def take(nbytes):
            nonlocal at
            a, at = at, _align(at + max(nbytes, 1))
            return a
        inputs = [take(_nbytes(s["shape"])) for s in t.inputs]
        outputs = [take(_nbytes(s["shape"])) for s in t.outputs]
        stage = {v: take(_nbytes(variables[v]["shape"])) for v in plan.stage}
        in_arena = C.Program(bufs=[b if plan.locs.get(b.id, ("temp",))[0] == "temp" or b.role != "temp"
                                   else replace(b, role="placed") for b in prog.bufs], steps=prog.steps)
        offsets, arena = C.plan_arena(in_arena, ALIGN)
        arena_at = take(arena)
        scratch_at = take(max((lowered[s.kernel].scratch for s in prog.steps), default=0))

        def addr(loc):
            kind, key = loc
            return {"input": lambda: inputs[key], "output": lambda: outputs[key], "var": lambda: var_addr[key],
                    "const": lambda: const_addr[(t.name, key)], "stage": lambda: stage[key],
                    "temp": lambda: arena_at + offsets[key]}[kind]()

        f = m.function(f"driver{n_sig}", export=t.name)

        def copy(src, dst, n):
            if n:
                f.i32_const(addr(dst)).i32_const(addr(src)).i32_const(n).memory_copy()
        for c in plan.pre:
            copy(*c)
        for s in prog.steps:
            emit_call(f, lowered[s.kernel], [addr(plan.locs[b]) for b in [s.output] + s.inputs], scratch_at)
        for c in plan.post:
            copy(*c)
        f.finish()
        sections[t.name] = {"driver": t.name, "memory_bytes": at, "inputs": inputs, "outputs": outputs,
                            "variables": {str(v): var_addr[v] for v in sorted(set(plan.reads + plan.writes))}}
        copied = {str(by_bytes[data]): stored[data] for data in consts[t.name].values() if data in stored}
        if copied:
            sections[t.name]["constants"] = dict(sorted(copied.items(), key=lambda kv: int(kv[0])))
    pages = max(1, -(-max(s["memory_bytes"] for s in sections.values()) // 65536))
    m.import_memory("env", "memory", pages)
    return m.emit(), sections


# ---- WebGPU -----------------------------------------------------------------------------------

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
    stored = stored or {}
    from .webgpu import wgsl
    from .webgpu.runtime import _plan as share_by_liveness

    prog, plan = t.prog, t.plan
    for s in prog.steps:
        if s.kernel not in lowered:
            lowered[s.kernel] = wgsl.lower(s.kernel, limits)
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
    for j, (b, data) in enumerate(sorted(consts.items())):
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
    items = [(("temp", b.id), _nbytes(b.shape), b.first, b.last) for b in prog.bufs
             if plan.locs.get(b.id) == ("temp", b.id)]
    for i, s in enumerate(prog.steps):
        items += [(("scratch", i, name), size, i, i) for name, size in lowered[s.kernel].scratch]
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
                        "dispatch": list(p.workgroups)})

    def copy(src: int, dst: int, nbytes: int, dst_word: int | None = None):
        """``dst_word=None``: all of ``dst``, a buffer of exactly ``nbytes`` (one shader for every size)."""
        if nbytes:
            dispatch(wgsl.copy_pass(nbytes // 4, dst_word, limits), {"src": src, "dst": dst}.__getitem__, "copy")
    for src, dst, n in plan.pre:
        copy(where(src), where(dst), n)
    for i, s in enumerate(prog.steps):
        low = lowered[s.kernel]

        def resolve(name, s=s, i=i):
            if name == "result":
                return where(plan.locs[s.output])
            if name.startswith("in"):
                return where(plan.locs[s.inputs[int(name[2:])]])
            return where(("scratch", i, name))
        for k, word in low.packed:
            copy(resolve(f"in{k}"), resolve("packed"), _nbytes(s.kernel.inputs[k].shape), word)
        for p in low.passes:
            dispatch(p, resolve, f"kernel {i}")
    for src, dst, n in plan.post:
        copy(where(src), where(dst), n)
    return {"buffers": buffers, "kernels": kernels,
            "required_limits": _required_limits(buffers, kernels, passes, limits)}


# ---- export -----------------------------------------------------------------------------------

def export(fn_or_model, example_inputs=None, path=None, signatures=None, *, batch_size: int | None = None,
           backends=("wasm", "webgpu"), wasm_fma: bool = False) -> dict:
    """Trace, compile and write an artifact (``docs/artifact.md``) to the directory ``path``.

    Args:
        fn_or_model: a ``webtensor.nn.Model`` or a function (or ``webtensor.function``), or None
            when ``signatures`` gives every signature as ``(fn, example_inputs)``.
        example_inputs: a model's ``x`` or ``(x, y)`` (arrays or Tensors; ``y`` defaults to zeros of
            the loss's target: int32 ``(batch,)`` for a sparse loss, else like the output); for a
            functional model with several inputs ``x`` is a list of arrays in input order or a dict
            keyed by input name (Keras 3), so ``[a, b, c]``, ``{'a': a, ...}`` or ``([a, b, c], y)``;
            for a function, its arguments (a tuple; Tensors are inputs, other values are baked in).
        path: the artifact directory (created; files in it are overwritten).
        signatures: for a model, the names to export (default ``['predict', 'train_step']``,
            ``train_step`` only when compiled); for any ``{name: (fn, example_inputs)}``.
        batch_size: for a model without ``example_inputs``: the batch size of the signatures
            (default: the one it was built with); the other dimensions come from its ``Input`` shapes.
        backends: which code to carry (``'wasm'``, ``'webgpu'``).
        wasm_fma: emit relaxed-SIMD fused multiply-adds (``wasm.lower``'s ``fma``). Off by default:
            relaxed SIMD needs a flag in Node 20 and is missing in some browsers, and its results
            may differ between engines in the last bit.

    Returns the manifest (a dict). Signature inputs/outputs are named ``x``, ``y``, ``loss``,
    ``output_<k>`` for models (a functional model with several inputs: one input per ``Input``, named
    by ``model.input_names``, then ``y``), the parameter names for functions. Variables: see the module
    docstring. Shapes are fixed: the batch size is part of each signature.

    Raises:
        ValueError: a dtype an artifact cannot carry (float16), an unknown signature, a model that is
            not built or compiled for what is asked, example inputs that do not fit the model's inputs,
            input names an artifact cannot carry (non-ASCII, or two alike). TypeError: malformed ``signatures``.

    Needs no numpy (runs in Pyodide as is); compiling the WGSL of a model on a GPU device still
    needs that device.
    """
    from . import __version__, safetensors_io
    if path is None:
        raise TypeError("export: path (the artifact directory) is required")
    model = fn_or_model if fn_or_model is not None and _is_model(fn_or_model) else None
    if model is not None:
        if isinstance(signatures, dict) and all(isinstance(v, tuple) for v in signatures.values()):
            specs = _fn_specs(signatures)
        else:
            specs = _model_specs(model, example_inputs, signatures, batch_size)
    elif isinstance(signatures, dict):
        specs = _fn_specs(signatures)
    elif fn_or_model is not None:
        args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        specs = _fn_specs({"predict": (fn_or_model, tuple(args))})
    else:
        raise TypeError("export: pass a model, a function and its example_inputs, or signatures={name: (fn, args)}")

    traced = [_trace(name, *spec) for name, spec in specs.items()]
    optimizer = getattr(model, "optimizer", None) if model is not None else None
    variables, order = _collect_variables(traced, model, optimizer)
    index = {id(v): i for i, v in enumerate(order)}
    for t in traced:
        t.prog = C.compile_graph(t.graph)
        t.var_of = {b: index[id(var)] for b, (_, var) in zip(t.prog.captures, t.graph.captures)}
        t.plan = _plan(t.prog, t.var_of, [index[id(var)] for var, _ in t.graph.updates])
    consts = {t.name: _const_bytes(t) for t in traced}

    files: dict[str, bytes] = {}
    weights: dict = {}
    for spec, v in zip(variables, order):
        weights[spec["name"]] = (spec["dtype"], tuple(spec["shape"]), bytes(v._host_bytes()))   # the host layout is safetensors' layout
    sigs = {t.name: {"inputs": t.inputs, "outputs": t.outputs, "reads": t.plan.reads, "writes": t.plan.writes}
            for t in traced}
    stored = _stored_constants(traced, consts, weights)
    if "wasm" in backends:
        files["module.wasm"], sections = _emit_wasm(traced, variables, consts, wasm_fma, stored)
        for name, sec in sections.items():
            sigs[name]["wasm"] = sec
    if "webgpu" in backends:
        import warnings
        from .webgpu import wgsl
        wgsl_files: dict[str, str] = {}
        lowered: dict = {}
        for t in traced:
            try:
                sigs[t.name]["webgpu"] = _emit_webgpu(t, variables, consts[t.name], wgsl_files, weights, lowered,
                                                      _gpu_limits(), stored)
            except (wgsl.BufferTooLarge, ValueError) as e:
                warnings.warn(f"export: signature '{t.name}' has no WebGPU code: {e}")
        files.update({p: src.encode() for src, p in wgsl_files.items()})
    files["weights.safetensors"] = safetensors_io.save(
        weights, {"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "webtensor_version": __version__,
        "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in sorted(files.items())},
        "variables": variables, "signatures": sigs,
    }
    path = os.fspath(path)
    for name, data in files.items():
        full = os.path.join(path, *name.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest

