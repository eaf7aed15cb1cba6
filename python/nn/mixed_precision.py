"""Mixed precision (``keras.mixed_precision``): dtype policies and loss scaling.

    webtensor.nn.mixed_precision.set_global_policy("mixed_float16")
    model = webtensor.nn.Sequential([webtensor.nn.Input((64,)),
                                     webtensor.nn.Dense(64, activation="relu"),
                                     webtensor.nn.Dense(10),
                                     webtensor.nn.Activation("softmax", dtype="float32")])
    model.compile("adam", "sparse_categorical_crossentropy")   # wraps the optimizer in a LossScaleOptimizer

A policy names a layer's *variable* dtype (what its weights are stored and updated in) and its
*compute* dtype (what its ``call`` computes in): ``"float32"`` is float32 for both,
``"mixed_float16"`` float32 variables and float16 compute (Keras 3's ``DTypePolicy``). A layer
with a float16 compute dtype casts its floating inputs to float16 and reads its float Variables as
float16 (a recorded cast: gradients reach the float32 Variables in float32), so its output is
float16; as Keras recommends, give the model's last layer (or a final ``Activation("softmax")``)
``dtype="float32"`` so that the outputs and the loss are float32. Integer inputs (token ids) are
not cast. Loss scaling (:class:`LossScaleOptimizer`) keeps small float16 gradients from flushing
to zero.

Where float16 computes, on each device (docs/mixed_precision.md has the details):

- ``webgpu`` with the adapter's ``shader-f16`` feature: float16 is stored and computed as WGSL
  ``f16`` (sums and matmuls accumulate in f32); without it (and in exported artifacts, compiled for
  any adapter), stored and computed as ``f32`` with every float16 output rounded as on wasm;
- ``wasm`` (WebAssembly has no half-precision arithmetic): kernels compute in f32, and every
  kernel's float16 output is rounded to the nearest float16 (ties to even; overflow to inf,
  subnormals kept), so float16 tensors hold float16 values and an eager op matches numpy's
  float16 result for the basic arithmetic; reductions and matmuls accumulate in f32 (as GPUs'
  float16 matmuls do);
- ``reference`` (numpy): numpy's float16 arithmetic.
"""
from __future__ import annotations

from ..core.dtypes import _ALIASES, DTYPES, as_dtype, float16, float32
from ..optimizers import LossScaleOptimizer

_MIXED = {"mixed_float16": (float16, float32)}
_DTYPE_NAMES = set(DTYPES) | set(_ALIASES)      # the strings webtensor.as_dtype takes


class Policy:
    """A dtype policy (``keras.mixed_precision.Policy``, Keras 3's ``DTypePolicy``): the compute and
    variable dtypes of a layer.

    ``Policy("float32")``: float32 compute and variables; ``Policy("mixed_float16")``: float16
    compute, float32 variables; any other dtype name (``"float16"``, ``"int32"``) is that dtype for
    both. Policies with the same name are equal.

    Args:
        name: ``"mixed_float16"`` or a dtype name (None: the global policy's name).
    Raises:
        TypeError: ``name`` is not a string.
        ValueError: an unknown name (the message lists the known ones).
    """

    def __init__(self, name: str | None = None):
        if name is None:
            name = global_policy().name
        if not isinstance(name, str):
            raise TypeError(f"'name' must be a string, such as 'mixed_float16'. Received: name={name!r} "
                            f"(of type {type(name).__name__})")
        if name in _MIXED:
            self._compute, self._variable = _MIXED[name]
        elif name in DTYPES:
            self._compute = self._variable = DTYPES[name]
        else:
            raise ValueError(f"Cannot convert {name!r} to a mixed precision Policy. Valid policies include "
                             f"{sorted(_MIXED)} and the dtype names {sorted(DTYPES)}")
        self._name = name

    @property
    def name(self) -> str:
        """The policy's name (``'mixed_float16'``)."""
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype layers compute in and output, by name (``'float16'``)."""
        return self._compute.name

    @property
    def variable_dtype(self) -> str:
        """The dtype layers create their variables in, by name (``'float32'``)."""
        return self._variable.name

    def get_config(self) -> dict:
        """``{"name": name}`` (Keras' ``DTypePolicy.get_config``)."""
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict) -> "Policy":
        """``Policy(**config)``.

        Args:
            config: ``{"name": ...}`` as :meth:`get_config` returns it.
        """
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Policy) and other._name == self._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<Policy "{self._name}">'


DTypePolicy = Policy        # Keras 3's name

_global = Policy("float32")


def global_policy() -> Policy:
    """The policy layers get when constructed without ``dtype=`` (``Policy("float32")`` until
    :func:`set_global_policy` changes it). Process-wide."""
    return _global


def set_global_policy(policy) -> None:
    """Set the policy of layers constructed from now on without ``dtype=``
    (``keras.mixed_precision.set_global_policy``). Layers built before keep theirs.

    Args:
        policy: a :class:`Policy`, a policy name (``"mixed_float16"``) or None (back to
            ``"float32"``).
    Raises:
        TypeError, ValueError: as :class:`Policy` for a bad name.
    """
    global _global
    _global = Policy("float32") if policy is None else policy if isinstance(policy, Policy) else Policy(policy)


def get(dtype) -> Policy:
    """The policy a layer's ``dtype=`` argument names: None -> the global policy; a Policy; a
    policy name; a dtype (a DType, or anything :func:`webtensor.as_dtype` takes: ``"float16"``,
    ``"f32"``) -> that dtype for both.

    Args:
        dtype: None, a Policy, a name, or a DType.
    Raises:
        TypeError, ValueError: anything else.
    """
    if dtype is None:
        return global_policy()
    if isinstance(dtype, Policy):
        return dtype
    if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict):   # a serialized Keras DTypePolicy
        dtype = dtype["config"].get("name")
    if isinstance(dtype, str):
        if dtype not in _MIXED and dtype in _DTYPE_NAMES:
            dtype = as_dtype(dtype).name        # 'f32', 'float' ...
        return Policy(dtype)                    # an unknown name: ValueError listing the known ones
    return Policy(as_dtype(dtype).name)


__all__ = ["Policy", "DTypePolicy", "global_policy", "set_global_policy", "LossScaleOptimizer"]


def __dir__():
    return list(__all__)
