"""``webtensor.export``: traced signatures -> a portable artifact (``docs/artifact.md``, version 1,
or 2 with a symbolic batch) that the npm package (``js/``) and :func:`webtensor.load` run on
WebAssembly and WebGPU.

Each signature (``predict``, ``train_step``, or any traced function) is traced with
:class:`webtensor.function` (``Function.get_concrete(...).graph``: the optimised graph; its
``captures`` are the Variables it reads, its ``updates`` those it writes) and compiled with
``core.compile.compile_graph``. All Variables of all signatures become the artifact's
``variables`` (one storage place each, shared by every signature, so a ``train_step`` updates
exactly what ``predict`` reads). Each signature gets one buffer plan
(``core.runtime.artifacts.plan_signature``), and every backend asked for emits its files and
manifest sections from it through its registered exporter (``wasm/export.py``,
``webgpu/export.py``; ``core.runtime.artifacts.register_exporter``): this module knows no
backend's code. Constants of at least :data:`LARGE_CONSTANT_BYTES` are stored once, in
weights.safetensors.

In-place updates. A kernel writes a variable's new value straight into the variable when no
later kernel (nor the kernel itself) reads the old value; otherwise it writes a temporary that is
copied over the variable after the last kernel. Outputs that are not computed by a kernel of their
own (an input, a constant, a variable's old value, a value returned twice) are copies too.

Names of variables: model weights by their path (as ``save_weights``: ``dense/kernel``);
optimizer state ``optimizer/iterations``, ``optimizer/learning_rate``,
``optimizer/<slot>/<weight path>`` (``optimizer/momentum/dense/kernel``); any other Variable
(e.g. a Dropout layer's step counter) ``state/<variable name>``. ``Model.load_weights`` skips the
``optimizer/`` and ``state/`` entries, so weights saved by the JS runtime load into the model.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from . import __version__, compact, safetensors_io
from .artifact import DTYPES, FORMAT, FORMAT_VERSION   # what artifacts carry: docs/artifact.schema.json
from .core import compile as C
from .core.control import has_control
from .core.op import Aval
from .core.runtime import hostdata
from .core.runtime.artifacts import Plan, exporter, plan_signature
from .export_control import Split
from .export_batch import batch_rows
from .export_length import length_section
from .function import Function, function
from .core.symbolic import independent_rows
from .function import _BATCH, Function, function
from .creation import zeros
from .tensor import Tensor, Variable
from .tensor_spec import TensorSpec

LARGE_CONSTANT_BYTES = 1024             # constants this large are stored once, in weights.safetensors


def _spec(name: str, aval, what: str) -> dict:
    if aval.dtype.name not in DTYPES:
        raise ValueError(f"export: {what} '{name}' is {aval.dtype.name}; artifacts carry {', '.join(DTYPES)}")
    return {"name": name, "dtype": aval.dtype.name, "shape": [int(d) for d in aval.shape]}


# ---- signatures ---------------------------------------------------------------------------------

@runtime_checkable
class ExportableModel(Protocol):
    """What :func:`export` needs of a model (``webtensor.nn.Model`` implements it), so that this
    module imports nothing of ``nn``: ``_export_signatures(example_inputs, signatures, batch_size,
    rows_train_step)`` gives ``{name: (function, args, input names, output names)}`` (names may be
    None: generated; with ``rows_train_step`` the train step's function has ``row_losses`` and its
    last argument is the row count: :func:`_rows_section`),
    ``_export_weight_paths()`` ``{weight path: Variable}`` in the order the artifact lists them, and
    ``optimizer`` (or None) whose state is exported too."""

    def _export_signatures(self, example_inputs, signatures, batch_size, rows_train_step=False) -> dict: ...

    def _export_weight_paths(self) -> dict: ...


@dataclass
class _Traced:
    name: str
    graph: object
    device: object
    inputs: list[dict]
    outputs: list[dict]
    prog: C.Program = None
    var_of: dict[int, int] = field(default_factory=dict)   # capture buffer id -> variable index
    plan: Plan = None
    split: Split = None                                     # a signature with control flow: its pieces
    rows: tuple = None          # a symbolic batch: (chunk, chunk + 1, its program for chunk + 1 rows)
    pieces: list = field(default_factory=list)              # ... as _Traced units the backends export
    length: dict = None         # a symbolic length: its "length" section (docs/artifact.md, "Symbolic length")
    length_loops: set = field(default_factory=set)          # ... and the while nodes that step over it


def _check_names(names, what):
    """Signature input names must be schema names (docs/artifact.schema.json) and distinct."""
    for n in names:
        if not isinstance(n, str) or not 0 < len(n) <= 256 or n.startswith("__") or not re.fullmatch(r"[ -~]+", n):
            raise ValueError(f"export: {what} name {n!r} cannot name an artifact input (printable ASCII, at most 256 "
                             "characters, not starting with '__'); rename the Input")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"export: {what} names {dup} twice; inputs of a signature need distinct names "
                         "(rename the Inputs)")


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


# ---- control flow (export_control.py; docs/artifact.md, "Control flow") --------------------------

def _units(traced: list[_Traced], weights_dtype: str) -> list[_Traced]:
    """The signatures without control flow, and the pieces of those with it (each a ``_Traced`` named
    ``<signature>__<k>``, its inputs and outputs named ``v<value id>``)."""
    names = {t.name for t in traced}
    units = []
    for t in traced:
        if not has_control(t.graph):
            units.append(t)
            continue
        if weights_dtype == "int8":
            raise NotImplementedError(f"export: signature {t.name!r} holds control flow (cond, while_loop, scan), "
                                      "which weights_dtype='int8' does not rewrite yet; use 'float32' or 'float16'")
        t.split = Split(t.graph, t.device, t.length_loops)
        spec = lambda i: _spec(f"v{i}", t.split.values[i], f"signature '{t.name}' control value")
        for k, (g, ins, outs) in enumerate(t.split.pieces):
            name = f"{t.name}__{k}"
            if name in names:
                raise ValueError(f"export: signature {name!r} has the name of a piece of signature {t.name!r}'s "
                                 "control flow; rename it")
            t.pieces.append(_Traced(name, g, t.device, [spec(i) for i in ins], [spec(i) for i in outs]))
        units += t.pieces
    return units


def _control_signature(t: _Traced, index: dict) -> dict:
    """The manifest entry of a signature with control flow, without its pieces' backend sections."""
    s = t.split
    reads = sorted({v for p in t.pieces for v in p.plan.reads})
    updates = [[index[id(var)], i] for var, i in s.updates]
    pieces = [{"inputs": ins, "outputs": outs, **({"reads": p.plan.reads} if p.plan.reads else {})}
              for p, (_, ins, outs) in zip(t.pieces, s.pieces)]
    control = {"values": [{"dtype": a.dtype.name, "shape": [int(d) for d in a.shape]} for a in s.values],
               "pieces": pieces, "programs": s.programs, **({"updates": updates} if updates else {})}
    return {"inputs": t.inputs, "outputs": t.outputs, "reads": reads,
            "writes": sorted({v for v, _ in updates}), "control": control}


