"""Read and write the safetensors format in pure Python (no numpy).

Format (https://github.com/huggingface/safetensors)::

    8 bytes   N, little-endian u64: length of the JSON header
    N bytes   UTF-8 JSON object
                {"__metadata__": {str: str},              (optional)
                 name: {"dtype": "F32", "shape": [2, 3],
                        "data_offsets": [begin, end]}, ...}
              padded with spaces so that N is a multiple of 8
    rest      the byte buffer: every tensor's raw little-endian, C-order
              bytes; offsets are relative to the start of the buffer

Like the reference writer, :func:`save` orders tensors by decreasing dtype
alignment, then by name, stores them back to back, and writes compact JSON
with ``__metadata__`` first. :func:`load` checks everything a damaged file can
get wrong and raises ``ValueError`` naming the problem (and the tensor).

Tensors are passed as ``(dtype, shape, data)`` triples, where ``dtype`` is a
webtensor dtype name (``'float32'``, ``'int32'``, ``'bool'``, ``'float16'``,
...; see :data:`DTYPES`), ``shape`` a tuple of ints and ``data`` the raw
little-endian bytes (anything exposing the buffer protocol: ``bytes``,
``bytearray``, ``memoryview``, ``array.array`` on a little-endian host).
"""

from __future__ import annotations

import json
import os
import struct

from .schema import loads
from .tensor import Tensor, _numpy, tensor

__all__ = ["DTYPES", "ITEMSIZE", "save", "load", "save_file", "load_file", "load_safetensors", "save_safetensors"]

# webtensor dtype name -> safetensors dtype name
DTYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "int16": "I16",
    "uint16": "U16",
    "float16": "F16",
    "bfloat16": "BF16",
    "int32": "I32",
    "uint32": "U32",
    "float32": "F32",
    "float64": "F64",
    "int64": "I64",
    "uint64": "U64",
}
_FROM_ST: dict[str, str] = {v: k for k, v in DTYPES.items()}

# bytes per element, by webtensor dtype name
ITEMSIZE: dict[str, int] = {
    "bool": 1, "uint8": 1, "int8": 1,
    "int16": 2, "uint16": 2, "float16": 2, "bfloat16": 2,
    "int32": 4, "uint32": 4, "float32": 4,
    "float64": 8, "int64": 8, "uint64": 8,
}

# Position of each safetensors dtype in the reference implementation's
# `Dtype` enum (declared in increasing alignment order); the writer sorts by
# this, descending, then by name.
_ST_ORDER = {
    name: i
    for i, name in enumerate(
        ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16",
         "I32", "U32", "F32", "F64", "I64", "U64"]
    )
}

_MAX_HEADER_SIZE = 100_000_000  # same limit as the reference reader


def _num_elements(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _check_shape(shape, what: str) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)):
        raise ValueError(f"{what}: shape must be a list of integers, got {shape!r}")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(
                f"{what}: shape must hold non-negative integers, got {list(shape)!r}"
            )
    return tuple(shape)


def save(
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
    metadata: dict[str, str] | None = None,
) -> bytes:
    """Serialize ``{name: (dtype, shape, data)}`` to safetensors bytes.

    ``metadata`` is an optional ``{str: str}`` map stored as ``__metadata__``.
    Raises ``ValueError`` for an unknown dtype, a bad shape, or data whose
    size is not ``prod(shape) * itemsize``; ``TypeError`` for wrong types.
    """
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        try:
            dtype, shape, data = value
        except (TypeError, ValueError):
            raise TypeError(
                f"tensor {name!r}: expected a (dtype, shape, data) tuple"
            ) from None
        if dtype not in DTYPES:
            raise ValueError(
                f"tensor {name!r}: unknown dtype {dtype!r} "
                f"(known: {', '.join(DTYPES)})"
            )
        shape = _check_shape(shape, f"tensor {name!r}")
        try:
            buf = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(
                f"tensor {name!r}: data must be a contiguous bytes-like object, "
                f"got {type(data).__name__}"
            ) from None
        expected = _num_elements(shape) * ITEMSIZE[dtype]
        if buf.nbytes != expected:
            raise ValueError(
                f"tensor {name!r}: data has {buf.nbytes} bytes, but shape "
                f"{shape} of {dtype} needs {expected}"
            )
        entries.append((name, DTYPES[dtype], shape, buf))

    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise TypeError("metadata must be a dict of str -> str")

    # Decreasing alignment, then name (the reference writer's order).
    entries.sort(key=lambda e: (-_ST_ORDER[e[1]], e[0]))

    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name, st_dtype, shape, buf in entries:
        header[name] = {
            "dtype": st_dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + buf.nbytes],
        }
        offset += buf.nbytes

    header_bytes = json.dumps(
        header, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    header_bytes += b" " * ((8 - len(header_bytes) % 8) % 8)

    out = bytearray(8 + len(header_bytes) + offset)
    struct.pack_into("<Q", out, 0, len(header_bytes))
    out[8:8 + len(header_bytes)] = header_bytes
    pos = 8 + len(header_bytes)
    for _, _, _, buf in entries:
        out[pos:pos + buf.nbytes] = buf
        pos += buf.nbytes
    return bytes(out)


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r} in safetensors header")
        obj[k] = v
    return obj


