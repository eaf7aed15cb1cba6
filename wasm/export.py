"""The ``"wasm"`` section of an artifact (``docs/artifact.md``): ONE WebAssembly module for every
signature. Each distinct kernel is lowered once (``lower.lower``); one exported driver per signature
calls the kernels in order with fixed byte addresses (``runtime.emit_call``): variables, then
constants (active data segments; the large ones, stored once in weights.safetensors, are listed in
the section's ``"constants"`` for the loader to copy), then each signature's region (inputs,
outputs, staging, temporaries packed by ``core.compile.plan_arena``, scratch; signatures run one at
a time, so their regions overlap). In-place updates and copies follow the signature's plan
(``core.runtime.artifacts.plan_signature``); copies are ``memory.copy``. A kernel that the plan has
write a variable it reads (``Plan.inplace``) is lowered with ``Kernel.inplace`` set (a reduction with
an epilogue then keeps its reduced values in scratch).
"""
from __future__ import annotations

from dataclasses import replace
from math import prod

from ..core import compile as C
from ..core.runtime.artifacts import batch_steps, register_exporter, row_sum_reads, storage_nbytes as _nbytes
from .binary import I32, Module
from .lower import inline_scalars, lower, runtime_k
from .matmul import plan as matmul_plan
from .engines import MAX_PAGES, WasmtimeEngine
from .runtime import emit_call
from .threads import END, Parallel, work

ALIGN = 64                              # bytes: WebAssembly addresses (SIMD loads want 16)


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


RELAXED = "module_relaxed.wasm"        # the same module with relaxed-SIMD fused multiply-adds
THREADS = {False: "module_threads.wasm", True: "module_relaxed_threads.wasm"}   # by fma (threads.py)
# export's ``wasm_engine`` (the engine the code is tuned for) -> how the matmul template broadcasts A
# (``lower``'s ``splat``): V8 turns ``v128.load32_splat`` into one broadcast load (``lower``'s
# default), Cranelift runs shuffles faster (the in-process device's own choice, ``load_splat``); the
# results are the same bits either way
ENGINES = {"v8": True, "wasmtime": WasmtimeEngine.load_splat}
ROWS_PREFIX = "__rows_"                 # + the signature's name: its run-time rows driver (no signature starts "__")
ROWS_CELL = 48                          # i32: the rows driver's rows, for sums over them (bytes [0, 64) hold no
assert ROWS_CELL >= END + 4             # tensor; the threads' control block ends at END + 4)


def _times_rows(factor: int):
    """A pusher of ``rows * factor`` (the rows driver's parameter 0)."""
    def push(f):
        f.local_get(0)
        if factor != 1:
            f.i32_const(factor).i32_mul()
    return push


def export_wasm(traced, variables: list[dict], consts: dict[str, dict[int, bytes]], weights: dict,
                stored: dict[bytes, str], options: dict):
    """One module for every signature; returns ``({"module.wasm": bytes}, {signature: its "wasm"
    section})``. Constants named in ``stored`` are not data segments: each section's
    ``"constants"`` maps their addresses to their tensors in weights.safetensors, which the loader
    copies there. ``options["wasm_fma"]``: also write ``module_relaxed.wasm``, the same drivers with
    relaxed-SIMD fused multiply-adds (``lower.lower``'s ``fma``) at the same addresses; loaders use
    it where the engine has relaxed SIMD, else ``module.wasm`` (docs/artifact.md).
    ``options["wasm_engine"]``: a key of ``ENGINES`` (default ``"v8"``; a ValueError for another)."""
    engine = options.get("wasm_engine", "v8")
    if engine not in ENGINES:
        raise ValueError(f"export: wasm_engine must be one of {sorted(ENGINES)}, got {engine!r}")
    splat = ENGINES[engine]
    rows = {t.name: f for t in traced if (f := _row_factors(t, consts)) is not None}
    files, sections = _module(traced, variables, consts, stored, fma=False, rows=rows, splat=splat)
    if options.get("wasm_fma"):
        relaxed, same = _module(traced, variables, consts, stored, fma=True, rows=rows, splat=splat)
        if same != sections:                      # both must fit one manifest section
            raise AssertionError("wasm export: the relaxed-SIMD module's memory layout differs from module.wasm's")
        files[RELAXED] = relaxed["module.wasm"]
    if options.get("wasm_threads"):               # the same drivers, large kernels split over threads
        plain = sections
        for fma in (False, True) if options.get("wasm_fma") else (False,):
            threaded, with_threads = _module(traced, variables, consts, stored, fma=fma, threads=True, rows=rows, splat=splat)
            if {k: {f: v for f, v in s.items() if f != "threads"} for k, s in with_threads.items()} != plain:
                raise AssertionError("wasm export: the threaded module's memory layout differs from module.wasm's")
            files[THREADS[fma]] = threaded["module.wasm"]
            sections = with_threads
    return files, sections