def _control_sections(control: dict, t: _Traced, backend: str, sections: dict) -> None:
    """Each piece's section of ``backend``; none at all when a piece has none (that backend then
    cannot run the signature: the exporter warned why)."""
    if all(p.name in sections for p in t.pieces):
        for entry, p in zip(control["pieces"], t.pieces):
            entry[backend] = sections[p.name]
# ---- symbolic batch (format version 2) ------------------------------------------------------------

def _batch_section(name: str, fn: Function, args, maximum: int | None, required: bool) -> tuple | None:
    """The signature's ``"batch"`` section (docs/artifact.md, "Symbolic batch") when its rows are
    provably independent: ``fn`` traced once more with axis 0 of every input a symbol (as ``fit``'s
    steps), and :func:`~webtensor.core.symbolic.independent_rows` finds no op that mixes rows, and
    every input and output has that symbol as axis 0. Loaders then run any batch as chunks of
    ``chunk`` rows (the traced size), padding the last: exact by construction. None otherwise, or a
    ValueError naming the reason when ``required``. Returns the section and the graph for one more
    row (:func:`_one_more_row`)."""
    f = Function(fn.python_function, fn.name)
    f._symbolic_batch = True
    c = f._concrete(*f._signature(tuple(args), {}), count=False)
    g = c.raw_graph
    reason = None if f._symbolic_batch else "it needs concrete sizes (it reads a batch size in Python)"
    if reason is None and not g.inputs:
        reason = "it has no inputs"
    if reason is None:
        for what, vs in (("input", g.inputs), ("output", g.outputs)):
            for i, v in enumerate(vs):
                if not v.aval.shape or v.aval.shape[0] != _BATCH:
                    reason = reason or f"{what} {i} (shape {list(v.aval.shape)}) has not the batch as axis 0"
    chunk = int(f._signature(tuple(args), {})[3][0].shape[0]) if reason is None else 0     # the traced rows
    if reason is None and has_control(g):      # loops carry rows (an RNN's state): proved on two traces
        try:
            a, more = f.get_concrete(*args), _one_more_row(f, args, chunk)
        except Exception as e:      # noqa: BLE001  (a size its ops refuse: not a batch it can take)
            a, more, reason = None, None, f"it does not trace at {chunk + 1} rows ({type(e).__name__}: {e})"
        if reason is None:
            reason = "an argument is not one array" if more is None else batch_rows(a.graph, more, chunk, a.exe.device)
    elif reason is None:
        reason = independent_rows(g, "batch")
    if reason is not None:
        if required:
            raise ValueError(f"export: signature {name!r} cannot take any batch size: {reason}. Its rows are not "
                             "independent, so it keeps the traced batch size (symbolic_batch=False)")
        return None
    sec = {"chunk": chunk}
    if maximum is not None:
        sec["maximum"] = maximum
    return sec, None if has_control(g) else _one_more_row(f, args, chunk)


