"""Activation functions as ops (issue 14), under TensorFlow's names: ``relu6 leaky_relu elu selu silu
(swish) softplus softsign``, and ``sigmoid_cross_entropy_with_logits``. Each activation is one
elementwise primitive (one kernel, one gradient rule); ``webtensor.nn.activations`` calls them by
their Keras names. Int and bool inputs give float32 (relu6 keeps int32, as relu).
"""
from __future__ import annotations

import math

from .. import kernel_ir as K
from ..dtypes import float32
from ..op import Aval, Op, as_tensor
from ..signature import NUMBER, op_signature
from .elementwise import (_fgrad, _np, abs_, cast, elementwise, exp, greater, greater_equal, less, logical_and,
                          mul, neg, sigmoid, sub, where)
from .math import _expm1, _log1p, in_float32, log1p
from ..dtypes import as_dtype

# Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14 (alpha_01 and lambda_01), as TF/Keras
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _float_out(dtype):
    return dtype if dtype.is_floating else float32


def _with_alpha(name, scalar, reference, grad, doc):
    """A float unary op with one number attribute ``alpha`` (the kernel bakes it in as a constant)."""
    def infer(x: Aval, *, alpha) -> Aval:
        return Aval(x.shape, _float_out(x.dtype))

    def ref(x, *, alpha):
        import numpy as np
        from ..numpy_util import np_dtype
        dt = np_dtype(_float_out(as_dtype(x.dtype)))
        with np.errstate(all="ignore"):
            return np.asarray(reference(np.asarray(x).astype(dt), dt(alpha))).astype(dt, copy=False)

    def kernel(ins, out, *, alpha):
        (x,) = ins
        e = K.cast(K.load(0, tuple(K.idx(d) for d in range(len(x.shape))), x.dtype), out.dtype)
        return K.map_kernel([K.Buffer(x.shape, x.dtype)], K.Buffer(out.shape, out.dtype), in_float32(scalar)(e, alpha))

    return Op(name, infer=infer, reference=ref, grad=grad, kernel=kernel, doc=doc, attrs={"alpha": NUMBER})


def _mask(cond, like):
    return cast(cond, dtype=like.dtype)


def _ref_elu(x, alpha):
    import numpy as np
    return np.where(x > 0, x, alpha * np.expm1(x))


def _ref_leaky(x, alpha):
    import numpy as np
    return np.where(x > 0, x, x * alpha)


leaky_relu_op = _with_alpha(
    "leaky_relu", lambda x, alpha: K.where(x > 0, x, x * alpha), _ref_leaky,
    lambda g, y, x, *, alpha: (where(greater(x, 0.0), g, g * alpha),),
    "x for x > 0, alpha x otherwise (attribute alpha).")
elu_op = _with_alpha(
    "elu", lambda x, alpha: K.where(x > 0, x, alpha * _expm1(x)), _ref_elu,
    lambda g, y, x, *, alpha: (where(greater(x, 0.0), g, g * (y + alpha)),),
    "x for x > 0, alpha (e^x - 1) otherwise (attribute alpha; expm1 keeps small negative x accurate).")


def _ref_selu(x):
    return SELU_SCALE * _ref_elu(x, SELU_ALPHA)


def _ref_silu(x):
    import numpy as np
    return x / (1 + np.exp(-x))


def _ref_softplus(x):
    import numpy as np
    return np.logaddexp(0, x)


def _ref_softsign(x):
    import numpy as np
    return np.where(np.isinf(x), np.sign(x), x / (1 + np.abs(x)))


def _relu6_grad(g, y, x):
    return g * _mask(logical_and(greater(x, 0.0), less(x, 6.0)), g)


relu6 = elementwise("relu6", 1, lambda x: K.minimum(K.maximum(x, 0), 6),
                    lambda x: _np("minimum")(_np("maximum")(x, 0), 6), _fgrad(_relu6_grad), "arith",
                    doc="min(max(x, 0), 6) (TF's relu6; NaN stays NaN). Gradient: g where 0 < x < 6, else 0.")
selu = elementwise(
    "selu", 1, in_float32(lambda x: SELU_SCALE * K.where(x > 0, x, SELU_ALPHA * _expm1(x))), _ref_selu,
    lambda g, y, x: (where(greater(x, 0.0), g * SELU_SCALE, g * (y + SELU_SCALE * SELU_ALPHA)),),
    doc="Scaled ELU (Klambauer et al. 2017, eq. 14): scale * (x if x > 0 else alpha (e^x - 1)), "
        "alpha = 1.6732632423543772, scale = 1.0507009873554805.")
