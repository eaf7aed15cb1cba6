"""The dtype table. Every dtype fact lives in one row here.

Backends read the columns they need (``wasm``/``wgsl`` storage types); adding
float16 compute is a row, not a fork in the code.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """A tensor element type: one row of the dtype table (``webtensor.float32``, ``int32``,
    ``float16``, ``bool``). Not made by users: use the module's instances or :func:`as_dtype`.

    Args:
        name: the webtensor and numpy name (``'float32'``).
        kind: ``'f'`` float, ``'i'`` signed int, ``'b'`` bool.
        itemsize: bytes per element in numpy and in the safetensors layout.
        rank: promotion rank: bool < int32 < float16 < float32 (the highest wins).
        wasm: the WebAssembly scalar type used to compute and store it.
        wgsl: the WGSL scalar type used to compute it.
        safetensors: the safetensors dtype string (``'F32'``).
    """
    name: str       # webtensor / numpy name
    kind: str       # 'f' float, 'i' signed int, 'b' bool
    itemsize: int   # bytes in numpy and in the safetensors layout
    rank: int       # promotion rank: bool < int32 < float16 < float32
    wasm: str       # WebAssembly scalar type used to compute and store it
    wgsl: str       # WGSL scalar type used to compute it
    safetensors: str

    @property
    def is_floating(self) -> bool:
        return self.kind == "f"

    def __repr__(self) -> str:
        return f"webtensor.{self.name}"

    def __str__(self) -> str:
        return self.name


bool_ = DType("bool", "b", 1, 0, "i32", "bool", "BOOL")
int32 = DType("int32", "i", 4, 1, "i32", "i32", "I32")
float16 = DType("float16", "f", 2, 2, "f32", "f16", "F16")
float32 = DType("float32", "f", 4, 3, "f32", "f32", "F32")

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1   # int32's range (host conversion checks it; casts saturate to it)

DTYPES = {d.name: d for d in (bool_, int32, float16, float32)}
_ALIASES = {"bool_": bool_, "float": float32, "int": int32, "f32": float32, "i32": int32, "f16": float16,
            "float64": float32, "int64": int32}  # numpy defaults land on our 32-bit types


def as_dtype(x) -> DType:
    """Turn a DType, a name (``'float32'``), a numpy dtype or a Python type into a DType.

    Args:
        x: a DType; a name or alias (``'float32'``, ``'f32'``, ``'float'``, ``'int'``, ``'bool_'``);
            a numpy dtype or scalar type; ``bool``, ``int`` or ``float``.
    Returns:
        The DType.
    Raises:
        TypeError: for anything that is not a supported dtype.
    """
    if isinstance(x, DType):
        return x
    try:
        return _SEEN[x]             # numpy dtypes are hashable, and their .name is slow
    except (KeyError, TypeError):
        pass
    if x is bool:
        return bool_
    if x is int:
        return int32
    if x is float:
        return float32
    name = getattr(x, "name", None) or (x if isinstance(x, str) else None)
    if name is None and hasattr(x, "dtype"):
        name = x.dtype.name
    if isinstance(name, str):
        d = DTYPES.get(name) or _ALIASES.get(name)
        if d is not None:
            if not hasattr(x, "shape") and len(_SEEN) < 256:    # dtype-likes, not arrays
                try:
                    _SEEN[x] = d
                except TypeError:
                    pass
            return d
    raise TypeError(f"unsupported dtype {x!r}; webtensor supports {sorted(DTYPES)}")


_SEEN: dict = {}    # dtype-like -> DType, filled by as_dtype


def result_type(*dtypes: DType) -> DType:
    """Promotion of tensor dtypes: the highest rank wins (bool < int32 < float16 < float32)."""
    return max(dtypes, key=lambda d: d.rank)


def dtype_of_scalar(v) -> DType:
    """The weak dtype of a Python scalar operand."""
    if isinstance(v, bool):
        return bool_
    if isinstance(v, int):
        return int32
    if isinstance(v, float):
        return float32
    raise TypeError(f"expected a Python scalar, got {type(v).__name__}")
