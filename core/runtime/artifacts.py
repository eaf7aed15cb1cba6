"""What the API's ``export`` and ``load`` reach the backends through (``docs/artifact.md``).

Each backend registers an **exporter** (``register_exporter``: compiled signatures -> its files and
its manifest sections) and an **artifact loader** (``register_loader``: a checked artifact -> an
object that runs it); ``webtensor.export`` and ``webtensor.load`` know no backend's code or format
details, only these registries. Shared here: the buffer plan both exporters follow
(:func:`plan_signature`), the storage layout (4 bytes per element for every dtype, bool as i32
0/1), and :class:`ArtifactError`.

The protocols (duck-typed):

- exporter ``(signatures, variables, consts, weights, stored, options) -> (files, sections)``:
  ``signatures``: objects with ``name``, ``inputs``/``outputs`` (manifest specs), ``prog`` (a
  ``core.compile.Program``), ``plan`` (a :class:`Plan`) and ``rows`` (a symbolic batch: ``(chunk,
  chunk + 1, the program for chunk + 1 rows)``, for :func:`batch_steps`; else None); ``variables``: the manifest's variable
  entries; ``consts``: ``{signature: {buffer id: storage bytes}}``; ``weights``: ``{name: (dtype,
  shape, bytes)}`` of weights.safetensors (an exporter may add constants); ``stored``: ``{storage
  bytes: weights name}`` of the large constants already there; ``options``: ``export``'s
  backend options (``{'wasm_fma': bool}``), each exporter reads its own. Returns ``{file name: bytes}`` and
  ``{signature: section}`` (the manifest's ``signatures[name][backend]``); a signature the backend
  cannot carry is left out (with a warning).
- loader class ``(artifact, fail, *, timeout=None, memory_limit=None)``: ``artifact`` an
  :class:`Artifact` (read and checked by ``webtensor.artifact.read_artifact``), ``fail(msg)``
  raises :class:`ArtifactError`. Instances have ``kind``, ``lock``, ``run(name, inputs) ->
  outputs`` (storage bytes), ``read_variables(indices)``, ``write_variable(i, data)``,
  ``stats()``, ``dispose()``, and optionally ``takes_rows(name)`` with ``run(name, inputs, rows)``
  (a signature with a symbolic batch run on its first ``rows`` rows: docs/artifact.md "Run-time
  rows"); the class has ``interruptible`` (honours ``timeout``) and
  ``auto(artifact) -> bool`` (whether ``load(backend='auto')`` should pick it here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import isfinite, prod
from typing import Callable

from ..compile import Program, Step, writes_in_place
from ..dtypes import as_dtype
from . import hostdata


class ArtifactError(ValueError):
    """A damaged, malformed, hostile or unsupported artifact; the message names the file or variable
    (and never quotes the size, hash or contents of a file that failed a check)."""


@dataclass
class Artifact:
    """A read and checked artifact: ``manifest`` (dict), ``files`` (name -> bytes), ``weights``
    (name -> ``(dtype, shape, bytes)``), ``dtypes`` (the dtypes the format carries)."""
    manifest: dict
    files: dict
    weights: dict
    dtypes: tuple


def storage_nbytes(shape) -> int:
    """Storage bytes of a tensor on both backends: 4 per element for every dtype (bool as i32 0/1)."""
    return 4 * prod(shape)


def to_storage(data: bytes, dtype: str) -> bytes:
    """safetensors bytes of a tensor -> backend storage (bool: one byte -> a 4-byte 0/1 integer)."""
    dt = as_dtype(dtype)
    return bytes(hostdata.to_storage(data, dt, dt.wasm))


def is_index(v, n) -> bool:
    """Is ``v`` an int (not a bool) in ``[0, n)``?"""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n


def engine_reason(e: Exception) -> str:
    """An engine error's cause in one line (wasmtime puts it last, after a backtrace)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(e).__name__


# ---- the registries -------------------------------------------------------------------------------

_EXPORTERS: dict[str, Callable] = {}
_LOADERS: dict[str, tuple[int, type]] = {}


def register_exporter(name: str, exporter: Callable) -> None:
    """Make ``name`` a backend ``webtensor.export`` can emit (the protocol: module docstring)."""
    _EXPORTERS[name] = exporter


def exporter(name: str) -> Callable:
    """The exporter of backend ``name``. Raises ValueError naming the known ones."""
    if name not in _EXPORTERS:
        raise ValueError(f"export: unknown backend {name!r}; known backends: {sorted(_EXPORTERS)}")
    return _EXPORTERS[name]


def register_loader(name: str, loader: type, *, rank: int = 0) -> None:
    """Make ``name`` a backend ``webtensor.load`` can run an artifact on (the protocol: module
    docstring). ``load(backend='auto')`` asks loaders in decreasing ``rank``."""
    _LOADERS[name] = (rank, loader)


def loader_names() -> list[str]:
    """The registered loaders' names, in decreasing rank (the order 'auto' asks them in)."""
    return [n for n, _ in sorted(_LOADERS.items(), key=lambda kv: -kv[1][0])]