def _kernels(t, prog, consts, inplace=None):
    """``prog``'s kernels with their one-element constants inlined (``lower.inline_scalars``) and the
    in-place outputs of the plan (``inplace``: ``Plan.inplace``) marked (``Kernel.inplace``)."""
    scalars = {b: data for b, data in consts[t.name].items() if prod(prog.bufs[b].shape) == 1}
    ks = [inline_scalars(s.kernel, {i: scalars[b] for i, b in enumerate(s.inputs) if b in scalars})
          for s in prog.steps]
    return [replace(k, inplace=inplace[i]) if inplace and i in inplace else k for i, k in enumerate(ks)]


def _k_factor(k, k2, batched: list[bool], chunk: int, more_chunk: int) -> int | None:
    """For a row sum (``batch_steps``' ``sums``) that is a matmul template whose K can be taken at
    run time (``lower.runtime_k``): the products per row of the batch (K = factor * rows at both
    sizes), if the first ``factor * rows`` values of k read exactly the first ``rows`` rows of each
    operand: both are batched buffers read at ``m * row + k * kstride + const`` with one batch row
    ``factor`` steps of k (``kstride * factor`` = its elements per row) and every element read for
    k < factor inside its row 0. Else None (the step runs whole, on zeroed rows)."""
    if not (runtime_k(k) and runtime_k(k2)):
        return None
    p, p2 = matmul_plan(k), matmul_plan(k2)
    if p.K % chunk or p.K // chunk * more_chunk != p2.K or (p.M, p.N) != (p2.M, p2.N):
        return None
    factor = p.K // chunk
    for op, extent in ((p.a, p.M), (p.b, p.N)):
        if not batched[op.input]:
            return None
        per_row = prod(k.inputs[op.input].shape) // chunk
        if op.k * factor != per_row or op.const < 0 or op.row < 0 or \
                op.const + (extent - 1) * op.row + (factor - 1) * op.k >= per_row:
            return None
    return factor


