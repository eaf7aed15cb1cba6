"""Host data without numpy: Python lists and buffers <-> bytes in the host layout.

The **host layout** of a tensor is its elements in row-major (C) order, little-endian, one
element per ``dtype.itemsize`` bytes: float32 and int32 as 4 bytes, float16 as IEEE binary16
(2 bytes), bool as one byte 0 or 1 — exactly a C-contiguous numpy array of that dtype, so
numpy arrays are host buffers as they are. ``Device.from_host`` takes host buffers and
``Device.to_host_bytes`` returns them; devices convert to their storage types (bool as i32,
float16 as f32 where there is no f16) with :func:`to_storage` / :func:`from_storage`.

Everything here uses the standard library only (``array``, ``struct``, ``memoryview``), so it
runs in Pyodide; conversions run in C (``array``/``struct``/``bytes``), never a Python loop per
element, except the per-leaf checks of nested lists. Little-endian hosts are assumed (x86, ARM
and WebAssembly all are).
"""
from __future__ import annotations

import array
import math
import operator
import struct
import sys
from math import prod

from ..dtypes import INT32_MAX, INT32_MIN, DType, as_dtype, bool_, float16, float32, int32
from .util import require_numpy

# struct / memoryview format of each dtype's host layout
FORMAT = {"float32": "f", "int32": "i", "bool": "?", "float16": "e"}
# numpy dtype strings of the same layout (for numpy arrays handed in or out)
NUMPY = {"float32": "<f4", "int32": "<i4", "bool": "|b1", "float16": "<f2"}
# memoryview/array format character -> the dtype it becomes (numpy's defaults land on 32 bits)
_FROM_FORMAT = {"f": float32, "d": float32, "e": float16, "?": bool_,
                **{c: int32 for c in "bBhHiIlLqQnN"}}
