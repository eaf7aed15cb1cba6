"""webtensor: a tensor runtime for the web platform.

One Python core (op set, graph, autodiff, compiler) compiled to WebAssembly for CPUs
and WGSL for GPUs. Eager by default; ``webtensor.function`` traces graphs;
``GradientTape`` differentiates; ``webtensor.nn`` has Keras-style layers and ``fit``.
"""
from __future__ import annotations

import types as _types

__version__ = "0.1.0"     # first: modules imported below read it

from .core.dtypes import DType, bool_, float16, float32, int32, as_dtype
from .core.ops import *  # noqa: F401,F403  (the functional op set)
from .core.ops import abs, max, min, pow, round, sum, slice  # noqa: F401  (shadow builtins deliberately)
from .tensor import Tensor, Variable, tensor, init_scope
from .creation import (full, zeros, ones, zeros_like, ones_like, arange, linspace, eye, uniform, normal,
                       truncated_normal, set_seed)
from .device import device, get_device, init_async, register_device, Device
from .function import function, grad, value_and_grad, Function
from .tensor_spec import TensorSpec
from .tape import GradientTape
from .control import cond, scan, while_loop
from . import config, optimizers, data
from .export import export
from .artifact import load
from .safetensors_io import load_safetensors, save_safetensors
# The backends: importing them registers their devices, exporters and artifact loaders (the only
# place the API layer names them; docs/architecture.md).
from .wasm import artifact as _wasm_artifact, export as _wasm_export  # noqa: F401
from .webgpu import artifact as _webgpu_artifact, export as _webgpu_export  # noqa: F401
from . import nn, datasets, train, summary
from . import onnx  # noqa: E402  (imports the onnx package only when a model is loaded)



class _RandomNamespace(_types.SimpleNamespace):
    """Random tensors, as ``tf.random``: ``normal``, ``uniform``, ``truncated_normal``, ``categorical``,
    ``shuffle``, ``set_seed`` (the global seed) and ``Generator`` (a stateful generator)."""


from .generator import Generator as _Generator  # noqa: E402
from .creation import categorical as _categorical, shuffle as _shuffle  # noqa: E402
random = _RandomNamespace(normal=normal, uniform=uniform, truncated_normal=truncated_normal, set_seed=set_seed,
                          Generator=_Generator, categorical=_categorical, shuffle=_shuffle)
bool = bool_  # noqa: A001  (webtensor.bool, as tf.bool)


class _ImageNamespace(_types.SimpleNamespace):
    """Image ops, as ``tf.image``: ``resize`` (NHWC; TF2's half-pixel-centers rule)."""


from .core.ops.image import resize as _resize  # noqa: E402
image = _ImageNamespace(resize=_resize)



from .core.signature import alias as _alias

reduce_sum = _alias(sum, "reduce_sum")      # TF names: the same ops, named so in their errors
reduce_mean = _alias(mean, "reduce_mean")  # noqa: F405
reduce_max = _alias(max, "reduce_max")
reduce_min = _alias(min, "reduce_min")


def convert_to_tensor(x, dtype=None):
    """``x`` as a Tensor, as ``tf.convert_to_tensor``: a Tensor or Variable is returned as is when
    ``dtype`` is None or its own dtype; anything else goes through :func:`tensor`.

    Args:
        x: a Tensor, Python scalar, (nested) list, buffer or numpy array.
        dtype: the dtype wanted (a DType or its name); None keeps or infers it.
    Returns:
        A Tensor on the current device (a tensor's own device when it is returned as is).
    Raises:
        TypeError: unsupported data or dtype. ValueError: ragged lists. OverflowError: an integer
            outside int32's range. (As :func:`tensor`.)
    """
    return tensor(x, dtype=dtype)


from .core import ops as _ops

# The public API. Everything else (the submodules ``artifact``, ``core``, ``creation``,
# ``hostdata``, ``tape``, ``tree``, ``schema``, ``safetensors_io`` ..., and the gradient-only op
# ``extract_patches_grad``) stays importable as ``webtensor.<name>`` for tests and tools, but is not
# part of the API: ``dir(webtensor)`` lists only ``__all__``, as numpy does.
_INTERNAL_OPS = {"extract_patches_grad"}
__all__ = sorted(
    [n for n in _ops.__all__ if n not in _INTERNAL_OPS] +
    ["DType", "bool", "bool_", "float16", "float32", "int32", "as_dtype",
     "Tensor", "Variable", "tensor", "convert_to_tensor", "init_scope",
     "full", "zeros", "ones", "zeros_like", "ones_like", "arange", "linspace", "eye",
     "uniform", "normal", "truncated_normal", "set_seed", "random",
     "device", "get_device", "init_async", "register_device", "Device",
     "function", "grad", "value_and_grad", "Function", "TensorSpec", "GradientTape", "cond", "while_loop", "scan",
     "reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
     "export", "load", "load_safetensors", "save_safetensors",
     "config", "optimizers", "data", "nn", "datasets", "train", "summary", "image", "distribute", "onnx"])
del annotations, _INTERNAL_OPS


def __dir__():
    return __all__ + ["__version__"]


def __getattr__(name):
    if name == "distribute":    # needs numpy (and Ray for the cluster strategies): imported on first use
        import importlib
        return importlib.import_module(".distribute", __name__)
    raise AttributeError(f"module 'webtensor' has no attribute {name!r}")