def _rows_section(name: str, fn: Function, args, maximum: int | None) -> dict:
    """The ``"batch"`` section of a train step that takes any batch up to its chunk (docs/artifact.md,
    "Symbolic batch: train steps"): ``fn(*inputs, row_count)`` is traced at ``chunk`` rows and
    averages its loss over the first ``row_count`` rows only; loaders pad the others. Exact only when
    each row's loss depends on its own row alone, so ``fn.row_losses`` (the per-example losses of the
    forward pass) is traced with a symbolic batch and must pass
    :func:`~webtensor.core.symbolic.independent_rows` (its state updates aside: a step counter is
    per step, and an update that depends on rows needs an op that reduces over them, which fails).
    Raises ValueError naming the op that mixes rows (BatchNormalization in training mode, ...)."""
    f = Function(fn.row_losses, f"{name}_row_losses")
    f._symbolic_batch = True
    c = f._concrete(*f._signature(tuple(args[:-1]), {}), count=False)
    reason = None if f._symbolic_batch else \
        "it needs concrete sizes (it reads a batch size in Python or holds control flow)"
    if reason is None:
        g = copy.copy(c.raw_graph)
        g.updates = []
        reason = independent_rows(g, "batch", positions=True)     # padded at the end: rows keep their positions
    if reason is not None:
        raise ValueError(f"export: signature {name!r} cannot take any batch size: its forward pass and per-example "
                         f"loss mix rows ({reason}), so padding rows would change it; export with symbolic_batch=None "
                         "(a fixed batch)")
    chunk = int(args[-1].item() if hasattr(args[-1], "item") else args[-1])
    return {"chunk": chunk, "maximum": min(maximum or chunk, chunk)}


def _one_more_row(f: Function, args, chunk: int, rows_input: bool = False):
    """The signature's graph for ``chunk + 1`` rows (``f`` traced with a symbolic batch), or None
    when an argument is not one array. Backends compare its program with the chunk's to find the
    kernels whose loops run over the batch, which then take the number of rows at run time
    (docs/artifact.md, "Run-time rows"). ``rows_input``: a train step's last argument is its row
    count (a scalar, kept), docs/artifact.md "Symbolic batch: train steps"."""
    rows, kept = (args[:-1], list(args[-1:])) if rows_input else (args, [])
    if not all(len(getattr(a, "shape", ())) for a in rows):
        return None
    more = [zeros((chunk + 1,) + tuple(a.shape[1:]), a.dtype, device=a.device if isinstance(a, Tensor) else None)
            for a in rows]      # on the arguments' device (the default one may need numpy)
    return f.get_concrete(*more, *kept).graph


