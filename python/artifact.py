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

Backends: each runs its sections through the artifact loader it registers
(``core.runtime.artifacts.register_loader``): ``wasm/artifact.py`` (``module.wasm`` in wasmtime) and
``webgpu/artifact.py`` (wgpu); this module knows neither's format. Needs wasmtime or wgpu for the
backend used; in Pyodide ``'wasm'`` runs on the page's WebAssembly, and without numpy values are
nested lists.

Threads: a loaded model may be used from many threads. Each run (inputs written, driver or
dispatches, outputs read back), weight read and write holds the backend's lock: one per model on
``'wasm'`` (its store and memory are its own), the device's lock on ``'webgpu'`` (its queue is the
device's).
"""
from __future__ import annotations

import array
import errno
import hashlib
import json
import math
import os
import stat
from math import prod

from . import __version__, safetensors_io
from .core.dtypes import as_dtype
from .core.runtime import hostdata
from .artifact_control import check_control, expand, run_control
from .core.runtime.artifacts import Artifact, ArtifactError, loader, loader_names
from .schema import SchemaError, artifact_schema, loads, validate
from .tensor import Tensor

# the format's name, version and dtypes, as docs/artifact.schema.json (the one contract) states them
FORMAT = artifact_schema()["properties"]["format"]["const"]
FORMAT_VERSIONS = tuple(artifact_schema()["properties"]["format_version"]["enum"])   # the versions loaders read
FORMAT_VERSION = max(FORMAT_VERSIONS)       # the newest (exports write 1 unless a signature needs 2)
DTYPES = tuple(artifact_schema()["$defs"]["dtype"]["enum"])

MAX_MANIFEST_BYTES = 16 << 20          # manifest.json is read before anything says how large it is
MAX_FILE_BYTES = 4 << 30               # docs/artifact.schema.json's limit on any listed file


def _nbytes(spec) -> int:
    return 4 * prod(spec["shape"])


def _is_obj(v) -> bool:
    return isinstance(v, dict)




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

def read_artifact(path):
    """Read and check the artifact directory ``path``. Returns ``(manifest, files, weights)``: ``files``
    maps each listed name to its bytes, ``weights`` each tensor of ``weights.safetensors`` to
    ``(dtype, shape, bytes)``. Order of checks: manifest.json (at most 16 MiB, UTF-8 JSON) against
    ``docs/artifact.schema.json``; each listed file's path, type, size and SHA-256; the references
    between sections; the weights. Raises :class:`ArtifactError` (see the module docstring)."""
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
    if "format_version" in manifest and manifest.get("format") == FORMAT and \
            manifest["format_version"] not in FORMAT_VERSIONS:
        fail(f"manifest.json: format_version {json.dumps(manifest['format_version'])[:40]} is not supported "
             f"(this runtime reads versions {', '.join(map(str, FORMAT_VERSIONS))})")
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
    check_control(manifest, fail)
    for name in files.keys() - {"module.wasm", "module_relaxed.wasm", "module_threads.wasm", "module_relaxed_threads.wasm",
                                "weights.safetensors"}:     # WGSL sources
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
        dtype, shape = _stored_as(v)
        if t[0] != dtype or list(t[1]) != list(shape):
            fail(f"weights.safetensors: variable '{v['name']}' is {t[0]} {list(t[1])}, the manifest lists "
                 f"{dtype} {shape}" + (" (its storage)" if "storage" in v else ""))
    for v in sorted(manifest["variables"], key=lambda v: v.get("storage", {}).get("dtype") == "int8"):
        if "storage" in v:                      # float16 first: an int8 variable's scales may be float16
            weights[v["name"]] = _unpacked(v, weights, fail)
    return manifest, files, weights


def _stored_as(v) -> tuple[str, list]:
    """The dtype and shape weights.safetensors holds variable ``v`` in (its ``storage``, if any)."""
    st = v.get("storage")
    if st is None:
        return v["dtype"], v["shape"]
    return st["dtype"], (st["shape"] if st["dtype"] == "int8" else v["shape"])


def _unpacked(v, weights, fail):
    """A compactly stored variable as the variable the kernels read: float16 widened to float32
    (exact); int8 bytes packed four to an int32 word (zero-padded), after checking its scales are
    finite and positive."""
    dtype, shape, data = weights[v["name"]]
    if dtype == "float16":
        return "float32", shape, bytes(hostdata.to_storage(data, as_dtype("float16"), "f32"))
    scales = array.array("f", weights[v["storage"]["scales"]][2])
    if not all(0 < x < math.inf for x in scales):
        fail(f"weights.safetensors: the scales of int8 variable '{v['name']}' ('{v['storage']['scales']}') must "
             "be finite and positive")
    return "int32", tuple(v["shape"]), data + bytes(-len(data) % 4)


def _check_storage(variables, fail):
    """The storage rules the schema cannot state (docs/artifact.md, 'Compact weights')."""
    by_name = {v["name"]: v for v in variables}
    for v in variables:
        st = v.get("storage")
        if st is None:
            continue
        what = f"manifest.json: variable '{v['name']}': storage"
        if st["dtype"] == "float16":
            if v["dtype"] != "float32" or "shape" in st or "scales" in st:
                fail(f"{what} float16 needs a float32 variable and takes no shape or scales")
            continue
        if "shape" not in st or "scales" not in st:
            fail(f"{what} int8 needs its logical shape and the name of its scales variable")
        n = prod(st["shape"])
        if v["dtype"] != "int32" or list(v["shape"]) != [-(-n // 4)] or len(st["shape"]) < 2 or n > MAX_FILE_BYTES:
            fail(f"{what} int8 of shape {st['shape']} needs a rank >= 2 shape and an int32 variable of shape "
                 f"[{-(-n // 4)}] (its bytes four to a word), got {v['dtype']} {v['shape']}")
        sv = by_name.get(st["scales"])
        if sv is None or sv is v or sv["dtype"] != "float32" or len(sv["shape"]) != 1 or \
                ("storage" in sv and sv["storage"]["dtype"] != "float16"):
            fail(f"{what} int8: scales '{st['scales']}' must name another float32 variable of rank 1 "
                 "(stored as float32 or float16)")
        c = sv["shape"][0]
        if not any(prod(st["shape"][j:]) == c for j in range(1, len(st["shape"]))):
            fail(f"{what} int8: {c} scales for shape {st['shape']}; there must be one per output channel "
                 "(the product of some trailing axes)")


def _check_batch(manifest, fail):
    """A signature's ``batch`` section (format version 2): only in version 2, and every input and
    output has ``chunk`` rows as axis 0 (docs/artifact.md, "Symbolic batch")."""
    for name, sig in manifest["signatures"].items():
        b = sig.get("batch")
        if b is None:
            continue
        if manifest["format_version"] < 2:
            fail(f"manifest.json: signature '{name}' has a 'batch' section, which needs format_version 2")
        k = b.get("rows_input")
        if k is not None:       # a train step over the first rows of a chunk ("Symbolic batch: train steps")
            if k >= len(sig["inputs"]) or sig["inputs"][k]["dtype"] != "int32" or sig["inputs"][k]["shape"]:
                fail(f"manifest.json: signature '{name}': batch 'rows_input' {k} must be the index of an int32 input "
                     "of shape [] (the row count)")
            if b.get("maximum", b["chunk"] + 1) > b["chunk"]:
                fail(f"manifest.json: signature '{name}': a batch with 'rows_input' needs a 'maximum' of at most its "
                     f"chunk {b['chunk']} (a train step's rows cannot be split into chunks)")
        for spec in [s for i, s in enumerate(sig["inputs"]) if i != k] + ([] if k is not None else sig["outputs"]):
            if not spec["shape"] or spec["shape"][0] != b["chunk"]:
                fail(f"manifest.json: signature '{name}': '{spec['name']}' has shape {spec['shape']}, but its "
                     f"batch chunk is {b['chunk']} rows (axis 0 of every input and output)")


def _check_length(manifest, fail):
    """A signature's ``length`` section (docs/artifact.md, "Symbolic length"): one axis (or -1) per
    input and output, each within its rank and holding ``maximum``; at least one input has one; with
    a ``batch`` section, none in axis 0 (the batch's: docs/artifact.md "Symbolic batch and length")."""
    for name, sig in manifest["signatures"].items():
        ln = sig.get("length")
        if ln is None:
            continue
        what = f"manifest.json: signature '{name}' length"
        for key in ("inputs", "outputs"):
            if len(ln[key]) != len(sig[key]):
                fail(f"{what}: '{key}' has {len(ln[key])} entries for {len(sig[key])} {key}")
            for ax, spec in zip(ln[key], sig[key]):
                if ax >= 0 and (ax >= len(spec["shape"]) or spec["shape"][ax] != ln["maximum"]):
                    fail(f"{what}: '{spec['name']}' has shape {spec['shape']}, whose axis {ax} is not the "
                         f"maximum length {ln['maximum']}")
                if ax == 0 and "batch" in sig:
                    fail(f"{what}: '{spec['name']}' has the length in axis 0, which its 'batch' section makes the "
                         "batch (with a symbolic batch the length is past axis 0)")
        if all(ax < 0 for ax in ln["inputs"]):
            fail(f"{what}: no input has the length")


def _check_manifest(manifest, fail):
    _check_batch(manifest, fail)
    _check_length(manifest, fail)
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
    _check_storage(variables, fail)

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
    if "module_relaxed.wasm" in manifest["files"] and not any("wasm" in sig for sig in signatures.values()):
        fail('manifest.json: "files" lists module_relaxed.wasm, but no signature has a "wasm" section')


def _numpy():
    """numpy, or None where it is not installed (Pyodide): values are then nested lists."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _from_storage(data, spec, shape: tuple | None = None):
    """Backend storage bytes -> a numpy array of ``spec``'s shape (or ``shape``) and dtype (a copy);
    without numpy, nested lists of Python numbers (as ``ndarray.tolist()``)."""
    dt = as_dtype(spec["dtype"])
    host = hostdata.from_storage(data, dt, dt.wasm)
    shape = tuple(spec["shape"]) if shape is None else shape
    if _numpy() is None:
        return hostdata.to_list(host, shape, dt)
    return hostdata.to_numpy(host, shape, dt)


def _shape_of(x) -> tuple:
    """An input's shape: an array's, or nested lists' (first elements; ``_value`` checks the rest)."""
    if hasattr(x, "shape"):
        return tuple(x.shape)
    shape = []
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        x = x[0] if x else None
    return tuple(shape)


def _resize(data: bytes, shape: list, axis: int, have: int, want: int) -> bytes:
    """Storage bytes of ``shape`` with ``have`` rows in ``axis`` as ``want`` rows: zero rows added
    at the end of the axis, or the rows past ``want`` cut (``axis`` -1: unchanged)."""
    if axis < 0 or have == want:
        return data
    blocks = prod(shape[:axis])
    row = len(data) // (blocks * have) if blocks * have else 0
    keep, pad = min(have, want) * row, bytes(max(want - have, 0) * row)
    return b"".join(data[b * have * row:b * have * row + keep] + pad for b in range(blocks))


# ---- the loaded model ---------------------------------------------------------------------------

class LoadedModel:
    """An artifact loaded on one backend (``backend``: ``'wasm'`` or ``'webgpu'``).

    ``signatures``: ``{name: {'inputs': [spec], 'outputs': [spec]}}`` (spec: ``{name, dtype, shape}``; with a symbolic
    length also ``'length'``: docs/artifact.md, "Symbolic length");
    ``variables``: ``[{name, dtype, shape, trainable}]``. Values are numpy arrays in and out; without
    numpy (Pyodide) inputs are Tensors, nested lists or buffers and outputs nested lists.
    Safe to use from many threads: each call runs alone on the model (module docstring).
    """

    def __init__(self, manifest, backend):
        self._manifest, self._backend = manifest, backend
        self.backend = backend.kind
        self.runs = 0

    @property
    def signatures(self) -> dict:
        return {n: {"inputs": self._inputs(n), "outputs": s["outputs"], **({"length": s["length"]} if "length" in s else {})}
                for n, s in self._manifest["signatures"].items()}

    def _inputs(self, name: str) -> list:
        """Signature ``name``'s inputs that callers give: all but a batch's row count (``rows_input``)."""
        sig = self._manifest["signatures"][name]
        k = sig.get("batch", {}).get("rows_input")
        return sig["inputs"] if k is None else sig["inputs"][:k] + sig["inputs"][k + 1:]

    @property
    def variables(self) -> list[dict]:
        return [dict(v) for v in self._manifest["variables"]]

    def _value(self, value, spec, what, shape: tuple | None = None) -> bytes:
        """``value`` checked against ``spec`` (its dtype, and its shape or ``shape``) as storage bytes."""
        np = _numpy()
        shape = tuple(spec["shape"]) if shape is None else shape
        if np is None:
            return self._value_without_numpy(value, spec, what, shape)
        if isinstance(value, Tensor):
            value = value.numpy()
        a = np.asarray(value)
        if a.shape != shape:
            raise ValueError(f"webtensor: {what}: expected shape {list(shape)} {spec['dtype']}, got "
                             f"{list(a.shape)} {a.dtype}")
        want = np.dtype(hostdata.NUMPY[spec["dtype"]])
        if not (np.can_cast(a.dtype, want, "same_kind") and (a.dtype.kind != "f" or want.kind == "f")):
            raise ValueError(f"webtensor: {what}: expected {spec['dtype']} data, got {a.dtype}")
        a = a.astype(want)
        return (a.astype("<i4") if spec["dtype"] == "bool" else a).tobytes()

    @staticmethod
    def _value_without_numpy(value, spec, what, shape: tuple) -> bytes:
        """``_value`` for Pyodide without numpy: a Tensor, (nested) lists or a buffer, the same checks."""
        if isinstance(value, Tensor):
            value = value.tolist()
        try:
            host, got, dt = hostdata.from_python(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"webtensor: {what}: {e}") from None
        want = as_dtype(spec["dtype"])
        if tuple(got) != shape:
            raise ValueError(f"webtensor: {what}: expected shape {list(shape)} {spec['dtype']}, got "
                             f"{list(got)} {dt.name}")
        if dt != want and not (dt.name == "bool" or (dt.name == "int32" and want.name == "float32")):
            raise ValueError(f"webtensor: {what}: expected {spec['dtype']} data, got {dt.name}")
        if dt != want:
            host, _, _ = hostdata.from_python(hostdata.to_list(host, got, dt), want)
        return bytes(hostdata.to_storage(host, want, want.wasm))

    @staticmethod
    def _one_array(v, spec, batch: bool = False, length: int = -1) -> bool:
        """Is ``v`` an array (numpy, Tensor) of ``spec``'s shape (any axis 0 for a ``batch``
        signature, any size of axis ``length`` for a symbolic length), rather than a list wrapping inputs?"""
        if not hasattr(v, "shape"):
            return False
        shape, want = tuple(v.shape), tuple(spec["shape"])
        return len(shape) == len(want) and all(a == b for i, (a, b) in enumerate(zip(shape, want))
                                               if i != length and not (batch and i == 0))

    def _arrange(self, name: str, inputs: tuple) -> list:
        """``inputs`` (Keras 3's forms: values in input order, one list/tuple of them, or one dict keyed
        by input name) as one value per input of signature ``name``, in its order."""
        specs = self._inputs(name)
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
            if len(specs) == 1 and len(seq) == 1 and \
                    self._one_array(seq[0], specs[0], "batch" in self._manifest["signatures"][name],
                                    self._manifest["signatures"][name].get("length", {"inputs": [-1]})["inputs"][0]):
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
        specs = self._inputs(name)
        if len(inputs) != len(specs):
            raise ValueError(f"webtensor: signature '{name}' takes {len(specs)} input(s) "
                             f"({', '.join(s['name'] for s in specs)}), got {len(inputs)}")
        if "rows_input" in sig.get("batch", {}):
            return self._run_rows(name, sig, inputs)
        if "length" in sig:             # with a batch too: _run_length chunks the padded rows
            return self._run_length(name, sig, inputs)
        if "batch" in sig:
            return self._run_chunks(name, sig, inputs)
        data = [self._value(x, s, f"signature '{name}', input '{s['name']}'") for x, s in zip(inputs, sig["inputs"])]
        return {s["name"]: _from_storage(d, s) for s, d in zip(sig["outputs"], self._run_once(name, sig, data))}

    def _run_once(self, name: str, sig: dict, data: list, length: int | None = None, rows: int | None = None) -> list:
        """One run of signature ``name`` at its compiled shapes (storage bytes in and out), or over its
        first ``rows`` rows (a backend's ``takes_rows``: docs/artifact.md "Run-time rows"; never with
        control flow)."""
        with self._backend.lock:
            if rows is not None:
                outs = self._backend.run(name, data, rows)
            elif "control" in sig:
                outs = run_control(name, sig["control"], self._backend, data, length)
            else:
                outs = self._backend.run(name, data)
            self.runs += 1
        return outs

    def _run_chunks(self, name: str, sig: dict, inputs: list) -> dict:
        """A signature with a symbolic batch (format version 2): ``n`` rows run as ceil(n / chunk)
        runs of the compiled ``chunk`` rows, the last padded with zeros and its outputs sliced, or,
        where the backend runs fewer rows (``takes_rows``: kernels that take their rows at run time,
        docs/artifact.md "Run-time rows"), the last with its own rows. Exact: the exporter proved the
        rows independent (docs/artifact.md, "Symbolic batch"). Rows are cut in storage bytes, so this
        needs no numpy (Pyodide)."""
        n = self._batch_size(name, sig, inputs)
        data = [self._value(x, s, f"signature '{name}', input '{s['name']}'", (n, *s["shape"][1:]))
                for x, s in zip(inputs, sig["inputs"])]
        return {s["name"]: _from_storage(bytes(o), s, (n, *s["shape"][1:]))
                for s, o in zip(sig["outputs"], self._chunks(name, sig, data, n))}

    def _batch_size(self, name: str, sig: dict, inputs: list, length_axes=None, specs=None) -> int:
        """The rows ``n`` of a symbolic batch's inputs (axis 0; the same in each, within [1, maximum]);
        ``length_axes``: each input's length axis (-1: none), whose size may differ from the shape's;
        ``specs``: the inputs' specs (default the signature's)."""
        maximum = sig["batch"].get("maximum")
        sizes = []
        for k, (x, s) in enumerate(zip(inputs, specs or sig["inputs"])):
            ax = length_axes[k] if length_axes else -1
            shape = getattr(x, "shape", None)
            if shape is None:
                bad = not isinstance(x, (list, tuple))
                shape = (len(x),) if not bad else None      # nested lists: _value checks the rest
            elif ax < 0:                    # the common case as one tuple compare: a batch-1 call is ~20 us
                bad = not shape or tuple(shape[1:]) != tuple(s["shape"][1:])
            else:
                bad = not shape or len(shape) != len(s["shape"]) or \
                    any(a != d for i, (a, d) in enumerate(zip(shape, s["shape"])) if 0 < i != ax)
            if bad:
                got = f"{list(shape)} {getattr(x, 'dtype', '')}".rstrip() if shape is not None else type(x).__name__
                want = ["batch"] + [("length" if i == ax else d) for i, d in enumerate(s["shape"]) if i > 0]
                raise ValueError(f"webtensor: signature '{name}', input '{s['name']}': expected shape "
                                 f"{want} {s['dtype']}, got {got}")
            sizes.append(int(shape[0]))
        n = sizes[0]
        if sizes.count(n) != len(sizes):
            raise ValueError(f"webtensor: signature '{name}': inputs have different batch sizes "
                             f"({', '.join(map(str, sizes))})")
        if not 1 <= n <= (maximum or n):
            raise ValueError(f"webtensor: signature '{name}': batch size {n} is outside [1, {maximum or 'any'}]"
                             + (" (the artifact's declared maximum)" if n else ""))
        return n

    def _run_rows(self, name: str, sig: dict, inputs: list) -> dict:
        """A train step that takes any batch up to its chunk (docs/artifact.md, "Symbolic batch: train
        steps"): ``n`` rows (1 <= n <= ``maximum``) are padded to the chunk with copies of the first row
        (so padding computes only what a real row does: finite where the real rows are), or, where the
        backend takes rows at run time (``takes_rows``: "Run-time rows"), run as they are; the row
        count input is ``n``: the step's loss and update count the first ``n`` rows only. Outputs whole."""
        b, k = sig["batch"], sig["batch"]["rows_input"]
        specs = self._inputs(name)
        n = self._batch_size(name, sig, inputs, specs=specs)
        takes_rows = getattr(self._backend, "takes_rows", None)
        partial = n < b["chunk"] and takes_rows is not None and takes_rows(name)   # its own rows, unpadded
        data = []
        for x, s in zip(inputs, specs):
            d = bytes(self._value(x, s, f"signature '{name}', input '{s['name']}'", (n, *s["shape"][1:])))
            data.append(d if partial else d + d[:len(d) // n] * (b["chunk"] - n))
        data.insert(k, self._value(n, sig["inputs"][k], f"signature '{name}', row count"))
        outs = self._run_once(name, sig, data, rows=n if partial else None)
        return {s["name"]: _from_storage(d, s) for s, d in zip(sig["outputs"], outs)}

    def _chunks(self, name: str, sig: dict, data: list, n: int, length: int | None = None) -> list:
        """The outputs (storage bytes, ``n`` rows) of ``data`` (storage bytes of ``n`` rows) run in
        chunks of the compiled rows; ``length``: a symbolic length's run (its inputs already padded)."""
        chunk = sig["batch"]["chunk"]
        takes_rows = getattr(self._backend, "takes_rows", None)
        partial = takes_rows is not None and "control" not in sig and length is None and takes_rows(name)
        if partial and n < chunk:       # one run of its own rows: nothing to cut or join
            return self._run_once(name, sig, data, rows=n)
        data = [bytes(d) for d in data]
        outs = [bytearray() for _ in sig["outputs"]]
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            part = []
            for d in data:
                row = len(d) // n
                part.append(d[start * row:(start + rows) * row] + bytes(0 if partial else (chunk - rows) * row))
            res = self._run_once(name, sig, part, length, rows if partial and rows < chunk else None)
            for o, d in zip(outs, res):
                d = bytes(d)
                o += d if partial and rows < chunk else d[:len(d) // chunk * rows]
        return outs

    def _run_length(self, name: str, sig: dict, inputs: list) -> dict:
        """A signature with a symbolic length (docs/artifact.md, "Symbolic length"): inputs of any
        length ``L`` in [1, maximum] (the same in each input that has one) are padded with zero rows
        to ``maximum``, the loops over the length run ``L`` steps, and the outputs are cut to ``L``.
        Exact: the exporter proved that no step reads a later one. Cut in storage bytes (no numpy)."""
        ln = sig["length"]
        top, sizes = ln["maximum"], []
        rows = self._batch_size(name, sig, inputs, ln["inputs"]) if "batch" in sig else None
        for x, s, ax in zip(inputs, sig["inputs"], ln["inputs"]):
            shape = _shape_of(x)
            if ax >= 0 and len(shape) == len(s["shape"]):
                sizes.append(shape[ax])
            elif ax >= 0:
                raise ValueError(f"webtensor: signature '{name}', input '{s['name']}': expected shape "
                                 f"{[('length' if i == ax else d) for i, d in enumerate(s['shape'])]} {s['dtype']}, "
                                 f"got {list(shape)}")
        n = sizes[0]
        if any(k != n for k in sizes):
            raise ValueError(f"webtensor: signature '{name}': inputs have different lengths ({', '.join(map(str, sizes))})")
        if not 1 <= n <= top:
            raise ValueError(f"webtensor: signature '{name}': length {n} is outside [1, {top}]"
                             + (" (the artifact's declared maximum length)" if n else ""))
        # the shapes run: axis 0 the batch's rows (a symbolic batch), axis ax the length k
        at = lambda spec, ax, k: {**spec, "shape": [rows if i == 0 and rows is not None else k if i == ax else d
                                                    for i, d in enumerate(spec["shape"])]}
        data = [_resize(self._value(x, at(s, ax, n), f"signature '{name}', input '{s['name']}'"), at(s, ax, n)["shape"],
                        ax, n, top) for x, s, ax in zip(inputs, sig["inputs"], ln["inputs"])]
        outs = self._run_once(name, sig, data, n) if rows is None else self._chunks(name, sig, data, rows, n)
        return {s["name"]: _from_storage(_resize(bytes(d), at(s, ax, top)["shape"], ax, top, n), at(s, ax, n))
                for s, d, ax in zip(sig["outputs"], outs, ln["outputs"])}

    def predict(self, *x):
        """``run('predict', ...)``: its output array (a list of arrays if it has several). ``x``: the
        input (``predict(a)``), or for several inputs ``predict(a, b, c)``, ``predict([a, b, c])`` or
        ``predict({'a': a, 'b': b, 'c': c})`` (keys: the signature's input names, Keras' input names)."""
        out = list(self.run("predict", *x).values())
        return out[0] if len(out) == 1 else out

    def train_step(self, x, y):
        """``run('train_step', x, y)``: one optimizer step; returns the loss (its first output). ``x`` is
        the input, or for several inputs a list/tuple in input order or a dict keyed by input name. A
        train step with a row count (``batch.rows_input``, docs/artifact.md "Symbolic batch: train
        steps") takes any number of rows up to its ``maximum`` (else a ValueError)."""
        specs = self._inputs("train_step") if "train_step" in self._manifest["signatures"] else []
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
            software adapter such as llvmpipe: ``is_software_adapter`` in ``webgpu/runtime.py``;
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
    names = loader_names()                      # in the order 'auto' asks them ('webgpu', 'wasm')
    if backend != "auto" and backend not in names:
        raise ValueError(f"webtensor.load: backend must be {_either(['auto'] + names)}, got {backend!r}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e9:
            raise ValueError(f"webtensor.load: timeout must be a positive number of seconds, got {timeout!r}")
        interruptible = [n for n in names if loader(n).interruptible]
        if backend != "auto" and backend not in interruptible:
            raise ValueError(f"webtensor.load: timeout works on backend {_either(interruptible)} only "
                             f"({backend!r} work cannot be interrupted); use backend={_either(interruptible + ['auto'])}")
        names = interruptible
    if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                     or memory_limit < 0):
        raise ValueError(f"webtensor.load: memory_limit must be a number of bytes, got {memory_limit!r}")
    manifest, files, weights = read_artifact(path)

    def fail(msg):
        raise ArtifactError(f"webtensor: artifact '{os.fspath(path)}': {msg}")
    artifact = Artifact(expand(manifest, fail), files, weights, DTYPES)     # control flow: its pieces
    if backend == "auto":
        backend = next((n for n in names if loader(n).auto(artifact)), names[-1])
    return LoadedModel(manifest, loader(backend)(artifact, fail, timeout=timeout, memory_limit=memory_limit))


def _either(names) -> str:
    """``'a', 'b' or 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