# (kind, itemsize) -> the struct code of that layout in standard sizes ('i' signed, 'u' unsigned)
_STD_CODE = {("f", 2): "e", ("f", 4): "f", ("f", 8): "d", ("?", 1): "?",
             ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
             ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q"}
_KIND = {"f": "f", "d": "f", "e": "f", "?": "?", **{c: "i" for c in "bhilqn"}, **{c: "u" for c in "BHILQN"}}
_SUPPORTED = "'f', 'd', 'e', '?', 'b', 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q', 'n', 'N'"


def nbytes(shape, dtype: DType) -> int:
    """Bytes of a tensor of ``shape``/``dtype`` in the host layout."""
    return prod(shape) * dtype.itemsize


def _numpy_array(x):
    """``x`` if it is a numpy array (numpy is not imported for the test: no numpy, no arrays)."""
    np = sys.modules.get("numpy")
    return x if np is not None and isinstance(x, np.ndarray) else None


def as_host(buffer, dtype: DType):
    """A buffer of ``dtype``'s host layout: numpy arrays are converted (dtype, C order) when they
    are not already; other buffer-protocol objects are returned as they are (the caller checks
    the size)."""
    a = _numpy_array(buffer)
    if a is not None:
        np = sys.modules["numpy"]
        return np.ascontiguousarray(a, dtype=NUMPY[dtype.name])
    return buffer


def byte_view(buffer) -> memoryview:
    """A flat unsigned-byte view of a C-contiguous buffer (no copy).

    Raises:
        ValueError: the buffer is not C-contiguous.
    """
    mv = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
    if mv.nbytes == 0:
        return memoryview(b"")
    if not mv.c_contiguous:
        raise ValueError("host data must be a C-contiguous buffer")
    return mv.cast("B") if (mv.format, mv.ndim) != ("B", 1) else mv


# ---- Python data -> host bytes --------------------------------------------------------------------

def _flatten(data) -> tuple[list, tuple[int, ...]]:
    """Nested lists/tuples -> (flat list of leaves, shape). Raises ValueError when ragged."""
    if not isinstance(data, (list, tuple)):
        return [data], ()
    shape, x = [], data
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    level = [data]
    for depth, n in enumerate(shape):
        nxt: list = []
        for item in level:
            if not isinstance(item, (list, tuple)) or len(item) != n:
                raise ValueError(f"tensor: the data is ragged: at depth {depth} expected sequences of length {n} "
                                 f"(shape from the first elements: {tuple(shape)}), found "
                                 f"{'a ' + type(item).__name__ + ' of length ' + str(len(item)) if isinstance(item, (list, tuple)) else repr(item)}")
            nxt.extend(item)
        level = nxt
    if any(isinstance(v, (list, tuple)) for v in level):
        raise ValueError(f"tensor: the data is ragged: elements at depth {len(shape)} mix numbers and sequences")
    return level, tuple(shape)


def _infer(flat: list) -> DType:
    kinds = set(map(type, flat))
    if not kinds:
        return float32                                      # numpy: an empty list is float64
    dt = bool_
    for k in kinds:
        if issubclass(k, bool):
            continue
        if issubclass(k, int):
            dt = int32 if dt is bool_ else dt
        elif issubclass(k, float) or hasattr(k, "__float__") and not issubclass(k, complex):
            dt = float32
        else:
            raise TypeError(f"tensor: cannot convert data of type {k.__name__} (expected numbers, nested "
                            "lists/tuples of numbers, array.array, memoryview or numpy arrays)")
    return dt


def int32_overflow(value, what: str = "tensor") -> OverflowError:
    """The error for an integer outside int32's range (``what``: the call that converts it)."""
    return OverflowError(f"{what}: the integer {value} is out of range for int32 "
                         f"[{INT32_MIN}, {INT32_MAX}]; webtensor has no int64 (use float32, or split the value)")


def float_to_int32(v: float) -> int:
    """The float -> int32 cast rule (``webtensor.cast``'s docstring), for one Python float: truncate
    toward zero, saturate to [INT32_MIN, INT32_MAX], NaN -> 0 (WebAssembly's ``i32.trunc_sat_f32_s``)."""
    if v != v:
        return 0
    return INT32_MIN if v <= INT32_MIN else INT32_MAX if v >= INT32_MAX else int(v)


def _to_int32(v) -> int:
    try:
        i = operator.index(v)               # int, bool, numpy integers: exact, so range-checked
    except TypeError:
        return float_to_int32(float(v))     # floats follow the cast rule
    if not INT32_MIN <= i <= INT32_MAX:
        raise int32_overflow(i)
    return i


def _to_float(v) -> float:
    return float(v)


def pack(flat, dtype: DType) -> bytes | array.array:
    """A flat sequence (or an iterator, read once) of Python numbers -> ``dtype``'s host layout. To int32, integers outside its
    range raise OverflowError and floats follow the cast rule (:func:`float_to_int32`: truncate,
    saturate, NaN -> 0); bool is ``x != 0``; floats beyond the float16/float32 range become infinities.

    Raises:
        OverflowError: an integer outside int32's range converted to int32 (the message names it).
    """
    name = dtype.name
    seq = isinstance(flat, (list, tuple, range))     # iterators are read once: converted element by element
    if name == "float32":
        try:
            return array.array("f", flat) if seq else array.array("f", map(_to_float, flat))
        except TypeError:
            return array.array("f", map(_to_float, flat))
    if name == "int32":
        try:
            return array.array("i", flat) if seq else array.array("i", map(_to_int32, flat))
        except (OverflowError, TypeError):     # an int out of range (named below), or floats
            return array.array("i", map(_to_int32, flat))
    if name == "bool":
        return bytes(map(bool, flat))
    if name == "float16":
        return _pack_f16(list(map(_to_float, flat)))
    raise TypeError(f"unsupported dtype {dtype!r}")


def _pack_f16(values: list) -> bytes:
    try:
        return struct.pack(f"<{len(values)}e", *values)
    except OverflowError:   # struct refuses values that round past 65504; numpy gives infinity
        return struct.pack(f"<{len(values)}e", *[v if abs(v) < 65520.0 or v != v else math.copysign(math.inf, v)
                                                  for v in values])


def from_python(data, dtype: DType | None = None) -> tuple[object, tuple[int, ...], DType]:
    """Python data -> ``(host buffer, shape, dtype)``.

    ``data``: a Python scalar, (nested) lists/tuples of numbers, or a buffer (``array.array``,
    ``memoryview``, ...: see :func:`from_buffer`). Without ``dtype``: floats give float32, ints
    int32, bools bool (a mix takes the widest), as :func:`webtensor.tensor` documents.

    Raises:
        ValueError: ragged nested lists.
        OverflowError: an integer outside int32's range where the result is int32.
        TypeError: leaves that are not numbers; an unsupported buffer format.
    """
    dtype = as_dtype(dtype) if dtype is not None else None
    if is_buffer(data):
        return from_buffer(data, dtype)
    flat, shape = _flatten(data)
    dt = dtype or _infer(flat)
    try:
        return pack(flat, dt), shape, dt
    except TypeError:
        _infer(flat)            # names the offending type
        raise


def is_buffer(data) -> bool:
    """Does ``data`` support the buffer protocol (and is not Python numbers, lists or text, nor a
    numpy array or scalar, which have their own path)?"""
    if isinstance(data, (array.array, memoryview, bytes, bytearray)):
        return True
    if data is None or isinstance(data, (list, tuple, str, int, float, bool, complex)) or _numpy_array(data) is not None:
        return False
    np = sys.modules.get("numpy")
    if np is not None and isinstance(data, np.generic):
        return False
    try:
        memoryview(data)
    except TypeError:
        return False
    return True


def from_buffer(data, dtype: DType | None = None) -> tuple[object, tuple[int, ...], DType]:
    """A buffer-protocol object (``memoryview``, ``array.array``, ``bytes``, ctypes arrays, ...) ->
    ``(host buffer, shape, dtype)``, reading its elements as its ``format`` says and keeping its
    ``shape``, as numpy reads the same buffer: ``'f'``/``'d'`` give float32, ``'e'`` float16, ``'?'``
    bool, the integer codes int32 (wrapping as numpy's ``astype``); byte order prefixes (``'<'``,
    ``'>'``, ``'!'``, ``'='``, ``'@'``) are honoured. ``dtype`` converts the values. Zero-copy when
    the buffer is C-contiguous and already in ``dtype``'s host layout.

    Raw bytes have no element type: a ``bytes``/``bytearray``/``mmap`` buffer of format ``'B'`` (and
    any memoryview of one) is refused unless ``dtype`` is given (then each byte is one value);
    cast it first (``memoryview(b).cast('f')``) to read the values its bytes encode.

    Raises:
        TypeError: a format other than those above (complex, char, struct or pointer formats),
            or raw bytes without ``dtype``; the message names the format.
    """
    mv = memoryview(data)
    fmt = mv.format
    order, code = (fmt[0], fmt[1:]) if fmt[:1] in "@=<>!" else ("@", fmt)
    std = _STD_CODE.get((_KIND.get(code), mv.itemsize))
    if code not in _FROM_FORMAT or std is None:
        raise TypeError(f"tensor: unsupported buffer format {fmt!r} (itemsize {mv.itemsize}); supported formats: "
                        f"{_SUPPORTED}, optionally with a byte order prefix")
    raw = (bytes, bytearray) + ((sys.modules["mmap"].mmap,) if "mmap" in sys.modules else ())   # an mmap needs it
    if dtype is None and code == "B" and isinstance(mv.obj, raw):
        raise TypeError(f"tensor: a buffer of raw bytes (format 'B') from a {type(mv.obj).__name__} object has no "
                        "element type; cast it to the type its bytes hold (memoryview(b).cast('f') for float32, "
                        "cast('i') for int32), or pass dtype= to read each byte as one number")
    dt = dtype or _FROM_FORMAT[code]
    shape = tuple(mv.shape)
    little = order == "<" or (order in "@=" and sys.byteorder == "little")
    if little and std == FORMAT[dt.name] and mv.c_contiguous:
        return byte_view(mv), shape, dt
    raw = byte_view(mv) if mv.c_contiguous else memoryview(mv.tobytes())
    n = raw.nbytes // mv.itemsize
    flat = list(struct.unpack(f"{'<' if little else '>'}{n}{std}", raw)) if n else []
    return pack(flat, dt), shape, dt


# ---- host bytes -> Python data --------------------------------------------------------------------

def _nest(flat: list, shape: tuple[int, ...]):
    if not shape:
        return flat[0]
    for n in reversed(shape[1:]):
        flat = [flat[i:i + n] for i in range(0, len(flat), n)] if n else [[] for _ in range(len(flat))]
    if not flat and shape[0]:
        flat = [_nest([], shape[1:]) for _ in range(shape[0])]
    return flat


def to_list(buffer, shape: tuple[int, ...], dtype: DType):
    """Host-layout bytes -> nested lists of Python numbers (a number for shape ``()``), as
    ``numpy.ndarray.tolist``."""
    mv = byte_view(buffer)
    if dtype.name == "float16":
        return _nest(list(struct.unpack(f"<{mv.nbytes // 2}e", mv)), tuple(shape))
    if 0 in shape:
        return _nest([], tuple(shape))
    return mv.cast(FORMAT[dtype.name], tuple(shape)).tolist()


# ---- host layout <-> device storage ---------------------------------------------------------------

def to_storage(buffer, dtype: DType, storage: str):
    """Host-layout buffer -> a byte ``memoryview`` of ``storage`` (``'f32'``, ``'i32'`` or ``'f16'``):
    the same bytes when the layouts agree (no copy), bool bytes -> i32 0/1, float16 -> f32."""
    mv = byte_view(buffer)
    host = FORMAT[dtype.name]
    if (host, storage) in (("f", "f32"), ("i", "i32"), ("e", "f16")):
        return mv
    if host == "?" and storage == "i32":     # any nonzero byte is true, as numpy's bool
        return byte_view(array.array("i", map(bool, mv)))
    if host == "e" and storage == "f32":
        return byte_view(array.array("f", struct.unpack(f"<{mv.nbytes // 2}e", mv)))
    raise TypeError(f"cannot store {dtype.name} as {storage}")


def from_storage(buffer, dtype: DType, storage: str):
    """Bytes of ``storage`` -> ``dtype``'s host layout (inverse of :func:`to_storage`; f32 -> float16
    rounds to nearest even, out of range gives infinity, as numpy)."""
    mv = byte_view(buffer)
    host = FORMAT[dtype.name]
    if (host, storage) in (("f", "f32"), ("i", "i32"), ("e", "f16")):
        return mv
    if host == "?" and storage == "i32":
        return bytes(map(bool, mv.cast("i"))) if mv.nbytes else b""
    if host == "e" and storage == "f32":
        return _pack_f16(mv.cast("f").tolist() if mv.nbytes else [])
    raise TypeError(f"cannot read {dtype.name} stored as {storage}")


def to_numpy(buffer, shape: tuple[int, ...], dtype: DType):
    """Host-layout bytes -> a writable numpy array. Raises ImportError (naming the extra) without numpy."""
    np = require_numpy("Tensor.numpy() (without numpy, use .tolist() or .item())")
    a = np.frombuffer(buffer, NUMPY[dtype.name]).reshape(shape)
    return a if a.flags.writeable else a.copy()