def _batch_by_traces(t: _Traced, fn: Function, args, maximum: int | None) -> dict:
    """The ``"batch"`` section of signature ``t``, which also has a symbolic length (docs/artifact.md,
    "Symbolic batch and length"): its rows proved independent by ``export_batch.batch_rows`` from
    its trace at ``chunk`` rows and one more at ``chunk + 1`` (both at the maximum length). Raises
    ValueError naming what mixes rows."""
    chunk = int(args[0].shape[0])
    more = [zeros((chunk + 1,) + tuple(a.shape[1:]), a.dtype) for a in args]
    reason = batch_rows(t.graph, fn.get_concrete(*more).graph, chunk, t.device)
    if reason is not None:
        raise ValueError(f"export: signature {t.name!r} cannot take any batch size: {reason}. Its rows are not "
                         "independent; give axis 0 of its input_signature a size")
    return {"chunk": chunk, **({"maximum": maximum} if maximum is not None else {})}


def _signature_inputs(input_signature, batch_size, max_length=None) -> tuple[tuple, bool, list | None]:
    """Zeros for ``input_signature`` (TensorSpecs), ``batch_size`` rows (default 32) for a None axis
    0 and ``max_length`` steps for a None past axis 0 (the length: one per input at most), whether
    any spec has a None axis 0, and each input's length axis (None when no spec has one). Raises
    TypeError (not TensorSpecs) or ValueError (a None past axis 0 without ``max_length``, two in one
    spec)."""
    if not isinstance(input_signature, (list, tuple)) or not all(isinstance(s, TensorSpec) for s in input_signature):
        raise TypeError(f"export: input_signature must be a list of webtensor.TensorSpec, got {input_signature!r}")
    args, batched, axes = [], False, []
    for i, spec in enumerate(input_signature):
        later = [a for a, d in enumerate(spec.shape) if d is None and a > 0]
        if later and max_length is None:
            raise ValueError(f"export: input_signature[{i}] is {spec}: a None past axis 0 is a length, which needs "
                             "max_length= (the largest length loaders accept; docs/artifact.md, \"Symbolic length\")")
        if len(later) > 1:
            raise ValueError(f"export: input_signature[{i}] is {spec}: at most one None past axis 0 (the length)")
        axes.append(later[0] if later else None)
        batched = batched or (bool(spec.shape) and spec.shape[0] is None)
        shape = tuple((int(batch_size or 32) if a == 0 else max_length) if d is None else d
                      for a, d in enumerate(spec.shape))
        args.append(zeros(shape, spec.dtype))
    return tuple(args), batched, (axes if any(a is not None for a in axes) else None)


def _length(t: _Traced, fn: Function, args, axes: list, maximum: int) -> None:
    """Prove that signature ``t`` takes any length up to ``maximum`` (``export_length.py``): trace
    it once more for ``maximum + 1`` steps and compare. Sets ``t.length``, ``t.length_loops``.
    Raises ValueError naming what refuses it."""
    more = [zeros(tuple(d + (ax == i) for i, d in enumerate(a.shape)), a.dtype) if ax is not None else a
            for a, ax in zip(args, axes)]
    other = fn.get_concrete(*more).graph
    try:
        t.length, t.length_loops = length_section(t.graph, other, maximum, axes, t.device)
    except ValueError as e:
        raise ValueError(f"export: signature {t.name!r}: {e}") from None


# ---- variables ----------------------------------------------------------------------------------