def _row_factors(t, consts) -> tuple[list[int], dict[int, int], dict[int, int]] | None:
    """Run-time rows (docs/artifact.md, "Run-time rows") for a signature with a symbolic batch
    (``t.rows``: its chunk, one more row, and its program for that many): per step, how many
    iterations of the kernel's ``[start, end)`` loop one row of the batch takes (0: a step that does
    not loop over rows, run whole), the row sums (a train step's gradients over the rows,
    ``batch_steps``' ``sums``) that take their K at run time (step index: products per row,
    :func:`_k_factor`), and the batched buffers that the other row sums read, by id, with their bytes
    per row: the rows driver zeroes their rows past its own. None to keep whole chunks. The kernels are lowered for
    both sizes: a batched step's row count must be ``factor * rows`` at both (the loop runs over
    whole rows, batch outermost: ``core.runtime.artifacts.batch_steps``), an unbatched one's the
    same."""
    if t.rows is None or t.rows[0] < 2:        # a 1-row chunk is never partial
        return None
    chunk, more_chunk, more = t.rows
    on_rows = batch_steps(t.prog, more, chunk, more_chunk, sums=True)
    if on_rows is None:
        return None
    factors, run_k = [], {}
    buf_batched = [a.shape != b.shape for a, b in zip(t.prog.bufs, more.bufs)]
    for i, (batched, k, k2) in enumerate(zip(on_rows, _kernels(t, t.prog, consts), _kernels(t, more, consts))):
        rows, rows2 = lower(Module(), k, "k").rows, lower(Module(), k2, "k").rows
        if not batched:
            if rows != rows2:
                return None
            factors.append(0)
            step = t.prog.steps[i]
            if any(buf_batched[b] for b in step.inputs):
                kf = _k_factor(k, k2, [buf_batched[b] for b in step.inputs], chunk, more_chunk)
                if kf is not None:
                    run_k[i] = kf
        elif rows % chunk or not rows or rows // chunk * more_chunk != rows2:
            return None
        else:
            factors.append(rows // chunk)
    skip = [r or i in run_k for i, r in enumerate(on_rows)]     # all but the sums that read zeroed rows
    zeroed = {b: _nbytes(t.prog.bufs[b].shape) // chunk for b in row_sum_reads(t.prog, more, skip)}
    if not set(zeroed) <= set(t.prog.inputs) | {s.output for s in t.prog.steps}:   # a sibling's output: not zeroed
        return None
    return factors, run_k, zeroed


def _zero_rest(f, at: int, row: int, chunk: int):
    """Zero bytes ``[at + rows * row, at + chunk * row)`` (rows: the rows driver's parameter 0)."""
    f.local_get(0).i32_const(row).i32_mul().i32_const(at).i32_add()
    f.i32_const(0)
    f.i32_const(chunk).local_get(0).i32_sub().i32_const(row).i32_mul()
    f.memory_fill()


def _module(traced, variables, consts, stored, fma: bool, threads: bool = False, rows: dict | None = None,
            splat: bool = True):
    rows = rows or {}
    m = Module()
    par = Parallel(m, 0) if threads else None     # its control block: bytes [0, 64), unused otherwise
    lowered: dict = {}
    fn_of: dict = {}                            # id(step) -> its lowered kernel
    for t in traced:
        for s, k in zip(t.prog.steps, _kernels(t, t.prog, consts, t.plan.inplace)):
            if k not in lowered:
                lowered[k] = lower(m, k, f"k{len(lowered)}", fma=fma, splat=splat)
            fn_of[id(s)] = lowered[k]
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
    rounds = {}         # signature -> how many kernels its driver splits (tiles functions it adds)
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
        scratch_at = take(max((fn_of[id(s)].scratch for s in prog.steps), default=0))

        def addr(loc):
            kind, key = loc
            return {"input": lambda: inputs[key], "output": lambda: outputs[key], "var": lambda: var_addr[key],
                    "const": lambda: const_addr[(t.name, key)], "stage": lambda: stage[key],
                    "temp": lambda: arena_at + offsets[key]}[kind]()

        def driver(f, ends, zeroed=None, fns=None):
            def copy(src, dst, n):
                if n:
                    f.i32_const(addr(dst)).i32_const(addr(src)).i32_const(n).memory_copy()
            zeroed = zeroed or {}
            for c in plan.pre:
                copy(*c)
            for b in sorted(set(zeroed) & set(prog.inputs)):     # inputs that row sums read
                _zero_rest(f, addr(plan.locs[b]), zeroed[b], t.rows[0])
            if par is not None:
                par.begin(f)
                first = len(par.tasks)
            for i, (s, end) in enumerate(zip(prog.steps, ends)):
                fn = (fns or {}).get(i, fn_of[id(s)])
                args = fn, [addr(plan.locs[b]) for b in [s.output] + s.inputs + s.extra], scratch_at
                if par is None:
                    emit_call(f, *args, end=end)
                else:
                    par.call(f, *args, work(s.kernel), end=end)
                if s.output in zeroed:                  # its rows past `rows` before a row sum reads them
                    _zero_rest(f, addr(plan.locs[s.output]), zeroed[s.output], t.rows[0])
            if par is not None:
                par.end(f)
                rounds[t.name] = len(par.tasks) - first
            for c in plan.post:
                copy(*c)
            f.finish()
        driver(m.function(f"driver{n_sig}", export=t.name), [None] * len(prog.steps))
        sections[t.name] = {"driver": t.name, "memory_bytes": at, "inputs": inputs, "outputs": outputs,
                            "variables": {str(v): var_addr[v] for v in sorted(set(plan.reads + plan.writes))}}
        if t.name in rows:          # the same kernels over the first `rows` rows (a run-time parameter)
            factors, run_k, zeroed = rows[t.name]
            fns = {}
            for i, factor in run_k.items():     # row sums over the first rows: their own functions
                s = prog.steps[i]
                key = (fn_of[id(s)].name, "run_k", factor)
                if key not in lowered:
                    lowered[key] = lower(m, _kernels(t, prog, consts, plan.inplace)[i], f"k{len(lowered)}", fma=fma, splat=splat,
                                         run_k=(ROWS_CELL, factor))
                fns[i] = lowered[key]
            f = m.function(f"driver{n_sig}_rows", params=[I32], export=ROWS_PREFIX + t.name)
            f.local_get(0).i32_const(1).i32_sub().i32_const(t.rows[0]).i32_ge_u()   # not 1 <= rows <= chunk
            with f.if_():
                f.unreachable()
            if run_k:
                f.i32_const(ROWS_CELL).local_get(0).i32_store(0)       # the sums' K: factor * rows
            driver(f, [_times_rows(e) if e else None for e in factors], zeroed, fns)
            sections[t.name]["rows_driver"] = ROWS_PREFIX + t.name
        copied = {str(by_bytes[data]): stored[data] for data in consts[t.name].values() if data in stored}
        if copied:
            sections[t.name]["constants"] = dict(sorted(copied.items(), key=lambda kv: int(kv[0])))
    end = max(s["memory_bytes"] for s in sections.values())
    pages = max(1, -(-end // 65536))
    if par is None:
        m.import_memory("env", "memory", pages)
    else:                                       # threads 1.. get their scratch past every signature's region
        par.finish(_align(end))
        for name, s in sections.items():
            s["threads"] = {"scratch": _align(end), "stride": par.stride, "rounds": rounds[name]}
        m.import_memory("env", "memory", pages, MAX_PAGES, shared=True)
    return {"module.wasm": m.emit()}, sections


register_exporter("wasm", export_wasm)