def loader(name: str) -> type:
    """The loader class of backend ``name`` (KeyError if none)."""
    return _LOADERS[name][1]


# ---- the plan: where each buffer lives, which copies run before and after the kernels ------------

INPLACE = True   # a variable read by the very kernel that computes its update, elementwise, is updated in
#                  place (``compile.writes_in_place``) instead of through a temporary and a copy; tests set
#                  it False to compare with the plans (and exported files) from before


@dataclass
class Plan:
    """``loc(b)``: ``('input', i)``, ``('var', v)``, ``('const', b)``, ``('output', k)``, ``('temp', b)`` or
    ``('stage', v)``; ``pre``/``post``: ``(src loc, dst loc, bytes)`` copies before/after the kernels;
    ``inplace``: step index -> the ``(input, output)`` pairs of its kernel that share a variable's buffer
    (``kernel_ir.Kernel.inplace``, which the exporters set on those steps' kernels)."""
    locs: dict
    pre: list
    post: list
    stage: list          # variables whose old value is staged (read after they are updated)
    reads: list
    writes: list
    inplace: dict = field(default_factory=dict)


def _in_place(step: Step, b: int, cap: int) -> tuple[int, int] | None:
    """``(input, output)`` of ``step``'s kernel where its output buffer ``b`` may be stored over its input
    ``cap`` (a variable's old value, read by no later step), or None."""
    slots = [i for i, x in enumerate(step.inputs) if x == cap]
    out = 0 if step.output == b else 1 + step.extra.index(b)
    if len(slots) == 1 and writes_in_place(step.kernel, slots[0], out):
        return slots[0], out
    return None


def plan_signature(prog: Program, var_of: dict[int, int], update_vars: list[int]) -> Plan:
    role = lambda b: prog.bufs[b].role
    nb = lambda b: storage_nbytes(prog.bufs[b].shape)
    locs = {b: ("input", i) for i, b in enumerate(prog.inputs)}
    locs.update({b: ("var", v) for b, v in var_of.items()})
    locs.update({b: ("const", b) for b in prog.consts})
    cap_of = {v: b for b, v in var_of.items()}
    producer = {b: i for i, s in enumerate(prog.steps) for b in [s.output] + s.extra}
    last_read: dict[int, int] = {}
    for i, s in enumerate(prog.steps):
        for b in s.inputs:
            last_read[b] = i
    dest: dict[int, tuple] = {}
    pre, post, stage, writes = [], [], [], []     # post sources: a buffer id (resolved below) or a loc
    inplace: dict[int, list] = {}
    for b, v in zip(prog.updates, update_vars):
        if var_of.get(b) == v:
            continue                                   # assigned its own old value: nothing to do
        writes.append(v)
        if role(b) == "temp":
            p, cap = producer[b], cap_of.get(v)
            pair = _in_place(prog.steps[p], b, cap) if INPLACE and b not in dest and last_read.get(cap, -1) == p \
                else None
            if b not in dest and last_read.get(cap, -1) < p:
                dest[b] = ("var", v)                   # in place: nothing reads the old value later
            elif pair is not None:                     # in place: only its own kernel reads it, elementwise
                dest[b] = ("var", v)
                inplace.setdefault(p, []).append(pair)
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
    return Plan(locs, pre, post, stage, sorted(reads), sorted(set(writes)),
                {p: tuple(sorted(pairs)) for p, pairs in inplace.items()})


# ---- run-time rows: the kernels of a symbolic-batch signature that loop over its rows ------------