def load(data: bytes) -> tuple[dict[str, tuple[str, tuple, memoryview]], dict]:
    """Parse safetensors bytes.

    Returns ``(tensors, metadata)``: ``tensors`` maps each name to
    ``(dtype, shape, view)`` in file order, where ``dtype`` is a webtensor
    dtype name, ``shape`` a tuple and ``view`` a zero-copy ``memoryview`` of
    the raw little-endian bytes inside ``data``; ``metadata`` is the
    ``__metadata__`` map (``{}`` when absent).

    Raises ``ValueError`` with a clear message for a damaged file: too short,
    header length past the end, header not UTF-8 / not a JSON object, unknown
    dtype, bad shape or offsets, offsets overlapping / leaving gaps / not
    covering the buffer exactly, or a byte size that differs from
    ``prod(shape) * itemsize``.
    """
    mv = memoryview(data).cast("B")
    total = mv.nbytes
    if total < 8:
        raise ValueError(
            f"safetensors: data is {total} bytes, too short for the 8-byte header length"
        )
    (n,) = struct.unpack_from("<Q", mv, 0)
    if n > _MAX_HEADER_SIZE:
        raise ValueError(
            f"safetensors: header length {n} is larger than the {_MAX_HEADER_SIZE} "
            f"byte limit (damaged file?)"
        )
    if 8 + n > total:
        raise ValueError(
            f"safetensors: header length {n} runs past the end of the data "
            f"({total} bytes; truncated file?)"
        )
    try:
        text = bytes(mv[8:8 + n]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"safetensors: header is not valid UTF-8 ({exc})") from None
    try:   # numbers as JavaScript reads them (16.0 is 16), as the JS runtime's parser does
        header = loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"safetensors: header is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise ValueError("safetensors: header is not a JSON object")

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict) or not all(
        isinstance(v, str) for v in metadata.values()
    ):
        raise ValueError("safetensors: '__metadata__' must map strings to strings")

    infos = []
    for name, info in header.items():
        what = f"safetensors: tensor {name!r}"
        if not isinstance(info, dict):
            raise ValueError(f"{what}: entry is not a JSON object")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise ValueError(f"{what}: entry has no {key!r}")
        st_dtype = info["dtype"]
        if st_dtype not in _FROM_ST:
            raise ValueError(
                f"{what}: unknown or unsupported dtype {st_dtype!r} "
                f"(supported: {', '.join(_FROM_ST)})"
            )
        shape = _check_shape(info["shape"], what)
        offsets = info["data_offsets"]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or any(isinstance(o, bool) or not isinstance(o, int) or o < 0 for o in offsets)
        ):
            raise ValueError(
                f"{what}: data_offsets must be two non-negative integers, got {offsets!r}"
            )
        begin, end = offsets
        if end < begin:
            raise ValueError(f"{what}: data_offsets [{begin}, {end}] end before they begin")
        dtype = _FROM_ST[st_dtype]
        nbytes = _num_elements(shape) * ITEMSIZE[dtype]
        if end - begin != nbytes:
            raise ValueError(
                f"{what}: data_offsets [{begin}, {end}] span {end - begin} bytes, but "
                f"shape {list(shape)} of {st_dtype} needs {nbytes}"
            )
        infos.append((begin, end, name, dtype, shape))

    buffer_start = 8 + n
    buffer_len = total - buffer_start
    infos.sort(key=lambda t: (t[0], t[1]))
    pos = 0
    for begin, end, name, _, _ in infos:
        what = f"safetensors: tensor {name!r}"
        if end > buffer_len:
            raise ValueError(
                f"{what}: data_offsets [{begin}, {end}] run past the end of the "
                f"{buffer_len}-byte data buffer (truncated file?)"
            )
        if begin < pos:
            raise ValueError(
                f"{what}: data_offsets [{begin}, {end}] overlap the previous tensor "
                f"(which ends at {pos})"
            )
        if begin > pos:
            raise ValueError(
                f"{what}: data_offsets [{begin}, {end}] leave a gap after byte {pos} "
                f"of the data buffer"
            )
        pos = end
    if pos != buffer_len:
        raise ValueError(
            f"safetensors: tensors cover {pos} bytes but the data buffer has "
            f"{buffer_len} (damaged file?)"
        )

    buf = mv[buffer_start:]
    tensors = {
        name: (dtype, shape, buf[begin:end])
        for begin, end, name, dtype, shape in infos
    }
    return tensors, dict(metadata)