def _variable_names(model, optimizer, quantized=None) -> dict[int, str]:
    """``{id(variable): name}`` for the model's weights and its optimizer's state (module docstring);
    a weight quantized to int8 (``quantized``: ``compact.quantize_variables``) lends its path to its
    int8 words and ``<path>/scales`` to its scales."""
    names: dict[int, str] = {}
    if model is not None:
        for path, v in model._export_weight_paths().items():
            names[id(v)] = path
            if quantized and id(v) in quantized:
                q, s = quantized[id(v)][:2]
                names[id(q)], names[id(s)] = path, f"{path}/scales"
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:       # a LossScaleOptimizer: its inner optimizer's state, then the loss scale
        names = _variable_names(model, inner, quantized)
        for attr, n in (("_scale", "dynamic_scale"), ("_counter", "step_counter")):
            if getattr(optimizer, attr, None) is not None:
                names[id(getattr(optimizer, attr))] = f"optimizer/{n}"
        return names
    if optimizer is not None:
        for attr, n in (("_iterations", "iterations"), ("_lr_var", "learning_rate")):
            v = getattr(optimizer, attr, None)
            if v is not None:
                names[id(v)] = f"optimizer/{n}"
        for owner in getattr(optimizer, "_slot_owners", []):
            for slot, v in optimizer._slots[id(owner)].items():
                names[id(v)] = f"optimizer/{slot}/{names.get(id(owner), owner.name)}"
    return names


def _collect_variables(traced: list[_Traced], model, optimizer, quantized=None):
    """The artifact's variables (model weights first, then the others in order of first use) as
    ``(manifest entries, Variables)``; sets each signature's ``var_of`` after compiling it. A weight
    quantized to int8 is replaced by its int8 words and its scales, in its place."""
    quantized = quantized or {}
    known = _variable_names(model, optimizer, quantized)
    order: list[Variable] = []
    seen: set[int] = set()

    def add(v):
        if id(v) in quantized:
            for part in quantized[id(v)][:2]:
                add(part)
        elif id(v) not in seen:
            seen.add(id(v))
            order.append(v)
    if model is not None:
        for v in model._export_weight_paths().values():
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


# ---- constants --------------------------------------------------------------------------------

def _const_bytes(t: _Traced) -> dict[int, bytes]:
    """Storage bytes of each constant the signature's kernels or copies read."""
    used = {b for s in t.prog.steps for b in s.inputs} | {src[1] for src, _, _ in t.plan.pre if src[0] == "const"}
    out = {}
    for b, data in t.prog.consts.items():
        if b in used:
            buf = t.prog.bufs[b]
            host = t.device.to_host_bytes(data, Aval(tuple(buf.shape), buf.dtype))
            out[b] = bytes(hostdata.to_storage(host, buf.dtype, buf.dtype.wasm))   # f32, or i32 for int/bool
    return out


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


# ---- export -----------------------------------------------------------------------------------

