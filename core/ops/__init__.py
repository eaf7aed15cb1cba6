"""The op set (the public functional API: ``webtensor.exp``, ``webtensor.matmul``, ...). Each op is defined once, in the module named for its family:

- ``elementwise``: unary and binary math, comparisons, ``where``, ``cast``;
- ``reduction``: ``sum prod max min mean argmax argmin``;
- ``movement``: ``reshape transpose broadcast_to slice pad concat gather one_hot`` and compositions;
- ``linalg``: ``matmul``;
- ``nn``: patches (im2col), ``conv1d conv2d conv2d_transpose depthwise_conv2d``, pooling, the softmax family, losses.
- ``sorting``: ``sort argsort top_k cumsum cumprod``;
- ``indexing``: ``gather_nd scatter_nd tensor_scatter_nd_update tensor_scatter_nd_add boolean_mask
  segment_sum unsorted_segment_sum``;
- ``rearrange`` (compositions): ``tile split unstack reverse roll repeat space_to_depth depth_to_space``;
- ``contraction`` (compositions): ``einsum tensordot``;
- ``image`` (a composition): ``resize`` (``webtensor.image.resize``).
- ``math``: more elementwise math under TF's names (``floormod expm1 log1p tan atan2 erfc is_nan`` ...);
- ``activation``: activation ops (``relu6 leaky_relu elu selu silu softplus softsign``) and
  ``sigmoid_cross_entropy_with_logits``;
- ``statistics``: ``reduce_any reduce_all reduce_variance reduce_std reduce_euclidean_norm moments l2_normalize``.

``OPS`` (in ``webtensor.core.op``) maps every primitive's name to its ``Op``.
"""
from .elementwise import (neg, abs_ as abs, sign, square, exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh, erf,
                          sigmoid, relu, gelu_tanh, gelu_erf, floor, ceil, round_ as round, logical_not,
                          stop_gradient, identity, add, sub, mul, div, pow_ as pow, maximum, minimum, equal, not_equal,
                          less, less_equal, greater, greater_equal, logical_and, logical_or, where, cast as cast_op)
from .reduction import sum, prod, max, min, mean, argmax, argmin
from .movement import (reshape, transpose, broadcast_to, slice, pad, concat, gather, one_hot, expand_dims,
                       squeeze, stack, flatten, take_along_axis)
from .linalg import matmul
from .nn import (conv2d, conv1d, conv2d_transpose, depthwise_conv2d, max_pool2d, avg_pool2d, softmax, log_softmax,
                 logsumexp, softmax_cross_entropy,
                 sparse_softmax_cross_entropy, mse, extract_patches, extract_patches_grad)
from .math import (floormod, mod, truncatemod, expm1, log1p, tan, atan, asin, acos, atan2, sinh, cosh, asinh, acosh,
                   atanh, erfc, is_nan, is_inf, is_finite, logical_xor, clip_by_value)
from .activation import (relu6, leaky_relu, elu, selu, silu, swish, softplus, softsign,
                         sigmoid_cross_entropy_with_logits)
from .statistics import (reduce_any, reduce_all, reduce_variance, reduce_std, reduce_euclidean_norm, moments,
                         l2_normalize)


from ..signature import BOOL, DTYPE, op_signature


@op_signature(approximate=BOOL)
def gelu(x, approximate: bool = False):
    """GELU, the Gaussian error linear unit (Hendrycks & Gimpel 2016, "Gaussian Error Linear Units"):
    ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`` (:func:`gelu_erf`), or with ``approximate=True`` the
    paper's tanh form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (:func:`gelu_tanh`).

    Args:
        x: tensor of any shape (int and bool inputs are promoted to float32).
        approximate: use the tanh form (tf.nn.gelu's argument of the same name).
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape; float32 for int and bool inputs, else ``x``'s dtype.
    Raises:
        TypeError: ``approximate`` not a bool.
    """
    return gelu_tanh(x) if approximate else gelu_erf(x)


@op_signature(dtype=DTYPE)
def cast(x, dtype):
    """``x`` converted elementwise to ``dtype`` (tf.cast): float -> int32 truncates toward zero and
    saturates (NaN -> 0), any -> bool is ``x != 0``, bool -> number is 0/1. The gradient flows
    between float dtypes only.

    Args:
        x: tensor of any shape and dtype (or a Python number, list or numpy array).
        dtype: the target dtype: a DType, its name (``'float32'``), a numpy dtype or a Python type.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape, of ``dtype`` (``x`` itself when it already has it).
    Raises:
        TypeError: an unknown dtype.
    """
    return x if x.dtype == dtype else cast_op(x, dtype=dtype)   # ``dtype`` is required: x and dtype were checked


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("elementwise", "reduction", "movement",
                                                                   "linalg", "nn", "cast_op", "BOOL", "DTYPE",
                                                                   "op_signature", "math", "activation",
                                                                   "statistics", "namespace")]

# Issue 14: sorting, indexing by index tensors, rearranging, contractions, image resizing.
from .sorting import sort, argsort, top_k, cumsum, cumprod
from .indexing import (gather_nd, scatter_nd, tensor_scatter_nd_update, tensor_scatter_nd_add, boolean_mask,
                       segment_sum, unsorted_segment_sum)
from .rearrange import tile, split, unstack, reverse, roll, repeat, space_to_depth, depth_to_space
from .contraction import einsum, tensordot
from .sizes import shape, size
__all__ += ["shape", "size"]
__all__ += ["sort", "argsort", "top_k", "cumsum", "cumprod", "gather_nd", "scatter_nd", "tensor_scatter_nd_update",
            "tensor_scatter_nd_add", "boolean_mask", "segment_sum", "unsorted_segment_sum", "tile", "split",
            "unstack", "reverse", "roll", "repeat", "space_to_depth", "depth_to_space", "einsum", "tensordot"]

# The namespace through which families use each other's ops at call time (core/ops/namespace.py).
from . import (activation, contraction, elementwise, image, indexing, linalg, math, movement, namespace, nn,  # noqa: E402
               rearrange, reduction, sizes, sorting, statistics)
namespace.fill([elementwise, reduction, movement, linalg, nn, math, activation, statistics, sorting, indexing,
                rearrange, contraction, image, sizes])
