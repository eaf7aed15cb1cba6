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
  ``core.compile.Program``) and ``plan`` (a :class:`Plan`); ``variables``: the manifest's variable
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
  ``stats()``, ``dispose()``; the class has ``interruptible`` (honours ``timeout``) and
  ``auto(artifact) -> bool`` (whether ``load(backend='auto')`` should pick it here).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Callable

from ..compile import Program
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

@dataclass
class Plan:
    """``loc(b)``: ``('input', i)``, ``('var', v)``, ``('const', b)``, ``('output', k)``, ``('temp', b)`` or
    ``('stage', v)``; ``pre``/``post``: ``(src loc, dst loc, bytes)`` copies before/after the kernels."""
    locs: dict
    pre: list
    post: list
    stage: list          # variables whose old value is staged (read after they are updated)
    reads: list
    writes: list


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
    return Plan(locs, pre, post, stage, sorted(reads), sorted(set(writes)))
