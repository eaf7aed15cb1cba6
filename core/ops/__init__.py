"""The op set (the public functional API: ``webtensor.exp``, ``webtensor.matmul``, ...). Each op is defined once, in the module named for its family:

- ``elementwise``: unary and binary math, comparisons, ``where``, ``cast``;
- ``reduction``: ``sum prod max min mean argmax argmin``;
- ``movement``: ``reshape transpose broadcast_to slice pad concat gather one_hot`` and compositions;
- ``linalg``: ``matmul``;
- ``nn``: patches (im2col), ``conv2d``, pooling, the softmax family, losses.
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
from .nn import (conv2d, max_pool2d, avg_pool2d, softmax, log_softmax, logsumexp, softmax_cross_entropy,
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
    """GELU (Hendrycks & Gimpel 2016): exact erf form, or the tanh form with ``approximate=True``."""
    return gelu_tanh(x) if approximate else gelu_erf(x)


@op_signature(dtype=DTYPE)
def cast(x, dtype):
    """``x`` as ``dtype`` (a DType or name). float -> int truncates toward zero; nonzero -> True.
    Raises TypeError for an unknown dtype."""
    from ..dtypes import as_dtype
    from ..op import as_tensor
    x, dtype = as_tensor(x), as_dtype(dtype)
    return x if x.dtype == dtype else cast_op(x, dtype=dtype)


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("elementwise", "reduction", "movement",
                                                                   "linalg", "nn", "cast_op", "BOOL", "DTYPE",
                                                                   "op_signature", "math", "activation",
                                                                   "statistics")]