silu = elementwise(
    "silu", 1, in_float32(lambda x: x / (1.0 + K.exp(-x))), _ref_silu,
    lambda g, y, x: (g * (sigmoid(x) * (1.0 - y) + y),),
    doc="x sigmoid(x) (Ramachandran et al. 2017 'swish'; Elfwing et al. 2018 'SiLU'), computed as "
        "x / (1 + e^-x): -inf gives NaN, as that formula in numpy and TF. Gradient: s + x s (1 - s).")
softplus = elementwise(
    "softplus", 1, in_float32(lambda x: K.maximum(x, 0) + _log1p(K.exp(-K.unary("abs", x)))), _ref_softplus,
    lambda g, y, x: (g * sigmoid(x),),
    doc="log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) (no overflow; accurate for very negative x).")
softsign = elementwise(
    "softsign", 1, lambda x: K.where(K.binary("eq", K.unary("abs", x), K.const(math.inf, x.dtype)),
                                     K.where(x > 0, 1.0, -1.0), x / (1.0 + K.unary("abs", x))),
    _ref_softsign, lambda g, y, x: (g / ((1.0 + abs_(x)) * (1.0 + abs_(x))),),
    doc="x / (1 + |x|); +-inf give +-1 (the limit).")


@op_signature()
def swish(features):
    """TensorFlow's ``tf.nn.swish``: the same as :func:`silu`, x sigmoid(x) (Ramachandran et al. 2017).

    Args:
        features: a tensor of any shape.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``features``' shape; float32 for int and bool inputs, else their float dtype.
    """
    return silu(features)


@op_signature(alpha=NUMBER)
def leaky_relu(features, alpha=0.2):
    """Leaky ReLU (Maas et al. 2013): ``features`` where > 0, else ``alpha * features`` (TF's
    ``tf.nn.leaky_relu``, default alpha 0.2).

    Args:
        features: a tensor of any shape.
        alpha: a number, the slope where ``features`` <= 0.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``features``' shape; float32 for int and bool inputs, else their float dtype.
    Raises:
        TypeError: ``alpha`` not a number.
    """
    return leaky_relu_op(as_tensor(features), alpha=float(alpha))


@op_signature(alpha=NUMBER)
def elu(features, alpha=1.0):
    """ELU (Clevert et al. 2015): ``features`` where > 0, else ``alpha * (exp(features) - 1)``
    (computed with expm1). TF's ``tf.nn.elu`` is alpha = 1; Keras' ``elu`` takes alpha.

    Args:
        features: a tensor of any shape.
        alpha: a number, the scale of the negative part.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``features``' shape; float32 for int and bool inputs, else their float dtype.
    Raises:
        TypeError: ``alpha`` not a number.
    """
    return elu_op(as_tensor(features), alpha=float(alpha))


@op_signature()
def sigmoid_cross_entropy_with_logits(labels, logits):
    """Elementwise binary cross-entropy of probabilities ``labels`` (z) given ``logits`` (x), as
    ``tf.nn.sigmoid_cross_entropy_with_logits``: TF's stable form max(x, 0) - x z + log(1 + e^-|x|)
    (log1p), with the max and |x| written as ``where(x >= 0, ...)`` as TF does, so the gradient at
    x = 0 is sigmoid(0) - z.

    Args:
        labels: a tensor of probabilities in [0, 1], of ``logits``' shape.
        logits: a tensor of any shape.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``logits``' shape, the loss per element (the promoted dtype of the two; float32 for
        int and bool inputs).
    Raises:
        ValueError: labels and logits shapes differ.
    """
    labels, logits = as_tensor(labels), as_tensor(logits)
    if tuple(labels.shape) != tuple(logits.shape):
        raise ValueError(f"sigmoid_cross_entropy_with_logits: labels shape {tuple(labels.shape)} != logits shape "
                         f"{tuple(logits.shape)}")
    pos = greater_equal(logits, 0.0)
    relu_logits = where(pos, logits, 0.0)
    neg_abs = where(pos, neg(logits), logits)
    return sub(relu_logits, mul(logits, labels)) + log1p(exp(neg_abs))


__all__ = ["relu6", "leaky_relu", "elu", "selu", "silu", "swish", "softplus", "softsign",
           "sigmoid_cross_entropy_with_logits"]