def batch_steps(prog: Program, more: Program, chunk: int, more_chunk: int, sums: bool = False) -> list[bool] | None:
    """Which steps of a signature with independent rows (``core.symbolic.independent_rows``) loop
    over its batch: ``prog`` compiled for ``chunk`` rows, ``more`` the same graph compiled for
    ``more_chunk`` rows. A buffer is batched when its shape differs between the two; it must then
    be ``(k * rows, ...)`` at both sizes (rows in axis 0, whole rows of ``k`` elements apart: the
    batch is its outermost axis). A step is batched when its output is; its loop space's axis 0
    must then scale like its output's and the rest stay, and an unbatched step may read no batched
    buffer. Running a batched step's outer loop over the first ``rows * k`` indices therefore
    computes exactly the outputs of the first ``rows`` rows, from inputs of those rows only.

    With ``sums`` an unbatched step may also read batched buffers when it is a *row sum*
    (:func:`row_sum`: a float sum whose every term is exactly 0 where the batched values it reads
    are 0, reading no constant's rows): a train step's weight gradients, bias gradients and loss
    total. A runner that computes the first ``rows`` rows must then zero the other rows of every
    batched buffer such a step reads (:func:`row_sum_reads`) before it runs: the sum is then the
    one over the first ``rows`` rows in the kernel's own order, plus exact zeros.

    Returns one bool per step, or None when the two programs differ in structure (fusion or buffer
    plan depends on the size) or a rule above fails: the signature then keeps whole chunks.

    Args:
        prog: the program for ``chunk`` rows (``core.compile.Program``).
        more: the same graph's program for ``more_chunk`` rows.
        chunk: rows of ``prog``'s batch.
        more_chunk: rows of ``more``'s batch (different from ``chunk``).
        sums: also accept row sums (above); False for runners that do not zero rows.
    """
    def scales(a, b) -> bool:       # (k * chunk, rest...) vs (k * more_chunk, rest...), k >= 1
        return bool(a) and len(a) == len(b) and tuple(a[1:]) == tuple(b[1:]) and a[0] % chunk == 0 and \
            a[0] > 0 and a[0] // chunk * more_chunk == b[0]

    if (len(prog.bufs), len(prog.steps), prog.inputs, prog.outputs, prog.captures, sorted(prog.consts)) != \
            (len(more.bufs), len(more.steps), more.inputs, more.outputs, more.captures, sorted(more.consts)):
        return None
    batched = []
    for a, b in zip(prog.bufs, more.bufs):
        if (a.id, a.role, a.dtype) != (b.id, b.role, b.dtype):
            return None
        if a.shape != b.shape and not scales(a.shape, b.shape):
            return None
        batched.append(a.shape != b.shape)
    steps = []
    for s, t in zip(prog.steps, more.steps):
        if (s.inputs, s.output, s.kernel.kind, s.kernel.template) != (t.inputs, t.output, t.kernel.kind, t.kernel.template):
            return None
        on_rows = batched[s.output]
        if on_rows:
            out, space = (s.kernel.out.shape, t.kernel.out.shape), (s.kernel.space, t.kernel.space)
            if not scales(*space) or out[0][0] * space[1][0] != out[1][0] * space[0][0]:
                return None
        elif any(batched[i] for i in s.inputs) or s.kernel.space != t.kernel.space:
            if not (sums and s.kernel.out.shape == t.kernel.out.shape and
                    row_sum(s.kernel, [batched[i] and prog.bufs[i].role != "const" for i in s.inputs],
                            [batched[i] for i in s.inputs])):
                return None
        steps.append(on_rows)
    return steps


def row_sum(kernel, zeroed: list[bool], batched: list[bool]) -> bool:
    """Whether reduction ``kernel`` is a row sum (:func:`batch_steps`): a float ``sum`` (no
    epilogue reading a batched input) whose reduced expression is exactly +-0 whenever the loads of
    the inputs marked ``zeroed`` (batched buffers a runner zeroes past its rows) are 0, and which
    reads no other batched input. Proved over the expression, IEEE 754 rules for +-0 operands: a
    zeroed load; the constant 0; ``neg``, ``cast`` of such a value; ``add``, ``sub``, ``mul``,
    ``max``, ``min`` of two such values (0 * 0, not 0 * w: a finite factor is not proved); a ``mul``
    by a finite constant; a ``where`` whose both branches are such values (any condition).

    Args:
        kernel: a ``core.kernel_ir.Kernel``.
        zeroed: per input, whether it is a batched buffer whose rows past the run's are zeroed.
        batched: per input, whether it is batched at all (zeroed or a constant's rows).
    """
    if kernel.kind != "reduce" or kernel.combiner != "sum" or not kernel.out.dtype.is_floating:
        return False
    if kernel.epilogue is not None and any(batched[k] for k in kernel.epilogue.loaded() if k < len(batched)):
        return False
    memo: dict = {}

    def finite_const(e) -> bool:
        return e.op == "const" and isfinite(float(e.arg))

    def free(e) -> bool:                 # reads no batched input (index expressions included)
        return (e.op != "load" or not batched[e.arg]) and all(free(a) for a in e.args)

    def zero(e) -> bool:
        if e not in memo:
            a = e.args
            memo[e] = (
                (e.op == "load" and zeroed[e.arg] and all(free(i) for i in a)) or
                (e.op == "const" and float(e.arg) == 0.0) or
                (e.op in ("neg", "cast") and zero(a[0])) or
                (e.op in ("add", "sub", "max", "min") and zero(a[0]) and zero(a[1])) or
                (e.op == "mul" and (zero(a[0]) and (zero(a[1]) or finite_const(a[1])) or
                                    zero(a[1]) and finite_const(a[0]))) or
                (e.op == "where" and zero(a[1]) and zero(a[2])))
        return memo[e]
    return zero(kernel.expr)


def row_sum_reads(prog: Program, more: Program, on_rows: list[bool]) -> list[int]:
    """The batched buffers (ids, sorted) that unbatched steps read: the row sums'
    (:func:`batch_steps` with ``sums``), whose rows past a run's must be zeroed.

    Args:
        prog: the program for ``chunk`` rows.
        more: the same graph's program for one more row.
        on_rows: :func:`batch_steps`' answer for them.
    """
    batched = [a.shape != b.shape for a, b in zip(prog.bufs, more.bufs)]
    return sorted({i for s, r in zip(prog.steps, on_rows) if not r for i in s.inputs if batched[i]})
