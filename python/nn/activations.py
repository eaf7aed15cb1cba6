"""Activation functions by Keras name: ``get('relu')(x)``, with Keras' arguments and defaults. Each
calls the core op of that name (``webtensor.relu6``, ``webtensor.elu``, ...), so it runs (and fuses)
on every device."""
from __future__ import annotations

from ..core import ops as F
from ._registry import Registry, exports


def linear(x):
    return x


def relu(x):
    return F.relu(x)


def relu6(x):
    """min(max(x, 0), 6)."""
    return F.relu6(x)


def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, ``negative_slope * x`` otherwise (Keras' argument name and default)."""
    return F.leaky_relu(x, alpha=negative_slope)


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (Clevert et al. 2015)."""
    return F.elu(x, alpha=alpha)


def selu(x):
    """Scaled ELU (Klambauer et al. 2017), as ``webtensor.selu``."""
    return F.selu(x)


def gelu(x, approximate=False):
    """GELU (Hendrycks & Gimpel 2016); Keras' default is the exact erf form."""
    return F.gelu(x, approximate=approximate)


def sigmoid(x):
    return F.sigmoid(x)


def tanh(x):
    return F.tanh(x)


def softplus(x):
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) (no overflow)."""
    return F.softplus(x)


def softsign(x):
    """x / (1 + |x|)."""
    return F.softsign(x)


def silu(x):
    """x * sigmoid(x) (Ramachandran et al. 2017, "swish")."""
    return F.silu(x)


def softmax(x, axis=-1):
    return F.softmax(x, axis)


def log_softmax(x, axis=-1):
    return F.log_softmax(x, axis)


_BY_NAME = {f.__name__: f for f in (linear, relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, tanh, softplus,
                                    softsign, silu, softmax, log_softmax)}
_BY_NAME["swish"] = silu


_REGISTRY = Registry("activation", _BY_NAME, make=lambda fn, name: fn)


def get(identifier):
    """The activation for a Keras name (``'relu'``, ``'gelu'``, ``'softmax'``, ...), ``None``
    (linear) or a callable (returned as is).

    Raises:
        ValueError: an unknown name (the message lists the known ones). TypeError: anything else.
    """
    if identifier is None:
        return linear
    return _REGISTRY.get(identifier)


__all__, __dir__ = exports(globals())