def export(fn_or_model, example_inputs=None, path=None, signatures=None, *, batch_size: int | None = None,
           backends=("wasm", "webgpu"), wasm_fma: bool = False, webgpu_f16: bool = False,
           weights_dtype: str = "float32",
           wasm_threads: bool = False, symbolic_batch: bool | None = None, max_batch: int | None = None,
           input_signature=None, max_length: int | None = None, webgpu_adapter: str = "unknown",
           wasm_engine: str = "v8") -> dict:
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
            ``train_step`` only when compiled); for any ``{name: (fn, example_inputs)}``, where
            ``example_inputs`` may also be a list of :class:`~webtensor.TensorSpec` with a fixed
            axis 0 and at most one None past it (a length: see ``input_signature``).
        batch_size: for a model without ``example_inputs``: the batch size of the signatures
            (default: the one it was built with); the other dimensions come from its ``Input`` shapes.
        backends: which code to carry (``'wasm'``, ``'webgpu'``: the registered exporters).
        wasm_fma: also write ``module_relaxed.wasm``, the same drivers with relaxed-SIMD fused
            multiply-adds (``wasm.lower``'s ``fma``), which loaders run where the engine has relaxed
            SIMD (else ``module.wasm``). Off by default: Node 20 has relaxed SIMD only behind a flag,
            and the two modules' results differ in the last bits (docs/artifact.md, "Relaxed SIMD").
        webgpu_f16: compile the WebGPU kernels for adapters with ``shader-f16``: float16 values (a
            ``mixed_float16`` model's activations) are stored and computed as WGSL ``f16``, matmuls
            with f16 loads and f32 sums (docs/mixed_precision.md), and those kernels ``enable f16;``,
            so loaders request the feature and run the artifact on WebGPU only where the adapter has
            it (elsewhere: WebAssembly, or an ArtifactError for an explicit ``backend='webgpu'``).
            Off by default (the WGSL then runs on every adapter). A signature that float16 storage
            cannot carry (a float16 constant tensor, float16 rows zeroed under run-time rows, more
            float16 inputs than bindings) is compiled without it, with a warning.
        weights_dtype: how read-only model weights are stored (``webtensor.compact``, TensorFlow
            Lite's post-training quantization): ``'float32'`` (default), ``'float16'`` (half the
            bytes; widened to float32 when loaded) or ``'int8'`` (matmul/conv/attention weights
            quantized per output channel, ``scale = max|w| / 127``, read as int8 by the kernels;
            other weights float32). Inference only: a model then exports ``predict`` by default,
            and a signature that updates variables is refused.
        wasm_threads: also write ``module_threads.wasm`` (and ``module_relaxed_threads.wasm`` with
            ``wasm_fma``): the same drivers on a shared memory, large kernels split over threads
            (``wasm/threads.py``), which loaders run when asked for more than one thread; results
            are bitwise those of ``module.wasm`` (docs/artifact.md, "Threads").
        symbolic_batch: let signatures take any batch size (format version 2, docs/artifact.md
            "Symbolic batch"): None (default) for a model's ``predict`` when its rows are provably
            independent (no op mixes rows: not a ``train_step``, whose loss is a mean over the
            batch), True for every signature (a ValueError for one whose rows are not
            independent; a model's ``train_step`` then takes any batch up to ``batch_size``, its
            loss over the real rows only: docs/artifact.md "Symbolic batch: train steps", a
            ValueError naming the op when its forward pass mixes rows, e.g. BatchNormalization),
            False for none (fixed shapes, format version 1).
        max_batch: with a symbolic batch, the largest batch loaders accept (None: any; a train
            step's is at most its chunk).
        input_signature: for a function instead of ``example_inputs``: a list of
            :class:`~webtensor.TensorSpec`, None in axis 0 (the batch; compiled for chunks of
            ``batch_size`` rows, default 32, and taking any batch: ``symbolic_batch=True``), and/or
            past axis 0, one per spec, the *length* (a sequence's steps; needs ``max_length``; with
            a None axis 0 too, both: docs/artifact.md "Symbolic batch and length", the rows proved
            independent by ``export_batch.py``): the artifact then takes any length from 1 to ``max_length`` in that axis
            of every input that has one (docs/artifact.md, "Symbolic length"; a ValueError names the
            op when the function's steps are not independent: anything but elementwise work per
            step and loops, such as RNN layers' ``scan``, that step over the length).
        max_length: with a None past axis 0 in ``input_signature``, the largest length loaders accept
            (an int in [1, 2**20]; TensorFlow has no such bound, ours sizes the compiled buffers).
        webgpu_adapter: the adapter class the WGSL is tuned for (``webtensor.webgpu.limits.ADAPTER_CLASSES``:
            ``'cpu'``, ``'integrated-gpu'``, ``'discrete-gpu'``, ``'unknown'``): which matmul plans
            and tiles its kernels use (``webgpu/matmul.py`` ``MATMUL_TUNING``). Default ``'unknown'``,
            the portable choice. Any class's WGSL runs on every adapter that meets the manifest's
            ``required_limits`` (docs/artifact.md, "Adapter classes"). A ValueError for another name.
        wasm_engine: the WebAssembly engine the modules are tuned for: ``'v8'`` (Node, Chromium; the
            default) or ``'wasmtime'`` (Python's loader, ``webtensor.distribute``'s replicas): how the
            matmul micro-kernel broadcasts A (``webtensor.wasm.export.ENGINES``; the digits CNN's
            gradient step runs 3.74 ms in wasmtime tuned for V8, 3.17 ms tuned for wasmtime). Every
            module runs on every engine with the same results. A ValueError for another name.

    Returns the manifest (a dict). Signature inputs/outputs are named ``x``, ``y``, ``loss``,
    ``output_<k>`` for models (a functional model with several inputs: one input per ``Input``, named
    by ``model.input_names``, then ``y``), the parameter names for functions. Variables: see the module
    docstring. Shapes are those traced; a signature with a symbolic batch (``symbolic_batch``) takes
    any number of rows, run as chunks of the traced batch size.

    Raises:
        ValueError: a dtype an artifact cannot carry (float16), an unknown signature, a model that is
            not built or compiled for what is asked, example inputs that do not fit the model's inputs,
            input names an artifact cannot carry (non-ASCII, or two alike), an unknown backend, an unknown
            ``weights_dtype`` or one other than float32 with a signature that updates variables, a
            weight beyond float16's range or not finite. TypeError: malformed ``signatures``.
        ValueError: (also) a signature with a None length whose steps are not provably independent
            (the message names the op; docs/artifact.md, "Symbolic length"), or a ``max_length`` out
            of range or without a None length.
        NotImplementedError: a signature holds control flow (``cond``, ``while_loop``, ``scan`` on
            values computed in the graph), which the artifact format does not carry yet.

    Needs no numpy (runs in Pyodide as is); compiling the WGSL of a model on a GPU device still
    needs that device.
    """
    if path is None:
        raise TypeError("export: path (the artifact directory) is required")
    compact.check_weights_dtype(weights_dtype)
    model = fn_or_model if isinstance(fn_or_model, ExportableModel) else None
    length_axes = {}                # signature -> each input's length axis (docs/artifact.md, "Symbolic length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or
                                   not 1 <= max_length <= 1 << 20):
        raise ValueError(f"export: max_length must be an int in [1, 2**20] or None, got {max_length!r}")
    if model is not None:
        if isinstance(signatures, dict) and all(isinstance(v, tuple) for v in signatures.values()):
            specs = _fn_specs(signatures)
        else:
            if signatures is None and weights_dtype != "float32":
                signatures = ["predict"]        # compact weights are for inference (module compact)
            specs = model._export_signatures(example_inputs, signatures, batch_size, rows_train_step=bool(symbolic_batch))
    elif isinstance(signatures, dict):
        specs = _fn_specs(signatures)
    elif fn_or_model is not None and input_signature is not None:
        args, batched, axes = _signature_inputs(input_signature, batch_size, max_length)
        if axes is not None:
            length_axes["predict"] = axes
        specs = _fn_specs({"predict": (fn_or_model, args)})
        symbolic_batch = symbolic_batch if symbolic_batch is not None else batched
    elif fn_or_model is not None:
        args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        specs = _fn_specs({"predict": (fn_or_model, tuple(args))})
    else:
        raise TypeError("export: pass a model, a function and its example_inputs, or signatures={name: (fn, args)}")

    for name, (fn, args, names, x) in list(specs.items()):     # signatures={name: (fn, [TensorSpec, ...])}
        if isinstance(args, tuple) and args and all(isinstance(a, TensorSpec) for a in args):
            args, batched, axes = _signature_inputs(list(args), batch_size, max_length)
            if batched:
                raise ValueError(f"export: signatures[{name!r}]: a None batch (axis 0) in its TensorSpecs; give "
                                 "axis 0 a size (a symbolic batch: input_signature= or symbolic_batch=True)")
            specs[name] = (fn, args, names, x)
            if axes is not None:
                length_axes[name] = axes
    if max_length is not None and not length_axes:
        raise ValueError("export: max_length needs a None past axis 0 (the length axis) in input_signature or a signature's TensorSpecs")
    traced = [_trace(name, *spec) for name, spec in specs.items()]
    for t in traced:
        if t.name in length_axes:
            _length(t, specs[t.name][0], specs[t.name][1], length_axes[t.name], max_length)
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or
                                  not 1 <= max_batch <= 2147483647):
        raise ValueError(f"export: max_batch must be an int in [1, 2**31 - 1] or None, got {max_batch!r}")
    batch, more_rows = {}, {}
    for name, (fn, args, _, _) in specs.items():
        if name in length_axes:         # its loops carry rows: proved on two traces (export_batch.py)
            if symbolic_batch:
                batch[name], more_rows[name] = _batch_by_traces(next(t for t in traced if t.name == name), fn, args,
                                                                max_batch), None
            continue
        if getattr(fn, "row_losses", None) is not None:       # a train step over the first rows of a chunk
            batch[name] = _rows_section(name, fn, args, max_batch)
            more_rows[name] = _one_more_row(fn, args, batch[name]["chunk"], rows_input=True)
        elif symbolic_batch or (symbolic_batch is None and model is not None and name == "predict"):
            sec = _batch_section(name, fn, args, max_batch, required=bool(symbolic_batch))
            if sec is not None:
                batch[name], more_rows[name] = sec
    compact.check_inference_only(traced, weights_dtype)
    optimizer = getattr(model, "optimizer", None) if model is not None else None
    paths = {id(v): p for p, v in model._export_weight_paths().items()} if model is not None else {}
    quantized = {}
    if weights_dtype == "int8":
        quantized = compact.quantize_variables(traced, paths, compact.plan_int8(traced, paths))
        for t in traced:
            t.graph = compact.rewrite_int8(t.graph, quantized)
        more_rows = {name: g if g is None else compact.rewrite_int8(g, quantized) for name, g in more_rows.items()}
    variables, order = _collect_variables(traced, model, optimizer, quantized)
    index = {id(v): i for i, v in enumerate(order)}
    units = _units(traced, weights_dtype)     # what the backends export: signatures, and pieces of control flow
    for t in units:
        t.prog = C.compile_graph(t.graph)
        t.var_of = {b: index[id(var)] for b, (_, var) in zip(t.prog.captures, t.graph.captures)}
        t.plan = plan_signature(t.prog, t.var_of, [index[id(var)] for var, _ in t.graph.updates])
        if more_rows.get(t.name) is not None:
            chunk = batch[t.name]["chunk"]
            t.rows = (chunk, chunk + 1, C.compile_graph(more_rows[t.name]))
    consts = {t.name: _const_bytes(t) for t in units}

    files: dict[str, bytes] = {}
    weights: dict = {}
    int8 = {id(e[0]): e for e in quantized.values()}       # int8 words -> (words, scales, bytes, shape, scales dtype)
    half_scales = {id(e[1]) for e in quantized.values() if e[4] == "float16"}
    for spec, v in zip(variables, order):
        name = spec["name"]
        if id(v) in int8:                       # int8 words: stored as the int8 tensor they pack
            _, _, qbytes, shape, _ = int8[id(v)]
            spec["storage"] = {"dtype": "int8", "shape": list(shape), "scales": f"{name}/scales"}
            weights[name] = ("int8", shape, qbytes)
        elif (weights_dtype == "float16" and id(v) in paths and spec["dtype"] == "float32") or id(v) in half_scales:
            spec["storage"] = {"dtype": "float16"}
            weights[name] = ("float16", tuple(spec["shape"]), compact.float16_bytes(name, v))
        else:
            weights[name] = (spec["dtype"], tuple(spec["shape"]), bytes(v._host_bytes()))   # the host layout is safetensors' layout
    sigs = {t.name: {"inputs": t.inputs, "outputs": t.outputs, "reads": t.plan.reads, "writes": t.plan.writes}
            if t.split is None else _control_signature(t, index) for t in traced}
    for name, sec in batch.items():
        sigs[name]["batch"] = sec
        if getattr(specs[name][0], "row_losses", None) is not None:
            sigs[name]["batch"]["rows_input"] = len(sigs[name]["inputs"]) - 1
    for t in traced:
        if t.length is not None:
            sigs[t.name]["length"] = t.length
    stored = _stored_constants(units, consts, weights)
    for name in dict.fromkeys(backends):        # each backend asked for, once, in the order given
        emitted, sections = exporter(name)(units, variables, consts, weights, stored,
                                           {"wasm_fma": wasm_fma, "wasm_threads": wasm_threads,
                                            "webgpu_f16": webgpu_f16, "webgpu_adapter": webgpu_adapter,
                                            "wasm_engine": wasm_engine})
        files.update(emitted)
        for sig, sec in sections.items():
            if sig in sigs:
                sigs[sig][name] = sec
        for t in traced:
            if t.split is not None:
                _control_sections(sigs[t.name]["control"], t, name, sections)
    version = FORMAT_VERSION if batch else 1      # version 2 only where a signature needs it
    files["weights.safetensors"] = safetensors_io.save(
        weights, {"format": FORMAT, "format_version": str(version)})
    manifest = {
        "format": FORMAT, "format_version": version, "webtensor_version": __version__,
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