def save_file(
    path: str | os.PathLike,
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write :func:`save` ``(tensors, metadata)`` to ``path``."""
    data = save(tensors, metadata)
    with open(path, "wb") as f:
        f.write(data)


def load_file(
    path: str | os.PathLike,
) -> tuple[dict[str, tuple[str, tuple, memoryview]], dict]:
    """Read ``path`` and :func:`load` it; errors name the file."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return load(data)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from None


# ---- Tensors in and out (webtensor.load_safetensors / save_safetensors) -----------------------------

# safetensors dtype (webtensor name) -> numpy dtype string / struct format of its little-endian layout
_NUMPY_OF = {"bool": "|b1", "uint8": "|u1", "int8": "|i1", "int16": "<i2", "uint16": "<u2", "float16": "<f2",
             "int32": "<i4", "uint32": "<u4", "float32": "<f4", "float64": "<f8", "int64": "<i8", "uint64": "<u8"}
_FORMAT_OF = {"bool": "?", "uint8": "B", "int8": "b", "int16": "h", "uint16": "H", "float16": "e", "int32": "i",
              "uint32": "I", "float32": "f", "float64": "d", "int64": "q", "uint64": "Q"}


def _stored_tensor(dtype: str, shape: tuple, view, device=None):
    """One stored tensor (``load``'s ``(dtype, shape, view)``) as a Tensor with :func:`webtensor.tensor`'s
    conventions for numpy data: float64 -> float32, float16 stays, integers -> int32 (wrapping),
    bool; bfloat16 -> float32 (exactly: its bits are a float32's upper half)."""
    if dtype == "bfloat16":            # no numpy or struct type: widen to float32 bytes, low half zero
        wide = bytearray(2 * len(view))
        wide[2::4], wide[3::4] = view[0::2], view[1::2]
        dtype, view = "float32", memoryview(bytes(wide))
    np = _numpy()
    if np is not None:
        return tensor(np.frombuffer(view, _NUMPY_OF[dtype]).reshape(shape), device=device)
    target = {"bool": "bool", "float16": "float16", "float32": "float32", "float64": "float32"}.get(dtype, "int32")
    return tensor(memoryview(view).cast(_FORMAT_OF[dtype]), dtype=target, device=device).reshape(tuple(shape))


def load_safetensors(source, device=None) -> dict:
    """Read a safetensors file (a path, or its bytes) written by anything (PyTorch, Keras, the
    ``safetensors`` package, :func:`save_safetensors`) as ``{name: Tensor}`` in file order.

    Dtypes follow :func:`webtensor.tensor` for numpy arrays: F32 and F64 give float32, F16 float16,
    BF16 float32 (exact), every integer type int32 (wrapping, as numpy's ``astype``), BOOL bool.
    Args:
        source: a path (str or path-like) or the file's bytes.
        device: where the tensors go (a name or Device; default: the current device).
    Returns:
        ``{name: Tensor}`` in file order.
    Raises:
        ValueError: a damaged file (the message names the file and what is wrong).
        OSError: the path cannot be read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        stored, _ = load(source)
    else:
        stored, _ = load_file(source)
    return {name: _stored_tensor(dtype, shape, view, device) for name, (dtype, shape, view) in stored.items()}


def save_safetensors(path, tensors: dict, metadata: dict | None = None):
    """Write ``{name: Tensor or array}`` as a safetensors file (each value's dtype and shape; arrays
    are converted as :func:`webtensor.tensor` converts them).

    Args:
        path: the file to write, or None to return the bytes instead.
        tensors: ``{name: Tensor or array-like}``, names str.
        metadata: an optional ``{str: str}`` stored as ``__metadata__``.
    Returns:
        The file's bytes when ``path`` is None, else None.
    The file loads with the ``safetensors`` package and :func:`load_safetensors`.

    Raises:
        TypeError: a name that is not a str, or a value that cannot be a tensor.
        ValueError: the name ``'__metadata__'``, or a dtype safetensors cannot hold.
    """
    entries = {}
    for name, value in tensors.items():
        t = value if isinstance(value, Tensor) else tensor(value)
        entries[name] = (t.dtype.name, tuple(t.shape), bytes(t._host_bytes()))
    if path is None:
        return save(entries, metadata)
    save_file(path, entries, metadata)
    return None
