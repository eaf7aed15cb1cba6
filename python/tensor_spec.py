"""``webtensor.TensorSpec``: a tensor's shape and dtype, ``None`` for sizes not fixed (tf.TensorSpec).

``webtensor.function(fn, input_signature=[TensorSpec(...), ...])`` traces ``fn`` once for all the
sizes its ``None`` dimensions take (see :mod:`webtensor.function`).
"""
from __future__ import annotations

from .core.dtypes import DType, as_dtype, float32
from .tensor import Tensor


class TensorSpec:
    """The shape and dtype of a tensor argument (tf.TensorSpec); ``None`` in ``shape`` for a size
    that may change from call to call.

    Args:
        shape: a sequence of ints (>= 0) and Nones.
        dtype: a DType or its name (float32 by default).
        name: an optional name (the input's name in exported artifacts).
    Raises:
        TypeError: a size that is not an int or None; a name that is not a str.
        ValueError: a negative size.
    """

    __slots__ = ("shape", "dtype", "name")

    def __init__(self, shape, dtype: DType | str = float32, name: str | None = None):
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise TypeError(f"TensorSpec: shape must be a sequence of ints and Nones, got {shape!r}")
        dims = []
        for d in shape:
            if d is None:
                dims.append(None)
            elif isinstance(d, bool) or not hasattr(d, "__index__"):
                raise TypeError(f"TensorSpec: shape must hold ints and Nones, got {d!r} in {tuple(shape)!r}")
            elif int(d) < 0:
                raise ValueError(f"TensorSpec: sizes must be >= 0 or None, got {tuple(shape)!r}")
            else:
                dims.append(int(d))
        if name is not None and not isinstance(name, str):
            raise TypeError(f"TensorSpec: name must be a str or None, got {name!r}")
        self.shape, self.dtype, self.name = tuple(dims), as_dtype(dtype), name

    @classmethod
    def from_tensor(cls, tensor, name: str | None = None) -> "TensorSpec":
        """The spec of ``tensor`` (a webtensor Tensor or a numpy array), all sizes fixed.

        Args:
            tensor: a tensor or array (anything with ``shape`` and ``dtype``).
            name: the spec's name.
        """
        return cls(tuple(tensor.shape), tensor.dtype if isinstance(tensor, Tensor) else as_dtype(tensor.dtype), name)

    def is_compatible_with(self, other) -> bool:
        """Whether ``other`` (a TensorSpec, a tensor or an array) could be a value of this spec: the
        same dtype and rank, and equal sizes where both are known.

        Args:
            other: a TensorSpec, a Tensor or a numpy array.
        """
        try:
            shape = tuple(other.shape)
            dtype = other.dtype if isinstance(other, (TensorSpec, Tensor)) else as_dtype(other.dtype)
        except (AttributeError, TypeError, ValueError):
            return False
        return dtype == self.dtype and len(shape) == len(self.shape) and \
            all(a is None or b is None or a == b for a, b in zip(self.shape, shape))

    def __eq__(self, other):
        return isinstance(other, TensorSpec) and (self.shape, self.dtype, self.name) == \
            (other.shape, other.dtype, other.name)

    def __hash__(self):
        return hash((self.shape, self.dtype.name, self.name))

    def __repr__(self):
        return f"TensorSpec(shape={self.shape!r}, dtype=webtensor.{self.dtype.name}, name={self.name!r})"
